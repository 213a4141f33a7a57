"""Who a person is at the identity provider, and the provider's word that they used a second
factor."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django_otp.models import Device


class OidcIdentity(models.Model):
    """The link between a console user and one identity at the provider.

    Keyed by issuer and subject (`iss`, `sub`): the only pair OpenID Connect promises is stable
    and never reassigned. Never by email or username, which the provider may let people change
    or recycle; matching on them would hand one person's account to another.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identity"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique_sub")
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class IdpMfaDevice(Device):
    """A django-otp device that stands for "the identity provider asserted multi-factor
    authentication at this login" (`amr`/`acr` in the ID token).

    Logging a session in with it makes `user.is_verified()` true, so the console's
    two-factor middleware lets leads and admins through without Safeguard's own TOTP step.
    It verifies no code: a session gets it only from a sign-in whose ID token asserted MFA,
    and every later sign-in is judged afresh.
    """

    def verify_token(self, token: str) -> bool:
        return False
