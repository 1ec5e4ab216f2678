"""State transitions of task runs and executions: the only module that writes their states.

Every change appends to the state history, and every change a concurrent process could race
(a worker claiming or ending a task run, the reconciler ending one that waits) is a conditional
update on (id, state, attempt) that must touch exactly one row: whoever loses does nothing. The
guarantees this gives are described in docs/guarantees.md.
"""
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from . import capacity
from .models import TERMINAL_STATES, Execution, LogLine, State, TaskRun


def history_with(obj, *states: str, when: datetime) -> list:
    """`obj`'s state history with `states` appended."""
    return [*obj.state_history, *({"state": state, "date": when.isoformat()} for state in states)]


def transition(obj, state: str, when: datetime) -> None:
    """In memory only: the engine changes rows it holds under the execution's lock, then saves them."""
    obj.state = state
    obj.state_history = history_with(obj, state, when=when)
    if state in TERMINAL_STATES:
        obj.end_date = when


def attempts_with(run: TaskRun, state: str, when: datetime, *, worker_lost: bool = False) -> list:
    """`run`'s attempts with the current one recorded as ended in `state`; `worker_lost` marks an
    attempt abandoned because its worker stopped heartbeating (they are counted, see `lost_attempts`)."""
    record = {
        "attempt": run.attempt, "state": state, "workerId": run.worker_id,
        "startDate": run.start_date.isoformat() if run.start_date else None, "endDate": when.isoformat(),
    }
    if worker_lost:
        record["workerLost"] = True
    return [*run.attempts, record]


def lost_attempts(run: TaskRun) -> int:
    """How many of `run`'s ended attempts were abandoned because their worker was lost."""
    return sum(1 for attempt in run.attempts if attempt.get("workerLost"))


def _guarded(run: TaskRun, from_state: str, **fields) -> bool:
    """Change `run` only if it is still in `from_state` at the same attempt. A task run that stops
    RUNNING frees a slot of its group: the next task run waiting for one is sent (flows/capacity.py)."""
    matching = TaskRun.objects.filter(id=run.id, state=from_state, attempt=run.attempt)
    if from_state != State.RUNNING:
        return matching.update(**fields) == 1
    with transaction.atomic(savepoint=False):
        changed = matching.update(**fields) == 1
        if changed:
            capacity.slots_hand_on(run.worker_group, when=timezone.now())
    return changed


def _log(run: TaskRun, level: str, message: str) -> LogLine:
    return LogLine(execution_id=run.execution_id, task_run_id=run.id, task_id=run.task_id, level=level, message=message)


# --- task runs: the engine's own writes (under the execution's row lock) ------------------------


def taskruns_save(*, created: list[TaskRun], changed: list[TaskRun], logs: list[LogLine]) -> None:
    """Store what one evaluation of an execution decided: new task runs, ended flowable ones, logs."""
    if created:
        TaskRun.objects.bulk_create(created)
    created_ids = {run.id for run in created}
    for run in changed:
        if run.id not in created_ids:
            run.save(update_fields=["state", "state_history", "end_date", "error", "outputs", "resume_at"])
    if logs:
        LogLine.objects.bulk_create(logs)


# --- task runs: writes that race (workers, reconciler) -------------------------------------------


def taskrun_claim(*, taskrun_id, attempt: int, worker_id: str, when: datetime) -> TaskRun | None:
    """CREATED → RUNNING for this attempt: a task run starts at most once per attempt."""
    run = (
        TaskRun.objects.select_related("execution__flow_revision", "execution__tenant")
        .filter(id=taskrun_id, state=State.CREATED, attempt=attempt)
        .first()
    )
    if run is None:
        return None
    if not capacity.gated(run.worker_group):
        return _claim_write(run, worker_id=worker_id, when=when)
    with transaction.atomic():  # the group's row stays locked until the claim is written
        if capacity.claim_refusal(run, worker_id=worker_id, when=when):
            return None
        waited_for_slot = run.slot_wait_since is not None
        claimed = _claim_write(run, worker_id=worker_id, when=when)
        if claimed and waited_for_slot:  # slots to spare go to the next waiters at once
            capacity.slots_hand_on(run.worker_group, when=when)
        return claimed


def _claim_write(run: TaskRun, *, worker_id: str, when: datetime) -> TaskRun | None:
    history = history_with(run, State.RUNNING, when=when)
    if not _guarded(run, State.CREATED, state=State.RUNNING, worker_id=worker_id, start_date=when,
                    state_history=history, slot_wait_since=None):
        return None
    run.state, run.worker_id, run.start_date, run.state_history = State.RUNNING, worker_id, when, history
    run.slot_wait_since = None
    return run


