"""Safeguard settings: the one settings file, read from the environment.

Every variable is documented in `.env.example`. Helpers fail loudly, naming the variable, when a
value is malformed, so a typo stops start-up instead of silently running with a default.

Two shapes:
- Embedded default (no DATABASE_URL, no REDIS_URL): SQLite file under var/, Celery tasks run
  in-process (eager), local-memory cache. One command runs the console with demo data.
- Production shape: DATABASE_URL=postgres://…, REDIS_URL=redis://… (broker and cache), workers
  for the queues `hashing`, `default`, `packets`, and beat.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


def env_networks(name: str) -> list[str]:
    """A comma-separated list of addresses or CIDR ranges; a bad entry stops start-up."""
    networks = env_list(name, [])
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} holds {network!r}, which is not an address or CIDR range"
            ) from None
    return networks


def env_url(name: str, *, schemes: tuple[str, ...]) -> str:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ""
    parsed = urlparse(raw)
    if parsed.scheme not in schemes or not (parsed.hostname or parsed.path):
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a valid URL (expected a scheme in {', '.join(schemes)})"
        )
    return raw


# --- Core -------------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off. Set SECRET_KEY to a long random string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))'), or DEBUG=true for "
            "local development."
        )
    SECRET_KEY = "insecure-development-key-only-used-when-DEBUG-is-on"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
VAR_DIR = Path(env_str("SAFEGUARD_VAR_DIR", str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "core",
    "principles",
    "moderation",
    "reports",
    "hma",
    "sso",
]

MIDDLEWARE = [
    # Outermost, ahead even of the HMA fast path: a request id for every request and log line
    # (X-Request-ID, echoed), then the request counter and latency histogram (core.metrics;
    # +7 µs on a full request, benchmarks/METRICS.md), so lookups answered by the fast path
    # and every refusal further down are counted too.
    "core.requestid.RequestIdMiddleware",
    "core.metrics.RequestMetricsMiddleware",
    # First: token-authenticated HMA lookups (GET /m/raw_lookup, /m/lookup) answered without the
    # console's middleware and DRF; anything else, and every refusal, goes on down this list.
    "hma.fastpath.HmaLookupFastPathMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "core.api_guard.ApiGuardMiddleware",
    "core.middleware.ConsoleLoginRequiredMiddleware",
    "core.middleware.TwoFactorRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires: it turns lockouts into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.roles",
                "core.context_processors.session",
                "sso.context_processors.sso",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------

DATABASE_URL = env_url("DATABASE_URL", schemes=("postgres", "postgresql", "sqlite"))
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
        )
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "safeguard.sqlite3",
            # SQLite serialises writers; a busy timeout makes a second writer wait instead of
            # failing with "database is locked" while the in-process worker writes.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
# A persistent connection that died (database restart, network blip) is replaced at the
# start of the next request instead of failing it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, broker, Celery --------------------------------------------------------------------

REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss"))
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", schemes=("redis", "rediss")) or REDIS_URL

if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# No broker → tasks run in-process, so the embedded default works in one process.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# acks_late + idempotent tasks: a worker killed mid-task leaves the message unacked, so the
# broker redelivers it. reject_on_worker_lost makes that explicit for a killed child process.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection after every task unless this is set, and
# then only every Nth: a new PostgreSQL connection per hashing batch was a visible share of the
# worker's CPU (benchmarks/LOAD.md). Set high, so that connections follow Django's own rules
# instead: config/celery.py closes one before and after each task only when it is older than
# DATABASE_CONN_MAX_AGE, unusable or left mid-transaction (close_old_connections), as Django
# does around every request. DATABASE_CONN_MAX_AGE=0 still closes after every task.
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 120, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 180, minimum=1)
# Redis redelivers an unacked message after the visibility timeout; keep it above the hard limit.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 600, minimum=60),
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "moderation.hash_media_batch": {"queue": "hashing"},
    "moderation.rescan_list": {"queue": "hashing"},
    "moderation.import_hash_list": {"queue": "default"},
    "moderation.fetch_exchange": {"queue": "default"},
    "moderation.deliver_webhook": {"queue": "default"},
    "reports.build_packet": {"queue": "packets"},
    "reports.sweep_stuck_packets": {"queue": "packets"},
    "reports.generate_transparency_report": {"queue": "default"},
}
CELERY_BEAT_SCHEDULE = {
    "sweep-stuck-hashing": {
        "task": "moderation.sweep_stuck_media",
        "schedule": timedelta(minutes=2),
    },
    "sweep-stuck-imports": {
        "task": "moderation.sweep_stuck_imports",
        "schedule": timedelta(minutes=2),
    },
    # Enqueues a fetch for every enabled exchange that is due (moderation.exchanges.fetch).
    "exchanges-due": {
        "task": "moderation.exchanges_due",
        "schedule": timedelta(minutes=1),
    },
    "repage-escalations": {
        "task": "moderation.repage_escalations",
        "schedule": timedelta(minutes=1),
    },
    "sla-check": {
        "task": "moderation.sla_check",
        "schedule": timedelta(minutes=1),
    },
    "referral-sla-check": {
        "task": "reports.referral_sla_check",
        "schedule": timedelta(minutes=1),
    },
    "retry-webhooks": {
        "task": "moderation.retry_webhooks",
        "schedule": timedelta(minutes=1),
    },
    "expire-leases": {
        "task": "moderation.expire_leases",
        "schedule": timedelta(minutes=1),
    },
    # Keeps the head of the claim index free of dead entries (services.queue.queue_vacuum).
    "vacuum-queue": {
        "task": "moderation.vacuum_queue",
        "schedule": timedelta(seconds=10),
    },
    # Index directories of deleted lists, dead builds and superseded versions.
    "prune-match-indexes": {
        "task": "moderation.prune_match_indexes",
        "schedule": crontab(minute=23),
    },
    "retention-purge": {
        "task": "moderation.retention_purge",
        "schedule": crontab(minute=41, hour=3),
    },
    "sweep-stuck-packets": {
        "task": "reports.sweep_stuck_packets",
        "schedule": timedelta(minutes=5),
    },
    "seal-audit-chain": {
        "task": "core.seal_audit_chain",
        "schedule": timedelta(seconds=5),
    },
    "audit-chain-check": {
        "task": "core.verify_audit_chain",
        "schedule": crontab(minute=17),
    },
    "audit-checkpoint": {
        "task": "core.write_audit_checkpoint",
        "schedule": timedelta(minutes=env_int("SAFEGUARD_AUDIT_CHECKPOINT_MINUTES", 5, minimum=1)),
    },
}

# --- Auth -------------------------------------------------------------------------------------

AUTHENTICATION_BACKENDS = [
    # First: refuses authentication while a username/IP pair is locked out.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: anonymous users get no object permissions at all
GUARDIAN_RAISE_403 = False
LOGIN_URL = "core:login"
LOGIN_REDIRECT_URL = "moderation:home"
LOGOUT_REDIRECT_URL = "core:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_TIMEOUT_SECONDS", 30 * 60, minimum=60)
SESSION_SAVE_EVERY_REQUEST = True  # idle timeout: each request pushes expiry forward
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

SECURE_COOKIES = env_bool("SECURE_COOKIES", not DEBUG and SITE_URL.startswith("https://"))
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Two-factor authentication (TOTP, django-otp): always for safety leads and admins; for
# moderators configurable (off in the DEBUG demo by default, on otherwise).
SAFEGUARD_2FA_MODERATORS = env_bool("SAFEGUARD_2FA_MODERATORS", not DEBUG)
# A lead or admin enrols a second factor only through an admin-issued, one-time enrolment link
# (or the invitation they accepted): a password alone must not bind an authenticator to such an
# account (core.enrolment). Off in the DEBUG demo by default, so its personas enrol at once.
SAFEGUARD_2FA_ENROLMENT_LINKS = env_bool("SAFEGUARD_2FA_ENROLMENT_LINKS", not DEBUG)
SAFEGUARD_2FA_ENROLMENT_LINK_HOURS = env_int("SAFEGUARD_2FA_ENROLMENT_LINK_HOURS", 24, minimum=1)
OTP_TOTP_ISSUER = "Safeguard"

# Login throttling and lockout (django-axes): per username and IP.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 30, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Per-username soft limit (core.lockout): after this many failures for one username from all
# addresses within the cool-off, it logs in only from browsers or addresses it has used before.
SAFEGUARD_LOGIN_SOFT_LIMIT = env_int("SAFEGUARD_LOGIN_SOFT_LIMIT", 20, minimum=1)
# The client address comes from core.clientip: X-Forwarded-For is trusted only hop by hop from
# these proxies (addresses or CIDR ranges, e.g. "10.0.0.0/8,172.16.0.1"); unset = ignored.
SAFEGUARD_TRUSTED_PROXIES = env_networks("SAFEGUARD_TRUSTED_PROXIES")
AXES_CLIENT_IP_CALLABLE = "core.clientip.client_ip"

# Content Security Policy: scripts and styles only from this origin (vendored files); inline
# style attributes are allowed for progress bars, inline scripts are not.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "media-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Single sign-on (sso/: OpenID Connect) ----------------------------------------------------
# Off unless SAFEGUARD_OIDC_ISSUER is set. Endpoints come from the issuer's discovery document
# unless given explicitly. A person's role comes from the groups claim through
# SAFEGUARD_OIDC_ROLE_MAP ("idp-group=Role,…"), re-read at every sign-in; leads and admins
# whose ID token does not assert multi-factor (amr/acr) go through Safeguard's own TOTP step.
SAFEGUARD_OIDC_ISSUER = env_url("SAFEGUARD_OIDC_ISSUER", schemes=("https", "http"))
SAFEGUARD_OIDC_ENABLED = bool(SAFEGUARD_OIDC_ISSUER)
SAFEGUARD_OIDC_PROVIDER_NAME = env_str("SAFEGUARD_OIDC_PROVIDER_NAME", "single sign-on")
SAFEGUARD_OIDC_CLIENT_ID = env_str("SAFEGUARD_OIDC_CLIENT_ID")
SAFEGUARD_OIDC_CLIENT_SECRET = env_str("SAFEGUARD_OIDC_CLIENT_SECRET")
SAFEGUARD_OIDC_SCOPES = env_str("SAFEGUARD_OIDC_SCOPES", "openid email profile")
SAFEGUARD_OIDC_DISCOVERY = env_bool("SAFEGUARD_OIDC_DISCOVERY", True)
SAFEGUARD_OIDC_AUTHORIZATION_ENDPOINT = env_url(
    "SAFEGUARD_OIDC_AUTHORIZATION_ENDPOINT", schemes=("https", "http")
)
SAFEGUARD_OIDC_TOKEN_ENDPOINT = env_url("SAFEGUARD_OIDC_TOKEN_ENDPOINT", schemes=("https", "http"))
SAFEGUARD_OIDC_JWKS_URI = env_url("SAFEGUARD_OIDC_JWKS_URI", schemes=("https", "http"))
SAFEGUARD_OIDC_END_SESSION_ENDPOINT = env_url(
    "SAFEGUARD_OIDC_END_SESSION_ENDPOINT", schemes=("https", "http")
)
SAFEGUARD_OIDC_TOKEN_AUTH_METHOD = env_str(
    "SAFEGUARD_OIDC_TOKEN_AUTH_METHOD", "client_secret_basic"
)
SAFEGUARD_OIDC_SIGNING_ALGORITHMS = env_list("SAFEGUARD_OIDC_SIGNING_ALGORITHMS", ["RS256"])
SAFEGUARD_OIDC_USERNAME_CLAIM = env_str("SAFEGUARD_OIDC_USERNAME_CLAIM", "preferred_username")
SAFEGUARD_OIDC_GROUPS_CLAIM = env_str("SAFEGUARD_OIDC_GROUPS_CLAIM", "groups")
SAFEGUARD_OIDC_ROLE_MAP: dict[str, str] = {}
for _pair in env_list("SAFEGUARD_OIDC_ROLE_MAP", []):
    _group, _sep, _role = (part.strip() for part in _pair.partition("="))
    # The console's roles (core.roles.ROLE_NAMES; tests/sso/test_settings.py pins the two).
    if not _sep or not _group or _role not in ("Moderator", "Safety lead", "Admin"):
        raise ImproperlyConfigured(
            f"SAFEGUARD_OIDC_ROLE_MAP holds {_pair!r}; write idp-group=Role, with Role one of "
            "Moderator, Safety lead, Admin (comma-separated pairs)"
        )
    SAFEGUARD_OIDC_ROLE_MAP[_group] = _role
# RFC 8176 `amr` values that mean more than one factor was used; or `acr` values the
# provider uses for its multi-factor level (provider-specific, so none by default).
SAFEGUARD_OIDC_MFA_AMR = env_list("SAFEGUARD_OIDC_MFA_AMR", ["mfa", "mca", "otp", "hwk", "sc"])
SAFEGUARD_OIDC_MFA_ACR = env_list("SAFEGUARD_OIDC_MFA_ACR", [])
SAFEGUARD_OIDC_TIMEOUT_SECONDS = env_int("SAFEGUARD_OIDC_TIMEOUT_SECONDS", 10, minimum=1)
# Password sign-in (and so the admin site's) can be turned off once SSO is set up.
SAFEGUARD_LOCAL_PASSWORD_LOGIN = env_bool("SAFEGUARD_LOCAL_PASSWORD_LOGIN", True)

_OIDC_ASYMMETRIC_ALGORITHMS = {
    *(f"{family}{bits}" for family in ("RS", "PS", "ES") for bits in (256, 384, 512)),
    "EdDSA",
}
if SAFEGUARD_OIDC_ENABLED:
    _missing = [
        name
        for name in ("SAFEGUARD_OIDC_CLIENT_ID", "SAFEGUARD_OIDC_CLIENT_SECRET")
        if not globals()[name]
    ] + ([] if SAFEGUARD_OIDC_ROLE_MAP else ["SAFEGUARD_OIDC_ROLE_MAP"])
    if _missing:
        raise ImproperlyConfigured(
            f"SAFEGUARD_OIDC_ISSUER is set, so {', '.join(_missing)} must be set too"
        )
    # Plain HTTP to the provider only on this machine (a local test provider): anywhere else
    # the client secret and the tokens would cross the network readable.
    for _name in (
        "SAFEGUARD_OIDC_ISSUER",
        "SAFEGUARD_OIDC_AUTHORIZATION_ENDPOINT",
        "SAFEGUARD_OIDC_TOKEN_ENDPOINT",
        "SAFEGUARD_OIDC_JWKS_URI",
        "SAFEGUARD_OIDC_END_SESSION_ENDPOINT",
    ):
        _url = urlparse(globals()[_name])
        if _url.scheme == "http" and _url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ImproperlyConfigured(f"{_name} must be an https:// URL")
    if not SAFEGUARD_OIDC_DISCOVERY and not all(
        (
            SAFEGUARD_OIDC_AUTHORIZATION_ENDPOINT,
            SAFEGUARD_OIDC_TOKEN_ENDPOINT,
            SAFEGUARD_OIDC_JWKS_URI,
        )
    ):
        raise ImproperlyConfigured(
            "SAFEGUARD_OIDC_DISCOVERY is off, so SAFEGUARD_OIDC_AUTHORIZATION_ENDPOINT, "
            "SAFEGUARD_OIDC_TOKEN_ENDPOINT and SAFEGUARD_OIDC_JWKS_URI must be set"
        )
    if SAFEGUARD_OIDC_TOKEN_AUTH_METHOD not in ("client_secret_basic", "client_secret_post"):
        raise ImproperlyConfigured(
            "SAFEGUARD_OIDC_TOKEN_AUTH_METHOD must be client_secret_basic or client_secret_post"
        )
    # "none" (unsigned) and HS* (signed with the client secret, which any holder of the
    # secret could forge) are never accepted for ID tokens.
    _bad_algorithms = set(SAFEGUARD_OIDC_SIGNING_ALGORITHMS) - _OIDC_ASYMMETRIC_ALGORITHMS
    if _bad_algorithms or not SAFEGUARD_OIDC_SIGNING_ALGORITHMS:
        raise ImproperlyConfigured(
            f"SAFEGUARD_OIDC_SIGNING_ALGORITHMS may hold only {sorted(_OIDC_ASYMMETRIC_ALGORITHMS)}"
        )
    AUTHENTICATION_BACKENDS.append("sso.backends.OidcBackend")
    # The logout form is redirected to the provider's end-session page: browsers apply the
    # form-action policy to that redirect, so the provider's origins must be allowed.
    for _name in ("SAFEGUARD_OIDC_ISSUER", "SAFEGUARD_OIDC_END_SESSION_ENDPOINT"):
        _url = urlparse(globals()[_name])
        if _url.scheme:
            _origin = f"{_url.scheme}://{_url.netloc}"
            if _origin not in CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"]:
                CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(_origin)
if not SAFEGUARD_LOCAL_PASSWORD_LOGIN:
    if not SAFEGUARD_OIDC_ENABLED:
        raise ImproperlyConfigured(
            "SAFEGUARD_LOCAL_PASSWORD_LOGIN=false needs single sign-on (SAFEGUARD_OIDC_ISSUER), "
            "or nobody could sign in"
        )
    AUTHENTICATION_BACKENDS.remove("django.contrib.auth.backends.ModelBackend")

# --- API --------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Deny by default: every endpoint must name what it allows.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.BoundedJSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Per-token (or per-user) rate limit; 429 with Retry-After when exceeded.
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.TokenRateThrottle"],
}
SAFEGUARD_API_RATE = env_str("SAFEGUARD_API_RATE", "600/min")
if not re.fullmatch(r"\d+/(s|sec|m|min|h|hour|d|day)", SAFEGUARD_API_RATE):
    raise ImproperlyConfigured(
        f"SAFEGUARD_API_RATE={SAFEGUARD_API_RATE!r} is not a rate like 600/min"
    )
SAFEGUARD_THROTTLE_NAMESPACE = "api"
# Requests to the API without credentials, per client address (core.throttling): they fail
# authentication before DRF's throttles run, so core.api_guard counts them, in the shared cache.
SAFEGUARD_API_ANON_RATE = env_str("SAFEGUARD_API_ANON_RATE", "60/min")
if not re.fullmatch(r"\d+/(s|sec|m|min|h|hour|d|day)", SAFEGUARD_API_ANON_RATE):
    raise ImproperlyConfigured(
        f"SAFEGUARD_API_ANON_RATE={SAFEGUARD_API_ANON_RATE!r} is not a rate like 60/min"
    )
SPECTACULAR_SETTINGS = {
    "TITLE": "Safeguard API",
    "DESCRIPTION": (
        "Intake, review and referral API of Safeguard, a trust-and-safety console for online "
        "child sexual exploitation and abuse (CSEA). Authenticate with "
        "`Authorization: Token <key>`."
        " No endpoint ever returns media bytes except the audited media view of the console."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",  # vendored: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.openapi.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "CasePriorityEnum": "principles.models.Priority",
        "CaseStatusEnum": "moderation.models.Case.Status",
        "ItemStatusEnum": "moderation.models.Item.Status",
        "EscalationStatusEnum": "moderation.models.Escalation.Status",
        "HashImportStatusEnum": "moderation.models.HashImport.Status",
        "ReferralPriorityEnum": "reports.models.ReferralPacket.Priority",
        "ReferralStatusEnum": "reports.models.ReferralPacket.Status",
        "ItemKindEnum": "moderation.models.Item.Kind",
        "DestinationKindEnum": "reports.models.Destination.Kind",
        "DestinationModeEnum": "reports.models.Destination.Mode",
        "IdentityDocumentsEnum": "reports.models.ReferralPacket.IdentityDocuments",
    },
}

# --- Static and evidence storage --------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    # Evidence lives in private storage: no MEDIA_URL is ever served. Files are read only by
    # the authenticated, audited media view.
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": str(Path(env_str("EVIDENCE_ROOT", str(VAR_DIR / "evidence")))),
            "base_url": None,
        },
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}
EVIDENCE_ROOT = Path(STORAGES["default"]["OPTIONS"]["location"])
MEDIA_URL = ""  # deliberately empty: evidence never has a public URL (see core.checks)
MEDIA_ROOT = ""
WHITENOISE_USE_FINDERS = DEBUG
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# --- Safeguard --------------------------------------------------------------------------------

SAFEGUARD_MAX_UPLOAD_BYTES = env_int("SAFEGUARD_MAX_UPLOAD_BYTES", 50 * 1024 * 1024, minimum=1024)
# Uploads are streamed to disk above 2.5 MB; DATA_UPLOAD_MAX_MEMORY_SIZE guards non-file bodies.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
SAFEGUARD_MAX_PIXELS = env_int("SAFEGUARD_MAX_PIXELS", 40_000_000, minimum=1)
SAFEGUARD_HASH_BATCH_SIZE = env_int("SAFEGUARD_HASH_BATCH_SIZE", 12, minimum=1)
SAFEGUARD_HASH_STUCK_AFTER_SECONDS = env_int("SAFEGUARD_HASH_STUCK_AFTER_SECONDS", 600, minimum=30)
SAFEGUARD_HASH_MAX_ATTEMPTS = env_int("SAFEGUARD_HASH_MAX_ATTEMPTS", 5, minimum=1)
# Video and animated images (vPDQ), decoded in a child process of the worker with these limits.
# One frame hashed every SAFEGUARD_VIDEO_HASH_INTERVAL_MS (Meta's default: one per second).
SAFEGUARD_VIDEO_HASH_INTERVAL_MS = env_int("SAFEGUARD_VIDEO_HASH_INTERVAL_MS", 1000, minimum=40)
SAFEGUARD_VIDEO_MAX_SECONDS = env_int("SAFEGUARD_VIDEO_MAX_SECONDS", 30 * 60, minimum=1)
SAFEGUARD_VIDEO_MAX_FRAMES = env_int("SAFEGUARD_VIDEO_MAX_FRAMES", 30 * 60 * 120, minimum=1)
SAFEGUARD_VIDEO_MAX_PIXELS = env_int("SAFEGUARD_VIDEO_MAX_PIXELS", 4096 * 2304, minimum=1)
SAFEGUARD_VIDEO_MEMORY_MB = env_int("SAFEGUARD_VIDEO_MEMORY_MB", 2048, minimum=256)
# Plus 90 s (the hashing task's hard limit) must stay under SAFEGUARD_HASH_STUCK_AFTER_SECONDS
# and the broker's visibility timeout (a system check says so), or the sweeper
# would hand a video still being decoded to a second worker.
SAFEGUARD_VIDEO_TIMEOUT_SECONDS = env_int("SAFEGUARD_VIDEO_TIMEOUT_SECONDS", 420, minimum=10)
SAFEGUARD_VIDEO_THUMBNAILS = env_int("SAFEGUARD_VIDEO_THUMBNAILS", 60, minimum=1)
# Hash hygiene: a list hash is quarantined (matches shown, nothing automatic) after this many
# false-positive verdicts, or when it matches more than this many distinct items in an hour.
SAFEGUARD_FALSE_POSITIVES_TO_QUARANTINE = env_int(
    "SAFEGUARD_FALSE_POSITIVES_TO_QUARANTINE", 3, minimum=1
)
SAFEGUARD_FLOOD_ITEMS_PER_HOUR = env_int("SAFEGUARD_FLOOD_ITEMS_PER_HOUR", 50, minimum=1)
SAFEGUARD_LEASE_SECONDS = env_int("SAFEGUARD_LEASE_SECONDS", 15 * 60, minimum=30)
# Exposure: reveals per moderator per UTC day. Soft limit → a break prompt; hard limit → reveals
# are blocked until a safety lead lifts the limit for that day.
SAFEGUARD_REVEAL_SOFT_LIMIT = env_int("SAFEGUARD_REVEAL_SOFT_LIMIT", 20, minimum=1)
SAFEGUARD_REVEAL_HARD_LIMIT = env_int("SAFEGUARD_REVEAL_HARD_LIMIT", 50, minimum=1)
# How long one reveal lets its moderator load that media through the media view.
SAFEGUARD_REVEAL_WINDOW_SECONDS = env_int("SAFEGUARD_REVEAL_WINDOW_SECONDS", 300, minimum=10)
SAFEGUARD_DECISION_WEBHOOK_URL = env_url(
    "SAFEGUARD_DECISION_WEBHOOK_URL", schemes=("http", "https")
)
SAFEGUARD_WEBHOOK_SECRET = env_str("SAFEGUARD_WEBHOOK_SECRET")
if SAFEGUARD_DECISION_WEBHOOK_URL and not SAFEGUARD_WEBHOOK_SECRET:
    raise ImproperlyConfigured(
        "SAFEGUARD_WEBHOOK_SECRET is required when SAFEGUARD_DECISION_WEBHOOK_URL is set "
        "(the platform verifies the X-Safeguard-Signature header with it)."
    )
SAFEGUARD_WEBHOOK_MAX_ATTEMPTS = env_int("SAFEGUARD_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
# Paging for escalations: email to on-call leads, plus an optional webhook (e.g. a pager).
SAFEGUARD_PAGING_WEBHOOK_URL = env_url("SAFEGUARD_PAGING_WEBHOOK_URL", schemes=("http", "https"))
SAFEGUARD_REPAGE_SECONDS = env_int("SAFEGUARD_REPAGE_SECONDS", 120, minimum=30)
SAFEGUARD_PAGES_PER_LEVEL = env_int("SAFEGUARD_PAGES_PER_LEVEL", 3, minimum=1)
# Retention: evidence bytes of closed cases are purged after this many days unless a legal hold
# (placed by every referral packet, default one year: the US REPORT Act's minimum) covers them.
SAFEGUARD_RETENTION_DAYS = env_int("SAFEGUARD_RETENTION_DAYS", 90, minimum=1)
SAFEGUARD_LEGAL_HOLD_DAYS = env_int("SAFEGUARD_LEGAL_HOLD_DAYS", 365, minimum=1)
# Ed25519 key that signs referral packet manifests (generated on first use when missing).
SAFEGUARD_SIGNING_KEY_FILE = Path(
    env_str("SAFEGUARD_SIGNING_KEY_FILE", str(VAR_DIR / "keys" / "packet-signing-key.pem"))
)
# Evidence at rest (core.evidence_crypto): every stored evidence file is AES-256-GCM encrypted
# with a data key of its own, wrapped by a master key. "id:base64(32 bytes)" entries, comma
# separated; the first wraps new keys, the others only unwrap until rotate_evidence_keys has
# re-wrapped everything. Empty: a key file generated on first use (the demo's default; a system
# check warns when DEBUG is off). `manage.py rotate_evidence_keys --generate` prints a new entry.
SAFEGUARD_EVIDENCE_MASTER_KEYS = env_str("SAFEGUARD_EVIDENCE_MASTER_KEYS", "")
SAFEGUARD_EVIDENCE_KEY_FILE = Path(
    env_str("SAFEGUARD_EVIDENCE_KEY_FILE", str(VAR_DIR / "keys" / "evidence-master.key"))
)
# Signed checkpoints of the audit chain's head (core.checkpoints), written once each to a
# directory the application should not be able to rewrite (a WORM or append-only mount, or one
# synchronised to object storage with retention). Events chained after a checkpoint but dated
# more than the grace before it are reported as inserted behind the application's back.
SAFEGUARD_AUDIT_CHECKPOINT_DIR = Path(
    env_str("SAFEGUARD_AUDIT_CHECKPOINT_DIR", str(VAR_DIR / "audit-checkpoints"))
)
SAFEGUARD_AUDIT_BACKDATE_GRACE_SECONDS = env_int(
    "SAFEGUARD_AUDIT_BACKDATE_GRACE_SECONDS", 600, minimum=1
)
# Backups (core.backup, `manage.py backup` / `restore`): AES-256-GCM archives. Keys are 32
# random bytes, base64, comma-separated; the first encrypts, all decrypt (rotation). Keep them in
# a secret store apart from the backups; a restore needs the one its archive names (by key id).
SAFEGUARD_BACKUP_KEY = env_list("SAFEGUARD_BACKUP_KEY", [])
for _key in SAFEGUARD_BACKUP_KEY:
    try:
        _raw = base64.urlsafe_b64decode(_key.replace("+", "-").replace("/", "_"))
    except ValueError:
        _raw = b""
    if len(_raw) != 32:
        raise ImproperlyConfigured(
            "SAFEGUARD_BACKUP_KEY holds a value that is not 32 bytes of base64 (generate one: "
            "python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
        )
SAFEGUARD_ORG_CONTACT_NAME = env_str("SAFEGUARD_ORG_CONTACT_NAME", "Trust and Safety team")
SAFEGUARD_ORG_CONTACT_EMAIL = env_str("SAFEGUARD_ORG_CONTACT_EMAIL", "safety@example.org")
SAFEGUARD_ORG_CONTACT_PHONE = env_str("SAFEGUARD_ORG_CONTACT_PHONE", "")
SAFEGUARD_NCMEC_ENABLED = env_bool("SAFEGUARD_NCMEC_ENABLED", False)
# NCMEC CyberTipline ESP API (reports.ncmec). Dry run until credentials are set: the XML is
# built and checked, nothing is sent. Environment "test" uses NCMEC's test endpoint.
SAFEGUARD_NCMEC_ENVIRONMENT = env_str("SAFEGUARD_NCMEC_ENVIRONMENT", "test")
SAFEGUARD_NCMEC_TEST_URL = env_str("SAFEGUARD_NCMEC_TEST_URL", "https://exttest.cybertip.org/ispws")
SAFEGUARD_NCMEC_PRODUCTION_URL = env_str(
    "SAFEGUARD_NCMEC_PRODUCTION_URL", "https://report.cybertip.org/ispws"
)
SAFEGUARD_NCMEC_USERNAME = env_str("SAFEGUARD_NCMEC_USERNAME")
SAFEGUARD_NCMEC_PASSWORD = env_str("SAFEGUARD_NCMEC_PASSWORD")
SAFEGUARD_NCMEC_TIMEOUT_SECONDS = env_int("SAFEGUARD_NCMEC_TIMEOUT_SECONDS", 30, minimum=1)
# The person registered with the NCA's reporting service who submits reports (Schedule 1,
# para 1 of the CSEA content reporting regulations). Shown to the approving lead.
SAFEGUARD_NCA_AUTHORISED_PERSON_NAME = env_str("SAFEGUARD_NCA_AUTHORISED_PERSON_NAME")
SAFEGUARD_NCA_AUTHORISED_PERSON_ROLE = env_str("SAFEGUARD_NCA_AUTHORISED_PERSON_ROLE")
SAFEGUARD_NCA_AUTHORISED_PERSON_EMAIL = env_str("SAFEGUARD_NCA_AUTHORISED_PERSON_EMAIL")
SAFEGUARD_NCA_AUTHORISED_PERSON_PHONE = env_str("SAFEGUARD_NCA_AUTHORISED_PERSON_PHONE")
# Detection → report deadlines by packet priority (hours from the first item's arrival), and
# how long an urgent or immediate report may wait for the recipient's reference.
SAFEGUARD_REPORT_DUE_HOURS_IMMEDIATE = env_int("SAFEGUARD_REPORT_DUE_HOURS_IMMEDIATE", 1, minimum=1)
SAFEGUARD_REPORT_DUE_HOURS_URGENT = env_int("SAFEGUARD_REPORT_DUE_HOURS_URGENT", 24, minimum=1)
SAFEGUARD_REPORT_DUE_HOURS_ROUTINE = env_int("SAFEGUARD_REPORT_DUE_HOURS_ROUTINE", 72, minimum=1)
SAFEGUARD_REFERRAL_ACK_HOURS = env_int("SAFEGUARD_REFERRAL_ACK_HOURS", 48, minimum=1)
SAFEGUARD_PACKET_STUCK_AFTER_SECONDS = env_int(
    "SAFEGUARD_PACKET_STUCK_AFTER_SECONDS", 600, minimum=30
)
# Transparency reports suppress counts below this (small numbers can identify people).
SAFEGUARD_TRANSPARENCY_MIN_COUNT = env_int("SAFEGUARD_TRANSPARENCY_MIN_COUNT", 10, minimum=1)
SAFEGUARD_INDEX_DIR = Path(env_str("SAFEGUARD_INDEX_DIR", str(VAR_DIR / "hash-index")))
SAFEGUARD_ORG_NAME = env_str("SAFEGUARD_ORG_NAME", "Example Platform Ltd")
SAFEGUARD_DEMO_PASSWORD = env_str("SAFEGUARD_DEMO_PASSWORD")

# --- Hash exchanges (moderation.exchanges: NCMEC, StopNCII, ThreatExchange, TAT) ---------------
# Fernet key(s) that encrypt exchange credentials at rest: comma-separated, the first encrypts,
# all decrypt (rotation). Without one the console refuses to store credentials.
SAFEGUARD_EXCHANGE_KEY = env_list("SAFEGUARD_EXCHANGE_KEY", [])
for _key in SAFEGUARD_EXCHANGE_KEY:
    try:
        _raw = base64.urlsafe_b64decode(_key.encode())
    except ValueError:
        _raw = b""
    if len(_raw) != 32:
        raise ImproperlyConfigured(
            "SAFEGUARD_EXCHANGE_KEY holds a value that is not a Fernet key (32 url-safe base64 "
            "bytes); generate one with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`"
        )
# One fetch task runs this long, then saves its checkpoint and hands over to a fresh task.
SAFEGUARD_EXCHANGE_FETCH_BUDGET_SECONDS = env_int(
    "SAFEGUARD_EXCHANGE_FETCH_BUDGET_SECONDS", 90, minimum=5
)
# A fetch's claim on its exchange; renewed with every page. It must outlast the fetch task's
# hard time limit (budget + 90 s), so that only a dead worker's claim ever expires.
SAFEGUARD_EXCHANGE_LEASE_SECONDS = env_int("SAFEGUARD_EXCHANGE_LEASE_SECONDS", 600, minimum=60)
if SAFEGUARD_EXCHANGE_LEASE_SECONDS <= SAFEGUARD_EXCHANGE_FETCH_BUDGET_SECONDS + 90:
    raise ImproperlyConfigured(
        "SAFEGUARD_EXCHANGE_LEASE_SECONDS must exceed SAFEGUARD_EXCHANGE_FETCH_BUDGET_SECONDS "
        "+ 90 (the fetch task's hard time limit), or a live fetch could be claimed twice."
    )
# On 429 / 5xx / network errors (after the library's own quick retries): resume from the
# checkpoint up to this many times in one run, waiting RETRY_SECONDS, doubling, or the
# source's Retry-After; a longer wait ends the run and the exchange waits for it.
SAFEGUARD_EXCHANGE_RETRIES = env_int("SAFEGUARD_EXCHANGE_RETRIES", 3, minimum=0)
SAFEGUARD_EXCHANGE_RETRY_SECONDS = env_int("SAFEGUARD_EXCHANGE_RETRY_SECONDS", 2, minimum=0)
SAFEGUARD_EXCHANGE_MAX_WAIT_SECONDS = env_int("SAFEGUARD_EXCHANGE_MAX_WAIT_SECONDS", 30, minimum=0)
# Base URL overrides may point at this machine or its local network (a local fake exchange in
# tests and benchmarks); never in production, where credentials would go to a local service.
SAFEGUARD_EXCHANGE_ALLOW_LOCAL_URLS = env_bool("SAFEGUARD_EXCHANGE_ALLOW_LOCAL_URLS", False)

# --- HMA-compatible API (hma/: Meta's Hasher-Matcher-Actioner routes under /h, /m, /c) ---------
# Uploads to /h/hash and POST /m/lookup are hashed within the request, in the limited child
# process the worker uses: their own size limit, and a timeout under gunicorn's (30 s).
HMA_MAX_UPLOAD_BYTES = env_int("HMA_MAX_UPLOAD_BYTES", SAFEGUARD_MAX_UPLOAD_BYTES, minimum=1024)
HMA_HASH_TIMEOUT_SECONDS = env_int("HMA_HASH_TIMEOUT_SECONDS", 20, minimum=1)
# The signal types the API speaks; empty: all (pdq, video_md5, vpdq, photo_md5, md5, sha256,
# sha1, phash, dhash). "pdq,video_md5,vpdq" for HMA's own only (a system check names typos).
HMA_SIGNAL_TYPES = env_list("HMA_SIGNAL_TYPES", [])
# How long a web process may reuse its read of the enabled lists (a new list or setting is
# searched within this; withdrawals, quarantines and disabled lists apply at once). 0: no reuse.
HMA_LIST_CACHE_SECONDS = env_int("HMA_LIST_CACHE_SECONDS", 1, minimum=0)
# GET /m/raw_lookup and GET /m/lookup with a token take a lean path (hma.fastpath) that reuses a
# token's check for this many seconds in the process: a revoked token (or deactivated user)
# is refused there within this time, on every other route at once. 0: checked every request.
SAFEGUARD_TOKEN_CACHE_SECONDS = env_int("SAFEGUARD_TOKEN_CACHE_SECONDS", 5, minimum=0)
if SAFEGUARD_TOKEN_CACHE_SECONDS > 60:
    raise ImproperlyConfigured(
        f"SAFEGUARD_TOKEN_CACHE_SECONDS={SAFEGUARD_TOKEN_CACHE_SECONDS} is above 60: a revoked "
        "token must stop working within seconds"
    )

# --- Email, logging, i18n ---------------------------------------------------------------------

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "safeguard@localhost")

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a logging level")
# plain: one readable line; json: one JSON object per line for log shippers (core.logs). Both
# carry the request id (core.requestid), also inside Celery tasks (config/celery.py hands the
# workers' logging to this configuration).
LOG_FORMAT = env_str("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is not plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.requestid.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "core.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Metrics and error reporting ----------------------------------------------------------------
# GET /metrics (core.metrics_views) is refused to everyone until one of these is set; when both
# are, both must pass. The token is sent as `Authorization: Bearer <token>`.
SAFEGUARD_METRICS_TOKEN = env_str("SAFEGUARD_METRICS_TOKEN").strip()
if SAFEGUARD_METRICS_TOKEN and len(SAFEGUARD_METRICS_TOKEN) < 24:
    raise ImproperlyConfigured(
        "SAFEGUARD_METRICS_TOKEN must be at least 24 characters (python -c 'import secrets; "
        "print(secrets.token_urlsafe(32))')"
    )
# Client addresses (core.clientip: behind SAFEGUARD_TRUSTED_PROXIES) that may scrape.
SAFEGUARD_METRICS_ALLOWED_NETWORKS = env_networks("SAFEGUARD_METRICS_ALLOWED_NETWORKS")
# gunicorn runs several processes: prometheus-client's multiprocess mode adds up their request
# metrics from files in this directory (empty it before the web server starts). Unset: each
# process counts alone (runserver, tests).
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
# What the scrape computes from the database and the broker (each app owns its collector).
SAFEGUARD_METRICS_COLLECTORS = [
    "core.metrics.collect_celery",
    "core.audit_metrics.collect_audit",
    "moderation.metrics.collect_cases",
    "moderation.metrics.collect_escalations",
    "moderation.metrics.collect_hashing",
    "moderation.metrics.collect_hash_lists",
    "moderation.metrics.collect_exchanges",
    "reports.metrics.collect_packets",
]
# Optional error reporting (sentry-sdk, `pip install '.[sentry]'`), only when a DSN is set:
# no personal data, request bodies, cookies, auth headers or frame variables (core.sentry).
SENTRY_DSN = env_url("SENTRY_DSN", schemes=("https", "http"))
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "production")
if SENTRY_DSN:
    from core.sentry import sentry_init

    sentry_init(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT)
