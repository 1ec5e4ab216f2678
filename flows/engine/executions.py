"""Executions: created, advanced, killed and waited for; task runs ended by the worker that ran them.

`execution_advance` is idempotent: it looks at what exists and does what is due, under a row lock
on the execution, so the executor and the group workers may all call it for the same execution at
once. It never renders an expression under that lock (docs/architecture.md): an evaluation under
the lock refuses to render, and when it would, the evaluation is made again on what was read
outside any transaction, and its writes are applied under the lock only if nothing it read has
changed meanwhile.
"""
import copy
import logging
import random
import time
import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .. import dispatch, masking, triggers
from ..context import build_context
from ..definition import parse_flow_cached
from ..expressions import RenderRefused, rendering_refused
from ..errors import Conflict, NotFound, UserError
from ..inputs import InputFiles, inputs_context, inputs_resolve
from ..models import TERMINAL_STATES, Execution, LogLine, State, TaskRun, queue_for_group
from ..selectors import flow_current_revision
from ..states import execution_mark_killing, execution_save, taskrun_end, taskrun_resume, taskrun_retry, transition
from .concurrency import concurrency_admits, concurrency_release
from .ending import Ending, execution_ending
from .evaluation import ExecutionEvaluation, tolerated
from .subflows import subflow_parent_id
from .retry import retry_delay, should_retry

logger = logging.getLogger(__name__)

# Evaluations retried when what they read changed before their writes; past that, the evaluation
# runs under the lock (every render is bounded, docs/limits.md).
OPTIMISTIC_TRIES = 10


def _lock(execution_id) -> Execution | None:
    return (
        Execution.objects.select_for_update(of=("self",))
        .select_related("flow_revision", "tenant")
        .filter(id=execution_id)
        .first()
    )


def _read(execution_id) -> tuple[Execution, list[TaskRun]] | None:
    """The execution and its task runs, without a lock; None once it has ended."""
    execution = Execution.objects.select_related("flow_revision", "tenant").filter(id=execution_id).first()
    if execution is None or execution.state in TERMINAL_STATES:
        return None
    return execution, list(execution.task_runs.all())


def _fingerprint(rows) -> dict:
    """What an evaluation depends on, per task run: whether and how it ended, and its attempt (a retry
    brings outputs). A worker claiming a task run (CREATED → RUNNING) changes nothing it decides."""
    return {run_id: (state if state in TERMINAL_STATES or state == State.PAUSED else "", attempt)
            for run_id, state, attempt in rows}


def _still(execution_id, *, state: str, fingerprint: dict) -> bool:
    """Takes the execution's row lock; true if it is still in `state` and its task runs are as
    `fingerprint` says, so that what was decided on them can be written."""
    locked = Execution.objects.select_for_update().filter(id=execution_id).values_list("state", flat=True).first()
    if locked != state:
        return False
    rows = TaskRun.objects.filter(execution_id=execution_id).values_list("id", "state", "attempt")
    return _fingerprint(rows) == fingerprint


def _pause(attempt: int) -> None:
    if attempt:
        time.sleep(random.uniform(0, 0.005 * attempt))


