from django.urls import path

from .api import cases, escalation_rules, hash_lists, items, reports

app_name = "moderation_api"

urlpatterns = [
    path("items", items.ItemCreateApi.as_view(), name="item-create"),
    path("items/batch", items.ItemBatchCreateApi.as_view(), name="item-batch-create"),
    path("items/<int:item_id>", items.ItemDetailApi.as_view(), name="item-detail"),
    path("reports", reports.ReportCreateApi.as_view(), name="report-create"),
    path("cases/next", cases.CaseClaimNextApi.as_view(), name="case-next"),
    path("cases/<int:case_id>", cases.CaseDetailApi.as_view(), name="case-detail"),
    path("cases/<int:case_id>/decision", cases.CaseDecisionApi.as_view(), name="case-decision"),
    path("cases/<int:case_id>/release", cases.CaseReleaseApi.as_view(), name="case-release"),
    path(
        "cases/<int:case_id>/immediate-risk",
        cases.CaseImmediateRiskApi.as_view(),
        name="case-immediate-risk",
    ),
    path(
        "escalation-rules",
        escalation_rules.EscalationRuleListCreateApi.as_view(),
        name="escalation-rules",
    ),
    path("hash-lists", hash_lists.HashListListCreateApi.as_view(), name="hash-lists"),
    path(
        "hash-lists/<int:list_id>/imports",
        hash_lists.HashImportCreateApi.as_view(),
        name="hash-import-create",
    ),
    path(
        "hash-imports/<int:import_id>", hash_lists.HashImportDetailApi.as_view(), name="hash-import"
    ),
]
