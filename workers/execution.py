"""Running one task run on this worker: claim it, run its runner, hand the outcome to the engine.

The database may go away while a task runs (a restart, a failover). Claiming, reading what the
task needs and ending it are each tried again with a fresh connection until the database answers
(for up to DATABASE_RETRY_SECONDS), so a task run claimed here is never left RUNNING by a worker
that is alive; a kill check that cannot reach the database assumes no kill (docs/guarantees.md).
"""
import logging
import time

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.utils import timezone

from flows.context import build_context
from flows.definition import parse_flow_cached
from flows.durations import parse_duration
from flows.engine import taskrun_finish, taskrun_logs_write
from flows.expressions import ExpressionError
from flows.models import Execution, State, TaskRun
from flows.states import taskrun_claim, taskrun_claimed

from .runners import RUNNERS, Runtime, TaskFailed, TaskStopped

logger = logging.getLogger(__name__)

DATABASE_RETRY_SECONDS = 600.0


def taskrun_execute(*, taskrun_id: str, attempt: int, worker_id: str) -> None:
    run = _claim(taskrun_id=taskrun_id, attempt=attempt, worker_id=worker_id)
    if run is None:  # another worker has it, or it ended (killed, failed by fallback) meanwhile
        return
    task, runtime = _with_database(lambda: _prepare(run), doing=f"preparing task run {run.id}")
    outputs, error, state = {}, "", State.SUCCESS
    try:
        outputs = RUNNERS[task.kind](task, runtime) or {}
    except TaskFailed as failure:
        outputs, error, state = failure.outputs, str(failure), failure.ends_in
    except TaskStopped as stop:
        error, state = str(stop), stop.ends_in
    except ExpressionError as failure:
        error, state = str(failure), State.FAILED
    except Exception as failure:  # a task's own fault must end its task run, never the worker
        error, state = f"{type(failure).__name__}: {failure}", State.FAILED
    if error:
        runtime.log("ERROR" if state == State.FAILED else "WARN", error, always=True)
    _finish(run, task=task, state=state, outputs=outputs, error=error, logs=runtime.unwritten_lines())


def _prepare(run: TaskRun):
    execution = run.execution
    parsed = parse_flow_cached(execution.flow_revision.source)
    task = parsed.tasks_by_id[run.task_id]
    timeout = parse_duration(task.timeout).total_seconds() if task.timeout else None

    def load_context() -> dict:  # the other task runs are read only if the task renders an expression
        runs = list(execution.task_runs.only("id", "execution_id", "parent_id", "task_id", "task_type", "value",
                                             "outputs"))
        return build_context(execution=execution, document=parsed.document, runs=runs, run=run)

    runtime = Runtime(
        load_context=lambda: _with_database(load_context, doing=f"reading the context of task run {run.id}"),
        deadline=time.monotonic() + timeout if timeout else None,
        timeout_text=task.timeout,
        is_killed=lambda: _is_killed(execution.id),
        write_logs=lambda lines: taskrun_logs_write(run=run, logs=lines),
    )
    return task, runtime


def _is_killed(execution_id) -> bool:
    try:
        return Execution.objects.filter(id=execution_id, state=State.KILLING).exists()
    except DatabaseError:  # unreachable for now: go on, the next check may tell
        connections.close_all()
        return False


def _claim(*, taskrun_id: str, attempt: int, worker_id: str) -> TaskRun | None:
    tries = 0

    def claim():
        nonlocal tries
        tries += 1
        run = taskrun_claim(taskrun_id=taskrun_id, attempt=attempt, worker_id=worker_id, when=timezone.now())
        if run is None and tries > 1:  # the answer to an earlier try was lost: it may have been ours
            run = taskrun_claimed(taskrun_id=taskrun_id, attempt=attempt, worker_id=worker_id)
        return run

    return _with_database(claim, doing=f"claiming task run {taskrun_id}")


def _finish(run: TaskRun, **outcome) -> None:
    tries = 0

    def finish():
        nonlocal tries
        tries += 1
        if tries > 1 and not TaskRun.objects.filter(id=run.id, state=State.RUNNING, attempt=run.attempt).exists():
            return  # an earlier try was stored before its answer was lost
        taskrun_finish(run=run, **outcome)

    _with_database(finish, doing=f"ending task run {run.id}")


def _with_database(action, *, doing: str):
    """`action()`, tried again with fresh connections while the database cannot be reached."""
    deadline = time.monotonic() + DATABASE_RETRY_SECONDS
    delay = 0.2
    while True:
        try:
            return action()
        except (OperationalError, InterfaceError) as error:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("%s: the database did not answer (%s); trying again in %.1fs", doing, error, delay)
            connections.close_all()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
