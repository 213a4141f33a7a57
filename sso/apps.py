"""Single sign-on: OpenID Connect login through the organisation's identity provider."""

from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "sso"
    verbose_name = "Single sign-on (OpenID Connect)"
