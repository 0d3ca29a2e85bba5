"""Settings for the release service: every deployment knob comes from the environment."""

import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from lukittu import (
    db_deadline,
    db_health,  # noqa: F401  (imported for its receiver)
    storage_settings,
)
from lukittu.env import env_bool, env_float, env_int, env_list, env_rate, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")
    SECRET_KEY = "django-insecure-local-development-only"

# Seals each team's RSA private key at rest (teams/keys.py). Losing it makes every team's key
# pair unusable, and so every classloader download; changing it needs a re-seal. Like
# SECRET_KEY, it has a development fallback only when DEBUG is true.
TEAM_KEYS_SECRET = env_str("TEAM_KEYS_SECRET")
if TEAM_KEYS_SECRET is None:
    if not DEBUG:
        raise ImproperlyConfigured("TEAM_KEYS_SECRET must be set when DEBUG is false")
    TEAM_KEYS_SECRET = "insecure-local-development-team-keys-secret"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "teams",
    "releases",
    "delivery",
    # Before django_tasks_db: its ``db_worker`` command is replaced by webhooks' own, which
    # also sweeps due deliveries from their table (webhooks/management/commands/db_worker.py).
    "webhooks",
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    # First, so it times and counts every response, including those of the other middleware.
    "lukittu.metrics.MetricsMiddleware",
    "lukittu.middleware.RequestIdMiddleware",
    # Notes X-Forwarded-For while NUM_PROXIES is 0, for `check --deploy` (lukittu/checks.py).
    "lukittu.middleware.ForwardedForMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Right after SecurityMiddleware (its HTTPS redirect and headers still apply): the admin's
    # and Swagger UI's files are answered here, before sessions and the API's middleware.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Content-Length on every answer, and X-Frame-Options: both apply to the API too.
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "lukittu.middleware.ApiErrorMiddleware",
    # From here to SiteOnlyEnd: the site's (the admin's) middleware, which requests under
    # /api/v1/ go straight past (lukittu/middleware.py says why).
    "lukittu.middleware.SiteOnlyStart",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Last of the site's, as django-axes asks: it turns a lockout flagged during
    # authentication into the lockout response.
    "axes.middleware.AxesMiddleware",
    "lukittu.middleware.SiteOnlyEnd",
]

ROOT_URLCONF = "lukittu.urls"
WSGI_APPLICATION = "lukittu.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The page at / (lukittu/home.py) and the admin's audit trail pages.
        "DIRS": [BASE_DIR / "lukittu" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite is the embedded default. WAL lets readers run beside a writer, IMMEDIATE transactions
# take the write lock up front (so two writers queue instead of deadlocking on a lock upgrade),
# and the busy timeout makes a queued writer wait rather than fail with "database is locked".
_SQLITE_OPTIONS = {
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
}
_database_url = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
try:
    _database = dj_database_url.parse(_database_url, conn_max_age=60, conn_health_checks=True)
except Exception as exc:  # dj-database-url raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if _database["ENGINE"] == "django.db.backends.sqlite3":
    _database["OPTIONS"] = {**_SQLITE_OPTIONS, **_database.get("OPTIONS", {})}
    _database["CONN_MAX_AGE"] = 0
    Path(_database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
elif _database["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must be a sqlite:// or postgres:// URL")
# PostgreSQL, in seconds: a connect gives up after DATABASE_CONNECT_TIMEOUT; the server cancels
# a statement (lock waits included) after DATABASE_STATEMENT_TIMEOUT and ends a session left
# idle inside a transaction after DATABASE_IDLE_IN_TRANSACTION_TIMEOUT; keepalives and the
# TCP user timeout drop a connection whose peer vanished after DATABASE_KEEPALIVE_SECONDS; and
# the service itself abandons a statement still unanswered DATABASE_ANSWER_GRACE seconds past
# the statement timeout (a hung server cancels nothing: lukittu/db_deadline.py). 0 turns the
# statement timeout and that deadline off (long migrations on a big database, say).
DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=2)
DATABASE_STATEMENT_TIMEOUT = env_int("DATABASE_STATEMENT_TIMEOUT", 30, minimum=0)
DATABASE_IDLE_IN_TRANSACTION_TIMEOUT = env_int(
    "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT", 60, minimum=0
)
DATABASE_KEEPALIVE_SECONDS = env_int("DATABASE_KEEPALIVE_SECONDS", 30, minimum=1)
DATABASE_ANSWER_GRACE = env_float("DATABASE_ANSWER_GRACE", 5.0, above=0)
if _database["ENGINE"] == "django.db.backends.postgresql":
    _database["OPTIONS"] = {
        **_database.get("OPTIONS", {}),
        **db_deadline.postgresql_options(
            connect_timeout=DATABASE_CONNECT_TIMEOUT,
            statement_timeout=DATABASE_STATEMENT_TIMEOUT,
            idle_in_transaction_timeout=DATABASE_IDLE_IN_TRANSACTION_TIMEOUT,
            keepalive_seconds=DATABASE_KEEPALIVE_SECONDS,
        ),
    }
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits) --------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"))
# Seconds. A hung Redis costs a request at most one connect and one reply before the rate
# limiter gives up and lets the request through.
REDIS_CONNECT_TIMEOUT = env_float(
    "REDIS_CONNECT_TIMEOUT", storage_settings.REDIS_CONNECT_TIMEOUT, above=0
)
REDIS_SOCKET_TIMEOUT = env_float(
    "REDIS_SOCKET_TIMEOUT", storage_settings.REDIS_SOCKET_TIMEOUT, above=0
)
if REDIS_URL:
    CACHES = {
        "default": storage_settings.redis_cache(
            url=REDIS_URL,
            socket_timeout=REDIS_SOCKET_TIMEOUT,
            connect_timeout=REDIS_CONNECT_TIMEOUT,
        )
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Files ----------------------------------------------------------------------------------
MEDIA_ROOT = env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media"))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# The process serves /static/ itself (WhiteNoise): from STATIC_ROOT, which `manage.py
# collectstatic` fills, or, with DEBUG or STATIC_FROM_FINDERS=true, straight from the apps'
# folders, so development and the tests' live servers need no collectstatic.
WHITENOISE_USE_FINDERS = DEBUG or env_bool("STATIC_FROM_FINDERS", False)
# Empty until collectstatic runs. Made here so that processes which never collect (the test
# suite, DEBUG) start without WhiteNoise warning that the folder is missing.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
# Uploads stream into this folder, which the service owns (reconcile_storage removes files
# that killed workers left). On the same file system as MEDIA_ROOT, a finished upload is
# linked into place instead of copied.
FILE_UPLOAD_TEMP_DIR = env_str("UPLOAD_TEMP_DIR", str(BASE_DIR / "var" / "uploads"))
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)

