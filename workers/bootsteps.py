"""Worker heartbeats (SPEC §3): hostname, groups (queues consumed), pid, concurrency, running."""
import logging
import os

from celery import bootsteps
from celery.worker import state as worker_state
from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)


class HeartbeatStep(bootsteps.StartStopStep):
    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer, **kwargs):
        super().__init__(consumer, **kwargs)
        self.timer_entry = None

    def start(self, consumer):
        self.beat(consumer)
        self.timer_entry = consumer.timer.call_repeatedly(settings.WORKER_HEARTBEAT_INTERVAL, self.beat, (consumer,), priority=10)

    def stop(self, consumer):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None
        from workers.services import worker_stopped

        try:
            worker_stopped(hostname=consumer.hostname)
        except Exception:
            logger.exception("could not record that worker %s stopped", consumer.hostname)

    def shutdown(self, consumer):
        self.stop(consumer)

    def beat(self, consumer):
        from workers.services import worker_heartbeat

        queues = [queue.name for queue in consumer.task_consumer.queues] if consumer.task_consumer else []
        try:
            close_old_connections()
            worker_heartbeat(
                hostname=consumer.hostname, groups=queues, pid=os.getpid(),
                concurrency=consumer.pool.num_processes if consumer.pool else 0,
                running=len(worker_state.active_requests),
            )
        except Exception:
            logger.exception("heartbeat of worker %s failed", consumer.hostname)
