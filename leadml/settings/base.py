"""Settings shared by every environment, read from environment variables.

One `env` reader: a malformed variable stops start-up instead of being guessed at.
`production.py` and `test.py` only override.

Past the ~400 lines of the README's module rule on purpose: every setting an operator
can change is here, by section, so they are read (and documented) in one file.
"""
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()


def _redis_url_with_timeouts(url: str) -> str:
    """Return the Redis URL with socket timeouts unless it sets its own.

    Without them a Redis that is unreachable (a dropped packet, not a refused
    connection) holds `POST /train` for the operating system's connect timeout (minutes)
    before it can answer 503. The read timeout stays above the broker's 1 s blocking pop.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("socket_connect_timeout", "5")
    query.setdefault("socket_timeout", "10")
    return urlunsplit(parts._replace(query=urlencode(query)))


def local_secret_key(path: Path) -> str:
    """Read this installation's secret key, generating it on first use (mode 0600).

    The embedded default (`scripts/run`, `manage.py serve`) needs no configuration and
    still never runs on a key anyone else knows. Deployments set SECRET_KEY.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


# Off unless asked for (DEBUG=1, `serve --dev`): an unknown URL must not show every route.
DEBUG = env.bool("DEBUG", default=False)
VAR_DIR = Path(env.str("LEADML_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)
SECRET_KEY = env.str("SECRET_KEY", default="") or local_secret_key(VAR_DIR / "secret-key")
# Keys the permutation that turns prediction numbers into public prediction ids
# (predictions.public_ids); empty: derived from SECRET_KEY.
LEADML_PUBLIC_ID_KEY = env.str("LEADML_PUBLIC_ID_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])

HOST = env.str("HOST", default="127.0.0.1")
PORT = env.int("PORT", default=8001)
# Gunicorn: one worker process per core, each with THREADS threads, so requests that
# wait (a synchronous /train, the database) do not hold a whole process.
WORKERS = env.int("WORKERS", default=len(os.sched_getaffinity(0)))
THREADS = env.int("THREADS", default=8)
# Gunicorn restarts a worker whose main loop is stuck this long. Threads waiting on a
# request (a long synchronous /train) do not count: the loop keeps beating meanwhile.
REQUEST_TIMEOUT_SECONDS = env.int("LEADML_REQUEST_TIMEOUT_SECONDS", default=120)
# Native (OpenMP/BLAS) threads per serving process: requests are parallel across the
# processes and threads already; more native threads only fight over the cores.
LEADML_SERVING_NATIVE_THREADS = env.int("LEADML_SERVING_NATIVE_THREADS", default=1)
# A serving process freezes what it loaded out of the garbage collector (leadml/api/serving.py).
LEADML_SERVING_GC_FREEZE = env.bool("LEADML_SERVING_GC_FREEZE", default=True)
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# Gunicorn's access log, one line per request (`manage.py serve --access-log`). Off by
# default: a line costs about 50-75 µs of CPU, some 2 % of the cheapest authenticated
# request (BENCHMARKS.md), and a proxy or load balancer in front usually logs requests.
LEADML_ACCESS_LOG = env.bool("LEADML_ACCESS_LOG", default=False)

DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from the package: no CDN, works air-gapped
    "django_q",
    "axes",  # the admin's login: locked out after repeated failures, per user and address
]
LOCAL_APPS = [
    "leadml",  # hosts the `serve` management command
    "registry",
    "training",
    "predictions",
    "monitoring",
    "oversight",
    "demo",
    "bench",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's, the API docs') in every mode, from collected, hashed files.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "leadml.api.middleware.RefuseNulInUrlMiddleware",
    "axes.middleware.AxesMiddleware",
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: a locked-out login never reaches the password check
    "django.contrib.auth.backends.ModelBackend",
]
# Admin logins: AXES_FAILURE_LIMIT wrong passwords for one user from one address lock
# that pair out for AXES_COOLOFF_TIME hours. Behind a proxy, set AXES_IPWARE_PROXY_COUNT
# (or the meta precedence order) so the client's address is read, not the proxy's.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_TIME", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

ROOT_URLCONF = "leadml.urls"
WSGI_APPLICATION = "leadml.wsgi.application"
# The CRM calls `/predict`, `/train`, ... without trailing slashes.
APPEND_SLASH = False

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

# --- Storage -----------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'leadml.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the API and the job worker read while the other writes; IMMEDIATE
    # transactions take the write lock up front instead of failing half-way.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

MODEL_DIR = Path(env.str("MODEL_DIR", default=str(VAR_DIR / "models")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names, compressed copies: `collectstatic` (run by `serve` when needed) writes them.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    # Model artifacts go through Django's storage API: S3-style storage is a settings change.
    "models": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MODEL_DIR), "file_permissions_mode": 0o600},
    },
}
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Limits ------------------------------------------------------------------
# Request bodies (JSON) and uploaded files; the API answers 413 past these.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("LEADML_MAX_BODY_BYTES", default=50 * 1024 * 1024)
LEADML_MAX_UPLOAD_BYTES = env.int("LEADML_MAX_UPLOAD_BYTES", default=100 * 1024 * 1024)
LEADML_MAX_UPLOAD_ROWS = env.int("LEADML_MAX_UPLOAD_ROWS", default=500_000)
# Columns per upload and characters per value (uploads and records alike): a CRM export
# has tens of columns and short values; ten thousand columns only cost CPU.
LEADML_MAX_UPLOAD_COLUMNS = env.int("LEADML_MAX_UPLOAD_COLUMNS", default=500)
LEADML_MAX_VALUE_CHARS = env.int("LEADML_MAX_VALUE_CHARS", default=10_000)
LEADML_MAX_BATCH_ROWS = env.int("LEADML_MAX_BATCH_ROWS", default=10_000)
# Scored mixtures per record when explaining a prediction (tree and neural-network models;
# see leadml/ml/reasons.py): more is steadier and slower.
LEADML_EXPLAIN_MAX_ROWS = env.int("LEADML_EXPLAIN_MAX_ROWS", default=256)
LEADML_EXPLAIN_BATCH_MAX_ROWS = env.int("LEADML_EXPLAIN_BATCH_MAX_ROWS", default=64)
# POST /train waits this long for its job by default and answers in the original
# synchronous shape (202 with the job past it); enough for the demo and for gradient
# boosting on 50,000 rows. `?wait=N` may ask for up to LEADML_MAX_WAIT_SECONDS.
LEADML_TRAIN_WAIT_SECONDS = env.int("LEADML_TRAIN_WAIT_SECONDS", default=900)
LEADML_MAX_WAIT_SECONDS = env.int("LEADML_MAX_WAIT_SECONDS", default=3600)
# Refuse to train below these (README, "Training").
LEADML_MIN_ROWS = env.int("LEADML_MIN_ROWS", default=50)
LEADML_MIN_ROWS_PER_CLASS = env.int("LEADML_MIN_ROWS_PER_CLASS", default=10)

