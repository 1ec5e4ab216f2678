"""Running one task run on this worker: claim it, run its runner, hand the outcome to the engine."""
import time

from django.utils import timezone

from flows.context import build_context
from flows.definition import parse_flow_cached
from flows.durations import parse_duration
from flows.engine import taskrun_finish
from flows.expressions import ExpressionError
from flows.models import Execution, State
from flows.states import taskrun_claim

from .runners import RUNNERS, Runtime, TaskFailed, TaskStopped


def taskrun_execute(*, taskrun_id: str, attempt: int, worker_id: str) -> None:
    run = taskrun_claim(taskrun_id=taskrun_id, attempt=attempt, worker_id=worker_id, when=timezone.now())
    if run is None:  # another worker has it, or it ended (killed, failed by fallback) meanwhile
        return
    execution = run.execution
    parsed = parse_flow_cached(execution.flow_revision.source)
    task = parsed.tasks_by_id[run.task_id]
    runs = list(execution.task_runs.only("id", "execution_id", "parent_id", "task_id", "task_type", "value", "outputs"))
    timeout = parse_duration(task.timeout).total_seconds() if task.timeout else None
    runtime = Runtime(
        context=build_context(execution=execution, document=parsed.document, runs=runs, run=run),
        deadline=time.monotonic() + timeout if timeout else None,
        timeout_text=task.timeout,
        is_killed=lambda: Execution.objects.filter(id=execution.id, state=State.KILLING).exists(),
    )
    outputs, error, state = {}, "", State.SUCCESS
    try:
        outputs = RUNNERS[task.type](task, runtime) or {}
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
    taskrun_finish(run=run, task=task, state=state, outputs=outputs, error=error, logs=runtime.log_lines())
