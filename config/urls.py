from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core.metrics_views import metrics
from core.views import healthz
from principles.api import PrincipleListApi
from reports.urls import compliance_urlpatterns

admin.site.site_header = "Safeguard administration"
admin.site.site_title = "Safeguard admin"

api_v1 = [
    path("principles", PrincipleListApi.as_view(), name="principles"),
    path("", include("moderation.api_urls")),
    path("", include("reports.api_urls")),
]

urlpatterns = [
    # Meta's Hasher-Matcher-Actioner API at its own paths: /h/hash, /m/…, /c/… (hma.urls).
    # First: /m/raw_lookup is the hottest route, and nothing else starts with h/, m/ or c/.
    path("", include("hma.urls")),
    path("", include("moderation.urls")),
    path("", include("core.urls")),
    path("healthz", healthz, name="healthz"),
    # Prometheus scrape: bearer token and/or network allow-list, refused when unconfigured.
    path("metrics", metrics, name="metrics"),
    # Single sign-on through the organisation's identity provider (OpenID Connect).
    path("sso/", include("sso.urls")),
    path("principles/", include("principles.urls")),
    path("referrals/", include("reports.urls")),
    path("compliance/", include((compliance_urlpatterns, "compliance"))),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # A page people open in a browser: anonymous visitors go to the login page (and back),
    # not to a bare 401. The schema itself stays an API resource (401 JSON).
    path(
        "api/docs/",
        login_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
]

handler404 = "core.views.not_found"
