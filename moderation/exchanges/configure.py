"""Configuring exchanges: create, update, fetch now. Every change audited; credentials sealed
(moderation.exchanges.credentials) and write-only — the audit names the fields replaced,
never their values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import Actor, audit_record
from core.enqueue import enqueue_on_commit
from moderation.models import Exchange, HashList

from .credentials import credentials_open, credentials_seal
from .errors import ExchangeError
from .fetch import FETCH_TASK
from .programmes import Programme, programme_for

MAX_INTERVAL_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class ExchangeSettings:
    """What an admin sets on an exchange (credentials apart)."""

    name: str
    enabled: bool = False
    hash_list: HashList | None = None
    category_lists: Mapping[str, int] | None = None
    interval_minutes: int = 60
    feedback_enabled: bool = False
    options: Mapping[str, Any] | None = None


def exchange_create(
    *,
    kind: str,
    settings: ExchangeSettings,
    credentials: Mapping[str, str] | None = None,
    actor: Actor,
) -> Exchange:
    """A new exchange. Credentials entered are sealed; an enabled exchange must have them
    all, and a list to fill."""
    programme = programme_for(kind)
    fields = _checked(programme, settings)
    values, replaced = _merged(programme, {}, credentials or {})
    _check_ready(programme, fields, values)
    now = timezone.now()
    try:
        with transaction.atomic():
            exchange = Exchange.objects.create(
                kind=kind,
                credentials=credentials_seal(values) if replaced else "",
                credentials_updated_at=now if replaced else None,
                next_fetch_at=now,
                feedback_cursor=now if fields["feedback_enabled"] else None,
                **fields,
            )
            audit_record(
                actor=actor,
                verb="exchange.created",
                obj=exchange,
                data={"kind": kind, **_described(fields), "credentials_set": replaced},
            )
    except IntegrityError:
        raise ExchangeError(
            f"An exchange named {settings.name!r} exists already.", field="name"
        ) from None
    if exchange.enabled:
        enqueue_on_commit(FETCH_TASK, exchange.pk)
    return exchange


def exchange_update(
    *,
    exchange: Exchange,
    settings: ExchangeSettings,
    credentials: Mapping[str, str] | None = None,
    actor: Actor,
) -> Exchange:
    """Change an exchange. Credential fields left blank keep their stored value; entered ones
    replace it. A new source (environment, privacy group, base URL) starts the fetch over;
    turning feedback on sends only the verdicts given from then on."""
    programme = programme_for(exchange.kind)
    fields = _checked(programme, settings)
    entered = {k: v for k, v in (credentials or {}).items() if v and v.strip()}
    needed = entered or fields["enabled"] or fields["feedback_enabled"]
    current = credentials_open(exchange.credentials) if needed else {}
    values, replaced = _merged(programme, current, entered)
    _check_ready(programme, fields, values)
    now = timezone.now()
    changes = {k: v for k, v in fields.items() if getattr(exchange, k) != v}
    extra: dict[str, Any] = {}
    if "options" in changes:
        extra.update(checkpoint=None, progress_at=None)  # another source: start over
    if changes.get("feedback_enabled"):
        extra["feedback_cursor"] = now
    if changes.get("enabled"):
        extra["next_fetch_at"] = now
    if replaced:
        extra.update(credentials=credentials_seal(values), credentials_updated_at=now)
    if not changes and not replaced:
        return exchange
    try:
        with transaction.atomic():
            Exchange.objects.filter(pk=exchange.pk).update(**changes, **extra, updated_at=now)
            audit_record(
                actor=actor,
                verb="exchange.updated",
                obj=exchange,
                data={
                    "changes": _described(changes),
                    "credentials_replaced": replaced,
                    "checkpoint_reset": "options" in changes,
                },
            )
    except IntegrityError:
        raise ExchangeError(
            f"An exchange named {settings.name!r} exists already.", field="name"
        ) from None
    exchange.refresh_from_db()
    if changes.get("enabled"):
        enqueue_on_commit(FETCH_TASK, exchange.pk)
    return exchange


def exchange_fetch_request(*, exchange: Exchange, actor: Actor) -> None:
    """ "Fetch now": due at once, handed to a worker after commit (a fetch already running
    goes on; the request then changes nothing)."""
    if not exchange.enabled:
        raise ExchangeError(f"{exchange.name} is disabled: enable it to fetch.")
    with transaction.atomic():
        Exchange.objects.filter(pk=exchange.pk).update(next_fetch_at=timezone.now())
        audit_record(actor=actor, verb="exchange.fetch_requested", obj=exchange)
    enqueue_on_commit(FETCH_TASK, exchange.pk)


def _checked(programme: Programme, settings: ExchangeSettings) -> dict[str, Any]:
    name = settings.name.strip()
    if not name or len(name) > 100:
        raise ExchangeError("Give the exchange a name (up to 100 characters).", field="name")
    if not 5 <= settings.interval_minutes <= MAX_INTERVAL_MINUTES:
        raise ExchangeError(
            f"Fetch every 5 to {MAX_INTERVAL_MINUTES} minutes.", field="interval_minutes"
        )
    if settings.feedback_enabled and not programme.accepts_feedback:
        raise ExchangeError(
            f"{programme.label} takes no feedback through the library.", field="feedback_enabled"
        )
    category_lists: dict[str, int] = {}
    for label, list_id in (settings.category_lists or {}).items():
        label = str(label).strip()
        if not label or len(label) > 64:
            raise ExchangeError("Each category needs a label of up to 64 characters.")
        if not HashList.objects.filter(pk=list_id).exists():
            raise ExchangeError(f"No hash list {list_id} for category {label!r}.")
        category_lists[label] = int(list_id)
    return {
        "name": name,
        "enabled": settings.enabled,
        "hash_list": settings.hash_list,
        "category_lists": category_lists,
        "interval_minutes": settings.interval_minutes,
        "feedback_enabled": settings.feedback_enabled,
        "options": programme.clean_options(settings.options or {}),
    }


def _merged(
    programme: Programme, current: Mapping[str, str], entered: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """(the credentials with the entered fields replacing the stored ones, the names of the
    fields entered). Fields the programme doesn't use are dropped."""
    known = {f.name for f in programme.credential_fields}
    entered = {k: v.strip() for k, v in entered.items() if k in known and v and v.strip()}
    merged = {**{k: v for k, v in current.items() if k in known}, **entered}
    return merged, sorted(entered)


def _check_ready(
    programme: Programme, fields: Mapping[str, Any], values: Mapping[str, str]
) -> None:
    """An enabled exchange needs complete credentials and a list to fill; feedback needs its
    key."""
    if fields["enabled"] and fields["hash_list"] is None and not fields["category_lists"]:
        raise ExchangeError("Choose the hash list the exchange fills.", field="hash_list")
    if fields["enabled"] or fields["feedback_enabled"]:
        programme.check_credentials(values)
    if fields["feedback_enabled"] and not values.get("feedback_function_key"):
        raise ExchangeError(
            "Feedback needs the SubmitFeedback function key.", field="feedback_enabled"
        )


def _described(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields as an audit event stores them (the list by id)."""
    return {
        k: (v.pk if isinstance(v, HashList) else v) for k, v in fields.items() if k != "credentials"
    }