# --- API ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["registry.tokens.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["leadml.api.throttling.ApiTokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_token": env.str("LEADML_THROTTLE_RATE", default="6000/min")},
    "DEFAULT_RENDERER_CLASSES": ["leadml.api.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "leadml.api.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "leadml.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# `/bench/floor` (bench/floor.py): routed only in the server `manage.py bench` starts.
LEADML_BENCH_FLOOR = env.bool("LEADML_BENCH_FLOOR", default=False)
SPECTACULAR_SETTINGS = {
    "TITLE": "leadml API",
    "DESCRIPTION": "Lead-conversion scoring and customer-lifetime-value prediction for B2B sales.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # 3.1: its schemas are JSON Schema 2020-12, so tests/contract validates answers with
    # jsonschema as they are (nullable fields are `type: [..., "null"]`).
    "OAS_VERSION": "3.1.0",
    # Request components get a `Request` suffix: input serializers are named without one.
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice fields named alike (`status`, `kind`) hold different values: each set gets its
    # own name, and a set shared by differently named fields (`prediction_type`) one name.
    "ENUM_NAME_OVERRIDES": {
        "ModelTypeEnum": "leadml.ml.types.MODEL_TYPES",
        "ModelVersionStatusEnum": "registry.models.ModelVersion.Status",
        "TrainingJobStatusEnum": "training.models.TrainingJob.Status",
        "DatasetKindEnum": "training.models.Dataset.Kind",
        "MonitoringEventKindEnum": "monitoring.models.MonitoringEvent.Kind",
        "PredictionSourceEnum": "predictions.models.Prediction.Source",
        "FeatureKindEnum": ["numeric", "categorical"],
        "HealthStatusEnum": ["healthy", "degraded"],
        "CheckStatusEnum": ["up", "down"],
        "ModelsCheckStatusEnum": ["up", "degraded", "unknown"],
        "WebhookDeliveryStatusEnum": ["pending", "delivered", "failed"],
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Jobs (django-q2) ----------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
LEADML_JOB_TIMEOUT_SECONDS = env.int("LEADML_JOB_TIMEOUT_SECONDS", default=3600)
# A running job's worker writes heartbeat_at this often from a thread of its own, so a
# long single fit (a final refit, calibration, permutation importance, the promotion
# comparison) never leaves the row silent: the ML core only reports between steps.
LEADML_JOB_HEARTBEAT_SECONDS = env.int("LEADML_JOB_HEARTBEAT_SECONDS", default=15)
# A running job silent this long lost its worker (killed, out of memory, machine gone):
# eight missed beats, so a database busy for a while (SQLite waits up to 30 s for its
# write lock) never gets a healthy job reaped; short enough that a lost job is noticed
# in minutes. A queued job counts as lost after this long without a worker taking it
# while no job is running (an idle worker takes a task within a second).
LEADML_JOB_STALE_SECONDS = env.int("LEADML_JOB_STALE_SECONDS", default=120)
# Deliveries a job may use: a lost job is queued again while it has used fewer, then failed.
LEADML_JOB_MAX_ATTEMPTS = env.int("LEADML_JOB_MAX_ATTEMPTS", default=2)
# How often the job worker looks for lost jobs (a django-q2 schedule: whole minutes).
LEADML_JOB_REAPER_INTERVAL_MINUTES = env.int("LEADML_JOB_REAPER_INTERVAL_MINUTES", default=1)
# Time limit of every other task (trigger evaluation of all tenants, webhook deliveries,
# the reaper); training tasks carry LEADML_JOB_TIMEOUT_SECONDS.
LEADML_TASK_TIMEOUT_SECONDS = env.int("LEADML_TASK_TIMEOUT_SECONDS", default=600)
if LEADML_JOB_STALE_SECONDS < 3 * LEADML_JOB_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        f"LEADML_JOB_STALE_SECONDS ({LEADML_JOB_STALE_SECONDS}) must be at least three heartbeats "
        f"(3 x LEADML_JOB_HEARTBEAT_SECONDS = {3 * LEADML_JOB_HEARTBEAT_SECONDS}): healthy jobs would be reaped"
    )
if LEADML_JOB_MAX_ATTEMPTS < 1 or LEADML_JOB_REAPER_INTERVAL_MINUTES < 1:
    raise ImproperlyConfigured("LEADML_JOB_MAX_ATTEMPTS and LEADML_JOB_REAPER_INTERVAL_MINUTES must be at least 1")
Q_CLUSTER = {
    "name": "leadml",
    "workers": env.int("LEADML_JOB_WORKERS", default=1),
    "timeout": LEADML_TASK_TIMEOUT_SECONDS,
    # django-q2 requires retry > timeout. On the ORM broker a task whose worker died is
    # delivered again after `retry` seconds; a training task still running by then is
    # delivered again too, and that delivery finds the job's heartbeat fresh and returns
    # without training. Lost jobs do not wait for this: the reaper finds them by their
    # heartbeat on either broker (Redis never delivers a lost task again).
    "retry": LEADML_TASK_TIMEOUT_SECONDS + 120,
    # Our tasks record their own failures on the job row; one that raised anyway is not
    # worth delivering again and again.
    "max_attempts": 2,
    "ack_failures": True,
    "save_limit": 250,
    "catch_up": False,
    "poll": 0.5,
    "label": "Jobs (django-q2)",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = _redis_url_with_timeouts(REDIS_URL)
else:
    Q_CLUSTER["orm"] = "default"

# One cache shared by every process and host (throttling counts, the admin's summaries):
# Redis when configured, else a table in the database (created by a migration).
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "leadml_cache"}
    )
}

