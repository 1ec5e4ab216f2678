"""What a worker tells the database about itself: hostname, groups (the queues it consumes), pid,
concurrency and running task count. Alive means a heartbeat younger than 3 intervals
(docs/guarantees.md).

The heart beats from a thread of its own, not from the consumer's event loop: the loop stops while
the consumer reconnects to a broker that went away, and while a stopping worker waits for its task
runs to finish, and the worker is alive in both cases. A worker that is stopping *leaves* its
groups at once (it takes no new work, so routing and fallbacks no longer count it) but goes on
beating until its last task run has ended, so its task runs are not mistaken for those of a lost
worker and run again; then it removes its record.

Drains are stored in the database (docs/operations.md). The heart applies them when the worker
starts, before it takes work, and again at every beat, so a worker that missed a drain or resume
sent by remote control, or that started meanwhile, catches up within one interval.
"""
import logging
import os
import threading
import time

from celery.worker import state as worker_state
from django.db import close_old_connections
from django.utils import timezone

from flows.dispatch import RUN_TASKRUN
from flows.selectors import drain_stored, group_drains
from flows.services import worker_heartbeat, worker_stopped

logger = logging.getLogger(__name__)


def _running_task_runs() -> list[str]:
    """The task runs this worker's pool runs now: a task run RUNNING here that is missing lost its
    pool process (flows/reconciler.py)."""
    return sorted(
        str(request.args[0]) for request in list(worker_state.active_requests)
        if request.task_name == RUN_TASKRUN and request.args
    )


class Heart:
    def __init__(self, consumer, *, interval: float):
        self.consumer = consumer
        self.interval = interval
        self.leaving = False
        self.members: list[str] = []  # every queue this worker was started for or told to add
        self.consumed: list[str] = []  # the queues it consumes now: its members less the drained ones
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

    def _read_queues(self) -> None:
        task_consumer = self.consumer.task_consumer
        if task_consumer is not None:  # None while the consumer reconnects: keep the last known queues
            self.consumed = [queue.name for queue in task_consumer.queues]
            self.members += [queue for queue in self.consumed if queue not in self.members]

    def settle_drains(self, *, starting: bool = False) -> None:
        """Stop or start consuming each of the worker's queues as the stored drains say. `starting`:
        called from the consumer's own start, before it takes work, so it acts directly; from the
        heartbeat thread it asks the consumer through Celery's remote control, as an operator would."""
        self._read_queues()
        drains = group_drains()
        drained = {queue for queue in self.members if drain_stored(self.consumer.hostname, queue, drains)}
        for queue in self.members:
            if queue in drained and queue in self.consumed:
                logger.warning("worker %s: worker group '%s' is drained; not taking its work until resumed",
                               self.consumer.hostname, queue)
                self._consume(queue, False, starting=starting)
            elif queue not in drained and queue not in self.consumed:
                self._consume(queue, True, starting=starting)
        self._read_queues()

    def _consume(self, queue: str, consume: bool, *, starting: bool) -> None:
        consumer = self.consumer
        if starting:
            (consumer.add_task_queue if consume else consumer.cancel_task_queue)(queue)
            return
        control = consumer.app.control
        (control.add_consumer if consume else control.cancel_consumer)(
            queue, destination=[consumer.hostname], reply=False)

    def beat(self) -> None:
        consumer = self.consumer
        started = time.monotonic()
        # The first beat, or the first after a break: the database learns that this run of beats is new.
        resumed = self._last_beat is None or started - self._last_beat > 1.5 * self.interval
        try:
            close_old_connections()
            self._read_queues()
            seen, running_task_runs = timezone.now(), _running_task_runs()
            worker_heartbeat(
                hostname=consumer.hostname, groups=[] if self.leaving else self.members, pid=os.getpid(),
                concurrency=consumer.pool.num_processes if consumer.pool else 0,
                running=len(worker_state.active_requests), resumed=resumed,
                drained=[] if self.leaving else [queue for queue in self.members if queue not in self.consumed],
                running_task_runs=running_task_runs, running_seen=seen,
            )
            self._last_beat = started
            if not self.leaving:
                self.settle_drains()
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