class _Advance:
    """One evaluation of an execution, decided on the task runs given (this renders), and its writes."""

    def __init__(self, execution: Execution, runs: list[TaskRun]):
        self.execution = execution
        self.state_before = execution.state
        self.evaluation = ExecutionEvaluation(execution, parse_flow_cached(execution.flow_revision.source), runs)
        if execution.state == State.CREATED:
            execution.start_date = self.evaluation.now
            transition(execution, State.RUNNING, self.evaluation.now)
        self.tree_state = self.evaluation.evaluate()
        self.ending = None
        if self.tree_state != State.RUNNING and not self.evaluation.killing and not self.evaluation.kill_requested:
            self.ending = execution_ending(execution=execution, parsed=self.evaluation.parsed, runs=runs,
                                           state=self.tree_state, context=self.evaluation.context())

    def save(self) -> None:
        """Under the execution's row lock."""
        execution, evaluation, state = self.execution, self.evaluation, self.tree_state
        evaluation.save()
        for child in evaluation.started_executions:  # Subflows (docs/core-tasks.md)
            if not Execution.objects.filter(id=child.id).exists():  # an evaluation that raced this one started it
                child.save(force_insert=True)
                dispatch.send([dispatch.advance_message(execution_id=child.id)])
        for child_id in evaluation.executions_to_kill:
            try:
                execution_kill(execution_id=child_id)
            except Conflict:  # it ended meanwhile
                pass
        if evaluation.kill_requested and not evaluation.killing:  # a fallback CANCEL kills the execution
            execution_mark_killing(execution=execution, when=evaluation.now)
            return _advance_locked(execution)  # a killing evaluation creates nothing, so renders nothing
        if state == State.RUNNING and not evaluation.killing and execution.state in (State.RUNNING, State.PAUSED):
            paused = State.PAUSED if evaluation.has_paused() else State.RUNNING  # a Pause task waits: docs/core-tasks.md
            if execution.state != paused:
                transition(execution, paused, evaluation.now)
        if state != State.RUNNING:
            if self.ending is not None:
                state = self._apply(self.ending)
            transition(execution, State.KILLED if evaluation.killing else state, evaluation.now)
        if execution.state != self.state_before:
            execution_save(execution)
            if execution.state in TERMINAL_STATES:  # once: an ended execution is never advanced again
                triggers.execution_ended(execution=execution)
                if parent_id := subflow_parent_id(execution):  # a Subflow waits for this end
                    dispatch.send([dispatch.advance_message(execution_id=parent_id)])
                concurrency_release(execution)
                if self.ending is not None and self.ending.retry_after is not None:
                    _execution_retry_create(execution, countdown=self.ending.retry_after)

    def _apply(self, ending: Ending) -> str:
        """The flow's outputs, SLA labels and log lines of an ending execution; its final state."""
        self.execution.outputs = ending.outputs
        self.execution.labels = {**self.execution.labels, **ending.labels}
        LogLine.objects.bulk_create(LogLine(execution=self.execution, level=level, message=message)
                                    for level, message in ending.logs)
        return ending.final_state


def _advance_locked(execution: Execution) -> None:
    """Under the lock, for evaluations that render nothing (a kill, a killing execution)."""
    _Advance(execution, list(execution.task_runs.all())).save()


def _decided_without_rendering(execution: Execution, runs: list[TaskRun]) -> _Advance | None:
    """Under the lock: the evaluation, unless it needs to render an expression (then None, and
    nothing was written)."""
    try:
        with rendering_refused():
            return _Advance(execution, runs)
    except RenderRefused:
        return None


def execution_advance(*, execution_id) -> None:
    with transaction.atomic():
        execution = _lock(execution_id)
        if execution is None or execution.state in TERMINAL_STATES or not concurrency_admits(execution):
            return
        advance = _decided_without_rendering(execution, list(execution.task_runs.all()))
        if advance is not None:
            advance.save()
            return
    _advance_rendering(execution_id)


def _advance_rendering(execution_id) -> None:
    """The evaluation renders: on what was read, outside any transaction, then written under the
    lock if the execution and its task runs are as read."""
    for attempt in range(OPTIMISTIC_TRIES):
        read = _read(execution_id)
        if read is None:
            return
        execution, runs = read
        fingerprint = _fingerprint((r.id, r.state, r.attempt) for r in runs)  # before the evaluation changes them
        advance = _Advance(execution, runs)
        with transaction.atomic():
            if _still(execution_id, state=advance.state_before, fingerprint=fingerprint):
                advance.save()
                return
        _pause(attempt)
    logger.warning("execution %s changed during %d evaluations: evaluating under its lock", execution_id,
                   OPTIMISTIC_TRIES)
    with transaction.atomic():
        execution = _lock(execution_id)
        if execution is not None and execution.state not in TERMINAL_STATES:
            _Advance(execution, list(execution.task_runs.all())).save()


