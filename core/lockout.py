"""Login lockout beyond django-axes' username+address lock: a per-username soft limit, and an
admin's audited unlock.

django-axes locks a username *from one address* after AXES_FAILURE_LIMIT failures, so nobody
can lock a person out everywhere by guessing from elsewhere. Guessing spread over many
addresses is met by the **soft limit**: once a username has SAFEGUARD_LOGIN_SOFT_LIMIT recent
failures in all, logins for it are refused from addresses and browsers it has never logged in
from — before the password is even checked — while a correct login from a known browser
(a signed cookie set at each login) or a known address (axes' access log) still works. An admin
clears a person's failures (`login_unlock`, audited) when they are locked out.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .audit import Actor, audit_record
from .clientip import client_ip

KNOWN_DEVICE_COOKIE = "sg_known"
_SALT = "safeguard.known-device"
_KNOWN_FOR = timedelta(days=90)


def login_failures(username: str) -> int:
    """Failed logins for this username, from every address, within the lockout window."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    total = AccessAttempt.objects.filter(username=username, attempt_time__gte=since).aggregate(
        n=Sum("failures_since_start")
    )["n"]
    return int(total or 0)


def _known_usernames(request: HttpRequest) -> list[str]:
    raw = request.COOKIES.get(KNOWN_DEVICE_COOKIE, "")
    if not raw:
        return []
    try:
        value = signing.loads(raw, salt=_SALT, max_age=_KNOWN_FOR.total_seconds())
    except signing.BadSignature:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def login_from_known_place(request: HttpRequest, username: str) -> bool:
    """This browser logged in as `username` before, or this address did (in 90 days)."""
    if username in _known_usernames(request):
        return True
    return AccessLog.objects.filter(
        username=username,
        ip_address=client_ip(request),
        attempt_time__gte=timezone.now() - _KNOWN_FOR,
    ).exists()


def login_soft_limited(request: HttpRequest, username: str) -> bool:
    """Refuse this login attempt before checking the password: the username is under attack
    from elsewhere, and this browser and address have never logged in as it."""
    if not username or login_failures(username) < settings.SAFEGUARD_LOGIN_SOFT_LIMIT:
        return False
    return not login_from_known_place(request, username)


def known_device_mark(request: HttpRequest, response: HttpResponse, username: str) -> None:
    """After a successful login: remember that this browser logs in as `username`."""
    others = [n for n in _known_usernames(request) if n != username]
    names = [*others[-4:], username]  # a shared machine remembers a few people
    response.set_cookie(
        KNOWN_DEVICE_COOKIE,
        signing.dumps(names, salt=_SALT),
        max_age=int(_KNOWN_FOR.total_seconds()),
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def login_lockouts(person: Any) -> dict[str, int]:
    """What an admin sees on a person's page: recent failures, and addresses locked out."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    attempts = AccessAttempt.objects.filter(username=person.get_username(), attempt_time__gte=since)
    return {
        "failures": login_failures(person.get_username()),
        "locked_addresses": attempts.filter(
            failures_since_start__gte=settings.AXES_FAILURE_LIMIT
        ).count(),
    }


def login_unlock(*, actor: Actor, person: Any, reason: str = "") -> int:
    """Clear every recorded login failure of `person` (lifting axes' lockouts and the soft
    limit); audited. Returns how many failure records went."""
    with transaction.atomic():
        attempts = AccessAttempt.objects.filter(username=person.get_username())
        failures = int(attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0)
        records, _ = attempts.delete()
        audit_record(
            actor=actor,
            verb="person.login_unlocked",
            obj=person,
            data={"failures_cleared": failures, "reason": reason.strip()[:500]},
        )
    return records
