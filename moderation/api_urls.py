from django.urls import path

from . import api, case_api

app_name = "moderation_api"

urlpatterns = [
    path("items", api.ItemCreateApi.as_view(), name="item-create"),
    path("items/<int:item_id>", api.ItemDetailApi.as_view(), name="item-detail"),
    path("reports", api.ReportCreateApi.as_view(), name="report-create"),
    path("cases/next", case_api.CaseClaimNextApi.as_view(), name="case-next"),
    path("cases/<int:case_id>", case_api.CaseDetailApi.as_view(), name="case-detail"),
    path("cases/<int:case_id>/decision", case_api.CaseDecisionApi.as_view(), name="case-decision"),
    path("cases/<int:case_id>/release", case_api.CaseReleaseApi.as_view(), name="case-release"),
    path(
        "cases/<int:case_id>/immediate-risk",
        case_api.CaseImmediateRiskApi.as_view(),
        name="case-immediate-risk",
    ),
    path(
        "escalation-rules", case_api.EscalationRuleListCreateApi.as_view(), name="escalation-rules"
    ),
    path("hash-lists", api.HashListListCreateApi.as_view(), name="hash-lists"),
    path(
        "hash-lists/<int:list_id>/imports",
        api.HashImportCreateApi.as_view(),
        name="hash-import-create",
    ),
    path("hash-imports/<int:import_id>", api.HashImportDetailApi.as_view(), name="hash-import"),
]
