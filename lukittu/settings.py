"""Settings for the release service: every deployment knob comes from the environment."""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from lukittu import storage_settings
from lukittu.env import env_bool, env_float, env_int, env_list, env_rate, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")
    SECRET_KEY = "django-insecure-local-development-only"

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
    "teams",
    "releases",
]

MIDDLEWARE = [
    "lukittu.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "lukittu.middleware.ApiErrorMiddleware",
]

ROOT_URLCONF = "lukittu.urls"
WSGI_APPLICATION = "lukittu.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- API ------------------------------------------------------------------------------------
DEV_API_RATE = env_rate("DEV_API_RATE", "1200/minute")
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
        "`Retry-After`)."
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
        }
    ],
    "POSTPROCESSING_HOOKS": ["lukittu.openapi.postprocess"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {
        "deepLinking": True,
        "persistAuthorization": True,
        "displayOperationId": True,
        "validatorUrl": None,
    },
}

# --- Django internals -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
