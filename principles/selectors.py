from __future__ import annotations

from django.db.models import QuerySet

from .models import Principle


def principle_list() -> QuerySet[Principle]:
    return Principle.objects.prefetch_related("harm_categories").order_by("number")
