import random
import re
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from flows.context import build_context
from flows.definition import parse_flow_cached
from flows.durations import parse_duration
from flows.engine import attempts_with, execution_advance, history_with, publish_taskruns
from flows.errors import NotFound, UserError
from flows.expressions import ExpressionError
from flows.models import Execution, LogLine, State, TaskRun, Tenant
from flows.selectors import tenant_get

from .models import WORKER_GROUP_KEY_PATTERN, Worker, WorkerGroup
from .runners import RUNNERS, Runtime, TaskFailed, TaskStopped


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not re.match(WORKER_GROUP_KEY_PATTERN, key):
        raise UserError(f"invalid worker group key '{key}': it must match {WORKER_GROUP_KEY_PATTERN}", path="key")
    if key in settings.RESERVED_WORKER_GROUP_KEYS:
        raise UserError(f"'{key}' is reserved and cannot be a worker group key", path="key")


def _tenants(keys: list[str]) -> list[Tenant]:
    try:
        return [tenant_get(key) for key in keys]
    except NotFound as error:
        raise UserError(error.message, path="allowedTenants") from None


@transaction.atomic
def worker_group_create(*, key: str, description: str = "", allowed_tenants: list[str] | None = None) -> WorkerGroup:
    _check_key(key)
    if WorkerGroup.objects.filter(key=key).exists():
        raise UserError(f"worker group '{key}' already exists", path="key", status=409)
    tenants = _tenants(allowed_tenants or [])
    group = WorkerGroup.objects.create(key=key, description=description or "")
    group.allowed_tenants.set(tenants)
    return group


@transaction.atomic
def worker_group_update(*, key: str, description: str | None = None, allowed_tenants: list[str] | None = None) -> WorkerGroup:
    group = WorkerGroup.objects.filter(key=key).first()
    if group is None:
        raise NotFound(f"worker group '{key}' does not exist")
    if description is not None:
        group.description = description
        group.save(update_fields=["description", "updated"])
    if allowed_tenants is not None:
        group.allowed_tenants.set(_tenants(allowed_tenants))
    return group


@transaction.atomic
def worker_group_delete(*, key: str) -> None:
    deleted, _ = WorkerGroup.objects.filter(key=key).delete()
    if not deleted:
        raise NotFound(f"worker group '{key}' does not exist")


def worker_heartbeat(*, hostname: str, groups: list[str], pid: int, concurrency: int, running: int) -> None:
    now = timezone.now()
    updated = Worker.objects.filter(hostname=hostname).update(
        groups=sorted(groups), pid=pid, concurrency=concurrency, running=running, last_heartbeat=now
    )
    if not updated:
        Worker.objects.update_or_create(
            hostname=hostname,
            defaults={"groups": sorted(groups), "pid": pid, "concurrency": concurrency, "running": running,
                      "last_heartbeat": now},
        )


def worker_stopped(*, hostname: str) -> None:
    """A worker that shuts down cleanly stops counting as alive at once."""
    Worker.objects.filter(hostname=hostname).delete()


# --- running a task run on a group worker ---------------------------------------------------


def _retry_delay(retry, attempt: int) -> float:
    """Seconds to wait before attempt `attempt + 1`."""
    interval = parse_duration(retry.interval).total_seconds() if retry.interval else 0.0
    if retry.type == "exponential":
        interval *= (retry.delayFactor or 2.0) ** (attempt - 1)
    elif retry.type == "random":
        low = parse_duration(retry.minInterval).total_seconds() if retry.minInterval else 0.0
        high = parse_duration(retry.maxInterval).total_seconds() if retry.maxInterval else low
        interval = random.uniform(low, max(low, high))
    if retry.maxInterval and retry.type != "random":
        interval = min(interval, parse_duration(retry.maxInterval).total_seconds())
    return interval


def _should_retry(task, run: TaskRun, now) -> bool:
    retry = task.retry
    if retry is None or run.attempt >= retry.max_attempts:
        return False
    if retry.maxDuration and run.created:
        return (now - run.created).total_seconds() < parse_duration(retry.maxDuration).total_seconds()
    return True


