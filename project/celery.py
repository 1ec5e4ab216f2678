"""The Celery app of every process: executor, beat, group workers and flower.

Beat sends the scheduler tick every SCHEDULER_TICK_SECONDS and the reconciler every RECONCILE_SECONDS.
At `-l info` Celery would log each one three times (beat's "Sending due task", the executor's
"received" and "succeeded"); `QuietTick` lowers those lines, and only those, to DEBUG, so an idle
stack is silent and `-l debug` still shows them.
"""
import logging
import os

from celery import Celery, signals
from celery.fixups.django import DjangoFixup, DjangoWorkerFixup
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


def _connparams_of_a_live_connection(connparams):
    """Celery 5.7 drops a consumer's broken Redis connection while the channel is still used: a task
    that ends afterwards acknowledges its message, or the channel restores its unacknowledged ones,
    and kombu reads the address of a connection that is gone (AttributeError on None). Celery takes
    that for an unrecoverable error and the worker exits (seen: the executor, after a Redis restart).
    Raised as a connection error instead, it is what kombu and Celery already handle: logged, the
    consumer reconnects, and the messages come back after VISIBILITY_TIMEOUT while the reconciler
    does not wait for them (docs/guarantees.md)."""

    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection was closed")
        return connparams(self, asynchronous=asynchronous)

    return _connparams


kombu_redis.Channel._connparams = _connparams_of_a_live_connection(kombu_redis.Channel._connparams)

TICK_TASK = "flows.scheduler_tick"
RECONCILE_TASK = "flows.reconcile"
QUIET_TASKS = frozenset({TICK_TASK, RECONCILE_TASK})  # the periodic tasks beat sends

class ConnectionsKeptWorkerFixup(DjangoWorkerFixup):
    """Celery's Django fix-up closes every database connection before and after each task, so each
    task opened a new one (on PostgreSQL a connection costs more than a whole task step). Here a task
    boundary is a request boundary, as Django's own: a connection is closed only when it is broken,
    left in a transaction, or older than CONN_MAX_AGE; CONN_HEALTH_CHECKS makes a task that finds
    the database restarted open a new one (docs/configuration.md). A forked pool process still closes
    what it inherited (`on_worker_process_init` uses `_close_database`)."""

    def close_database(self, **kwargs) -> None:
        for connection in self._db.connections.all(initialized_only=True):
            connection.close_if_unusable_or_obsolete()


class ConnectionsKeptFixup(DjangoFixup):
    @property
    def worker_fixup(self) -> DjangoWorkerFixup:
        if self._worker_fixup is None:
            self._worker_fixup = ConnectionsKeptWorkerFixup(self.app)
        return self._worker_fixup

    @worker_fixup.setter
    def worker_fixup(self, value: DjangoWorkerFixup) -> None:
        self._worker_fixup = value


def install_fixup(app: Celery) -> DjangoFixup:
    return ConnectionsKeptFixup(app).install()


app = Celery("project", fixups=[f"{__name__}:install_fixup"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["consumer"].add("workers.bootsteps:InitScriptStep")
app.steps["consumer"].add("workers.bootsteps:HeartbeatStep")


class QuietTick(logging.Filter):
    """A handler filter: an INFO record about a periodic task (QUIET_TASKS) becomes DEBUG, and is
    dropped unless its logger has DEBUG enabled. Celery names the task in the record's arguments: a
    tuple for beat's "Sending due task %s (%s)", a dict with `name` for a worker's "Task %(name)s[%(id)s] ..."."""

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, "quiet_tick", None)  # a record reaches every handler: decide once
        if decided is not None:
            return decided
        if record.levelno != logging.INFO or not is_about_tick(record.args):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        record.quiet_tick = logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return record.quiet_tick


def is_about_tick(args) -> bool:
    if isinstance(args, dict):
        return args.get("name") in QUIET_TASKS
    if isinstance(args, tuple):
        return any(isinstance(arg, str) and arg in QUIET_TASKS for arg in args)
    return False


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def quiet_tick_install(logger: logging.Logger, **kwargs) -> None:
    for handler in logger.handlers:
        if not any(isinstance(existing, QuietTick) for existing in handler.filters):
            handler.addFilter(QuietTick())
