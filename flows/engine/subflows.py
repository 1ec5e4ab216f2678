"""Subflow task runs: the child execution they start, and what its end makes of them
(docs/core-tasks.md). The engine decides here; `_Advance.save()` stores the child and kills it."""
import uuid

from django.utils import timezone

from ..definition import parse_flow_cached
from ..errors import Conflict, UserError
from ..expressions import ExpressionError, render, render_deep
from ..inputs import inputs_context, inputs_resolve
from ..models import TERMINAL_STATES, Execution, State
from ..selectors import flow_get

SUBFLOW_TYPE = "io.kestra.plugin.core.flow.Subflow"


def subflow_child(*, parent: Execution, run, task, context: dict) -> Execution:
    """The child execution `run` starts, not stored yet: its flow (of the parent's tenant), its
    inputs typed by that flow, its labels, and a trigger that names the parent. A child that cannot
    start raises ExpressionError, which fails the task run with the reason."""
    namespace, flow_id = str(render(task.namespace, context)), str(render(task.flowId, context))
    try:
        flow = flow_get(parent.tenant, namespace, flow_id)
        if flow.disabled:
            raise Conflict(f"flow '{namespace}.{flow_id}' is disabled")
        revision = flow.revisions.get(revision=flow.revision)
        document = parse_flow_cached(revision.source).document
        inputs = inputs_resolve(document.inputs, render_deep(task.inputs, context), context=inputs_context(flow, document))
    except UserError as error:
        raise ExpressionError(f"subflow {namespace}.{flow_id} cannot start: {error.message}") from None
    pairs = task.labels.items() if isinstance(task.labels, dict) else ((label.key, label.value) for label in task.labels)
    labels = {**document.label_map, **(parent.labels if task.inheritLabels else {})}
    labels.update({str(render(key, context)): str(render_deep(value, context)) for key, value in pairs})
    now = timezone.now()
    return Execution(
        id=uuid.uuid4(), tenant=parent.tenant, flow_revision=revision, namespace=namespace, flow_id=flow_id,
        inputs=inputs, labels=labels, state=State.CREATED, state_history=[{"state": State.CREATED, "date": now.isoformat()}],
        trigger={"id": run.task_id, "type": SUBFLOW_TYPE, "variables": {
            "executionId": str(parent.id), "namespace": parent.namespace, "flowId": parent.flow_id,
            "flowRevision": parent.flow_revision.revision, "taskRunId": str(run.id)}},
    )


def subflow_parent_id(execution: Execution) -> str | None:
    """The execution whose Subflow task run started `execution`, if any."""
    trigger = execution.trigger or {}
    return (trigger.get("variables") or {}).get("executionId") if trigger.get("type") == SUBFLOW_TYPE else None


def subflow_outcome(child_id: str, *, transmit_failed: bool) -> tuple[str, dict] | None:
    """(the task run's state, its outputs) once the child has ended, else None."""
    child = Execution.objects.filter(id=child_id).values("state", "outputs").first()
    if child is None or child["state"] not in TERMINAL_STATES:
        return None
    outputs = {"executionId": child_id, "state": child["state"], "outputs": child["outputs"] or {}}
    if transmit_failed and child["state"] in (State.FAILED, State.KILLED, State.WARNING):
        return child["state"], outputs
    return State.SUCCESS, outputs
