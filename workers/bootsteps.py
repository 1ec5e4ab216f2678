"""Consumer bootsteps of a group worker. Each stays thin and hands the work to a plain object."""
import logging

from celery import bootsteps
from django.conf import settings

from .heartbeat import Heart
from .init_script import InitScriptFailed, init_scripts_run

logger = logging.getLogger(__name__)


class InitScriptStep(bootsteps.StartStopStep):
    """Runs the init scripts of the worker's groups once, when the consumer first starts: before the
    heart beats (the worker is not alive for routing yet) and before it takes any work. A failing
    script stops the worker (Celery logs it as an unrecoverable error and exits with status 1)."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer, **kwargs):
        super().__init__(consumer, **kwargs)
        self.done = False

    def start(self, consumer):
        if self.done:  # a consumer restarted after a lost broker connection: already run
            return
        queues = [queue.name for queue in consumer.task_consumer.queues]
        try:
            init_scripts_run(hostname=consumer.hostname, queues=queues)
        except InitScriptFailed as failure:
            logger.error("%s", failure)
            raise
        self.done = True


class HeartbeatStep(bootsteps.StartStopStep):
    """Starts the worker's `Heart` once, when the consumer first starts (docs/guarantees.md).

    Celery stops and starts consumer steps again when the broker connection is lost: the heart goes
    on beating meanwhile, the worker is alive. When the worker itself stops, the heart leaves the
    groups at once, and records the stop only at the end (`shutdown`, called once the pool has
    finished the running tasks)."""

    requires = {"celery.worker.consumer.tasks:Tasks", "workers.bootsteps:InitScriptStep"}

    def __init__(self, consumer, **kwargs):
        super().__init__(consumer, **kwargs)
        self.heart = None

    def start(self, consumer):
        if self.heart is None:
            self.heart = Heart(consumer, interval=settings.WORKER_HEARTBEAT_INTERVAL)
            try:  # a drained group's worker starts idle for it
                self.heart.settle_drains(starting=True)
            except Exception:  # the database is away: the first beats apply the drains
                logger.exception("worker %s could not read the stored drains at start", consumer.hostname)
            self.heart.start()

    def stop(self, consumer):
        if self.heart is not None and _worker_stopping(consumer):
            self.heart.leave()

    def shutdown(self, consumer):
        if self.heart is not None:
            self.heart.stopped()
            self.heart = None


def _worker_stopping(consumer) -> bool:
    """True when the whole worker stops, False when Celery only restarts the consumer."""
    blueprint = getattr(consumer.controller, "blueprint", None)
    return blueprint is None or blueprint.state != bootsteps.RUN