def execution_create(*, tenant_key: str, namespace: str, flow_id: str, inputs: dict | None = None,
                     labels: dict | None = None, trigger: dict | None = None) -> Execution:
    revision = flow_current_revision(tenant_key, namespace, flow_id)
    flow, tenant = revision.flow, revision.flow.tenant
    if flow.disabled:
        raise Conflict(f"flow '{namespace}.{flow_id}' is disabled")
    document = parse_flow_cached(revision.source).document
    if labels is not None and (not isinstance(labels, dict) or not all(isinstance(v, (str, int, float, bool)) for v in labels.values())):
        raise UserError("labels must be a mapping of names to plain values", path="labels")
    execution_id = uuid.uuid4()
    # FILE inputs are written to the shared storage once every input is valid, and removed if the
    # execution is not stored after all (docs/inputs.md).
    files = InputFiles(tenant_key=tenant.key, namespace=namespace, flow_id=flow_id, execution_id=execution_id)
    resolved = inputs_resolve(document.inputs, inputs or {}, files=files, context=inputs_context(flow, document))
    now = timezone.now()
    try:
        files.write()
        with transaction.atomic():
            execution = Execution.objects.create(
                id=execution_id, tenant=tenant, flow_revision=revision, namespace=namespace, flow_id=flow_id,
                inputs=resolved, labels={**document.label_map, **{k: str(v) for k, v in (labels or {}).items()}},
                trigger=trigger, state=State.CREATED, state_history=[{"state": State.CREATED, "date": now.isoformat()}],
            )
            dispatch.send([dispatch.advance_message(execution_id=execution.id)])
    except BaseException:
        files.discard()
        raise
    return execution


def _execution_retry_create(failed: Execution, *, countdown: float) -> Execution:
    """The next execution of a CREATE_NEW_EXECUTION chain: the same revision, inputs, labels and
    trigger, started after `countdown` seconds (docs/flow-properties.md)."""
    now = timezone.now()
    execution = Execution.objects.create(
        tenant=failed.tenant, flow_revision=failed.flow_revision, namespace=failed.namespace, flow_id=failed.flow_id,
        inputs=failed.inputs, labels=failed.labels, trigger=failed.trigger, retry_of_id=failed.retry_of_id or failed.id,
        attempt=failed.attempt + 1, state=State.CREATED, state_history=[{"state": State.CREATED, "date": now.isoformat()}],
    )
    dispatch.send([dispatch.advance_message(execution_id=execution.id, countdown=countdown)])
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


def execution_resume(*, execution_id, inputs: dict | None = None) -> Execution:
    """Resume a PAUSED execution: its first paused task run goes on with the Pause task's `onResume`
    inputs, typed and checked like flow inputs (`outputs.<id>.onResume`). Bad inputs change nothing."""
    execution = Execution.objects.select_related("flow_revision", "tenant").filter(id=execution_id).first()
    if execution is None:
        raise NotFound(f"execution '{execution_id}' does not exist")
    run = execution.task_runs.filter(state=State.PAUSED).order_by("created").first()
    if execution.state != State.PAUSED or run is None:
        raise Conflict(f"execution '{execution_id}' is not paused ({execution.state})")
    parsed = parse_flow_cached(execution.flow_revision.source)
    declared = getattr(parsed.tasks_by_id[run.task_id], "onResume", [])
    resolved = inputs_resolve(declared, inputs or {}, context=build_context(
        execution=execution, document=parsed.document, runs=list(execution.task_runs.all()), run=run))
    now = timezone.now()
    with transaction.atomic():
        execution = _lock(execution_id)
        if execution.state != State.PAUSED or not taskrun_resume(run=run, outputs={"onResume": resolved}, when=now):
            raise Conflict(f"execution '{execution_id}' is not paused any more ({execution.state})")
        if not execution.task_runs.filter(state=State.PAUSED).exists():
            transition(execution, State.RUNNING, now)
            execution_save(execution)
        dispatch.send([dispatch.advance_message(execution_id=execution.id)])
    return execution


def execution_wait(execution: Execution, *, timeout: float, interval: float = 0.1) -> Execution:
    """Poll until the execution has ended or `timeout` seconds have passed; returns it refreshed."""
    deadline = time.monotonic() + timeout
    execution.refresh_from_db()
    while execution.state not in TERMINAL_STATES and time.monotonic() < deadline:
        time.sleep(interval)
        execution.refresh_from_db()
    return execution