def taskrun_claimed(*, taskrun_id, attempt: int, worker_id: str) -> TaskRun | None:
    """The task run if `worker_id` holds it, RUNNING at this attempt: a claim whose answer was lost."""
    return (
        TaskRun.objects.select_related("execution__flow_revision", "execution__tenant")
        .filter(id=taskrun_id, state=State.RUNNING, attempt=attempt, worker_id=worker_id)
        .first()
    )


def taskrun_end(*, run: TaskRun, state: str, outputs: dict, error: str, logs: list[tuple[str, str]],
                when: datetime) -> bool:
    """RUNNING → a final state, with the attempt recorded and the task's log lines."""
    with transaction.atomic(savepoint=False):
        ended = _guarded(
            run, State.RUNNING, state=state, outputs=outputs, error=error, end_date=when,
            attempts=attempts_with(run, state, when), state_history=history_with(run, state, when=when),
        )
        LogLine.objects.bulk_create(_log(run, level, message) for level, message in logs)
    return ended


def taskrun_retry(*, run: TaskRun, failed_state: str, outputs: dict, error: str, logs: list[tuple[str, str]],
                  when: datetime, due: datetime) -> bool:
    """RUNNING → CREATED at the next attempt, the failed one recorded (history: failed, RETRYING, CREATED).
    Its message is held until `due`, so it counts as published then: the reconciler does not take a
    retry waiting for its interval for a lost message (docs/guarantees.md)."""
    with transaction.atomic(savepoint=False):
        retried = _guarded(
            run, State.RUNNING, state=State.CREATED, attempt=run.attempt + 1, worker_id="", published=due,
            outputs=outputs, error=error, attempts=attempts_with(run, failed_state, when),
            state_history=history_with(run, failed_state, State.RETRYING, State.CREATED, when=when),
        )
        LogLine.objects.bulk_create(_log(run, level, message) for level, message in logs)
    return retried


def taskrun_reattempt(*, run: TaskRun, message: str, when: datetime) -> bool:
    """RUNNING → CREATED at the next attempt: the worker running it was lost, the attempt with it."""
    with transaction.atomic(savepoint=False):
        changed = _guarded(
            run, State.RUNNING, state=State.CREATED, attempt=run.attempt + 1, worker_id="", published=when,
            attempts=attempts_with(run, State.FAILED, when, worker_lost=True),
            state_history=history_with(run, State.CREATED, when=when),
        )
        if changed:
            _log(run, "WARN", message).save()
    return changed


def taskrun_fail_lost(*, run: TaskRun, message: str, when: datetime) -> bool:
    """RUNNING → FAILED: the worker running it was lost and it may not get another attempt."""
    with transaction.atomic(savepoint=False):
        changed = _guarded(
            run, State.RUNNING, state=State.FAILED, error=message, end_date=when,
            attempts=attempts_with(run, State.FAILED, when, worker_lost=True),
            state_history=history_with(run, State.FAILED, when=when),
        )
        if changed:
            _log(run, "ERROR", message).save()
    return changed


def taskrun_child_create(*, block: TaskRun, child: TaskRun, skipped: bool, when: datetime) -> bool:
    """Store `child`, a task of the WorkingDirectory `block`, RUNNING on the block's worker (or
    SKIPPED), if the block is still RUNNING at the same attempt on that worker (docs/core-tasks.md)."""
    with transaction.atomic():
        holder = TaskRun.objects.select_for_update().filter(id=block.id, state=State.RUNNING, attempt=block.attempt,
                                                             worker_id=block.worker_id)
        if not holder.exists():
            return False
        child.state_history = history_with(child, State.CREATED, when=when)
        transition(child, State.SKIPPED if skipped else State.RUNNING, when)
        child.start_date = None if skipped else when
        child.save(force_insert=True)
    return True


def taskrun_children_end_lost(*, block: TaskRun, state: str, message: str, when: datetime) -> int:
    """The children of a WorkingDirectory `block` that were running when its worker was lost end in
    `state` (FAILED, or KILLED when the execution is being killed); returns how many."""
    ended = 0
    for child in TaskRun.objects.filter(parent_id=block.id, state=State.RUNNING):
        with transaction.atomic(savepoint=False):
            if _guarded(child, State.RUNNING, state=state, error=message if state == State.FAILED else "",
                        end_date=when, attempts=attempts_with(child, state, when, worker_lost=True),
                        state_history=history_with(child, state, when=when)):
                _log(child, "ERROR" if state == State.FAILED else "WARN", message).save()
                ended += 1
    return ended


def taskrun_kill_lost(*, run: TaskRun, when: datetime) -> bool:
    """RUNNING → KILLED: its execution is being killed and its worker is gone, so nobody else will end it."""
    return _guarded(run, State.RUNNING, state=State.KILLED, end_date=when,
                    state_history=history_with(run, State.KILLED, when=when))


