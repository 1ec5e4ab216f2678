"""Settings, read from the environment through django-environ; no `.env` file is read.

Every variable, its default and what it changes is listed in docs/configuration.md. The reliability
settings (WORKER_HEARTBEAT_INTERVAL, REPUBLISH_AFTER_SECONDS, VISIBILITY_TIMEOUT) are explained in
docs/guarantees.md.
"""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A value starting with `$` names another variable (django-environ's proxy); `\$` is a literal `$`.
env.escape_proxy = True

SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me")
# Off unless asked for: Django's debug pages show settings (the broker URL) to whoever gets an error.
DEBUG = env.bool("DEBUG", default=False)
# The Procfile's web process listens on 127.0.0.1; name your own host names when serving elsewhere.
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
# Request bodies above this many bytes are refused: the API answers 413 with its error body.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # serves the Swagger UI of /api/v1/docs from our own static files, not a CDN
    "flows",
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files from STATIC_ROOT under gunicorn (after `collectstatic`).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "flows.middleware.RefuseNulCharacters",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"

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

WSGI_APPLICATION = "project.wsgi.application"

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# A kept connection is checked before its first use in each request or task, so a database that
# restarted costs a reconnection, not a failed task (project/celery.py keeps them across tasks).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, executor, beat and workers all write: WAL plus IMMEDIATE transactions keep
    # concurrent writers waiting on the busy timeout instead of failing "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_SQLITE_PATH", default=str(BASE_DIR / "test-db.sqlite3"))}

AUTH_PASSWORD_VALIDATORS = []

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# With DEBUG off (production) whitenoise indexes STATIC_ROOT once at start; with DEBUG on it looks
# files up per request, so development and the tests run without `collectstatic`. This follows the
# environment's DEBUG, not the test runner's, which turns DEBUG off.
WHITENOISE_AUTOREFRESH = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Files every process reaches (docs/storage.md): FILE inputs, script outputFiles, namespace files.
# `local` (one host, or a directory every host mounts) or `s3` (any S3-compatible store).
STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="local")
STORAGE_MAX_FILE_BYTES = env.int("STORAGE_MAX_FILE_BYTES", default=100 * 1024 * 1024)
if STORAGE_BACKEND == "s3":
    FLOWS_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("STORAGE_S3_BUCKET"),
            "location": env.str("STORAGE_S3_PREFIX", default=""),
            "endpoint_url": env.str("STORAGE_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("STORAGE_S3_REGION", default=None),
            "access_key": env.str("STORAGE_S3_ACCESS_KEY_ID", default=None),
            "secret_key": env.str("STORAGE_S3_SECRET_ACCESS_KEY", default=None),
            "addressing_style": env.str("STORAGE_S3_ADDRESSING_STYLE", default=None),
            "default_acl": None,
            "file_overwrite": True,
            "querystring_auth": False,
        },
    }
elif STORAGE_BACKEND == "local":
    FLOWS_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env.str("STORAGE_LOCAL_DIR", default=str(BASE_DIR / "storage")),
                    "allow_overwrite": True, "base_url": None},
    }
else:
    raise environ.ImproperlyConfigured(f"STORAGE_BACKEND must be 'local' or 's3', not '{STORAGE_BACKEND}'")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "flows": FLOWS_STORAGE,
}

# `envs.x` in expressions reads the environment variable <prefix>X (Kestra's default since 0.23: ENV_).
ENV_VARS_PREFIX = env.str("ENV_VARS_PREFIX", default="ENV_")
if not ENV_VARS_PREFIX:
    raise environ.ImproperlyConfigured("ENV_VARS_PREFIX cannot be empty: every variable would reach the flows")
# `globals.x` in expressions (docs/expressions.md#secrets-envs-and-globals): a JSON object.
KESTRA_GLOBALS = env.json("KESTRA_GLOBALS", default={})
if not isinstance(KESTRA_GLOBALS, dict):
    raise environ.ImproperlyConfigured("KESTRA_GLOBALS must be a JSON object")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}

# Celery: every worker gets the same reliability options from here, never from its command line.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Longer than the longest task a worker may hold unacknowledged; the reconciler covers the rest.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("VISIBILITY_TIMEOUT", default=3600)}
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_TASK_ROUTES = {
    "flows.execution_advance": {"queue": "executor"},
    "flows.scheduler_tick": {"queue": "executor"},
    "flows.reconcile": {"queue": "executor"},
}
# Beat sends the scheduler tick (due triggers, docs/triggers.md) and the reconciler (task runs that
# wait or were lost, docs/fallback.md). A tick not taken within SCHEDULER_TICK_EXPIRES seconds is
# dropped: the next one does its work, and a stopped executor does not come back to a pile of them.
SCHEDULER_TICK_SECONDS = env.float("SCHEDULER_TICK_SECONDS", default=1.0)
SCHEDULER_TICK_EXPIRES = 5 * SCHEDULER_TICK_SECONDS
RECONCILE_SECONDS = env.float("RECONCILE_SECONDS", default=2.0)
CELERY_BEAT_SCHEDULE = {
    "scheduler-tick": {"task": "flows.scheduler_tick", "schedule": SCHEDULER_TICK_SECONDS,
                       "options": {"expires": SCHEDULER_TICK_EXPIRES}},
    "reconcile": {"task": "flows.reconcile", "schedule": RECONCILE_SECONDS},
}

# A worker is alive while its last heartbeat is younger than 3 intervals (docs/guarantees.md).
WORKER_HEARTBEAT_INTERVAL = env.float("WORKER_HEARTBEAT_INTERVAL", default=5.0)
# How long each process remembers the routing reads of new task runs: a group's alive workers, that a
# group allows a tenant, a namespace's defaults (flows/recent.py says what this can and cannot change).
ROUTING_CACHE_SECONDS = env.float("ROUTING_CACHE_SECONDS", default=1.0)
# A task run still CREATED this long after publishing, in a group with workers and an empty queue,
# had its message lost (broker restart, purge): the reconciler publishes it again.
REPUBLISH_AFTER_SECONDS = env.float("REPUBLISH_AFTER_SECONDS", default=30.0)
# A task run whose worker stopped heartbeating gets a new attempt at most this many times, then it
# fails with the reason (docs/guarantees.md).
LOST_WORKER_MAX_REATTEMPTS = env.int("LOST_WORKER_MAX_REATTEMPTS", default=3)

# /metrics is open unless this is set; then it takes `Authorization: Bearer <METRICS_TOKEN>` (docs/operations.md).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# A worker group's init script (docs/operations.md) that runs longer than this stops the worker.
WORKER_INIT_SCRIPT_TIMEOUT = env.float("WORKER_INIT_SCRIPT_TIMEOUT", default=600.0)
# A running task's log lines are written while it runs, at most this long apart (docs/operations.md).
TASK_LOG_FLUSH_SECONDS = env.float("TASK_LOG_FLUSH_SECONDS", default=0.5)

# Script tasks (docs/security-scripts.md): the user they run as when the worker is root, and what a
# task run keeps of its log and of its outputFiles.
SCRIPT_USER = env.str("SCRIPT_USER", default="nobody")
TASK_LOG_MAX_LINES = env.int("TASK_LOG_MAX_LINES", default=10_000)
TASK_LOG_MAX_BYTES = env.int("TASK_LOG_MAX_BYTES", default=2_000_000)
OUTPUT_FILES_MAX_COUNT = env.int("OUTPUT_FILES_MAX_COUNT", default=100)
OUTPUT_FILES_MAX_BYTES = env.int("OUTPUT_FILES_MAX_BYTES", default=5_000_000)
