from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from .selectors import principle_list


@require_GET
@permission_required("principles.view_principle", raise_exception=True)
def principle_index(request: HttpRequest) -> HttpResponse:
    return render(request, "principles/index.html", {"principles": principle_list()})


@require_GET
@permission_required("principles.view_principle", raise_exception=True)
def principle_detail(request: HttpRequest, number: int) -> HttpResponse:
    principle = get_object_or_404(principle_list(), number=number)
    return render(request, "principles/detail.html", {"principle": principle})
