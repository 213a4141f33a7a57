from django.urls import path

from . import api

app_name = "moderation_api"

urlpatterns = [
    path("items", api.ItemCreateApi.as_view(), name="item-create"),
    path("items/<int:item_id>", api.ItemDetailApi.as_view(), name="item-detail"),
    path("reports", api.ReportCreateApi.as_view(), name="report-create"),
]
