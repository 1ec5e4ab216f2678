"""Running one task run on this worker: claim it, run its runner, hand the outcome to the engine.

The database may go away while a task runs (a restart, a failover). Claiming, reading what the
task needs and ending it are each tried again with a fresh connection until the database answers
(for up to DATABASE_RETRY_SECONDS), so a task run claimed here is never left RUNNING by a worker
that is alive; a kill check that cannot reach the database assumes no kill (docs/guarantees.md).
"""
import logging
import tempfile
import time
from pathlib import Path

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.utils import timezone

from flows.context import build_context, taskrun_variables
from flows.definition import parse_flow_cached
from flows.durations import parse_duration
from flows.engine import taskrun_finish, taskrun_logs_write
from flows.engine.blocks import block_child_end, block_child_start, block_state
from flows.engine.evaluation import tolerated
from flows.expressions import ExpressionError, is_truthy, render
from flows.models import Execution, State, TaskRun
from flows.states import taskrun_claim, taskrun_claimed

from . import workdir as storage_files
from .runners import (
    RUNNERS, Runtime, TaskFailed, TaskStopped, collect_files, output_files_store, script_user, working_directory,
)

logger = logging.getLogger(__name__)

DATABASE_RETRY_SECONDS = 600.0


def taskrun_execute(*, taskrun_id: str, attempt: int, worker_id: str) -> None:
    run = _claim(taskrun_id=taskrun_id, attempt=attempt, worker_id=worker_id)
    if run is None:  # another worker has it, or it ended (killed, failed by fallback) meanwhile
        return
    task, runtime = _with_database(lambda: _prepare(run), doing=f"preparing task run {run.id}")
    state, outputs, error = _run_block(run, task, runtime) if task.block else _run(task, runtime)
    _once(run, lambda: taskrun_finish(run=run, task=task, state=state, outputs=outputs, error=error,
                                      logs=runtime.unwritten_lines()), doing=f"ending task run {run.id}")


def _outcome(action, runtime: Runtime) -> tuple[str, dict, str]:
    """(state, outputs, error) of `action()`, whatever it raises; the error is logged."""
    outputs, error, state = {}, "", State.SUCCESS
    try:
        outputs = action() or {}
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
    return state, outputs, error


def _run(task, runtime: Runtime) -> tuple[str, dict, str]:
    return _outcome(lambda: RUNNERS[task.kind](task, runtime), runtime)


def _prepare(run: TaskRun, *, block: TaskRun | None = None, workdir: Path | None = None,
             within: float | None = None):
    """The task of `run` and its Runtime; `block` is the WorkingDirectory that holds it, `workdir`
    and `within` (a deadline) are that block's."""
    execution = run.execution
    parsed = parse_flow_cached(execution.flow_revision.source)
    task = parsed.tasks_by_id[run.task_id]
    timeout = parse_duration(task.timeout).total_seconds() if task.timeout else None
    deadline = min(filter(None, (time.monotonic() + timeout if timeout else None, within)), default=None)

    def load_context() -> dict:  # the other task runs are read only if the task renders an expression
        runs = list(execution.task_runs.only("id", "execution_id", "parent_id", "task_id", "task_type", "value",
                                             "outputs"))
        context = build_context(execution=execution, document=parsed.document, runs=runs, run=run)
        if block is None:
            return context
        # as Kestra names them: the block's directory, and the block's own `taskrun`
        return {**context, "workingDir": str(workdir), "workerTaskrun": taskrun_variables(block)}

    runtime = Runtime(
        load_context=lambda: _with_database(load_context, doing=f"reading the context of task run {run.id}"),
        deadline=deadline,
        timeout_text=task.timeout if deadline != within else "the WorkingDirectory's timeout",
        is_killed=lambda: _is_killed(execution.id),
        write_logs=lambda lines: taskrun_logs_write(run=run, logs=lines),
        workdir=workdir,
    )
    return task, runtime


# --- WorkingDirectory: a block of tasks on this worker, in one directory (docs/core-tasks.md) ------


