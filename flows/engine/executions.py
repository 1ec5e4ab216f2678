"""Executions: created, advanced, killed and waited for; task runs ended by the worker that ran them.

`execution_advance` is idempotent: it looks at what exists and does what is due. It runs under a
row lock on the execution, so the executor and the group workers may all call it for the same
execution at once.
"""
import time

from django.db import transaction
from django.utils import timezone

from .. import dispatch, triggers
from ..definition import parse_flow_cached
from ..errors import Conflict, NotFound, UserError
from ..inputs import inputs_resolve
from ..models import TERMINAL_STATES, Execution, State, TaskRun, queue_for_group
from ..selectors import flow_get, tenant_get
from ..states import execution_mark_killing, execution_save, taskrun_end, taskrun_retry, transition
from .evaluation import ExecutionEvaluation
from .retry import retry_delay, should_retry


def _lock(execution_id) -> Execution | None:
    return (
        Execution.objects.select_for_update(of=("self",))
        .select_related("flow_revision", "tenant")
        .filter(id=execution_id)
        .first()
    )


def _advance_locked(execution: Execution) -> None:
    parsed = parse_flow_cached(execution.flow_revision.source)
    evaluation = ExecutionEvaluation(execution, parsed, list(execution.task_runs.all()))
    state_before = execution.state
    if execution.state == State.CREATED:
        execution.start_date = evaluation.now
        transition(execution, State.RUNNING, evaluation.now)
    state = evaluation.evaluate()
    evaluation.save()
    if evaluation.kill_requested and not evaluation.killing:  # a fallback CANCEL kills the execution
        execution_mark_killing(execution=execution, when=evaluation.now)
        return _advance_locked(execution)
    if state != State.RUNNING:
        transition(execution, State.KILLED if evaluation.killing else state, evaluation.now)
    if execution.state != state_before:
        execution_save(execution)
        if execution.state in TERMINAL_STATES:  # once: an ended execution is never advanced again
            triggers.execution_ended(execution=execution)


def execution_advance(*, execution_id) -> None:
    with transaction.atomic(savepoint=False):
        execution = _lock(execution_id)
        if execution is None or execution.state in TERMINAL_STATES:
            return
        _advance_locked(execution)


def execution_create(*, tenant_key: str, namespace: str, flow_id: str, inputs: dict | None = None,
                     labels: dict | None = None, trigger: dict | None = None) -> Execution:
    tenant = tenant_get(tenant_key)
    flow = flow_get(tenant, namespace, flow_id)
    if flow.disabled:
        raise Conflict(f"flow '{namespace}.{flow_id}' is disabled")
    revision = flow.revisions.get(revision=flow.revision)
    document = parse_flow_cached(revision.source).document
    resolved = inputs_resolve(document.inputs, inputs or {})
    if labels is not None and (not isinstance(labels, dict) or not all(isinstance(v, (str, int, float, bool)) for v in labels.values())):
        raise UserError("labels must be a mapping of names to plain values", path="labels")
    now = timezone.now()
    with transaction.atomic():
        execution = Execution.objects.create(
            tenant=tenant, flow_revision=revision, namespace=namespace, flow_id=flow_id, inputs=resolved,
            labels={**document.label_map, **{k: str(v) for k, v in (labels or {}).items()}}, trigger=trigger,
            state=State.CREATED, state_history=[{"state": State.CREATED, "date": now.isoformat()}],
        )
        dispatch.send([dispatch.advance_message(execution_id=execution.id)])
    return execution


def execution_kill(*, execution_id) -> Execution:
    with transaction.atomic():
        execution = _lock(execution_id)
        if execution is None:
            raise NotFound(f"execution '{execution_id}' does not exist")
        if execution.state in TERMINAL_STATES:
            raise Conflict(f"execution '{execution_id}' has already ended ({execution.state})")
        if execution.state != State.KILLING:
            execution_mark_killing(execution=execution, when=timezone.now())
        _advance_locked(execution)
    return execution


def execution_wait(execution: Execution, *, timeout: float, interval: float = 0.1) -> Execution:
    """Poll until the execution has ended or `timeout` seconds have passed; returns it refreshed."""
    deadline = time.monotonic() + timeout
    execution.refresh_from_db()
    while execution.state not in TERMINAL_STATES and time.monotonic() < deadline:
        time.sleep(interval)
        execution.refresh_from_db()
    return execution


def taskrun_finish(*, run: TaskRun, task, state: str, outputs: dict, error: str, logs: list[tuple[str, str]]) -> None:
    """A worker ended `run` (RUNNING) in `state`: retry it, or end it and advance its execution at
    once, in the worker, so a sequential step costs one broker hop, not two."""
    now = timezone.now()
    if state == State.FAILED and should_retry(task.retry, run, now):
        delay = retry_delay(task.retry, run.attempt)
        logs = [*logs, ("WARN", f"attempt {run.attempt} failed; retrying in {delay:g}s")]
        with transaction.atomic():
            if taskrun_retry(run=run, failed_state=state, outputs=outputs, error=error, logs=logs, when=now):
                dispatch.send([dispatch.taskrun_message(taskrun_id=run.id, attempt=run.attempt + 1,
                                                        queue=queue_for_group(run.worker_group), countdown=delay)])
        return
    if state == State.FAILED and task.allowFailure:
        state = State.WARNING
    with transaction.atomic():
        if taskrun_end(run=run, state=state, outputs=outputs, error=error, logs=logs, when=now):
            execution_advance(execution_id=run.execution_id)
