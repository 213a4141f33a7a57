from django.urls import path

from . import case_views, escalation_views, views

app_name = "moderation"

urlpatterns = [
    path("", views.home, name="home"),
    path("queue/", views.queue, name="queue"),
    path("queue/next", case_views.claim_next, name="claim_next"),
    path("queue/counts", views.queue_counts_view, name="queue_counts"),
    path("queue/known-material", case_views.known_material, name="known_material"),
    path("queue/known-material/decide", case_views.bulk_decide, name="bulk_decide"),
    path("cases/<int:pk>/", case_views.case_page, name="case"),
    path("cases/<int:pk>/media/<int:media_id>/reveal", case_views.reveal, name="reveal"),
    path("cases/<int:pk>/decide", case_views.decide, name="decide"),
    path("cases/<int:pk>/release", case_views.release, name="release"),
    path("cases/<int:pk>/renew", case_views.renew, name="renew"),
    path("cases/<int:pk>/reassign", case_views.reassign, name="reassign"),
    path("cases/<int:pk>/restrict", case_views.restrict, name="restrict"),
    path(
        "cases/<int:pk>/immediate-risk", escalation_views.mark_immediate_risk, name="immediate_risk"
    ),
    path("media/<int:media_id>", case_views.media_view, name="media"),
    path("escalations/", escalation_views.board, name="escalations"),
    path("escalations/<int:pk>/", escalation_views.detail, name="escalation"),
    path(
        "escalations/<int:pk>/acknowledge",
        escalation_views.acknowledge,
        name="escalation_acknowledge",
    ),
    path("escalations/<int:pk>/call", escalation_views.record_call, name="escalation_call"),
    path("escalations/<int:pk>/resolve", escalation_views.resolve, name="escalation_resolve"),
    path("rules/", escalation_views.rule_index, name="rules"),
    path("rules/new", escalation_views.rule_edit, name="rule_new"),
    path("rules/<int:pk>/", escalation_views.rule_edit, name="rule_edit"),
    path("exposure/", case_views.exposure_overview, name="exposure"),
    path("exposure/lift", case_views.exposure_lift_view, name="exposure_lift"),
    path("hash-lists/", views.hash_list_index, name="hash_lists"),
    path("hash-lists/new", views.hash_list_create, name="hash_list_create"),
    path("hash-lists/<int:pk>/import", views.hash_list_import, name="hash_list_import"),
    path("hash-imports/<int:pk>", views.hash_import_progress, name="hash_import_progress"),
]
