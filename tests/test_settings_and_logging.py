"""Settings read from the environment (project/settings.py), and the quiet periodic tasks
(project/celery.py): Celery's INFO lines about `flows.scheduler_tick` and `flows.reconcile`, and only
those, become DEBUG."""
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from types import SimpleNamespace

import pytest
import redis
from celery import signals
from celery.app import trace
from celery.beat import ScheduleEntry, Scheduler

from project.celery import RECONCILE_TASK, TICK_TASK, QuietTick, app
from tests.support import ROOT, database_url, start_redis, wait_for

SETTINGS_VARIABLES = (
    "DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS",
    "CONN_MAX_AGE", "LOG_LEVEL", "VISIBILITY_TIMEOUT", "SCHEDULER_TICK_SECONDS", "RECONCILE_SECONDS",
    "WORKER_HEARTBEAT_INTERVAL",
    "REPUBLISH_AFTER_SECONDS", "TEST_SQLITE_PATH",
)
PRINT_SETTINGS = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "db": {key: db.get(key) for key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "CONN_MAX_AGE", "OPTIONS", "TEST")},
    "broker": settings.CELERY_BROKER_URL, "backend": settings.CELERY_RESULT_BACKEND, "secret": settings.SECRET_KEY,
    "debug": settings.DEBUG, "hosts": settings.ALLOWED_HOSTS, "log_level": settings.LOGGING["root"]["level"],
    "visibility": settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"],
    "tick": settings.CELERY_BEAT_SCHEDULE["scheduler-tick"]["schedule"],
    "reconcile": settings.CELERY_BEAT_SCHEDULE["reconcile"]["schedule"],
    "heartbeat": settings.WORKER_HEARTBEAT_INTERVAL, "republish": settings.REPUBLISH_AFTER_SECONDS,
    "middleware": settings.MIDDLEWARE,
}))
"""


def settings_under(**variables) -> dict:
    """The settings a fresh process computes with exactly `variables` set (of those settings reads)."""
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARIABLES}
    env.update(variables, DJANGO_SETTINGS_MODULE="project.settings")
    code = f"import django; django.setup(); {PRINT_SETTINGS}"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_are_sqlite_in_the_project_and_a_local_redis():
    values = settings_under()
    db = values["db"]
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(ROOT / "db.sqlite3")
    assert db["CONN_MAX_AGE"] == 0
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "PRAGMA journal_mode=WAL;" in db["OPTIONS"]["init_command"]
    assert "busy_timeout" in db["OPTIONS"]["init_command"]
    assert db["TEST"]["NAME"] == str(ROOT / "test-db.sqlite3")
    assert values["broker"] == values["backend"] == "redis://127.0.0.1:6379/0"
    assert values["debug"] is False  # never Django's debug page unless asked for (DEBUG=true)
    assert values["hosts"] == ["127.0.0.1", "localhost", "[::1]"]
    assert (values["log_level"], values["visibility"], values["tick"], values["reconcile"]) == ("WARNING", 3600, 1.0, 2.0)
    assert (values["heartbeat"], values["republish"]) == (5.0, 30.0)
    assert values["middleware"][:2] == ["django.middleware.security.SecurityMiddleware",
                                        "whitenoise.middleware.WhiteNoiseMiddleware"]


def test_every_variable_is_read():
    values = settings_under(
        DATABASE_URL="postgres://flows:s3cret@db.internal:5433/flows", CONN_MAX_AGE="120", DEBUG="false",
        ALLOWED_HOSTS="flows.example.com,127.0.0.1", SECRET_KEY=r"\$tarts-with-a-dollar",
        CELERY_BROKER_URL="redis://broker:6379/1", CELERY_RESULT_BACKEND="redis://broker:6379/2", LOG_LEVEL="INFO",
        VISIBILITY_TIMEOUT="7200", SCHEDULER_TICK_SECONDS="0.5", RECONCILE_SECONDS="3", WORKER_HEARTBEAT_INTERVAL="1",
        REPUBLISH_AFTER_SECONDS="12.5",
    )
    db = values["db"]
    assert (db["ENGINE"], db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "django.db.backends.postgresql", "flows", "flows", "s3cret", "db.internal", 5433)
    assert db["CONN_MAX_AGE"] == 120
    assert not db["OPTIONS"]  # the SQLite options are for SQLite only
    assert (values["broker"], values["backend"]) == ("redis://broker:6379/1", "redis://broker:6379/2")
    assert values["debug"] is False
    assert values["hosts"] == ["flows.example.com", "127.0.0.1"]
    assert values["secret"] == "$tarts-with-a-dollar"
    assert (values["log_level"], values["visibility"], values["tick"], values["reconcile"]) == ("INFO", 7200, 0.5, 3.0)
    assert (values["heartbeat"], values["republish"]) == (1.0, 12.5)

    sqlite = settings_under(DATABASE_URL="sqlite:////tmp/elsewhere.sqlite3", TEST_SQLITE_PATH="/tmp/mine.sqlite3")
    assert (sqlite["db"]["NAME"], sqlite["db"]["TEST"]["NAME"]) == ("/tmp/elsewhere.sqlite3", "/tmp/mine.sqlite3")


# --- the quiet tick ------------------------------------------------------------------------------


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def celery_output():
    """A handler on Celery's base logger, given the filter the way Celery's logging setup does."""
    handler = Collect()
    holder = logging.Logger("celery-root-handlers")
    holder.addHandler(handler)
    signals.after_setup_logger.send(sender=None, logger=holder, loglevel=logging.INFO, logfile=None, format="",
                                    colorize=False)
    base = logging.getLogger("celery")
    level = base.level
    base.addHandler(handler)
    yield handler
    base.removeHandler(handler)
    base.setLevel(level)


def emit_as_celery(task_name: str) -> None:
    """The three INFO lines Celery logs for one periodic task: beat sends it, a worker receives and
    runs it. Beat's line comes from its own code; the worker's use its message formats and loggers."""
    entry = ScheduleEntry(name="scheduler-tick", task=task_name, schedule=2.0, app=app)
    Scheduler.apply_entry(SimpleNamespace(apply_async=lambda *args, **kwargs: None), entry)
    context = {"id": str(uuid.uuid4()), "name": task_name, "args": "()", "kwargs": "{}", "eta": None}
    logging.getLogger("celery.worker.strategy").info(trace.LOG_RECEIVED, context, extra={"data": context})
    trace.info(trace.LOG_SUCCESS, {"id": context["id"], "name": task_name, "return_value": "None", "runtime": 0.01,
                                   "args": "()", "kwargs": "{}"})


@pytest.mark.parametrize("task", [TICK_TASK, RECONCILE_TASK])
def test_tick_lines_are_dropped_at_info(celery_output, task):
    logging.getLogger("celery").setLevel(logging.INFO)
    emit_as_celery(task)
    assert celery_output.records == []


def test_an_expired_tick_is_discarded_quietly(celery_output):
    """Beat's ticks expire when not taken in time (project/settings.py): the worker's line says so at INFO."""
    logging.getLogger("celery").setLevel(logging.INFO)
    logging.getLogger("celery.worker.request").info("Discarding revoked task: %s[%s]", TICK_TASK, str(uuid.uuid4()))
    assert celery_output.records == []


def test_other_tasks_keep_their_info_lines(celery_output):
    logging.getLogger("celery").setLevel(logging.INFO)
    emit_as_celery("flows.execution_advance")
    lines = [(record.levelname, record.getMessage()) for record in celery_output.records]
    assert [level for level, _ in lines] == ["INFO", "INFO", "INFO"]
    assert lines[0][1] == "Scheduler: Sending due task scheduler-tick (flows.execution_advance)"
    assert lines[1][1].endswith("] received") and lines[2][1].startswith("Task flows.execution_advance[")


def test_tick_lines_show_at_debug(celery_output):
    logging.getLogger("celery").setLevel(logging.DEBUG)
    emit_as_celery(TICK_TASK)
    lines = [(record.levelname, record.getMessage()) for record in celery_output.records]
    assert {level for level, _ in lines} == {"DEBUG"}
    messages = " | ".join(message for _, message in lines)
    assert "Sending due task scheduler-tick (flows.scheduler_tick)" in messages
    assert "] received" in messages and "] succeeded in" in messages


def test_a_failing_tick_still_logs_its_error(celery_output):
    logging.getLogger("celery").setLevel(logging.INFO)
    context = {"id": str(uuid.uuid4()), "name": TICK_TASK, "description": "raised unexpected", "exc": "boom"}
    logging.getLogger("celery.app.trace").log(logging.ERROR, trace.LOG_FAILURE, context)
    assert [record.levelname for record in celery_output.records] == ["ERROR"]


def test_the_filter_decides_once_for_every_handler():
    """A record goes through each handler's filter; the second must not pass what the first dropped."""
    logging.getLogger("celery").setLevel(logging.INFO)
    record = logging.getLogger("celery.beat").makeRecord(
        "celery.beat", logging.INFO, __file__, 1, "Scheduler: Sending due task %s (%s)", ("scheduler-tick", TICK_TASK), None)
    assert QuietTick().filter(record) is False
    assert QuietTick().filter(record) is False