def _run_block(block: TaskRun, task, runtime: Runtime) -> tuple[str, dict, str]:
    """Lay the block's files in (its cache, namespace files, inputFiles), run its tasks one after
    another (each its own task run), stop at the first that fails or is killed, then keep its cache
    and store its outputFiles."""
    with tempfile.TemporaryDirectory(prefix="wgc-block-", ignore_cleanup_errors=True) as directory:
        workdir = Path(directory) / "work"
        restored_at = None

        def lay_files() -> dict:
            nonlocal restored_at
            working_directory(Path(directory), script_user())
            if task.cache is not None:  # first, so that namespace and input files replace kept ones
                restored_at = storage_files.cache_restore(task, runtime, workdir)
            storage_files.lay_namespace_files(task, runtime, workdir)  # then inputFiles, which may replace them
            storage_files.lay_input_files(task, runtime, workdir)
            return {}

        def keep_files() -> dict:
            user = script_user()
            if task.cache is not None:
                try:
                    storage_files.cache_store(task, runtime, workdir, collect_files(
                        workdir, task.cache.patterns, runtime, user), restored_at)
                except TaskFailed as failure:  # as in Kestra, a cache that cannot be kept fails nothing
                    runtime.log("WARN", f"{failure}; nothing kept", always=True)
            if not task.outputFiles:
                return {}
            return {"outputFiles": output_files_store(runtime, workdir, task.outputFiles, user)}

        state, _, error = _outcome(lay_files, runtime)
        if error:
            return state, {}, error
        states = []
        for child in task.tasks:
            if child.disabled:
                continue
            if _is_killed(block.execution_id):  # between two tasks: the next one does not start
                runtime.log("WARN", "killed", always=True)
                return State.KILLED, {}, "killed"
            child_state = _run_child(block, child, workdir=workdir, block_runtime=runtime)
            if child_state is None:  # the block is no longer this worker's: its end will not be stored
                return State.KILLED, {}, "the WorkingDirectory was taken from this worker"
            states.append(child_state)
            if child_state in (State.FAILED, State.KILLED):
                return child_state, {}, f"task '{child.id}' of the WorkingDirectory ended {child_state}"
        state, outputs, error = _outcome(keep_files, runtime)
        return (block_state(states) if state == State.SUCCESS else state), outputs, error


def _run_child(block: TaskRun, task, *, workdir: Path, block_runtime: Runtime) -> str | None:
    """One task of the block, as its own task run; its state (tolerated: allowFailure), or None
    when the block is no longer this worker's."""
    try:
        skipped = task.runIf is not None and not is_truthy(render(task.runIf, block_runtime.load_context()))
    except ExpressionError as error:
        block_runtime.log("ERROR", f"task '{task.id}': runIf: {error}", always=True)
        return State.FAILED
    child = _with_database(lambda: block_child_start(block=block, task=task, skipped=skipped),
                           doing=f"starting task '{task.id}' of task run {block.id}")
    if child is None or skipped:
        return None if child is None else State.SUCCESS
    _, runtime = _with_database(
        lambda: _prepare(child, block=block, workdir=workdir, within=block_runtime.deadline),
        doing=f"preparing task run {child.id}")
    state, outputs, error = _run(task, runtime)
    state = tolerated(task, state)
    _once(child, lambda: block_child_end(child=child, state=state, outputs=outputs, error=error,
                                         logs=runtime.unwritten_lines()), doing=f"ending task run {child.id}")
    return state


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


def _once(run: TaskRun, end, *, doing: str) -> None:
    """`end()` of a RUNNING task run, tried again while the database does not answer, and not again
    once an earlier try was stored (its answer lost)."""
    tries = 0

    def attempt():
        nonlocal tries
        tries += 1
        if tries > 1 and not TaskRun.objects.filter(id=run.id, state=State.RUNNING, attempt=run.attempt).exists():
            return
        end()

    _with_database(attempt, doing=doing)


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
