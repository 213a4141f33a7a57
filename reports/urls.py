from django.urls import path

from . import compliance_views, views

app_name = "reports"

urlpatterns = [
    path("", views.packet_index, name="packets"),
    path("new", views.packet_new, name="packet_new"),
    path("public-key", views.public_key, name="public_key"),
    path("<int:pk>/", views.packet_detail, name="packet"),
    path("<int:pk>/submit", views.packet_submit_view, name="packet_submit"),
    path("<int:pk>/approve", views.packet_approve_view, name="packet_approve"),
    path("<int:pk>/retry", views.packet_retry_view, name="packet_retry"),
    path("<int:pk>/acknowledge", views.packet_acknowledge_view, name="packet_acknowledge"),
    path("<int:pk>/download", views.packet_download, name="packet_download"),
]

compliance_urlpatterns = [
    path("", compliance_views.overview, name="compliance"),
    path("principles/<int:number>/", compliance_views.principle_page, name="compliance_principle"),
    path("operations/", compliance_views.operations_page, name="operations"),
    path("transparency/", compliance_views.transparency_index, name="transparency"),
    path(
        "transparency/<int:pk>/", compliance_views.transparency_report, name="transparency_report"
    ),
    path("qa/", compliance_views.qa_index, name="qa"),
    path("qa/<int:pk>/", compliance_views.qa_review, name="qa_review"),
]
