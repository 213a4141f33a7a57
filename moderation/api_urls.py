from django.urls import path

from . import api

app_name = "moderation_api"

urlpatterns = [
    path("items", api.ItemCreateApi.as_view(), name="item-create"),
    path("items/<int:item_id>", api.ItemDetailApi.as_view(), name="item-detail"),
    path("reports", api.ReportCreateApi.as_view(), name="report-create"),
    path("hash-lists", api.HashListListCreateApi.as_view(), name="hash-lists"),
    path(
        "hash-lists/<int:list_id>/imports",
        api.HashImportCreateApi.as_view(),
        name="hash-import-create",
    ),
    path("hash-imports/<int:import_id>", api.HashImportDetailApi.as_view(), name="hash-import"),
]
