"""HMA's routes at HMA's paths (no trailing slashes): /h hashing, /m matching, /c curation."""

from django.urls import path, re_path

from . import api

app_name = "hma"

urlpatterns = [
    path("h/hash", api.HashApi.as_view(), name="hash"),
    path("m/raw_lookup", api.RawLookupApi.as_view(), name="raw-lookup"),
    path("m/lookup", api.LookupApi.as_view(), name="lookup"),
    path("m/index/status", api.IndexStatusApi.as_view(), name="index-status"),
    path("m/compare", api.CompareApi.as_view(), name="compare"),
    path("c/banks", api.BankListCreateApi.as_view(), name="banks"),
    path("c/bank/<str:bank_name>", api.BankDetailApi.as_view(), name="bank"),
    path("c/bank/<str:bank_name>/signal", api.BankSignalApi.as_view(), name="bank-signal"),
    path(
        "c/bank/<str:bank_name>/content", api.BankContentAddApi.as_view(), name="bank-content-add"
    ),
    path(
        "c/bank/<str:bank_name>/content/<int:content_id>",
        api.BankContentApi.as_view(),
        name="bank-content",
    ),
    # Last: what the routes above don't match under HMA's prefixes gets the API's JSON 404.
    re_path(r"^[hmc]/", api.not_found, name="not-found"),
]
