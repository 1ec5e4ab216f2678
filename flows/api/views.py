"""The API's operations, one Router per resource, each with its full path under /api/v1/. An
operation parses its input, calls one service or selector and renders the result with a schema;
whatever goes wrong is raised and rendered by `api.render_error`. Endpoints: docs/api.md."""
from typing import Annotated
from uuid import UUID

from django.http import HttpResponse
from ninja import Query, Router, Status
from pydantic import BeforeValidator

from flows import engine, selectors, services
from flows.errors import UserError
from flows.models import State

from .parsing import inputs_body, labels_dict, text_body
from .schemas import (
    Error, Execution, ExecutionSearch, Flow, FlowValidation, LogEntry, LogLevel, Namespace, NamespaceBody, Tenant,
    TenantBody, WorkerGroup, WorkerGroupCreateBody, WorkerGroupUpdateBody,
)

YAML_BODY = {"requestBody": {
    "required": True,
    "description": "A flow document in YAML (any content type is read as UTF-8 text).",
    "content": {"application/x-yaml": {"schema": {"type": "string"}}},
}}
FIELDS = {"type": "object", "additionalProperties": {"type": "string"}}
INPUTS_BODY = {"requestBody": {
    "required": False,
    "description": "Inputs as form fields or as a JSON object of input id to value; the flow's input "
                   "declarations type the values. File inputs are refused.",
    "content": {"multipart/form-data": {"schema": FIELDS}, "application/x-www-form-urlencoded": {"schema": FIELDS},
                "application/json": {"schema": {"type": "object"}}},
}}


def same_as_path(value: str | None, expected: str, *, path: str) -> None:
    """A body may repeat the identifier of its URL, never contradict it."""
    if value is not None and value != expected:
        raise UserError(f"the body says '{value}' but the URL says '{expected}'", path=path)


# --- flows ------------------------------------------------------------------------------------

flows = Router(tags=["Flows"])


@flows.post("{tenant}/flows", response={200: Flow, (400, 401, 404, 422): Error}, openapi_extra=YAML_BODY)
def flow_create(request, tenant: str):
    """Create a flow, or a new revision of it (an unchanged source changes nothing)."""
    return Flow.of(services.flow_upload(source=text_body(request), tenant_key=tenant))


@flows.post("{tenant}/flows/validate", response={200: list[FlowValidation], (400, 401, 404, 422): Error},
            openapi_extra=YAML_BODY)
def flow_validate(request, tenant: str):
    """Validate a flow without storing it (schema, expressions, worker groups and tenant access)."""
    return [FlowValidation.of(services.flow_validate(source=text_body(request), tenant_key=tenant))]


@flows.get("{tenant}/flows/{namespace}/{id}", response={200: Flow, (401, 404): Error})
def flow_get(request, tenant: str, namespace: str, id: str):
    return Flow.of(selectors.flow_get(selectors.tenant_get(tenant), namespace, id))


@flows.put("{tenant}/flows/{namespace}/{id}", response={200: Flow, (400, 401, 404, 422): Error},
           openapi_extra=YAML_BODY)
def flow_update(request, tenant: str, namespace: str, id: str):
    """Update a flow; the document must declare the same namespace and id."""
    selectors.flow_get(selectors.tenant_get(tenant), namespace, id)  # PUT updates; POST creates
    return Flow.of(services.flow_upload(source=text_body(request), tenant_key=tenant, namespace=namespace, flow_id=id))


@flows.delete("{tenant}/flows/{namespace}/{id}", response={204: None, (401, 404): Error})
def flow_delete(request, tenant: str, namespace: str, id: str):
    """Delete a flow (its revisions are kept)."""
    services.flow_delete(tenant_key=tenant, namespace=namespace, flow_id=id)
    return HttpResponse(status=204)


