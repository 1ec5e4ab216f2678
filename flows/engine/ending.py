"""What happens when an execution's tasks have ended, before the execution ends (docs/flow-properties.md):
the flow's `outputs` are rendered, a failed task whose retry says CREATE_NEW_EXECUTION makes the
execution RETRIED (a new one follows), and the `EXECUTION_ASSERTION` SLAs are checked.

This renders expressions, so it runs within the evaluation (never under a lock: docs/architecture.md).
"""
from dataclasses import dataclass, field

from django.utils import timezone

from .. import schema
from ..definition import ParsedFlow
from ..expressions import ExpressionError, is_truthy, render, render_deep
from ..inputs import output_typed
from ..models import Execution, State, TaskRun
from .retry import execution_retry_delay

VIOLATION_STATES = {"FAIL": State.FAILED, "CANCEL": State.CANCELLED}


@dataclass
class Ending:
    final_state: str
    outputs: dict | None = None
    labels: dict = field(default_factory=dict)
    logs: list[tuple[str, str]] = field(default_factory=list)  # (level, message) on the execution
    retry_after: float | None = None  # RETRIED: seconds before the new execution starts


def execution_ending(*, execution: Execution, parsed: ParsedFlow, runs: list[TaskRun], state: str,
                     context: dict) -> Ending:
    """The execution's final state and what goes with it, once its task tree ended in `state`."""
    ending = Ending(final_state=state)
    document = parsed.document
    if document.outputs:
        try:
            ending.outputs = flow_outputs(document.outputs, context)
        except ExpressionError as error:
            ending.final_state = State.FAILED
            ending.logs.append(("ERROR", f"the flow's outputs could not be rendered: {error}"))
    if ending.final_state == State.FAILED:
        ending.retry_after = _new_execution_retry(execution, parsed, runs)
        if ending.retry_after is not None:
            ending.final_state = State.RETRIED
            ending.logs.append(("WARN", f"attempt {execution.attempt} failed; a new execution starts in "
                                        f"{ending.retry_after:g}s (retry behavior CREATE_NEW_EXECUTION)"))
            return ending
    for sla in document.sla:
        if isinstance(sla, schema.ExecutionAssertionSla) and (reason := _assertion_violated(sla, context)):
            ending.final_state = VIOLATION_STATES.get(sla.behavior, ending.final_state)
            ending.labels = sla.label_map
            ending.logs.append(("ERROR" if sla.behavior == "FAIL" else "WARN", f"SLA '{sla.id}' violated: {reason}"))
            break  # the first violation decides, as in Kestra
    return ending


def flow_outputs(outputs: list[schema.FlowOutput], context: dict) -> dict:
    """Every output rendered and typed; ExpressionError naming the output that cannot be."""
    values = {}
    for output in outputs:
        rendered = render_deep(output.value, context)
        try:
            values[output.id] = output_typed(output.type, rendered)
        except ValueError as error:
            raise ExpressionError(f"output '{output.id}' ({output.type}): {error}") from None
    return values


def _assertion_violated(sla: schema.ExecutionAssertionSla, context: dict) -> str | None:
    try:
        holds = is_truthy(render(sla.assert_, context))
    except ExpressionError as error:
        return f"the assertion cannot be rendered: {error}"
    return None if holds else f"assertion is false: {sla.assert_}"


def _new_execution_retry(execution: Execution, parsed: ParsedFlow, runs: list[TaskRun]) -> float | None:
    """Seconds before a new execution, when a failed task's retry says CREATE_NEW_EXECUTION and the
    chain of executions still has attempts and time left; else None."""
    for run in runs:
        task = parsed.tasks_by_id.get(run.task_id)
        if run.state != State.FAILED or task is None or task.flowable:
            continue
        retry = parsed.retry_for(task)
        if retry is not None and retry.behavior == "CREATE_NEW_EXECUTION":
            return execution_retry_delay(retry, execution, timezone.now())
    return None