def taskrun_claim(*, taskrun_id: str, attempt: int, worker_id: str) -> TaskRun | None:
    """The conditional state change that makes a task run start at most once per attempt."""
    run = (
        TaskRun.objects.select_related("execution__flow_revision", "execution__tenant")
        .filter(id=taskrun_id, state=State.CREATED, attempt=attempt)
        .first()
    )
    if run is None:
        return None
    now = timezone.now()
    history = history_with(run, State.RUNNING, when=now)
    claimed = TaskRun.objects.filter(id=run.id, state=State.CREATED, attempt=attempt).update(
        state=State.RUNNING, worker_id=worker_id, start_date=now, state_history=history
    )
    if claimed != 1:
        return None
    run.state, run.worker_id, run.start_date, run.state_history = State.RUNNING, worker_id, now, history
    return run


def taskrun_execute(*, taskrun_id: str, attempt: int, worker_id: str) -> None:
    run = taskrun_claim(taskrun_id=taskrun_id, attempt=attempt, worker_id=worker_id)
    if run is None:
        return
    execution = run.execution
    parsed = parse_flow_cached(execution.flow_revision.source)
    document, task = parsed.document, parsed.tasks_by_id[run.task_id]
    runs = list(execution.task_runs.only("id", "execution_id", "parent_id", "task_id", "task_type", "value", "outputs"))
    timeout = parse_duration(task.timeout).total_seconds() if task.timeout else None
    runtime = Runtime(
        context=build_context(execution=execution, document=document, runs=runs, run=run),
        deadline=time.monotonic() + timeout if timeout else None,
        timeout_text=task.timeout,
        is_killed=lambda: Execution.objects.filter(id=execution.id, state=State.KILLING).exists(),
    )
    outputs, error, state = {}, "", State.SUCCESS
    try:
        outputs = RUNNERS[task.type](task, runtime) or {}
    except TaskFailed as failure:
        outputs, error, state = failure.outputs, str(failure), failure.state
    except TaskStopped as stop:
        error, state = str(stop), stop.state
    except ExpressionError as failure:
        error, state = str(failure), State.FAILED
    except Exception as failure:  # a task's own fault must end its task run, never the worker
        error, state = f"{type(failure).__name__}: {failure}", State.FAILED
    if error:
        runtime.log("ERROR" if state == State.FAILED else "WARN", error)
    taskrun_finish(run=run, task=task, state=state, outputs=outputs, error=error, logs=runtime.logs)


def taskrun_finish(*, run: TaskRun, task, state: str, outputs: dict, error: str, logs: list) -> None:
    now = timezone.now()
    retrying = state == State.FAILED and _should_retry(task, run, now)
    if state == State.FAILED and not retrying and task.allowFailure:
        state = State.WARNING
    attempts = attempts_with(run, state, now)
    running = TaskRun.objects.filter(id=run.id, state=State.RUNNING, attempt=run.attempt)
    with transaction.atomic():
        if retrying:
            delay = _retry_delay(task.retry, run.attempt)
            updated = running.update(
                state=State.CREATED, attempt=run.attempt + 1, attempts=attempts, error=error, outputs=outputs,
                state_history=history_with(run, state, State.RETRYING, State.CREATED, when=now),
                worker_id="", published=now,
            )
            if updated:
                logs = [*logs, ("WARN", f"attempt {run.attempt} failed; retrying in {delay:g}s")]
                item = (str(run.id), run.attempt + 1, run.worker_group)
                transaction.on_commit(lambda: publish_taskruns([item], countdown=delay or None))
        else:
            updated = running.update(
                state=state, outputs=outputs, error=error, end_date=now, attempts=attempts,
                state_history=history_with(run, state, when=now),
            )
        LogLine.objects.bulk_create(
            LogLine(execution_id=run.execution_id, task_run_id=run.id, task_id=run.task_id, level=level, message=message)
            for level, message in logs
        )
        if updated and not retrying:
            execution_advance(execution_id=run.execution_id)
