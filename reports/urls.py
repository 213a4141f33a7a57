"""Console URLs: referral packets (`reports:`) and the compliance section (`compliance:`)."""

from django.urls import path

from .views import compliance, destinations, packets

app_name = "reports"

urlpatterns = [
    path("", packets.packet_index, name="packets"),
    path("new", packets.packet_new, name="packet_new"),
    path("public-key", packets.public_key, name="public_key"),
    path("destinations/", destinations.destination_index, name="destinations"),
    path("destinations/new", destinations.destination_edit, name="destination_new"),
    path("destinations/<int:pk>/", destinations.destination_edit, name="destination"),
    path("<int:pk>/", packets.packet_detail, name="packet"),
    path("<int:pk>/submit", packets.packet_submit_view, name="packet_submit"),
    path("<int:pk>/summary", packets.packet_summary_view, name="packet_summary"),
    path("<int:pk>/approve", packets.packet_approve_view, name="packet_approve"),
    path("<int:pk>/retry", packets.packet_retry_view, name="packet_retry"),
    path("<int:pk>/sent", packets.packet_sent_view, name="packet_sent"),
    path("<int:pk>/ncmec-send", packets.packet_ncmec_send_view, name="packet_ncmec_send"),
    path("<int:pk>/acknowledge", packets.packet_acknowledge_view, name="packet_acknowledge"),
    path("<int:pk>/download", packets.packet_download, name="packet_download"),
]

compliance_urlpatterns = [
    path("", compliance.overview, name="compliance"),
    path("principles/<int:number>/", compliance.principle_page, name="compliance_principle"),
    path("operations/", compliance.operations_page, name="operations"),
    path("transparency/", compliance.transparency_index, name="transparency"),
    path("transparency/<int:pk>/", compliance.transparency_report, name="transparency_report"),
    path("qa/", compliance.qa_index, name="qa"),
    path("qa/<int:pk>/", compliance.qa_review, name="qa_review"),
]
