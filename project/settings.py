"""Django settings, read from the environment (docs/operations.md, "Configuration").

A bad value stops start-up with ``ImproperlyConfigured`` naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from project.env import (
    env_bool,
    env_choice,
    env_dir,
    env_float,
    env_int,
    env_list,
    env_optional_decimal,
    env_optional_int,
    env_origins,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_dir("SWITCHYARD_VAR_DIR", BASE_DIR / "var")

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required unless DEBUG=1")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG=1"

# Empty counts as unset, as for the other variables (project/env.py): with DEBUG, the local names.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", []) or (["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required unless DEBUG=1 (comma-separated host names)")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_rq",
    "django_prometheus",
    "project",
    "orchestration",
    "chat",
    "agents",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "project.edge.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"
WSGI_APPLICATION = None

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
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------
_database_url = env_url("DATABASE_URL", {"sqlite", "postgres", "postgresql", "pgsql"})
if _database_url is None:
    _database_url = f"sqlite:///{VAR_DIR / 'switchyard.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's SQLite backend, its statements' placeholders converted once each (project/sqlite/base.py).
    DATABASES["default"]["ENGINE"] = "project.sqlite"
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers run beside the one writer; IMMEDIATE avoids "database is locked"
        # upgrades from read to write transactions when web and worker processes share the file.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not memory, so that server processes started by tests see the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
else:
    # PostgreSQL: a pool per process (Django's psycopg_pool support). Without one, every request
    # opens a connection and PostgreSQL starts a backend process for it; under a burst of chat
    # posts that was about half of each post's latency. Connections are checked on checkout, so one
    # broken by a database restart is replaced, not handed out. At most 20 per process: with the
    # default max_connections of 100, a few web processes and the workers fit.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 2, "max_size": 20, "timeout": 10}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis ----------------------------------------------------------------------------
# Unset REDIS_URL means: the embedded Valkey that `serve` starts on a unix socket in var/.
REDIS_EMBEDDED = env_url("REDIS_URL", {"redis", "rediss", "unix", "valkey"}) is None
REDIS_URL: str = env_url("REDIS_URL", {"redis", "rediss", "unix", "valkey"}) or f"unix://{VAR_DIR / 'valkey.sock'}"
REDIS_SOCKET = VAR_DIR / "valkey.sock"

CHANNEL_LAYERS = {
    "default": {
        # channels-redis with its connections pooled as Switchyard's other clients are: shared by a
        # burst, bounded, and read with a timeout that outlasts its 5 s blocking read
        # (project/layers.py, the LAYER profile of orchestration/redisclients.py).
        "BACKEND": "project.layers.PooledRedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": REDIS_URL}],
            "capacity": 1000,
            "expiry": 60,
        },
    }
}

# RESP2 for the workers too (orchestration/redisclients.py says why): under RESP3, the end of a
# server's maintenance would drop a worker's read timeout back below its blocking dequeue.
_RQ_URL = f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}protocol=2"
RQ_QUEUES = {
    "default": {"URL": _RQ_URL, "DEFAULT_TIMEOUT": 360},
    "agents": {"URL": _RQ_URL, "DEFAULT_TIMEOUT": 360},
}
RQ = {"WORKER_CLASS": "agents.workers.AgentWorker"}

# --- auth, i18n, static -----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- security -----------------------------------------------------------------------------
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "project.edge.views.csrf_failure"
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# 4 MiB: the largest embeddings request OpenAI takes (300,000 tokens across the inputs) is about 2.4 MB
# as the token arrays LangChain's OpenAIEmbeddings sends by default, in batches of 1,000 inputs.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("SWITCHYARD_MAX_BODY_BYTES", 4 * 1_048_576, minimum=1024)

# --- DRF --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "project.edge.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # No ?format= override: every API answers JSON (the export picks its file type with ?as=), and
    # DRF answers an unknown format with a bare Http404 that its error handler does not expect.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_PARSER_CLASSES": ["project.edge.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "project.edge.errors.drf_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "orchestration.pagination.StrictLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Switchyard API",
    "DESCRIPTION": "OpenAI-compatible gateway, chat, and agent APIs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two models have a "status" with other choices: each enum gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "MessageStatusEnum": "chat.models.Message.Status",
        "TaskStatusEnum": "agents.models.Task.Status",
    },
    # The /v1 views, posting a chat message and the event streams are not DRF views: their
    # descriptions are added by these hooks (orchestration/openapi.py, project/openapi.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "orchestration.openapi.openapi_add_v1",
        "orchestration.responses.openapi.openapi_add_responses",
        "project.openapi.openapi_add_api",
        "project.openapi.openapi_complete_errors",
    ],
}

# --- Switchyard -------------------------------------------------------------------------
_SEMANTIC_EMBEDDER = (env_str("SWITCHYARD_SEMANTIC_EMBEDDER") or "local").strip()
if _SEMANTIC_EMBEDDER != "local" and not (
    _SEMANTIC_EMBEDDER.startswith("provider:") and _SEMANTIC_EMBEDDER.removeprefix("provider:")
):
    raise ImproperlyConfigured(
        f"SWITCHYARD_SEMANTIC_EMBEDDER={_SEMANTIC_EMBEDDER!r} must be 'local' or 'provider:<model>'"
    )

SWITCHYARD: dict[str, Any] = {
    # Deadlines per endpoint, in seconds (docs/architecture.md, decision 4).
    "DEADLINE_COMPLETION_S": env_float("SWITCHYARD_DEADLINE_COMPLETION_S", 30.0, minimum=0.1),
    "DEADLINE_CHAT_S": env_float("SWITCHYARD_DEADLINE_CHAT_S", 60.0, minimum=0.1),
    "DEADLINE_AGENT_S": env_float("SWITCHYARD_DEADLINE_AGENT_S", 300.0, minimum=0.1),
    # A long generation stretches its call's deadline (max_tokens / tokens per second), up to this.
    "DEADLINE_CEILING_S": env_float("SWITCHYARD_DEADLINE_CEILING_S", 600.0, minimum=0.1),
    "CONFIG_FILE": env_str("SWITCHYARD_CONFIG"),
    "SIMULATOR_URL": env_url("SWITCHYARD_SIMULATOR_URL", {"http", "https"}) or "http://127.0.0.1:9100",
    "CHAT_GRACE_S": env_float("SWITCHYARD_CHAT_GRACE_S", 30.0, minimum=0.0),
    # How long a finished reply's events stay in Redis (the saved message replays after that),
    # and how long a reply's producer may stay silent before relays declare it lost.
    "CHAT_STREAM_TTL_S": env_float("SWITCHYARD_CHAT_STREAM_TTL_S", 600.0, minimum=1.0),
    "CHAT_PRODUCER_LOST_S": env_float("SWITCHYARD_CHAT_PRODUCER_LOST_S", 10.0, minimum=2.0),
    # SIGTERM lets the replies a web process generates run this long before it stops (project/drain.py):
    # the chat deadline, so every reply started before SIGTERM can end.
    "DRAIN_S": env_float("SWITCHYARD_DRAIN_S", 60.0, minimum=0.0),
    # A client that reads nothing of a response (or WebSocket) for this long while its send buffer
    # is full is disconnected (project/edge/daphne.py).
    "SEND_STALL_S": env_float("SWITCHYARD_SEND_STALL_S", 30.0, minimum=0.1),
    # The environment variables a provider may read its secret from (shell patterns, comma-separated).
    "API_KEY_ENV_ALLOW": env_list("SWITCHYARD_API_KEY_ENV_ALLOW", ["*_API_KEY"]),
    # Browser origins allowed to call /v1 (CORS); none by default, "*" for any (docs/operations.md).
    "CORS_ORIGINS": env_origins("SWITCHYARD_CORS_ORIGINS"),
    # Streams: the longest wait for the first chunk, and between two chunks (orchestration/deadlines.py).
    "STREAM_FIRST_TOKEN_S": env_float("SWITCHYARD_STREAM_FIRST_TOKEN_S", 30.0, minimum=0.1),
    "STREAM_IDLE_S": env_float("SWITCHYARD_STREAM_IDLE_S", 30.0, minimum=0.1),
    # Agent tasks: heartbeat, when a silent worker counts as dead, how often to look (agents/workers.py).
    "AGENT_HEARTBEAT_S": env_float("SWITCHYARD_AGENT_HEARTBEAT_S", 5.0, minimum=0.05),
    "AGENT_STALE_S": env_float("SWITCHYARD_AGENT_STALE_S", 30.0, minimum=0.2),
    "AGENT_REAP_INTERVAL_S": env_float("SWITCHYARD_AGENT_REAP_INTERVAL_S", 15.0, minimum=0.1),
    "AGENT_MODEL": env_str("SWITCHYARD_AGENT_MODEL", ""),
    # Response cache: the semantic cache's embedder ("local" or "provider:<model>"), and how long
    # an expired answer stays in Redis to serve (marked STALE) when every provider fails.
    "SEMANTIC_EMBEDDER": _SEMANTIC_EMBEDDER,
    "CACHE_STALE_GRACE_S": env_float("SWITCHYARD_CACHE_STALE_GRACE_S", 3600.0, minimum=0.0),
    # What a person may spend signed in, without an API key (orchestration/access/policy.py):
    # requests and tokens per minute and a monthly budget in USD, "none" for no limit; the admin's
    # access policies override them per person.
    "USER_POLICY": {
        "RPM": env_optional_int("SWITCHYARD_USER_RPM", 60, minimum=1),
        "TPM": env_optional_int("SWITCHYARD_USER_TPM", 200_000, minimum=1),
        "MONTHLY_BUDGET_USD": env_optional_decimal("SWITCHYARD_USER_MONTHLY_BUDGET_USD", "20", minimum="0"),
    },
}

# prometheus_client's multiprocess mode: every process writes its samples here and /metrics sums
# them. It must be set before prometheus_client is first imported, which happens after settings.
PROMETHEUS_MULTIPROC_DIR = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus")))
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)

# --- traces and logs (docs/operations.md, "Traces and logs") ------------------------------
# Traces are off unless an OTLP endpoint is set. The OpenTelemetry SDK reads the rest of the standard
# OTEL_* variables itself (endpoint, headers, timeout, service name, resource attributes, sampler).
_OTLP_PROTOCOLS = ("http/protobuf", "grpc")
_SAMPLERS = (
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
    "always_on",
    "always_off",
    "traceidratio",
)
env_choice("OTEL_TRACES_SAMPLER", _SAMPLERS, "parentbased_always_on")
if not 0.0 <= env_float("OTEL_TRACES_SAMPLER_ARG", 1.0) <= 1.0:
    raise ImproperlyConfigured("OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1")
TRACING = {
    "ENABLED": bool(env_str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env_str("OTEL_EXPORTER_OTLP_ENDPOINT"))
    and not env_bool("OTEL_SDK_DISABLED", False)
    and env_choice("OTEL_TRACES_EXPORTER", ("otlp", "none"), "otlp") == "otlp",
    "PROTOCOL": env_choice(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        _OTLP_PROTOCOLS,
        env_choice("OTEL_EXPORTER_OTLP_PROTOCOL", _OTLP_PROTOCOLS, "http/protobuf"),
    ),
    # Prompt and completion text on spans: only when an operator turns it on (GenAI conventions' variable).
    "CAPTURE_CONTENT": env_bool("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", False),
}

LOG_FORMAT = env_choice("LOG_FORMAT", ("plain", "json"), "plain")
LOG_LEVEL = env_choice("LOG_LEVEL", ("debug", "info", "warning", "error", "critical"), "info").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"call_context": {"()": "orchestration.telemetry.logs.CallContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "orchestration.telemetry.logs.JsonLogFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["call_context"] if LOG_FORMAT == "json" else [],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # httpx logs every provider call at INFO: one line per LLM request on the hot path.
    "loggers": {"django.channels.server": {"level": "WARNING"}, "httpx": {"level": "WARNING"}},
}
