from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Safeguard core (audit, roles, API tokens)"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401  (registers system checks)
        from .roles import sync_roles_after_migrate

        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="core.sync_roles")
