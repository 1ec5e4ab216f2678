"""The expression context, built from plain dicts only (never model instances)."""
from .inputs import inputs_for_context
from .models import Execution, TaskRun
from .schema import FlowDocument

# Loops whose children's outputs are keyed by the iteration value (task runs store the current type name).
LOOP_TYPES = frozenset({"io.kestra.plugin.core.flow.ForEach", "io.kestra.plugin.core.flow.EachSequential",
                        "io.kestra.plugin.core.flow.EachParallel"})


def loop_values(run: TaskRun, runs_by_id: dict) -> list[str]:
    """Values of the ForEach iterations enclosing `run`, outermost first."""
    chain = []
    node = run
    while node.parent_id:
        parent = runs_by_id.get(node.parent_id)
        if parent is None:
            break
        if parent.task_type in LOOP_TYPES and node.value is not None:
            chain.append(node.value)
        node = parent
    return chain[::-1]


def outputs_context(runs: list[TaskRun], runs_by_id: dict) -> dict:
    """outputs.<task>, keyed by iteration value inside loops: outputs.child[value].value."""
    outputs: dict = {}
    for run in runs:
        if not run.outputs:
            continue
        chain = loop_values(run, runs_by_id)
        if not chain:
            outputs[run.task_id] = run.outputs
            continue
        node = outputs.setdefault(run.task_id, {})
        for value in chain[:-1]:
            node = node.setdefault(value, {})
        node[chain[-1]] = run.outputs
    return outputs


def build_context(*, execution: Execution, document: FlowDocument, runs: list[TaskRun], run: TaskRun | None = None) -> dict:
    runs_by_id = {r.id: r for r in runs}
    if run is not None:
        runs_by_id[run.id] = run
    context = execution_context(execution=execution, document=document, runs=runs, runs_by_id=runs_by_id)
    return with_taskrun(context, run, runs_by_id) if run is not None else context


CORRELATION_ID = "system.correlationId"  # the id of the execution that started a chain of subflows


def correlation_id(execution: Execution) -> str:
    """The root of the subflow chain `execution` belongs to: its own id unless a parent passed one."""
    return str(execution.labels.get(CORRELATION_ID) or execution.id)


def labels_context(execution: Execution) -> dict:
    """`labels` in expressions: the execution's labels, and Kestra's system labels (`system.*`) also
    as a map, so `{{ labels.system.correlationId }}` reads as in Kestra (docs/expressions.md)."""
    system = {key.removeprefix("system."): value for key, value in execution.labels.items() if key.startswith("system.")}
    system.setdefault("correlationId", correlation_id(execution))
    return {**execution.labels, "system": system}


def execution_context(*, execution: Execution, document: FlowDocument, runs: list[TaskRun], runs_by_id: dict) -> dict:
    started = execution.start_date or execution.created
    return {
        "inputs": inputs_for_context(execution.inputs, document.inputs),
        "vars": document.variables,
        "variables": document.variables,
        "labels": labels_context(execution),
        "flow": {
            "id": document.id,
            "namespace": document.namespace,
            "revision": execution.flow_revision.revision,
            "tenantId": execution.tenant.key,
        },
        "execution": {"id": str(execution.id), "startDate": started.isoformat() if started else None, "state": execution.state},
        "trigger": (execution.trigger or {}).get("variables") or {},
        "outputs": outputs_context(runs, runs_by_id),
    }


def taskrun_variables(run: TaskRun) -> dict:
    """`taskrun` in a task run's expressions."""
    return {
        "id": str(run.id),
        "startDate": run.start_date.isoformat() if run.start_date else None,
        "value": run.value,
        "attemptsCount": run.attempt - 1,  # attempts made before this one, as Kestra counts them
    }


def with_taskrun(context: dict, run: TaskRun, runs_by_id: dict) -> dict:
    """The context as seen by one task run: adds taskrun, task, parent and parents."""
    parents = []
    node = run
    while node.parent_id and node.parent_id in runs_by_id:
        node = runs_by_id[node.parent_id]
        parents.append({"taskrun": {"id": str(node.id), "value": node.value}, "outputs": node.outputs,
                        "task": {"id": node.task_id, "type": node.task_type}})
    return {
        **context,
        "taskrun": taskrun_variables(run),
        "task": {"id": run.task_id, "type": run.task_type},
        "parents": parents,
        "parent": parents[0] if parents else None,
    }


def trigger_context(*, flow, document: FlowDocument, variables: dict | None = None) -> dict:
    """The context a trigger's own properties render in (docs/triggers.md): no execution exists yet,
    so only the flow, its variables and labels, and the trigger's variables when it has fired."""
    return {
        "flow": {"id": document.id, "namespace": document.namespace, "revision": flow.revision,
                 "tenantId": flow.tenant.key},
        "vars": document.variables,
        "variables": document.variables,
        "labels": document.label_map,
        "trigger": variables or {},
    }
