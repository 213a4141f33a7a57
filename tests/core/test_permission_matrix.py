"""The permission matrix: every route x every role, with its expected status.

Generated from the URL conf: a new route without a row here fails
`test_every_route_has_a_row_in_the_matrix`, so nobody can add a page or endpoint without
deciding who may use it. Objects are absent (id 1), so "allowed" shows as 404 on object routes
and "refused" as 403; anonymous console requests go to the login page (302), anonymous API
requests get 401. Roles: anonymous, outsider (logged in, no role), moderator, lead, admin.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.conftest import client_for
from tests.core.test_access import ALL_ROUTES

MATRIX: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("GET", "/"): (302, 200, 200, 200, 200),
    ("GET", "/account/2fa/"): (302, 200, 200, 200, 200),
    # An enrolment link (core.enrolment) is for the one person it was issued to: "x" is nobody's.
    ("GET", "/account/2fa/enrol/x"): (302, 404, 404, 404, 404),
    ("POST", "/account/2fa/enrol/x"): (302, 404, 404, 404, 404),
    ("POST", "/account/keep-alive"): (302, 403, 200, 200, 200),
    # An invitation link is for someone logged out: a wrong link goes to the login page, and
    # anyone logged in gets 403 (core.people_views.set_password).
    ("GET", "/account/set-password/x/x/"): (302, 403, 403, 403, 403),
    # People and API tokens: admins only. An empty invite or issue form is shown again (200).
    ("GET", "/people/"): (302, 403, 403, 403, 200),
    ("POST", "/people/invite"): (302, 403, 403, 403, 200),
    ("GET", "/people/x/"): (302, 403, 403, 403, 404),
    ("POST", "/people/x/role"): (302, 403, 403, 403, 404),
    ("POST", "/people/x/deactivate"): (302, 403, 403, 403, 404),
    ("POST", "/people/x/reactivate"): (302, 403, 403, 403, 404),
    ("POST", "/people/x/reset-2fa"): (302, 403, 403, 403, 404),
    ("POST", "/people/x/enrolment-link"): (302, 403, 403, 403, 404),
    ("POST", "/people/x/unlock"): (302, 403, 403, 403, 404),
    ("POST", "/people/x/invitation"): (302, 403, 403, 403, 404),
    ("GET", "/tokens/"): (302, 403, 403, 403, 200),
    ("POST", "/tokens/new"): (302, 403, 403, 403, 200),
    ("POST", "/tokens/1/revoke"): (302, 403, 403, 403, 404),
    ("GET", "/admin/"): (302, 302, 302, 302, 200),
    ("GET", "/api/docs/"): (302, 200, 200, 200, 200),
    ("GET", "/api/schema/"): (401, 200, 200, 200, 200),
    ("GET", "/api/v1/cases/1"): (401, 403, 404, 404, 404),
    ("POST", "/api/v1/cases/1/decision"): (401, 403, 404, 404, 404),
    ("POST", "/api/v1/cases/1/immediate-risk"): (401, 403, 404, 404, 404),
    ("POST", "/api/v1/cases/1/release"): (401, 403, 404, 404, 404),
    ("POST", "/api/v1/cases/next"): (401, 403, 204, 204, 204),
    ("GET", "/api/v1/destinations"): (401, 403, 403, 200, 200),
    ("GET", "/api/v1/destinations/1"): (401, 403, 403, 200, 200),
    ("GET", "/api/v1/escalation-rules"): (401, 403, 403, 403, 200),
    ("GET", "/api/v1/hash-imports/1"): (401, 403, 403, 404, 404),
    ("GET", "/api/v1/hash-lists"): (401, 403, 403, 200, 200),
    ("GET", "/api/v1/hash-lists/1/imports"): (401, 403, 403, 403, 405),
    ("GET", "/api/v1/items"): (401, 403, 403, 403, 405),
    ("GET", "/api/v1/items/1"): (401, 403, 404, 404, 404),
    ("GET", "/api/v1/items/batch"): (401, 403, 403, 403, 405),
    ("GET", "/api/v1/principles"): (401, 403, 200, 200, 200),
    ("GET", "/api/v1/referrals"): (401, 403, 403, 405, 405),
    ("GET", "/api/v1/referrals/1"): (401, 403, 403, 404, 404),
    ("POST", "/api/v1/referrals/1/approve"): (401, 403, 403, 404, 404),
    ("GET", "/api/v1/referrals/1/download"): (401, 403, 403, 404, 404),
    ("POST", "/api/v1/referrals/1/acknowledge"): (401, 403, 403, 404, 404),
    ("POST", "/api/v1/referrals/1/sent"): (401, 403, 403, 404, 404),
    ("POST", "/api/v1/referrals/1/ncmec-send"): (401, 403, 403, 404, 404),
    ("GET", "/api/v1/reports"): (401, 403, 403, 403, 405),
    ("GET", "/cases/1/"): (302, 403, 404, 404, 404),
    ("POST", "/cases/1/decide"): (302, 403, 404, 404, 404),
    ("POST", "/cases/1/immediate-risk"): (302, 403, 404, 404, 404),
    ("POST", "/cases/1/media/1/reveal"): (302, 403, 404, 404, 404),
    ("POST", "/cases/1/reassign"): (302, 403, 403, 404, 404),
    ("POST", "/cases/1/release"): (302, 403, 404, 404, 404),
    ("POST", "/cases/1/renew"): (302, 403, 404, 404, 404),
    ("POST", "/cases/1/restrict"): (302, 403, 403, 404, 404),
    ("POST", "/cases/1/matches/1/verdict"): (302, 403, 404, 404, 404),
    ("GET", "/audit/"): (302, 403, 403, 200, 200),
    ("GET", "/compliance/"): (302, 403, 403, 200, 200),
    ("GET", "/compliance/operations/"): (302, 403, 403, 200, 200),
    ("GET", "/compliance/principles/1/"): (302, 403, 403, 200, 200),
    ("GET", "/compliance/qa/"): (302, 403, 403, 200, 200),
    ("GET", "/compliance/qa/1/"): (302, 403, 404, 404, 404),
    ("GET", "/compliance/transparency/"): (302, 403, 403, 200, 200),
    ("GET", "/compliance/transparency/1/"): (302, 403, 403, 404, 404),
    ("GET", "/escalations/"): (302, 403, 403, 200, 200),
    ("GET", "/escalations/live"): (302, 403, 403, 200, 200),
    ("GET", "/escalations/1/"): (302, 403, 403, 404, 404),
    ("POST", "/escalations/1/acknowledge"): (302, 403, 403, 404, 404),
    ("POST", "/escalations/1/call"): (302, 403, 403, 404, 404),
    ("POST", "/escalations/1/resolve"): (302, 403, 403, 404, 404),
    ("GET", "/exposure/"): (302, 403, 403, 200, 200),
    ("POST", "/exposure/lift"): (302, 403, 403, 302, 302),
    ("GET", "/hash-imports/1"): (302, 403, 403, 404, 404),
    ("GET", "/hash-lists/"): (302, 403, 403, 200, 200),
    ("POST", "/hash-lists/1/import"): (302, 403, 403, 403, 404),
    ("POST", "/hash-lists/new"): (302, 403, 403, 403, 302),
    ("GET", "/hash-lists/quarantine"): (302, 403, 403, 200, 200),
    # Exchanges (moderation.views.exchanges): leads watch, admins configure and fetch now.
    ("GET", "/hash-lists/exchanges/"): (302, 403, 403, 200, 200),
    ("POST", "/hash-lists/exchanges/new"): (302, 403, 403, 403, 302),
    ("GET", "/hash-lists/exchanges/1/"): (302, 403, 403, 404, 404),
    ("POST", "/hash-lists/exchanges/1/edit"): (302, 403, 403, 403, 404),
    ("POST", "/hash-lists/exchanges/1/fetch"): (302, 403, 403, 403, 404),
    ("GET", "/hash-lists/exchanges/1/progress"): (302, 403, 403, 404, 404),
    ("POST", "/hash-lists/quarantine/1"): (302, 403, 403, 404, 404),
    ("GET", "/healthz"): (200, 200, 200, 200, 200),
    # Single sign-on (sso.views): public by design, as the way a person without a session gets
    # one. Not configured in this suite, so its sign-in routes are 404 for everyone; logout
    # always ends the session. Rows with SSO configured: tests/sso/test_permissions.py.
    ("GET", "/sso/login"): (404, 404, 404, 404, 404),
    ("GET", "/sso/callback"): (404, 404, 404, 404, 404),
    ("POST", "/sso/logout"): (302, 302, 302, 302, 302),
    # Prometheus scrape (core.metrics_views): machines only, by bearer token and/or network
    # allow-list; with neither configured (as here) everyone is refused, console roles too.
    ("GET", "/metrics"): (403, 403, 403, 403, 403),
    ("GET", "/home/live"): (302, 403, 403, 200, 200),
    ("GET", "/login/"): (200, 302, 302, 302, 302),
    ("GET", "/logout/"): (302, 405, 405, 405, 405),
    ("GET", "/media/1"): (302, 403, 404, 404, 404),
    ("GET", "/media/1/frames/1"): (302, 403, 404, 404, 404),
    ("GET", "/principles/"): (302, 403, 200, 200, 200),
    ("GET", "/principles/1/"): (302, 403, 200, 200, 200),
    ("GET", "/queue/"): (302, 403, 200, 200, 200),
    ("GET", "/queue/counts"): (302, 403, 200, 200, 200),
    ("GET", "/queue/known-material"): (302, 403, 200, 200, 200),
    ("POST", "/queue/known-material/decide"): (302, 403, 302, 302, 302),
    ("POST", "/queue/next"): (302, 403, 302, 302, 302),
    # Saved filters are private: an empty save is refused back to the page (302); another
    # person's (or a missing) filter is 404.
    ("POST", "/queue/filters"): (302, 403, 302, 302, 302),
    ("POST", "/queue/filters/1/delete"): (302, 403, 404, 404, 404),
    ("GET", "/search/"): (302, 403, 200, 200, 200),
    ("GET", "/referrals/"): (302, 403, 403, 200, 200),
    ("GET", "/referrals/1/"): (302, 403, 403, 404, 404),
    ("POST", "/referrals/1/acknowledge"): (302, 403, 403, 404, 404),
    ("POST", "/referrals/1/approve"): (302, 403, 403, 404, 404),
    ("GET", "/referrals/1/download"): (302, 403, 403, 404, 404),
    ("POST", "/referrals/1/retry"): (302, 403, 403, 404, 404),
    ("POST", "/referrals/1/sent"): (302, 403, 403, 404, 404),
    ("POST", "/referrals/1/ncmec-send"): (302, 403, 403, 404, 404),
    ("GET", "/referrals/destinations/"): (302, 403, 403, 200, 200),
    ("GET", "/referrals/destinations/1/"): (302, 403, 403, 403, 200),
    ("GET", "/referrals/destinations/new"): (302, 403, 403, 403, 200),
    ("POST", "/referrals/1/submit"): (302, 403, 403, 404, 404),
    ("POST", "/referrals/1/summary"): (302, 403, 403, 404, 404),
    ("POST", "/referrals/new"): (302, 403, 403, 404, 404),
    ("GET", "/referrals/public-key"): (302, 403, 403, 200, 200),
    ("GET", "/rules/"): (302, 403, 403, 403, 200),
    ("GET", "/rules/1/"): (302, 403, 403, 403, 404),
    ("GET", "/rules/new"): (302, 403, 403, 403, 200),
    # HMA's routes (hma.permissions): matching for platforms and leads, curation for admins.
    # Bare requests: no file, no signal → 400; no such bank → 404.
    ("POST", "/h/hash"): (401, 403, 403, 400, 400),
    ("GET", "/m/raw_lookup"): (401, 403, 403, 400, 400),
    ("GET", "/m/lookup"): (401, 403, 403, 400, 400),
    ("GET", "/m/index/status"): (401, 403, 403, 200, 200),
    ("POST", "/m/compare"): (401, 403, 403, 200, 200),
    ("GET", "/c/banks"): (401, 403, 403, 200, 200),
    ("GET", "/c/bank/x"): (401, 403, 403, 404, 404),
    ("POST", "/c/bank/x/signal"): (401, 403, 403, 403, 400),
    ("POST", "/c/bank/x/content"): (401, 403, 403, 403, 404),
    ("GET", "/c/bank/x/content/1"): (401, 403, 403, 404, 404),
}
ROLES = ("anonymous", "outsider", "moderator", "lead", "admin")


def test_every_route_has_a_row_in_the_matrix() -> None:
    missing = sorted(set(ALL_ROUTES) - {path for _, path in MATRIX})
    assert not missing, f"routes without a permission rule: {missing}"
    stale = sorted({path for _, path in MATRIX} - set(ALL_ROUTES))
    assert not stale, f"rules for routes that no longer exist: {stale}"


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_each_role_gets_its_expected_status(
    method: str, path: str, moderator: Any, lead: Any, admin_user: Any, outsider: Any
) -> None:
    users = {
        "anonymous": None,
        "outsider": outsider,
        "moderator": moderator,
        "lead": lead,
        "admin": admin_user,
    }
    got = {}
    for role in ROLES:
        user = users[role]
        client = APIClient() if user is None else client_for(user)
        got[role] = getattr(client, method.lower())(path).status_code
    expected = dict(zip(ROLES, MATRIX[(method, path)], strict=True))
    assert got == expected