def taskrun_logs_write(*, run: TaskRun, logs: list[tuple[str, str]]) -> None:
    """Store log lines of a task run that is still running, SECRET inputs masked as at its end."""
    secrets = masking.secret_values(run.execution.inputs)
    if secrets:
        logs = [(level, masking.mask_text(message, secrets)) for level, message in logs]
    LogLine.objects.bulk_create(LogLine(execution_id=run.execution_id, task_run_id=run.id, task_id=run.task_id,
                                        level=level, message=message) for level, message in logs)


def taskrun_finish(*, run: TaskRun, task, state: str, outputs: dict, error: str, logs: list[tuple[str, str]]) -> None:
    """A worker ended `run` (RUNNING) in `state`: retry it, or end it and advance its execution at
    once, in the worker, so a sequential step costs one broker hop, not two."""
    now = timezone.now()
    secrets = masking.secret_values(run.execution.inputs)  # SECRET inputs never reach the logs (docs/inputs.md)
    if secrets:
        logs = [(level, masking.mask_text(message, secrets)) for level, message in logs]
        error = masking.mask_text(error, secrets)
    retry = parse_flow_cached(run.execution.flow_revision.source).retry_for(task)
    if state == State.FAILED and should_retry(retry, run, now):
        delay = retry_delay(retry, run.attempt)
        logs = [*logs, ("WARN", f"attempt {run.attempt} failed; retrying in {delay:g}s")]
        with transaction.atomic():
            if taskrun_retry(run=run, failed_state=state, outputs=outputs, error=error, logs=logs, when=now,
                             due=now + timedelta(seconds=delay)):
                dispatch.send([dispatch.taskrun_message(taskrun_id=run.id, attempt=run.attempt + 1,
                                                        queue=queue_for_group(run.worker_group), countdown=delay)])
        return
    if state == State.SUCCESS and run.attempt > 1 and retry is not None and retry.warningOnRetry:
        state = State.WARNING  # Kestra's warningOnRetry: a success that needed retries is a warning
    state = tolerated(task, state)
    ending = {"run": run, "state": state, "outputs": outputs, "error": error, "logs": logs, "when": now}

    def as_ended(runs: list[TaskRun]) -> list[TaskRun]:  # the task runs as they will be once `run` has ended
        return [_ended(r, state=state, outputs=outputs, error=error, when=now) if r.id == run.id else r for r in runs]

    with transaction.atomic():  # in one transaction: never an ended task run left unadvanced
        execution = _lock(run.execution_id)
        if execution is None or execution.state in TERMINAL_STATES:
            taskrun_end(**ending)
            return
        advance = _decided_without_rendering(execution, as_ended(list(execution.task_runs.all())))
        if advance is not None:
            if taskrun_end(**ending):
                advance.save()
            return
    for attempt in range(OPTIMISTIC_TRIES):  # the evaluation renders: outside the transaction
        read = _read(run.execution_id)
        if read is None:
            break
        execution, runs = read
        fingerprint = _fingerprint((r.id, r.state, r.attempt) for r in runs)  # before the evaluation changes them
        advance = _Advance(execution, as_ended(runs))
        with transaction.atomic():
            if _still(execution.id, state=advance.state_before, fingerprint=fingerprint):
                if taskrun_end(**ending):
                    advance.save()
                return
        _pause(attempt)
    with transaction.atomic():  # its execution ended meanwhile (a kill), or kept changing
        if taskrun_end(**ending):
            execution = _lock(run.execution_id)
            if execution is not None and execution.state not in TERMINAL_STATES:
                _Advance(execution, list(execution.task_runs.all())).save()


def _ended(run: TaskRun, *, state: str, outputs: dict, error: str, when) -> TaskRun:
    """A copy of `run` as `taskrun_end` will leave it, for the evaluation that follows."""
    ended = copy.copy(run)
    ended.outputs, ended.error = outputs, error
    transition(ended, state, when)
    return ended
