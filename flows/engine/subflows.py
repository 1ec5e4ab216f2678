"""Subflow task runs: the child execution they start, and what its end makes of them
(docs/core-tasks.md). The engine decides here; `_Advance.save()` stores the child and kills it."""
import re
import uuid

from django.utils import timezone

from .. import storage
from ..context import CORRELATION_ID, build_context, correlation_id
from ..definition import parse_flow_cached
from ..errors import Conflict, UserError
from ..expressions import ExpressionError, render, render_deep
from ..inputs import inputs_context, inputs_resolve
from ..models import TERMINAL_STATES, Execution, State
from ..selectors import flow_get

SUBFLOW_TYPE = "io.kestra.plugin.core.flow.Subflow"


def subflow_child(*, parent: Execution, run, task, context: dict, batch: int = 0) -> Execution:
    """The child execution `run` starts (its `batch`-th, for a ForEachItem), not stored yet: its flow
    (of the parent's tenant), its inputs typed by that flow, its labels, and a trigger that names the
    parent. Its id follows from the task run and the batch, so two evaluations that both decide to
    start it start one execution. A child that cannot start raises ExpressionError, which fails the
    task run with the reason."""
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
    labels[CORRELATION_ID] = correlation_id(parent)  # as Kestra: every execution of the chain knows its root
    now = timezone.now()
    return Execution(
        id=uuid.uuid5(run.id, str(batch)), tenant=parent.tenant, flow_revision=revision, namespace=namespace, flow_id=flow_id,
        inputs=inputs, labels=labels, state=State.CREATED, state_history=[{"state": State.CREATED, "date": now.isoformat()}],
        trigger={"id": run.task_id, "type": SUBFLOW_TYPE, "variables": {
            "executionId": str(parent.id), "namespace": parent.namespace, "flowId": parent.flow_id,
            "flowRevision": parent.flow_revision.revision, "taskRunId": str(run.id)}},
    )


def subflow_parent_id(execution: Execution) -> str | None:
    """The execution whose Subflow task run started `execution`, if any."""
    trigger = execution.trigger or {}
    return (trigger.get("variables") or {}).get("executionId") if trigger.get("type") == SUBFLOW_TYPE else None


def subflow_outcome(child_id: str, task) -> tuple[str, dict] | None:
    """(the task run's state, its outputs) once the child has ended, else None. The outputs are the
    child flow's, or the task's own `outputs` rendered in the child's context."""
    child = Execution.objects.select_related("flow_revision", "tenant").filter(id=child_id).first()
    if child is None or child.state not in TERMINAL_STATES:
        return None
    taken = child.outputs or {}
    if task.outputs is not None:
        document = parse_flow_cached(child.flow_revision.source).document
        taken = render_deep(task.outputs, build_context(execution=child, document=document,
                                                        runs=list(child.task_runs.all())))
    outputs = {"executionId": child_id, "state": child.state, "outputs": taken}
    if task.transmitFailed and child.state in (State.FAILED, State.KILLED, State.WARNING):
        return child.state, outputs
    return State.SUCCESS, outputs


# --- ForEachItem ---------------------------------------------------------------------------------

MAX_BATCHES = 10_000
_SIZE = re.compile(r"\A\s*(\d+)\s*([KMG]?B)?\s*\Z", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}


def _positive(value, what: str, context: dict) -> int:
    rendered = render(value, context) if isinstance(value, str) else value
    try:
        number = int(str(rendered).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ExpressionError(f"ForEachItem batch {what} must be a whole number above 0, got '{rendered}'")
    return number


def _batches(lines: list[bytes], batch, context: dict) -> list[bytes]:
    if batch.bytes is not None:
        match = _SIZE.match(str(render(batch.bytes, context)))
        if not match:
            raise ExpressionError(f"ForEachItem batch bytes '{batch.bytes}' is not a size like 10MB, 512KB or 100B")
        limit, chunks, current = int(match[1]) * _UNITS[(match[2] or "B").upper()], [], b""
        for line in lines:
            if current and len(current) + len(line) > limit:
                chunks.append(current)
                current = b""
            current += line
        return [*chunks, current] if current else chunks
    if batch.partitions is not None:
        count = min(_positive(batch.partitions, "partitions", context), len(lines))
        size, extra = divmod(len(lines), count) if count else (0, 0)
        bounds = [index * size + min(index, extra) for index in range(count + 1)]
        return [b"".join(lines[start:end]) for start, end in zip(bounds, bounds[1:])]
    rows = _positive(batch.rows, "rows", context)
    return [b"".join(lines[start:start + rows]) for start in range(0, len(lines), rows)]


def items_split(task, context: dict) -> dict:
    """The batches of a ForEachItem, each stored as a file of its own next to the task run's files."""
    flow, taskrun = context["flow"], context["taskrun"]
    uri = str(render(task.items, context)).strip()
    try:
        path = storage.path_of_uri(uri, namespace=flow["namespace"], where="items")
        lines = storage.read(tenant_key=flow["tenantId"], path=path, where="items").splitlines(keepends=True)
    except UserError as error:
        raise ExpressionError(f"ForEachItem items: {error.message}") from None
    chunks = _batches(lines, task.batch, context)
    if len(chunks) > MAX_BATCHES:
        raise ExpressionError(f"ForEachItem would start {len(chunks)} executions: at most {MAX_BATCHES}")
    batches = []
    for index, chunk in enumerate(chunks):
        name = storage.task_file_path(namespace=flow["namespace"], flow_id=flow["id"], execution_id=context["execution"]["id"],
                                      task_id=f"{task.id}-split", taskrun_id=taskrun["id"], name=f"{index}.txt")
        batches.append(storage.put(tenant_key=flow["tenantId"], path=name, content=chunk))
    return {"numberOfBatches": len(batches), "batches": batches, "executions": {}}
