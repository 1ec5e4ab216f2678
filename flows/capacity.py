"""Whether a worker may start a task run of its group now: drains and the group's concurrency limit
(docs/operations.md).

A claim in a group that is drained, or that has a concurrency limit, is decided under a lock on the
group's row (SELECT ... FOR UPDATE on PostgreSQL; SQLite runs one write transaction at a time), so
the limit holds across every worker process. A task run refused for lack of a slot stays CREATED and
is marked with the date it began waiting for one (`slot_wait_since`); its message is consumed.
Whoever frees a slot (a task run of the group ends, a waiter starts with slots to spare, the limit
is raised) sends the oldest waiters again, as many as there are free slots, so they start in the
order they were refused, without polling. A claim never passes an older waiter.
"""
from datetime import datetime

from django.db.models import Q

from . import dispatch
from .models import WORKING_DIRECTORY_TYPE, State, TaskRun, WorkerGroup, queue_for_group

DRAINED = "drained"
NO_SLOT = "no slot"


def _locked_group(key: str) -> WorkerGroup | None:
    return WorkerGroup.objects.select_for_update().filter(key=key).first() if key else None


def gated(key: str) -> bool:
    """Whether claims in group `key` need the group's lock: it is drained or has a limit."""
    return bool(key) and WorkerGroup.objects.filter(key=key).filter(
        Q(drained=True) | ~Q(drained_workers=[]) | Q(concurrency_limit__isnull=False)
    ).exists()


def _waiters(key: str):
    return TaskRun.objects.filter(worker_group=key, state=State.CREATED, slot_wait_since__isnull=False)


def _running(key: str) -> int:
    """Task runs of group `key` holding a slot: a WorkingDirectory's tasks run in its own slot."""
    return (TaskRun.objects.filter(worker_group=key, state=State.RUNNING)
            .exclude(parent__task_type=WORKING_DIRECTORY_TYPE).count())


def claim_refusal(run: TaskRun, *, worker_id: str, when: datetime) -> str | None:
    """Why `worker_id` may not start `run` now (DRAINED, NO_SLOT), or None. Call inside the claim's
    transaction: the group row stays locked until the claim is written. A task run refused for
    lack of a slot is marked as waiting for one; one refused by a drain is sent again, for a worker
    that is not drained (or for after the resume)."""
    group = _locked_group(run.worker_group)
    if group is None:
        return None
    if group.drained or worker_id in group.drained_workers:
        TaskRun.objects.filter(id=run.id, state=State.CREATED, attempt=run.attempt).update(published=when)
        dispatch.send([dispatch.taskrun_message(taskrun_id=run.id, attempt=run.attempt,
                                                queue=queue_for_group(run.worker_group))])
        return DRAINED
    if group.concurrency_limit is None:
        return None
    running = _running(group.key)
    older = _waiters(group.key).exclude(id=run.id)
    if run.slot_wait_since is not None:
        older = older.filter(Q(slot_wait_since__lt=run.slot_wait_since)
                             | Q(slot_wait_since=run.slot_wait_since, id__lt=run.id))
    if running < group.concurrency_limit and not older.exists():
        return None
    if run.slot_wait_since is None:
        TaskRun.objects.filter(id=run.id, state=State.CREATED, attempt=run.attempt).update(slot_wait_since=when)
    return NO_SLOT


def slots_hand_on(key: str, *, when: datetime) -> int:
    """Send again the oldest task runs waiting for a slot of group `key`, one per free slot (all of
    them when the group has no limit any more). Returns how many were sent."""
    if not key or not _waiters(key).exists():
        return 0
    group = _locked_group(key)
    if group is None:
        return 0
    waiters = _waiters(key).order_by("slot_wait_since", "id")
    if group.concurrency_limit is not None:
        running = _running(key)
        waiters = waiters[:max(group.concurrency_limit - running, 0)]
    sent = list(waiters.values_list("id", "attempt"))
    if sent:
        TaskRun.objects.filter(id__in=[taskrun_id for taskrun_id, _ in sent]).update(published=when)
        dispatch.send([dispatch.taskrun_message(taskrun_id=taskrun_id, attempt=attempt, queue=queue_for_group(key))
                       for taskrun_id, attempt in sent])
    return len(sent)
