"""The permission matrix of single sign-on's routes with SSO configured (the main matrix,
tests/core/test_permission_matrix.py, has them unconfigured: 404).

Public by design: sign-in starts for anyone (a signed-in person may sign in again, as
someone else); a callback that belongs to no sign-in in flight is refused (400) whoever asks;
logout ends whatever session there is.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.conftest import client_for
from tests.core.test_permission_matrix import ROLES
from tests.sso.fake_idp import FakeIdp

SSO_MATRIX: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("GET", "/sso/login"): (302, 302, 302, 302, 302),
    ("GET", "/sso/callback"): (400, 400, 400, 400, 400),
    ("POST", "/sso/logout"): (302, 302, 302, 302, 302),
    ("GET", "/sso/logout"): (405, 405, 405, 405, 405),
    ("POST", "/sso/login"): (405, 405, 405, 405, 405),
}


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), sorted(SSO_MATRIX))
def test_each_role_gets_its_expected_status_with_sso_configured(
    method: str,
    path: str,
    idp: FakeIdp,
    moderator: Any,
    lead: Any,
    admin_user: Any,
    outsider: Any,
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
    assert got == dict(zip(ROLES, SSO_MATRIX[(method, path)], strict=True))
