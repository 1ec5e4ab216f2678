"""What a worker tells the database about itself: hostname, groups (the queues it consumes), pid,
concurrency and running task count. Alive means a heartbeat younger than 3 intervals
(docs/guarantees.md).

The heart beats from a thread of its own, not from the consumer's event loop: the loop stops while
the consumer reconnects to a broker that went away, and while a stopping worker waits for its task
runs to finish, and the worker is alive in both cases. A worker that is stopping *leaves* its
groups at once (it takes no new work, so routing and fallbacks no longer count it) but goes on
beating until its last task run has ended, so its task runs are not mistaken for those of a lost
worker and run again; then it removes its record.
"""
import logging
import os
import threading
import time

from celery.worker import state as worker_state
from django.db import close_old_connections

from flows.services import worker_heartbeat, worker_stopped

logger = logging.getLogger(__name__)


class Heart:
    def __init__(self, consumer, *, interval: float):
        self.consumer = consumer
        self.interval = interval
        self.leaving = False
        self.queues: list[str] = []
        self._last_beat: float | None = None  # monotonic time of the last beat that reached the database
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.beat()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.beat()

    def _groups(self) -> list[str]:
        task_consumer = self.consumer.task_consumer
        if task_consumer is not None:  # None while the consumer reconnects: keep the last known queues
            self.queues = [queue.name for queue in task_consumer.queues]
        return [] if self.leaving else self.queues

    def beat(self) -> None:
        consumer = self.consumer
        started = time.monotonic()
        # The first beat, or the first after a break: the database learns that this run of beats is new.
        resumed = self._last_beat is None or started - self._last_beat > 1.5 * self.interval
        try:
            close_old_connections()
            worker_heartbeat(
                hostname=consumer.hostname, groups=self._groups(), pid=os.getpid(),
                concurrency=consumer.pool.num_processes if consumer.pool else 0,
                running=len(worker_state.active_requests), resumed=resumed,
            )
            self._last_beat = started
        except Exception:  # a missed beat must never stop the worker; the next one may succeed
            logger.exception("heartbeat of worker %s failed", consumer.hostname)
        finally:
            close_old_connections()

    def leave(self) -> None:
        """The worker is stopping: out of its groups now, alive until `stopped()`."""
        self.leaving = True
        self.beat()

    def stopped(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        try:
            close_old_connections()
            worker_stopped(hostname=self.consumer.hostname)
        except Exception:
            logger.exception("could not record that worker %s stopped", self.consumer.hostname)
        finally:
            close_old_connections()