@flows.get("{tenant}/flows/{namespace}/{id}/revisions", response={200: list[Flow], (401, 404): Error})
def flow_revisions(request, tenant: str, namespace: str, id: str):
    """Every revision of a flow, oldest first."""
    flow = selectors.flow_get(selectors.tenant_get(tenant), namespace, id)
    return [Flow.of_revision(revision) for revision in selectors.flow_revisions(flow)]


# --- namespaces -------------------------------------------------------------------------------

namespaces = Router(tags=["Namespaces"])


@namespaces.get("{tenant}/namespaces/{namespace}", response={200: Namespace, (401, 404): Error})
def namespace_get(request, tenant: str, namespace: str):
    """A namespace's own worker-group defaults and the effective ones."""
    tenant_row = selectors.tenant_get(tenant)
    return Namespace.of(tenant_row, namespace, selectors.namespace_find(tenant_row, namespace),
                        selectors.namespace_effective_defaults(tenant_row, namespace))


@namespaces.put("{tenant}/namespaces/{namespace}", response={200: Namespace, (400, 401, 404, 422): Error})
def namespace_update(request, tenant: str, namespace: str, body: NamespaceBody):
    """Replace a namespace's worker-group defaults (`{}` or `workerGroup: null` clears them)."""
    same_as_path(body.id, namespace, path="id")
    services.namespace_set(tenant_key=tenant, name=namespace, **body.defaults())
    return namespace_get(request, tenant, namespace)


# --- tenants ----------------------------------------------------------------------------------

tenants = Router(tags=["Tenants"])


@tenants.get("tenants", response={200: list[Tenant], 401: Error})
def tenant_list(request):
    return [Tenant.of(tenant) for tenant in selectors.tenant_list()]


@tenants.post("tenants", response={200: Tenant, (400, 401, 409, 422): Error})
def tenant_create(request, body: TenantBody):
    return Tenant.of(services.tenant_create(key=body.tenant_key(), **body.defaults()))


@tenants.get("tenants/{tenant}", response={200: Tenant, (401, 404): Error})
def tenant_get(request, tenant: str):
    return Tenant.of(selectors.tenant_get(tenant))


@tenants.put("tenants/{tenant}", response={200: Tenant, (400, 401, 404, 422): Error})
def tenant_update(request, tenant: str, body: TenantBody):
    """Replace a tenant's worker-group defaults."""
    if body.id is not None or body.key is not None:
        same_as_path(body.tenant_key(), tenant, path="id")
    return Tenant.of(services.tenant_update(key=tenant, **body.defaults()))


# --- worker groups ----------------------------------------------------------------------------

worker_groups = Router(tags=["Worker groups"])


def _with_health(group) -> WorkerGroup:
    return WorkerGroup.of(group, selectors.worker_group_health([group.key])[group.key])


@worker_groups.get("instance/workergroups", response={200: list[WorkerGroup], 401: Error})
def worker_group_list(request):
    """List worker groups with their health."""
    groups = selectors.worker_group_list()
    health = selectors.worker_group_health([group.key for group in groups])
    return [WorkerGroup.of(group, health[group.key]) for group in groups]


@worker_groups.post("instance/workergroups", response={200: WorkerGroup, (400, 401, 409, 422): Error})
def worker_group_create(request, body: WorkerGroupCreateBody):
    """Create a worker group (`default`, `executor` and `scheduler` are reserved)."""
    return _with_health(services.worker_group_create(
        key=body.key, description=body.description, allowed_tenants=body.allowedTenants,
    ))


@worker_groups.get("instance/workergroups/{key}", response={200: WorkerGroup, (401, 404): Error})
def worker_group_get(request, key: str):
    """Get a worker group with its health."""
    return _with_health(selectors.worker_group_get(key))


@worker_groups.put("instance/workergroups/{key}", response={200: WorkerGroup, (400, 401, 404, 422): Error})
def worker_group_update(request, key: str, body: WorkerGroupUpdateBody):
    """Update a worker group: only the properties sent change."""
    same_as_path(body.key, key, path="key")
    return _with_health(services.worker_group_update(
        key=key, description=body.description, allowed_tenants=body.allowedTenants,
    ))


