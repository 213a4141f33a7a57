"""Saved filters: a person names the queue's or the search page's current filters, to open them
again with one click. Private to their owner; creating and deleting one is audited."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from core.audit import audit_record
from core.errors import DomainError
from moderation.models import SavedFilter
from moderation.search import SEARCH_PARAMS

# The GET parameters each page filters by (the queue's keyset cursor `after` is a position,
# not a filter, and is never saved).
QUEUE_PARAMS = ("priority", "category", "source", "status", "mine")
PAGE_PARAMS: dict[str, tuple[str, ...]] = {
    SavedFilter.Page.QUEUE: QUEUE_PARAMS,
    SavedFilter.Page.SEARCH: SEARCH_PARAMS,
}
# Enough for a person's working set; the list sits on the queue page.
MAX_SAVED_FILTERS = 30
MAX_VALUE_LENGTH = 500


class SavedFilterRefused(DomainError):
    """A saved filter that cannot be created as asked."""

    field = "name"


def saved_filter_params(page: str, params: Mapping[str, str]) -> dict[str, str]:
    """The page's filter parameters from `params`, in the page's order, empty ones dropped."""
    if page not in PAGE_PARAMS:
        raise SavedFilterRefused("Filters can be saved from the queue or the search page.")
    kept = {key: str(params.get(key, "")).strip() for key in PAGE_PARAMS[page]}
    return {key: value for key, value in kept.items() if value}


def saved_filter_create(
    *, user: Any, name: str, page: str, params: Mapping[str, str]
) -> SavedFilter:
    """Save `params` (the page's current GET parameters) under `name` for `user` alone.

    1. Keep only the page's filter parameters; refuse an empty filter, an empty or taken
       name, over-long values, and more than MAX_SAVED_FILTERS per person.
    2. Insert and audit in one transaction (the unique (user, name) constraint settles a race
       between two tabs saving the same name).
    """
    name = name.strip()
    kept = saved_filter_params(page, params)
    if not name:
        raise SavedFilterRefused("Give the filter a name.")
    if len(name) > SavedFilter._meta.get_field("name").max_length:
        raise SavedFilterRefused("Keep the name to 80 characters or fewer.")
    if not kept:
        raise SavedFilterRefused("Choose at least one filter before saving it.")
    if any(len(value) > MAX_VALUE_LENGTH for value in kept.values()):
        raise SavedFilterRefused("A filter value is too long to save.")
    if SavedFilter.objects.filter(user=user).count() >= MAX_SAVED_FILTERS:
        raise SavedFilterRefused(
            f"You have {MAX_SAVED_FILTERS} saved filters; delete one before saving another."
        )
    try:
        with transaction.atomic():
            saved = SavedFilter.objects.create(user=user, name=name, page=page, params=kept)
            audit_record(
                actor=user,
                verb="saved_filter.created",
                obj=saved,
                data={"name": name, "page": page, "params": kept},
            )
    except IntegrityError as exc:
        raise SavedFilterRefused(f"You already have a filter named “{name}”.") from exc
    return saved


def saved_filter_delete(*, saved_filter: SavedFilter, user: Any) -> None:
    """Delete one of `user`'s own saved filters (the view finds it among theirs only)."""
    if saved_filter.user_id != user.pk:
        # The view already answered 404; this guards any other caller.
        raise SavedFilterRefused("That filter is not yours.", field=None)
    with transaction.atomic():
        audit_record(
            actor=user,
            verb="saved_filter.deleted",
            obj=saved_filter,
            data={"name": saved_filter.name, "page": saved_filter.page},
        )
        saved_filter.delete()