MAX_RELEASE_FILE_MB = env_int("MAX_RELEASE_FILE_MB", 10, minimum=1)

AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env_url("AWS_S3_ENDPOINT_URL", ("http", "https"))
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME")
AWS_ACCESS_KEY_ID = env_str("AWS_ACCESS_KEY_ID")
AWS_SECRET_ACCESS_KEY = env_str("AWS_SECRET_ACCESS_KEY")
# Seconds per attempt, and attempts per call including the first.
AWS_S3_CONNECT_TIMEOUT = env_float(
    "AWS_S3_CONNECT_TIMEOUT", storage_settings.S3_CONNECT_TIMEOUT, above=0
)
AWS_S3_READ_TIMEOUT = env_float("AWS_S3_READ_TIMEOUT", storage_settings.S3_READ_TIMEOUT, above=0)
AWS_S3_MAX_ATTEMPTS = env_int("AWS_S3_MAX_ATTEMPTS", storage_settings.S3_MAX_ATTEMPTS, minimum=1)
# Seconds an upload's reservation of the team's storage holds unless renewed; its process
# renews it every third of that while the request runs, so the bytes reserved by a request
# that died are free again within this long (releases/ledger.py).
STORAGE_LEASE_SECONDS = env_int("STORAGE_LEASE_SECONDS", 60, minimum=1)
# A bulkhead: at most this many threads per process inside a storage call at once (by default
# half of GUNICORN_THREADS), so a hung storage cannot take every thread; a request that finds
# no slot within STORAGE_BUSY_WAIT seconds answers 503 "Storage busy" with Retry-After.
STORAGE_CONCURRENCY = env_int(
    "STORAGE_CONCURRENCY", max(1, env_int("GUNICORN_THREADS", 4, minimum=1) // 2), minimum=1
)
STORAGE_BUSY_WAIT = env_float("STORAGE_BUSY_WAIT", 5.0, above=0)

if AWS_STORAGE_BUCKET_NAME:
    _default_storage = storage_settings.s3_storage(
        bucket_name=AWS_STORAGE_BUCKET_NAME,
        endpoint_url=AWS_S3_ENDPOINT_URL,
        region_name=AWS_S3_REGION_NAME,
        access_key=AWS_ACCESS_KEY_ID,
        secret_key=AWS_SECRET_ACCESS_KEY,
        connect_timeout=AWS_S3_CONNECT_TIMEOUT,
        read_timeout=AWS_S3_READ_TIMEOUT,
        max_attempts=AWS_S3_MAX_ATTEMPTS,
    )
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    # collectstatic also writes a gzipped copy of each file, which WhiteNoise sends to clients
    # that accept it (Swagger UI's bundle: 1.6 MB, about 430 KB gzipped).
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- API ------------------------------------------------------------------------------------
DEV_API_RATE = env_rate("DEV_API_RATE", "1200/minute")
# Failed Developer API authentications per client address (an IPv6 address by its /64); past
# them the address is refused, whatever key it sends, until the window ends.
DEV_API_AUTH_FAILURE_RATE = env_rate("DEV_API_AUTH_FAILURE_RATE", "20/minute")
# The Client API's limits (Lukittu's numbers): per client IP and per license key, each counted
# across every worker in the cache.
# An Idempotency-Key whose request died without an answer is free again after this long
# (teams/conditions.py): longer than any request may run.
IDEMPOTENCY_STALE_SECONDS = env_int("IDEMPOTENCY_STALE_SECONDS", 300, minimum=1)
CLIENT_IP_RATE = env_rate("CLIENT_IP_RATE", "30/minute")
CLIENT_LICENSE_RATE = env_rate("CLIENT_LICENSE_RATE", "30/minute")
NUM_PROXIES = env_int("NUM_PROXIES", 0, minimum=0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["teams.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["teams.authentication.IsTeamApiKey"],
    "DEFAULT_THROTTLE_CLASSES": ["lukittu.throttling.ApiKeyRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.MultiPartParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "lukittu.api.JsonOnlyNegotiation",
    "DEFAULT_METADATA_CLASS": None,
    "EXCEPTION_HANDLER": "lukittu.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Always a number: DRF's None means "trust X-Forwarded-For as sent", which would let any
    # client choose the address recorded for it. 0 means REMOTE_ADDR.
    "NUM_PROXIES": NUM_PROXIES,
}

# The OpenAPI document at /api/schema/ and Swagger UI at /api/docs/ (lukittu/docs.py), with
# Swagger UI's files from drf-spectacular-sidecar: no CDN, no internet.
SPECTACULAR_SETTINGS = {
    "TITLE": "Lukittu-compatible release service",
    "DESCRIPTION": (
        "Lukittu's Developer API for releases. Every response is `{data, result}`; errors carry "
        "`result.code`. Authenticate with `Authorization: Bearer <API key>`; a key opens only "
        "its own team's URLs and is rate-limited (`X-RateLimit-*` headers, 429 with "
        "`Retry-After`). The Client API delivers builds to licensed software: no API key, the "
        "license key in the query is the credential."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1/dev",
    "SORT_OPERATIONS": False,
    "SORT_OPERATION_PARAMETERS": False,
    "TAGS": [
        {
            "name": "Dev - Releases",
            "description": (
                "Developer endpoints for release management operations. These endpoints "
                "require API key authentication."
            ),
        },
        {
            "name": "Client - Releases",
            "description": (
                "Builds for licensed software: the classloader's encrypted stream, the plain "
                "download and the update check. No API key: the license is the credential."
            ),
        },
    ],
    "POSTPROCESSING_HOOKS": [
        "lukittu.openapi.postprocess",
        # Only with DEMO_SUMMARY_FILE (make run): Try it out prefilled for the demo team.
        "releases.demo_openapi.prefill_demo",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {
        "deepLinking": True,
        # Off: Swagger UI would keep the API key in the browser's localStorage, where it
        # outlives the tab and any script on the origin can read it. SWAGGER_UI_PERSIST_AUTH
        # turns it on for teams that reload the page often on a machine of their own.
        "persistAuthorization": env_bool("SWAGGER_UI_PERSIST_AUTH", False),
        "displayOperationId": True,
        "validatorUrl": None,
    },
}

# The demo summary `make run` keeps (var/demo.json, from `manage.py seed_demo --reuse`): with
# it, Swagger UI's Try it out is prefilled with the demo team's ids (releases/demo_openapi.py).
# Development only: it is refused unless DEBUG is true.
DEMO_SUMMARY_FILE = env_str("DEMO_SUMMARY_FILE")
if DEMO_SUMMARY_FILE and not DEBUG:
    raise ImproperlyConfigured("DEMO_SUMMARY_FILE is for `make run` only (DEBUG=true)")
# Where the documentation site is published, linked from the page at /; empty: the page points
# to the repository's docs/ folder instead.
DOCS_URL = env_url("DOCS_URL", ("http", "https")) or ""

# --- Webhooks (webhooks/) ----------------------------------------------------------------------
# Deliveries run on django-tasks' database backend: ``manage.py db_worker`` runs them.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Loopback, private, link-local and other non-public destinations are refused at send time
# unless this is true: for development (DEBUG) and tests, never for a shared deployment.
WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = env_bool("WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS", DEBUG)
# Seconds between a worker's sweeps of the delivery table for due deliveries whose task was
# never enqueued (a process killed right after commit) or whose retry is due.
WEBHOOKS_SWEEP_SECONDS = env_float("WEBHOOKS_SWEEP_SECONDS", 10.0, above=0)
# Attempts one worker process has in flight at once, and how many of them one team may hold:
# a team whose receivers never answer ties up at most its share, each for up to 10 s.
WEBHOOKS_CONCURRENCY = env_int("WEBHOOKS_CONCURRENCY", 16, minimum=1)
WEBHOOKS_TEAM_CONCURRENCY = env_int("WEBHOOKS_TEAM_CONCURRENCY", 4, minimum=1)

# --- Django internals -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
# Timestamps in one format, to the second, across the admin (lukittu/formats/en/formats.py).
FORMAT_MODULE_PATH = ["lukittu.formats"]
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Every line is written without credential values in URLs (lukittu/log_redaction.py).
    "filters": {"redact": {"()": "lukittu.log_redaction.RedactingFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        # runserver's request lines (`make run`) carry query strings: through the same handler
        # instead of Django's own, which would write them as they are.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # httpx's INFO line names every webhook request's URL with its query, which may be
        # the receiver's credential; the worker logs each attempt itself, without it.
        "httpx": {"level": "WARNING"},
    },
}

# --- HTTPS, cookies and admin logins ----------------------------------------------------------
# Secure unless DEBUG: a production process that misses a variable stays safe, `make run` works
# over http://127.0.0.1, and `manage.py check --deploy` is clean with the defaults. A server
# that must answer plain HTTP (the test suite, scripts/conformance.sh) turns the redirect off.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes and scrapers call the process itself over plain HTTP; a redirect would answer them
# with a 301, which most probes count as healthy whatever the service's state.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# A year, as the HSTS preload list requires. The header is only sent over HTTPS; a host name
# that is only ever served over HTTPS loses nothing by it.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
# Only a statement of consent: nothing is preloaded until the domain's owner submits the apex
# domain to the browsers' list.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
# The admin shows a new API key, license key or webhook secret once, in a message. Django's
# default keeps messages in a cookie that is signed but readable by anyone who sees it; in the
# session (its database row, until the next page shows it) it leaves the server only in the page.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# Origins (scheme and host) allowed to POST to the admin besides the request's own host, e.g.
# when a proxy changes the Host header.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.lower().startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS entries must start with https:// or http://, got {_origin!r}"
        )
# For a TLS-terminating proxy that reaches Django other than through gunicorn's
# FORWARDED_ALLOW_IPS (which already believes X-Forwarded-Proto from those addresses). Only
# behind a proxy that always sets the header: a client could otherwise claim HTTPS.
TRUST_X_FORWARDED_PROTO = env_bool("TRUST_X_FORWARDED_PROTO", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUST_X_FORWARDED_PROTO else None

# Admin logins: django-axes records failures in the database (visible in the admin under
# "Axes") and refuses a username from an address after AXES_FAILURE_LIMIT failures, for
# AXES_COOLOFF_MINUTES. Per username and address, so nobody can lock an operator out from
# elsewhere, provided NUM_PROXIES is right: with 0 behind a proxy every login comes from the
# proxy's address, and anyone can lock any username out (`check --deploy` warns, W001). The
# API's Bearer keys never go through these backends.
AUTHENTICATION_BACKENDS = [
    # First: a locked-out login is refused before its password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("AXES_COOLOFF_MINUTES", 15, above=0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# No start-up banner on every process (every manage.py command printed it on stderr).
AXES_VERBOSE = False
# The address the audit log records, with NUM_PROXIES honoured: behind a proxy every login
# would otherwise come from the proxy's address.
AXES_CLIENT_IP_CALLABLE = "lukittu.metrics.client_address"

# --- Health and metrics (lukittu/health.py, lukittu/metrics.py) -------------------------------
# Seconds /readyz waits for its checks (database, cache, storage, run side by side) before it
# reports the late ones as down.
READINESS_TIMEOUT = env_float("READINESS_TIMEOUT", 2.0, above=0)
# Addresses and networks that may read /metrics; anyone else gets a 404. The address is the
# one NUM_PROXIES selects, as for the audit log.
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
try:
    METRICS_ALLOWED_NETWORKS = tuple(
        ipaddress.ip_network(entry, strict=False) for entry in METRICS_ALLOWED_IPS
    )
except ValueError as exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {exc}") from None
# When set, /metrics also needs "Authorization: Bearer <METRICS_TOKEN>".
METRICS_TOKEN = env_str("METRICS_TOKEN")
# prometheus_client reads this variable itself: when it is set, every worker process writes
# its metrics to files there and /metrics adds them up. Checked here so a bad value fails at
# start with the variable's name rather than at the first metric.
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR is not None and not (
    os.path.isdir(PROMETHEUS_MULTIPROC_DIR) and os.access(PROMETHEUS_MULTIPROC_DIR, os.W_OK)
):
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR must be a writable directory, got {PROMETHEUS_MULTIPROC_DIR!r}"
    )