@worker_groups.delete("instance/workergroups/{key}", response={204: None, (401, 404): Error})
def worker_group_delete(request, key: str):
    services.worker_group_delete(key=key)
    return HttpResponse(status=204)


# --- executions -------------------------------------------------------------------------------
# `search` comes before the execution id it would otherwise be taken for; ids under `.../kill` and
# `.../logs` are UUIDs, so a flow named `kill` or `logs` still reaches `executions/{namespace}/{id}`.

executions = Router(tags=["Executions"])
WAIT_TIMEOUT = 600.0  # seconds `?wait=true` waits for an execution to end before answering as it is
AnyCaseLevel = Annotated[LogLevel | None, BeforeValidator(lambda value: value.strip().upper() or None)]


def _rendered(execution) -> Execution:
    return Execution.of(execution, selectors.execution_task_runs(execution))


@executions.get("{tenant}/executions/search", response={200: ExecutionSearch, (401, 404, 422): Error})
def execution_search(
    request, tenant: str, namespace: str = "", flowId: str = "",
    state: list[State] = Query([], description="Current state; repeat for several."),
    page: int = Query(1, ge=1, description="1-based."), size: int = Query(25, ge=1, le=500),
):
    """Search executions, newest first; `namespace` matches itself and its children."""
    found, total = selectors.execution_search(
        tenant=selectors.tenant_get(tenant), namespace=namespace.strip(), flow_id=flowId.strip(), states=state,
        page=page, size=size,
    )
    return ExecutionSearch(results=[_rendered(execution) for execution in found], total=total)


@executions.get("{tenant}/executions/{execution_id}", response={200: Execution, (401, 404): Error})
def execution_get(request, tenant: str, execution_id: str):
    """An execution with its task runs (group, worker, attempts, outputs)."""
    return _rendered(selectors.execution_get(selectors.tenant_get(tenant), execution_id))


@executions.delete("{tenant}/executions/{uuid:execution_id}/kill", response={202: Execution, (401, 404, 409): Error})
def execution_kill(request, tenant: str, execution_id: UUID):
    """Kill an execution: running task runs are stopped and nothing new starts (409 if it has ended)."""
    execution = selectors.execution_get(selectors.tenant_get(tenant), execution_id)
    engine.execution_kill(execution_id=execution.id)
    execution.refresh_from_db()
    return Status(202, _rendered(execution))


@executions.get("{tenant}/executions/{uuid:execution_id}/logs", response={200: list[LogEntry], (401, 404, 422): Error})
def execution_logs(request, tenant: str, execution_id: UUID,
                   minLevel: AnyCaseLevel = Query(None, description="Only this level and above.")):
    """An execution's log lines, oldest first."""
    execution = selectors.execution_get(selectors.tenant_get(tenant), execution_id)
    return [LogEntry.of(line) for line in selectors.execution_logs(execution, min_level=minLevel or "")]


@executions.post("{tenant}/executions/{namespace}/{id}", openapi_extra=INPUTS_BODY,
                 response={200: Execution, (400, 401, 404, 409, 415, 422): Error})
def execution_create(
    request, tenant: str, namespace: str, id: str,
    labels: list[str] = Query([], description="A label `key:value`; repeat for more."),
    wait: bool = Query(False, description="Answer only once the execution has ended (at most 10 minutes)."),
):
    """Start an execution of the flow's current revision; bad inputs are refused (422, faults at
    `inputs.<id>`) and nothing is created."""
    execution = engine.execution_create(
        tenant_key=tenant, namespace=namespace, flow_id=id, inputs=inputs_body(request),
        labels=labels_dict(labels), trigger=None,
    )
    if wait:
        execution = engine.execution_wait(execution, timeout=WAIT_TIMEOUT)
    return _rendered(execution)
