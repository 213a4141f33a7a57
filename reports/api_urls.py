"""API URLs (`reports_api:`), mounted under /api/v1/ by config.urls."""

from django.urls import path

from . import api

app_name = "reports_api"

urlpatterns = [
    path("destinations", api.DestinationListApi.as_view(), name="destination-list"),
    path(
        "destinations/<int:destination_id>",
        api.DestinationDetailApi.as_view(),
        name="destination-detail",
    ),
    path("referrals", api.ReferralCreateApi.as_view(), name="referral-create"),
    path("referrals/<int:packet_id>", api.ReferralDetailApi.as_view(), name="referral-detail"),
    path(
        "referrals/<int:packet_id>/approve",
        api.ReferralApproveApi.as_view(),
        name="referral-approve",
    ),
    path("referrals/<int:packet_id>/sent", api.ReferralSentApi.as_view(), name="referral-sent"),
    path(
        "referrals/<int:packet_id>/ncmec-send",
        api.ReferralNcmecSendApi.as_view(),
        name="referral-ncmec-send",
    ),
    path(
        "referrals/<int:packet_id>/acknowledge",
        api.ReferralAcknowledgeApi.as_view(),
        name="referral-acknowledge",
    ),
    path(
        "referrals/<int:packet_id>/download",
        api.ReferralDownloadApi.as_view(),
        name="referral-download",
    ),
]
