from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Referrals and reports"

    def ready(self) -> None:
        from moderation.hooks import on_call_recorded, register_rule_action

        from . import services

        on_call_recorded(services.draft_after_call)
        register_rule_action(
            "draft_referral",
            validate=services._validate_draft_action,
            apply=services._apply_draft_action,
        )
