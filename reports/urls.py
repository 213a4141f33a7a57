from django.urls import path

from . import views

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
