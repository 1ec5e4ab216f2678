"""What a worker tells the database about itself: hostname, groups (the queues it consumes), pid,
concurrency and running task count. Alive means a heartbeat younger than 3 intervals."""
import logging
import os

from celery.worker import state as worker_state
from django.db import close_old_connections

from flows.services import worker_heartbeat, worker_stopped

logger = logging.getLogger(__name__)


class Heart:
    def __init__(self, consumer):
        self.consumer = consumer

    def beat(self) -> None:
        consumer = self.consumer
        queues = [queue.name for queue in consumer.task_consumer.queues] if consumer.task_consumer else []
        try:
            close_old_connections()
            worker_heartbeat(
                hostname=consumer.hostname, groups=queues, pid=os.getpid(),
                concurrency=consumer.pool.num_processes if consumer.pool else 0,
                running=len(worker_state.active_requests),
            )
        except Exception:  # a missed beat must never stop the worker; the next one may succeed
            logger.exception("heartbeat of worker %s failed", consumer.hostname)

    def stopped(self) -> None:
        try:
            worker_stopped(hostname=self.consumer.hostname)
        except Exception:
            logger.exception("could not record that worker %s stopped", self.consumer.hostname)