def taskrun_end_waiting(*, run: TaskRun, state: str, message: str, when: datetime) -> bool:
    """CREATED → FAILED or CANCELLED, for a task run no worker of its group may take (fallback, maxWait)."""
    with transaction.atomic(savepoint=False):
        ended = _guarded(
            run, State.CREATED, state=state, error=message if state == State.FAILED else "", end_date=when,
            state_history=history_with(run, state, when=when),
        )
        if ended:
            _log(run, "ERROR" if state == State.FAILED else "WARN", message).save()
    return ended


def taskrun_resume(*, run: TaskRun, outputs: dict, when: datetime) -> bool:
    """PAUSED → RUNNING: a paused task run resumed (API, admin, Resume task), its onResume inputs as outputs."""
    return _guarded(run, State.PAUSED, state=State.RUNNING, outputs=outputs, resume_at=None,
                    state_history=history_with(run, State.RUNNING, when=when))


def taskruns_restart(*, runnable: list[TaskRun], flowable: list[TaskRun], removed: list[TaskRun],
                     when: datetime) -> None:
    """An ended execution restarted (under its lock): failed runnable task runs wait for a worker
    again at their next attempt (history: RESTARTED, CREATED); the flowable task runs that hold them
    run again; `removed` (errors branches, flowables that failed before holding any task run) are
    deleted, so the engine creates them anew."""
    for run in runnable:
        run.attempt += 1
        run.worker_id, run.error, run.published, run.start_date, run.end_date = "", "", when, None, None
        run.state_history = history_with(run, State.RESTARTED, State.CREATED, when=when)
        run.state = State.CREATED
        run.save(update_fields=["attempt", "worker_id", "error", "published", "start_date", "end_date",
                                "state_history", "state"])
    for run in flowable:
        run.error, run.end_date = "", None
        run.state_history = history_with(run, State.RESTARTED, State.RUNNING, when=when)
        run.state = State.RUNNING
        run.save(update_fields=["error", "end_date", "state_history", "state"])
    TaskRun.objects.filter(id__in=[run.id for run in removed]).delete()


def taskrun_copy_running(copy: TaskRun, *, when: datetime) -> None:
    """In memory: a replayed execution's copy of a flowable task run above the replayed one runs again."""
    copy.error, copy.end_date = "", None
    copy.state_history = history_with(copy, State.RESTARTED, State.RUNNING, when=when)
    copy.state = State.RUNNING


def taskrun_republished(*, run: TaskRun, when: datetime) -> bool:
    """Records that a waiting task run's message was sent again; its state does not change."""
    return _guarded(run, State.CREATED, published=when)


# --- executions (always under the execution's row lock) ------------------------------------------


def execution_save(execution: Execution) -> None:
    execution.save(update_fields=["state", "state_history", "start_date", "end_date", "labels", "outputs"])


def execution_restart(*, execution: Execution, when: datetime) -> None:
    """An ended execution runs again: RESTARTED then RUNNING, its end and flow outputs forgotten."""
    execution.state_history = history_with(execution, State.RESTARTED, State.RUNNING, when=when)
    execution.state, execution.end_date, execution.outputs = State.RUNNING, None, None
    execution_save(execution)


def execution_start(*, execution: Execution, when: datetime) -> None:
    """CREATED or QUEUED → RUNNING: the execution has its place (docs/flow-properties.md, concurrency)."""
    execution.start_date = when
    transition(execution, State.RUNNING, when)
    execution_save(execution)


def execution_queue(*, execution: Execution, when: datetime) -> None:
    """CREATED → QUEUED: it waits for a place under its flow's concurrency limit."""
    transition(execution, State.QUEUED, when)
    execution_save(execution)


def execution_end_early(*, execution: Execution, state: str, message: str, when: datetime) -> None:
    """The execution ends in `state` before its tasks have (a concurrency refusal, an SLA violation):
    every task run not yet ended ends in that state too, and `message` is logged on the execution."""
    transition(execution, state, when)
    execution_save(execution)
    for run in execution.task_runs.exclude(state__in=TERMINAL_STATES):
        transition(run, state, when)
        run.save(update_fields=["state", "state_history", "end_date"])
    LogLine.objects.create(execution=execution, level="ERROR" if state == State.FAILED else "WARN", message=message)


def execution_labels_save(execution: Execution) -> None:
    execution.save(update_fields=["labels"])


def execution_mark_killing(*, execution: Execution, when: datetime) -> None:
    """The execution becomes KILLING; task runs still waiting for a worker are KILLED at once."""
    transition(execution, State.KILLING, when)
    execution_save(execution)
    for run in execution.task_runs.filter(state=State.CREATED):
        transition(run, State.KILLED, when)
        run.save(update_fields=["state", "state_history", "end_date"])
