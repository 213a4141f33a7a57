from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "moderation"
    verbose_name = "Moderation"

    def ready(self) -> None:
        # Register the Celery tasks in every process (web, worker, commands), so services can
        # enqueue them by name through core.enqueue without importing task modules.
        from . import tasks  # noqa: F401