# --- Logging -----------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "structured"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "django_q": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # Lockouts are warnings; its start-up banner on every process is not news.
        "axes": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}

# Parallel fits in the hyperparameter search (joblib); 1 keeps one job per core predictable.
LEADML_TRAIN_N_JOBS = env.int("LEADML_TRAIN_N_JOBS", default=1)

# --- Monitoring and retraining --------------------------------------
# Default window of GET /monitoring and of trigger evaluation.
LEADML_MONITORING_WINDOW_DAYS = env.int("LEADML_MONITORING_WINDOW_DAYS", default=7)
# At most this many predictions of a window are read (a time-stratified sample beyond).
LEADML_MONITORING_SAMPLE_ROWS = env.int("LEADML_MONITORING_SAMPLE_ROWS", default=5000)
# Drift thresholds (leadml.ml.drift.DriftThresholds). The defaults are those of
# Evidently's presets: a window drawn from the training distribution is not flagged.
LEADML_DRIFT_THRESHOLDS = {
    "p_value": env.float("LEADML_DRIFT_P_VALUE", default=0.05),
    "wasserstein": env.float("LEADML_DRIFT_WASSERSTEIN", default=0.1),
    "jensen_shannon": env.float("LEADML_DRIFT_JENSEN_SHANNON", default=0.1),
    "statistical_max_rows": env.int("LEADML_DRIFT_STATISTICAL_MAX_ROWS", default=1000),
    "drift_share": env.float("LEADML_DRIFT_SHARE", default=0.5),
    "psi": env.float("LEADML_DRIFT_PSI", default=0.25),
}
# A feature's missing or outlier share above training by more than this is flagged.
LEADML_QUALITY_MARGIN = env.float("LEADML_QUALITY_MARGIN", default=0.1)
# Retraining triggers: defaults for every tenant and model type; per-tenant overrides
# live in the database (admin, PUT /monitoring/{user_id}/{model_type}/triggers).
LEADML_TRIGGER_DEFAULTS = {
    "live_performance_enabled": True,
    "live_performance_margin": 0.05,  # main metric (ROC-AUC or R²) below training by more than this
    "live_performance_min_outcomes": 200,
    "estimated_performance_enabled": True,
    "estimated_performance_margin": 0.05,  # expected ROC-AUC (CBPE) below training
    "estimated_performance_min_predictions": 200,
    "data_drift_enabled": True,
    "data_drift_min_predictions": 200,
    "new_rows_enabled": True,
    "new_rows_min": 1000,  # labelled rows added since the version was trained
    "max_age_enabled": True,
    "max_age_days": 90,
}
# How often the django-q2 schedule evaluates every tenant's triggers.
LEADML_MONITORING_INTERVAL_MINUTES = env.int("LEADML_MONITORING_INTERVAL_MINUTES", default=60)
# After a retrain of a model finished, its triggers may not queue another for this long
# (a challenger that lost would otherwise be retrained at every evaluation).
LEADML_RETRAIN_COOLDOWN_HOURS = env.float("LEADML_RETRAIN_COOLDOWN_HOURS", default=24)
# Webhook deliveries of monitoring events: attempts and the first retry delay (doubling).
LEADML_WEBHOOK_ATTEMPTS = env.int("LEADML_WEBHOOK_ATTEMPTS", default=5)
LEADML_WEBHOOK_BACKOFF_SECONDS = env.int("LEADML_WEBHOOK_BACKOFF_SECONDS", default=30)
LEADML_WEBHOOK_TIMEOUT_SECONDS = env.float("LEADML_WEBHOOK_TIMEOUT_SECONDS", default=5)
# Webhooks to loopback, private or link-local addresses are refused (a tenant must not
# reach the service's own network); allow them only where every tenant is trusted.
LEADML_WEBHOOK_ALLOW_PRIVATE = env.bool("LEADML_WEBHOOK_ALLOW_PRIVATE", default=False)

# Data sources (README, "Training from the CRM's database"): a JSON list of
# {name, url or url_env, model_type, kind, query?, changes_query?, target_column?,
# positive_values?, negative_values?, horizon_days?, statement_timeout_seconds?, enabled?},
# written into the DataSource table by `migrate`, `serve` and the source commands.
LEADML_DATA_SOURCES = env.json("LEADML_DATA_SOURCES", default=[])
if not isinstance(LEADML_DATA_SOURCES, list):
    raise ValueError("LEADML_DATA_SOURCES must be a JSON list of data sources")
# How often the job worker reads terminal status changes from the sources (outcomes).
LEADML_SOURCE_SYNC_MINUTES = env.int("LEADML_SOURCE_SYNC_MINUTES", default=5)