# --- the quiet tick, end to end ------------------------------------------------------------------


def _start(argv: list[str], env: dict, log_path):
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "project", *argv], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def own_redis_url():
    """A redis-server of this test's own: the session's has an executor consuming the ticks."""
    process, url = start_redis()
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_beat_and_executor_at_info_are_silent_about_the_tick(own_redis_url, transactional_db, tmp_path):
    redis_url = own_redis_url
    broker = redis.Redis.from_url(redis_url)
    env = {**os.environ, "CELERY_BROKER_URL": redis_url, "DATABASE_URL": database_url(),
           "DJANGO_SETTINGS_MODULE": "project.settings", "SCHEDULER_TICK_SECONDS": "0.5",
           "WORKER_HEARTBEAT_INTERVAL": "1"}
    env.pop("CELERY_RESULT_BACKEND", None)
    beat = _start(["beat", "-l", "info", "-s", str(tmp_path / "schedule")], env, tmp_path / "beat.log")
    worker = None
    try:
        wait_for(lambda: broker.llen("executor") >= 3, timeout=60, message="beat to send three ticks")
        worker = _start(["worker", "-Q", "executor", "-n", f"quiet@{uuid.uuid4().hex[:6]}", "-l", "info",
                         "--concurrency", "1", "--without-mingle", "--without-gossip"], env, tmp_path / "worker.log")
        wait_for(lambda: broker.llen("executor") == 0, timeout=60, message="the worker to take the ticks")
        with app.connection_for_write(redis_url) as connection:
            app.send_task("flows.execution_advance", args=[str(uuid.uuid4())], queue="executor", connection=connection,
                          ignore_result=True)  # no result backend: the app's points at no server when run alone
        wait_for(lambda: "Task flows.execution_advance[" in (tmp_path / "worker.log").read_text()
                 and "succeeded in" in (tmp_path / "worker.log").read_text(),
                 timeout=60, message="the worker to log another task at INFO")
    finally:
        _stop(beat)
        if worker is not None:
            _stop(worker)
    beat_log, worker_log = (tmp_path / "beat.log").read_text(), (tmp_path / "worker.log").read_text()
    assert "beat: Starting..." in beat_log
    assert "Sending due task" not in beat_log
    assert "Task flows.scheduler_tick[" not in worker_log and "Task flows.reconcile[" not in worker_log
