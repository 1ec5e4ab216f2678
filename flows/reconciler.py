"""The periodic pass (SPEC §5, §6): re-applies fallbacks to waiting task runs, fails the ones that
waited past maxWait, re-publishes messages the broker lost and gives task runs of dead workers a new
attempt. One call is one iteration; the scheduler tick calls it every few seconds."""
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workers.selectors import alive_workers, queue_for_group, worker_group_problem

from .engine import attempts_with, execution_advance, execution_kill, group_label, history_with, publish_taskruns
from .errors import UserError
from .models import Execution, LogLine, State, TaskRun



def _queue_length(queue: str) -> int | None:
    try:
        with current_app.connection_for_read() as connection:
            return connection.default_channel.client.llen(queue)
    except Exception:  # a broker we cannot ask: do not guess, do not republish
        return None


def _end_waiting(run: TaskRun, state: str, message: str, now) -> bool:
    with transaction.atomic():
        ended = TaskRun.objects.filter(id=run.id, state=State.CREATED, attempt=run.attempt).update(
            state=state, error=message if state == State.FAILED else "", end_date=now,
            state_history=history_with(run, state, when=now),
        )
        if ended:
            LogLine.objects.create(execution_id=run.execution_id, task_run_id=run.id, task_id=run.task_id,
                                   level="ERROR" if state == State.FAILED else "WARN", message=message)
    return bool(ended)


def taskruns_reconcile() -> dict:
    now = timezone.now()
    workers = alive_workers()
    alive_queues = {queue for worker in workers for queue in worker.groups}
    alive_hosts = {worker.hostname for worker in workers}
    problems: dict = {}
    queue_lengths: dict = {}
    to_advance, to_kill = set(), set()
    counts = {"failed": 0, "cancelled": 0, "republished": 0, "reattempted": 0}

    waiting = TaskRun.objects.filter(state=State.CREATED).exclude(
        execution__state__in=[State.KILLING, State.KILLED]
    ).select_related("execution__tenant")
    for run in waiting:
        key = run.worker_group
        label = group_label(key)
        if (key, run.execution.tenant_id) not in problems:
            problems[(key, run.execution.tenant_id)] = worker_group_problem(key, run.execution.tenant)
        problem = problems[(key, run.execution.tenant_id)]
        waited = now - (run.published or run.created)
        if problem:
            if _end_waiting(run, State.FAILED, problem, now):
                counts["failed"] += 1
                to_advance.add(run.execution_id)
        elif queue_for_group(key) not in alive_queues:
            if run.fallback == "FAIL":
                if _end_waiting(run, State.FAILED, f"no alive worker in worker group '{label}' (fallback FAIL)", now):
                    counts["failed"] += 1
                    to_advance.add(run.execution_id)
            elif run.fallback == "CANCEL":
                if _end_waiting(run, State.CANCELLED, f"no alive worker in worker group '{label}': task run cancelled (fallback CANCEL)", now):
                    counts["cancelled"] += 1
                    to_kill.add(run.execution_id)
            elif run.max_wait_seconds is not None and waited.total_seconds() > run.max_wait_seconds:
                message = (f"waited more than {run.max_wait_seconds:g}s (workerGroup.maxWait) for a worker of "
                           f"worker group '{label}'")
                if _end_waiting(run, State.FAILED, message, now):
                    counts["failed"] += 1
                    to_advance.add(run.execution_id)
        elif waited.total_seconds() > settings.REPUBLISH_AFTER_SECONDS:
            queue = queue_for_group(key)
            if queue not in queue_lengths:
                queue_lengths[queue] = _queue_length(queue)
            if queue_lengths[queue] == 0:
                TaskRun.objects.filter(id=run.id, state=State.CREATED, attempt=run.attempt).update(published=now)
                publish_taskruns([(str(run.id), run.attempt, key)])
                counts["republished"] += 1

    grace = now - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_INTERVAL)
    lost = TaskRun.objects.filter(state=State.RUNNING, start_date__lt=grace).exclude(worker_id="").exclude(
        worker_id__in=alive_hosts
    )
    for run in lost:
        if _reattempt(run, now):
            counts["reattempted"] += 1
            to_advance.add(run.execution_id)

    for execution_id in to_kill:
        try:
            execution_kill(execution_id=execution_id)
        except UserError:
            pass
    for execution_id in to_advance - to_kill:
        execution_advance(execution_id=execution_id)
    return counts


def _reattempt(run: TaskRun, now) -> bool:
    """The worker running `run` stopped heartbeating: its attempt is lost, start a new one."""
    killing = Execution.objects.filter(id=run.execution_id, state=State.KILLING).exists()
    with transaction.atomic():
        if killing:
            changed = TaskRun.objects.filter(id=run.id, state=State.RUNNING, attempt=run.attempt).update(
                state=State.KILLED, end_date=now, state_history=history_with(run, State.KILLED, when=now)
            )
            return bool(changed)
        changed = TaskRun.objects.filter(id=run.id, state=State.RUNNING, attempt=run.attempt).update(
            state=State.CREATED, attempt=run.attempt + 1, attempts=attempts_with(run, State.FAILED, now),
            state_history=history_with(run, State.CREATED, when=now), worker_id="", published=now,
        )
        if changed:
            LogLine.objects.create(execution_id=run.execution_id, task_run_id=run.id, task_id=run.task_id, level="WARN",
                                   message=f"worker {run.worker_id} stopped heartbeating; starting attempt {run.attempt + 1}")
            item = (str(run.id), run.attempt + 1, run.worker_group)
            transaction.on_commit(lambda: publish_taskruns([item]))
    return bool(changed)
