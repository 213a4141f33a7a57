"""The reports app: registers its moderation hooks and its task names at start-up."""

from django.apps import AppConfig

from moderation.hooks import on_call_recorded, register_rule_action


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Referrals and reports"

    def ready(self) -> None:
        # Imported here, not at the top: both import models, which Django loads only after
        # every AppConfig module has been imported.
        from . import hooks, tasks  # noqa: F401 — tasks: register the task names (core.enqueue)

        on_call_recorded(hooks.draft_after_call)
        register_rule_action(
            "draft_referral",
            validate=hooks.draft_referral_validate,
            apply=hooks.draft_referral_apply,
            describe=hooks.draft_referral_describe,
        )
