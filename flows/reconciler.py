"""The reconciler: one pass over task runs that wait or run, called by the scheduler tick.

It applies the fallback policy again to task runs still waiting (their group's workers may have
died since they were published, or their maxWait run out), publishes again a message the broker
lost, gives a task run whose worker stopped heartbeating a new attempt, and advances executions
that nothing else would advance any more. See docs/fallback.md and docs/guarantees.md.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from . import dispatch
from .capacity import slots_hand_on
from .engine import execution_advance, execution_kill
from .engine.sla import sla_overdue_enforce
from .errors import UserError
from .fallback import fallback_decide
from .models import WORKING_DIRECTORY_TYPE, Execution, State, TaskRun, queue_for_group
from .routing import worker_group_problem
from .selectors import alive_queues, alive_since, alive_workers, broker_queue_length
from .states import (
    lost_attempts, taskrun_children_end_lost, taskrun_end_waiting, taskrun_fail_lost, taskrun_kill_lost, taskrun_reattempt, taskrun_republished,
)

logger = logging.getLogger(__name__)


def taskruns_reconcile() -> dict:
    now = timezone.now()
    workers = alive_workers()
    alive = alive_queues()
    problems: dict = {}
    queue_lengths: dict = {}
    to_advance, to_kill = set(), set()
    slot_groups = set()
    counts = {"failed": 0, "cancelled": 0, "killed": 0, "republished": 0, "reattempted": 0, "resumed": 0, "sla": 0,
              "pauses_due": 0}

    waiting = TaskRun.objects.filter(state=State.CREATED).exclude(
        execution__state__in=[State.KILLING, State.KILLED]
    ).select_related("execution__tenant")
    for run in waiting:
        tenant = run.execution.tenant
        if (run.worker_group, tenant.pk) not in problems:
            problems[(run.worker_group, tenant.pk)] = worker_group_problem(run.worker_group, tenant)
        queue = queue_for_group(run.worker_group)
        waited = (now - (run.published or run.created)).total_seconds()
        decision = fallback_decide(
            group_key=run.worker_group, fallback=run.fallback, max_wait_seconds=run.max_wait_seconds,
            problem=problems[(run.worker_group, tenant.pk)], alive=queue in alive, waited_seconds=waited,
        )
        if decision.ends_taskrun:
            if taskrun_end_waiting(run=run, state=decision.action, message=decision.message, when=now):
                if decision.action == State.CANCELLED:
                    counts["cancelled"] += 1
                    to_kill.add(run.execution_id)
                else:
                    counts["failed"] += 1
                    to_advance.add(run.execution_id)
        elif queue in alive and waited > settings.REPUBLISH_AFTER_SECONDS and run.slot_wait_since is not None:
            slot_groups.add(run.worker_group)  # its message was consumed: it waits for a slot, not for a worker
        elif queue in alive and waited > settings.REPUBLISH_AFTER_SECONDS:
            if queue not in queue_lengths:
                queue_lengths[queue] = broker_queue_length(queue)
            if queue_lengths[queue] == 0 and taskrun_republished(run=run, when=now):
                dispatch.send([dispatch.taskrun_message(taskrun_id=run.id, attempt=run.attempt, queue=queue)])
                counts["republished"] += 1

    for key in slot_groups:  # the message that handed a slot on was lost: hand it on again
        with transaction.atomic():
            counts["republished"] += slots_hand_on(key, when=now)

    alive_hosts = {worker.hostname for worker in workers}
    lost = TaskRun.objects.filter(state=State.RUNNING, start_date__lt=alive_since()).exclude(worker_id="").exclude(
        worker_id__in=alive_hosts
    ).exclude(parent__task_type=WORKING_DIRECTORY_TYPE)  # a block's tasks start again with the block
    for run in [*lost, *_orphaned(workers)]:
        outcome = _reattempt(run, now)
        if outcome and run.task_type == WORKING_DIRECTORY_TYPE:
            taskrun_children_end_lost(block=run, state=State.KILLED if outcome == "killed" else State.FAILED, when=now,
                                      message=f"the WorkingDirectory '{run.task_id}' lost its worker "
                                              f"{run.worker_id} during attempt {run.attempt}")
        if outcome:
            counts[outcome] += 1
            to_advance.add(run.execution_id)

    counts["sla"] = sla_overdue_enforce(now=now)
    # Pause tasks whose delay or timeout is over (docs/core-tasks.md): their delayed message may be lost.
    pauses_due = set(TaskRun.objects.filter(state=State.PAUSED, resume_at__lte=now)
                     .values_list("execution_id", flat=True)[:200])
    counts["pauses_due"] = len(pauses_due - to_advance)
    to_advance |= pauses_due
    stalled = _stalled_executions(now) - to_advance - to_kill
    counts["resumed"] = len(stalled)
    for execution_id in to_kill:
        try:
            execution_kill(execution_id=execution_id)
        except UserError:  # ended meanwhile
            pass
    for execution_id in (to_advance | stalled) - to_kill:
        try:
            execution_advance(execution_id=execution_id)
        except Exception:  # one execution that cannot advance must not stop the others
            logger.exception("could not advance execution %s", execution_id)
    if any(counts.values()):
        logger.info("reconciled task runs: %s", counts)
    return counts


def _stalled_executions(now, limit: int = 200) -> set:
    """Executions that nothing will advance any more, for REPUBLISH_AFTER_SECONDS already:
    - still CREATED while the executor's queue is empty: the message that starts them was lost (the
      broker was down when they were created, or restarted without its data, or the executor that
      had taken it was killed);
    - RUNNING or KILLING with no task run waiting or running on a worker, and none ended lately: the
      process that ended their last task run stopped before advancing them.
    Advancing an execution is idempotent, so advancing one that was about to move anyway is harmless."""
    cutoff = now - timedelta(seconds=settings.REPUBLISH_AFTER_SECONDS)
    stalled = set()
    created = Execution.objects.filter(state=State.CREATED, created__lt=cutoff)
    if created.exists() and broker_queue_length(dispatch.EXECUTOR_QUEUE) == 0:
        stalled.update(created.order_by("created").values_list("id", flat=True)[:limit])
    # Queued for a flow's concurrency limit while none of its executions runs: the message that
    # should have started the first one was lost (docs/flow-properties.md).
    same_flow_running = Execution.objects.filter(
        tenant=OuterRef("tenant"), namespace=OuterRef("namespace"), flow_id=OuterRef("flow_id"),
        state__in=[State.RUNNING, State.PAUSED, State.KILLING],
    )
    queued = Execution.objects.filter(state=State.QUEUED, created__lt=cutoff).exclude(Exists(same_flow_running))
    stalled.update(queued.order_by("created").values_list("id", flat=True)[:limit])
    runs = TaskRun.objects.filter(execution=OuterRef("pk"))
    on_workers = runs.filter(Q(state=State.CREATED) | Q(state=State.RUNNING, published__isnull=False))
    idle = (
        Execution.objects.filter(state__in=[State.RUNNING, State.KILLING], start_date__lt=cutoff)
        .exclude(Exists(on_workers)).exclude(Exists(runs.filter(end_date__gte=cutoff)))
    )
    stalled.update(idle.values_list("id", flat=True)[:limit])
    return stalled


def _orphaned(workers) -> list[TaskRun]:
    """Task runs RUNNING on an alive worker whose pool no longer runs them: their pool process died
    (killed, out of memory) while the worker's main process goes on beating. A task run counts only
    if it started a heartbeat interval before the worker last listed what its pool runs, so a task
    run just claimed is never taken for one that was lost."""
    margin = timedelta(seconds=settings.WORKER_HEARTBEAT_INTERVAL)
    orphaned = []
    for worker in workers:
        if worker.running_seen is None:
            continue
        listed = set(worker.running_task_runs)
        candidates = TaskRun.objects.filter(state=State.RUNNING, worker_id=worker.hostname,
                                            start_date__lt=worker.running_seen - margin).exclude(
            parent__task_type=WORKING_DIRECTORY_TYPE)  # a block's tasks run in the block's pool process
        orphaned += [run for run in candidates if str(run.id) not in listed]
    return orphaned


def _reattempt(run: TaskRun, now) -> str | None:
    """The worker running `run` stopped heartbeating, or the pool process running it died: its
    attempt is lost. Start a new one, unless LOST_WORKER_MAX_REATTEMPTS new attempts were already
    made for lost workers: then it fails. Returns the count it adds to ("reattempted", "failed",
    "killed"), or None if it changed nothing."""
    if Execution.objects.filter(id=run.execution_id, state=State.KILLING).exists():
        return "killed" if taskrun_kill_lost(run=run, when=now) else None
    limit = settings.LOST_WORKER_MAX_REATTEMPTS
    alive = any(worker.hostname == run.worker_id for worker in alive_workers())
    what = (f"the pool process running it on worker {run.worker_id} died" if alive
            else f"worker {run.worker_id} stopped heartbeating")
    if lost_attempts(run) >= limit:
        message = (f"{what} during attempt {run.attempt}; no new attempt: "
                   f"the task run already lost {limit} worker(s) (LOST_WORKER_MAX_REATTEMPTS={limit})")
        return "failed" if taskrun_fail_lost(run=run, message=message, when=now) else None
    message = f"{what}; starting attempt {run.attempt + 1}"
    if not taskrun_reattempt(run=run, message=message, when=now):
        return None
    dispatch.send([dispatch.taskrun_message(taskrun_id=run.id, attempt=run.attempt + 1,
                                            queue=queue_for_group(run.worker_group))])
    return "reattempted"
