from django.urls import path

from .views import cases, escalations, exposure, hash_lists, home, queue, rules, search
from .views import exchanges as exchange_views

app_name = "moderation"

urlpatterns = [
    path("", home.home, name="home"),
    path("home/live", home.home_live, name="home_live"),
    path("queue/", queue.queue, name="queue"),
    path("queue/next", queue.claim_next, name="claim_next"),
    path("queue/counts", queue.queue_counts_view, name="queue_counts"),
    path("queue/known-material", queue.known_material, name="known_material"),
    path("queue/known-material/decide", queue.bulk_decide, name="bulk_decide"),
    path("queue/filters", queue.saved_filter_create_view, name="saved_filter_create"),
    path(
        "queue/filters/<int:pk>/delete",
        queue.saved_filter_delete_view,
        name="saved_filter_delete",
    ),
    path("search/", search.search, name="search"),
    path("cases/<int:pk>/", cases.case_page, name="case"),
    path("cases/<int:pk>/media/<int:media_id>/reveal", cases.reveal, name="reveal"),
    path("cases/<int:pk>/decide", cases.decide, name="decide"),
    path("cases/<int:pk>/release", cases.release, name="release"),
    path("cases/<int:pk>/renew", cases.renew, name="renew"),
    path("cases/<int:pk>/reassign", cases.reassign, name="reassign"),
    path("cases/<int:pk>/restrict", cases.restrict, name="restrict"),
    path(
        "cases/<int:pk>/matches/<int:match_id>/verdict",
        cases.match_verdict,
        name="match_verdict",
    ),
    path("cases/<int:pk>/immediate-risk", escalations.mark_immediate_risk, name="immediate_risk"),
    path("media/<int:media_id>", cases.media_view, name="media"),
    path("media/<int:media_id>/frames/<int:frame_id>", cases.media_frame, name="media_frame"),
    path("escalations/", escalations.board, name="escalations"),
    path("escalations/live", escalations.board_live, name="escalations_live"),
    path("escalations/<int:pk>/", escalations.detail, name="escalation"),
    path(
        "escalations/<int:pk>/acknowledge",
        escalations.acknowledge,
        name="escalation_acknowledge",
    ),
    path("escalations/<int:pk>/call", escalations.record_call, name="escalation_call"),
    path("escalations/<int:pk>/resolve", escalations.resolve, name="escalation_resolve"),
    path("rules/", rules.rule_index, name="rules"),
    path("rules/new", rules.rule_edit, name="rule_new"),
    path("rules/<int:pk>/", rules.rule_edit, name="rule_edit"),
    path("exposure/", exposure.exposure_overview, name="exposure"),
    path("exposure/lift", exposure.exposure_lift_view, name="exposure_lift"),
    path("hash-lists/", hash_lists.hash_list_index, name="hash_lists"),
    path("hash-lists/new", hash_lists.hash_list_create, name="hash_list_create"),
    path("hash-lists/quarantine", hash_lists.quarantine_index, name="quarantine"),
    path(
        "hash-lists/quarantine/<int:pk>",
        hash_lists.quarantine_review,
        name="quarantine_review",
    ),
    path("hash-lists/<int:pk>/import", hash_lists.hash_list_import, name="hash_list_import"),
    path("hash-imports/<int:pk>", hash_lists.hash_import_progress, name="hash_import_progress"),
    path("hash-lists/exchanges/", exchange_views.exchange_index, name="exchanges"),
    path("hash-lists/exchanges/new", exchange_views.exchange_create_view, name="exchange_create"),
    path("hash-lists/exchanges/<int:pk>/", exchange_views.exchange_detail, name="exchange"),
    path(
        "hash-lists/exchanges/<int:pk>/edit",
        exchange_views.exchange_update_view,
        name="exchange_update",
    ),
    path(
        "hash-lists/exchanges/<int:pk>/fetch",
        exchange_views.exchange_fetch_now,
        name="exchange_fetch",
    ),
    path(
        "hash-lists/exchanges/<int:pk>/progress",
        exchange_views.exchange_progress,
        name="exchange_progress",
    ),
]
