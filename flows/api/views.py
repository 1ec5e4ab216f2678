"""The API's operations, one Router per resource, each with its full path under /api/v1/. An
operation asks flows.permissions whether `request.auth` (the token's Actor) may do it, parses its
input, calls one service or selector and renders the result with a schema; whatever goes wrong is
raised and rendered by `api.render_error`. Endpoints: docs/api.md; roles: docs/security.md."""
import json
from typing import Annotated
from uuid import UUID

from django.http import HttpResponse
from ninja import Query, Router, Status
from pydantic import BeforeValidator, ValidationError

from flows import engine, selectors, services, triggers as trigger_services
from flows.errors import NotFound, UserError
from flows.models import Role, State
from flows.permissions import (
    require_superuser, tenant_for, tenants_for, visible_tenant_keys, worker_group_for, worker_groups_visible,
)
from flows.reference import flow_json_schema

from .parsing import file_body, inputs_body, json_value, labels_dict, text_body
from .schemas import (
    Error, Execution, ExecutionSearch, FileAttributes, Flow, FlowValidation, KvEntry, KvValue, LogEntry, LogLevel,
    Namespace,
    NamespaceBody, NamespaceFileStored, Tenant,
    TenantBody, TriggerSearch, TriggerState, WorkerGroup, WorkerGroupControlBody, WorkerGroupCreateBody,
    WorkerGroupUpdateBody,
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
                   "declarations type the values. FILE inputs are multipart parts named after the input "
                   "(or, as Kestra's older form, parts named `files` whose filename is the input id).",
    "content": {"multipart/form-data": {"schema": {"type": "object", "additionalProperties": {
                    "oneOf": [{"type": "string"}, {"type": "string", "format": "binary"}]}}}, "application/x-www-form-urlencoded": {"schema": FIELDS},
                "application/json": {"schema": {"type": "object"}}},
}}


def same_as_path(value: str | None, expected: str, *, path: str) -> None:
    """A body may repeat the identifier of its URL, never contradict it."""
    if value is not None and value != expected:
        raise UserError(f"the body says '{value}' but the URL says '{expected}'", path=path)


# --- flows ------------------------------------------------------------------------------------

flows = Router(tags=["Flows"])


@flows.post("{tenant}/flows", response={200: Flow, (400, 401, 403, 404, 413, 422): Error}, openapi_extra=YAML_BODY)
def flow_create(request, tenant: str):
    """Create a flow, or a new revision of it (an unchanged source changes nothing). Developer."""
    tenant_for(request.auth, tenant, Role.DEVELOPER)
    return Flow.of(services.flow_upload(source=text_body(request), tenant_key=tenant))


@flows.post("{tenant}/flows/validate", response={200: list[FlowValidation], (400, 401, 403, 404, 413, 422): Error},
            openapi_extra=YAML_BODY)
def flow_validate(request, tenant: str):
    """Validate a flow without storing it (schema, expressions, worker groups and tenant access). Developer."""
    tenant_for(request.auth, tenant, Role.DEVELOPER)
    return [FlowValidation.of(services.flow_validate(source=text_body(request), tenant_key=tenant))]


@flows.get("{tenant}/flows/{namespace}/{id}", response={200: Flow, (401, 404): Error})
def flow_get(request, tenant: str, namespace: str, id: str):
    """Viewer."""
    return Flow.of(selectors.flow_get(tenant_for(request.auth, tenant, Role.VIEWER), namespace, id))


@flows.put("{tenant}/flows/{namespace}/{id}", response={200: Flow, (400, 401, 403, 404, 413, 422): Error},
           openapi_extra=YAML_BODY)
def flow_update(request, tenant: str, namespace: str, id: str):
    """Update a flow; the document must declare the same namespace and id. Developer."""
    selectors.flow_get(tenant_for(request.auth, tenant, Role.DEVELOPER), namespace, id)  # PUT updates; POST creates
    return Flow.of(services.flow_upload(source=text_body(request), tenant_key=tenant, namespace=namespace, flow_id=id))


@flows.delete("{tenant}/flows/{namespace}/{id}", response={204: None, (401, 403, 404): Error})
def flow_delete(request, tenant: str, namespace: str, id: str):
    """Delete a flow (its revisions are kept). Developer."""
    tenant_for(request.auth, tenant, Role.DEVELOPER)
    services.flow_delete(tenant_key=tenant, namespace=namespace, flow_id=id)
    return HttpResponse(status=204)


@flows.get("{tenant}/flows/{namespace}/{id}/revisions", response={200: list[Flow], (401, 404): Error})
def flow_revisions(request, tenant: str, namespace: str, id: str):
    """Every revision of a flow, oldest first. Viewer."""
    flow = selectors.flow_get(tenant_for(request.auth, tenant, Role.VIEWER), namespace, id)
    return [Flow.of_revision(revision) for revision in selectors.flow_revisions(flow)]


# --- namespaces -------------------------------------------------------------------------------

namespaces = Router(tags=["Namespaces"])


@namespaces.get("{tenant}/namespaces/{namespace}", response={200: Namespace, (401, 404): Error})
def namespace_get(request, tenant: str, namespace: str):
    """A namespace's own worker-group defaults and the effective ones. Viewer."""
    tenant_row = tenant_for(request.auth, tenant, Role.VIEWER)
    return Namespace.of(tenant_row, namespace, selectors.namespace_find(tenant_row, namespace),
                        selectors.namespace_effective_defaults(tenant_row, namespace))


@namespaces.put("{tenant}/namespaces/{namespace}", response={200: Namespace, (400, 401, 403, 404, 413, 422): Error})
def namespace_update(request, tenant: str, namespace: str, body: NamespaceBody):
    """Replace a namespace's worker-group defaults (`{}` or `workerGroup: null` clears them). Admin."""
    tenant_for(request.auth, tenant, Role.ADMIN)
    same_as_path(body.id, namespace, path="id")
    services.namespace_set(tenant_key=tenant, name=namespace, **body.defaults())
    return namespace_get(request, tenant, namespace)


# --- namespace files (docs/namespace-files.md) -----------------------------------------------

namespace_files = Router(tags=["Files"])
FILE_BODY = {"requestBody": {
    "required": True,
    "description": "The file's bytes as the body (any content type), or a multipart form whose part "
                   "`fileContent` is the file (Kestra's form).",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {"schema": {"type": "object", "properties": {
                    "fileContent": {"type": "string", "format": "binary"}}}}},
}}
PathQuery = Query(..., description="The file's path in the namespace, e.g. `scripts/ml_on_gpu.py`.")


@namespace_files.get("{tenant}/namespaces/{namespace}/files", response={200: None, (401, 404, 422): Error},
                     openapi_extra={"responses": {"200": {"description": "The file's bytes", "content": {
                         "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}})
def namespace_file_get(request, tenant: str, namespace: str, path: str = PathQuery):
    """A namespace file's content. Viewer."""
    content = selectors.namespace_file_read(tenant=tenant_for(request.auth, tenant, Role.VIEWER),
                                            namespace=namespace, path=path)
    response = HttpResponse(content, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{path.rstrip("/").rsplit("/", 1)[-1]}"'
    return response


@namespace_files.get("{tenant}/namespaces/{namespace}/files/directory",
                     response={200: list[FileAttributes], (401, 404, 422): Error})
def namespace_file_directory(request, tenant: str, namespace: str,
                             path: str = Query("", description="A directory; empty for the root.")):
    """The files and directories in one directory of the namespace's files. Viewer."""
    entries = selectors.namespace_files_list(tenant=tenant_for(request.auth, tenant, Role.VIEWER),
                                             namespace=namespace, path=path)
    return [FileAttributes.of(entry) for entry in entries]


@namespace_files.api_operation(["PUT", "POST"], "{tenant}/namespaces/{namespace}/files", openapi_extra=FILE_BODY,
                               response={200: NamespaceFileStored, (400, 401, 403, 404, 409, 413, 422): Error})
def namespace_file_put(request, tenant: str, namespace: str, path: str = PathQuery):
    """Store a namespace file, replacing it (`PUT` or Kestra's multipart `POST`). Developer."""
    tenant_for(request.auth, tenant, Role.DEVELOPER)
    content = file_body(request)
    uri = services.namespace_file_put(tenant_key=tenant, namespace=namespace, path=path, content=content)
    return NamespaceFileStored(path=uri.split("/_files/", 1)[1], uri=uri, size=content.size)


@namespace_files.delete("{tenant}/namespaces/{namespace}/files", response={204: None, (401, 403, 404, 422): Error})
def namespace_file_delete(request, tenant: str, namespace: str, path: str = PathQuery):
    """Delete a namespace file, or a directory and everything in it. Developer."""
    tenant_for(request.auth, tenant, Role.DEVELOPER)
    services.namespace_file_delete(tenant_key=tenant, namespace=namespace, path=path)
    return HttpResponse(status=204)


# --- KV store (docs/core-tasks.md) ---------------------------------------------------------------

kv_store = Router(tags=["KV"])
KV_BODY = {"requestBody": {
    "required": True,
    "description": "The value as JSON (`\"text\"`, `42`, `true`, `{\"a\": 1}`); a body that is not JSON is "
                   "stored as text. Header `ttl` (ISO-8601, e.g. `PT1H`): the value is missing once that long has passed.",
    "content": {"application/json": {"schema": {}}, "text/plain": {"schema": {"type": "string"}}},
}}


@kv_store.get("{tenant}/namespaces/{namespace}/kv", response={200: list[KvEntry], (401, 404, 422): Error})
def kv_list(request, tenant: str, namespace: str):
    """The namespace's keys (those past their TTL left out). Viewer."""
    return [KvEntry.of(entry) for entry in selectors.kv_entries(tenant_for(request.auth, tenant, Role.VIEWER), namespace)]


@kv_store.get("{tenant}/namespaces/{namespace}/kv/{key}", response={200: KvValue, (401, 404, 422): Error})
def kv_get(request, tenant: str, namespace: str, key: str):
    """A key's value and its type, as Kestra answers it; 404 when missing or past its TTL. Viewer."""
    tenant_for(request.auth, tenant, Role.VIEWER)
    value = selectors.kv_value(tenant_key=tenant, namespace=namespace, key=key)
    if value is selectors.MISSING:
        raise NotFound(f"no value for key '{key}' in namespace '{namespace}'")
    return KvValue.of(value)


@kv_store.put("{tenant}/namespaces/{namespace}/kv/{key}", openapi_extra=KV_BODY,
              response={200: KvEntry, (400, 401, 403, 404, 413, 422): Error})
def kv_put(request, tenant: str, namespace: str, key: str):
    """Store a value under the key, replacing it. Developer."""
    tenant_for(request.auth, tenant, Role.DEVELOPER)
    text = text_body(request)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    entry = services.kv_put(tenant_key=tenant, namespace=namespace, key=key, value=value,
                            ttl=request.headers.get("ttl") or None)
    return KvEntry.of(entry)


@kv_store.delete("{tenant}/namespaces/{namespace}/kv/{key}", response={200: bool, (401, 403, 404, 422): Error})
def kv_delete(request, tenant: str, namespace: str, key: str):
    """Delete the key; answers whether it was there. Developer."""
    tenant_for(request.auth, tenant, Role.DEVELOPER)
    return services.kv_delete(tenant_key=tenant, namespace=namespace, key=key)


# --- plugins: the flow's JSON Schema (docs/api.md) ----------------------------------------------

# No token: editors' YAML language servers fetch it without one, and it holds nothing of any tenant
# (it is docs/flow.schema.json, as /api/v1/openapi.json is open too).
plugins = Router(tags=["Plugins"], auth=None)


@plugins.get("plugins/schemas/flow", response={200: dict})
def flow_schema(request):
    """The flow document's JSON Schema (draft 2020-12): every task, trigger and input type."""
    return flow_json_schema()


# --- tenants ----------------------------------------------------------------------------------

tenants = Router(tags=["Tenants"])


@tenants.get("tenants", response={200: list[Tenant], (401, 403): Error})
def tenant_list(request):
    """Every tenant. Superuser."""
    require_superuser(request.auth, "listing tenants")
    return [Tenant.of(tenant) for tenant in selectors.tenant_list()]


@tenants.post("tenants", response={200: Tenant, (400, 401, 403, 409, 413, 422): Error})
def tenant_create(request, body: TenantBody):
    """Superuser."""
    require_superuser(request.auth, "creating a tenant")
    return Tenant.of(services.tenant_create(key=body.tenant_key(), **body.defaults()))


@tenants.get("tenants/{tenant}", response={200: Tenant, (401, 404): Error})
def tenant_get(request, tenant: str):
    """Viewer of the tenant."""
    return Tenant.of(tenant_for(request.auth, tenant, Role.VIEWER))


@tenants.put("tenants/{tenant}", response={200: Tenant, (400, 401, 403, 404, 413, 422): Error})
def tenant_update(request, tenant: str, body: TenantBody):
    """Replace a tenant's worker-group defaults. Superuser."""
    require_superuser(request.auth, "changing a tenant")
    if body.id is not None or body.key is not None:
        same_as_path(body.tenant_key(), tenant, path="id")
    return Tenant.of(services.tenant_update(key=tenant, **body.defaults()))


# --- worker groups ----------------------------------------------------------------------------

worker_groups = Router(tags=["Worker groups"])


def _rendered_groups(actor, groups) -> list[WorkerGroup]:
    """Groups with their health, as the actor may see them: a member sees only the tenants and the
    queued and running task runs of their own tenants (docs/security.md)."""
    tenants = None if actor.is_superuser else tenants_for(actor)
    health = selectors.worker_group_health([group.key for group in groups], tenants=tenants)
    return [
        WorkerGroup.of(group, health[group.key], allowed_tenants=visible_tenant_keys(
            actor, [tenant.key for tenant in group.allowed_tenants.all()]))
        for group in groups
    ]


def _with_health(request, group) -> WorkerGroup:
    return _rendered_groups(request.auth, [group])[0]


@worker_groups.get("instance/workergroups", response={200: list[WorkerGroup], 401: Error})
def worker_group_list(request):
    """List worker groups with their health: every group for a superuser; for a member, those open
    to all tenants or to one of theirs."""
    groups = list(worker_groups_visible(request.auth).prefetch_related("allowed_tenants").order_by("key"))
    return _rendered_groups(request.auth, groups)


@worker_groups.post("instance/workergroups", response={200: WorkerGroup, (400, 401, 403, 409, 413, 422): Error})
def worker_group_create(request, body: WorkerGroupCreateBody):
    """Create a worker group (`default`, `executor` and `scheduler` are reserved). Superuser."""
    require_superuser(request.auth, "creating a worker group")
    return _with_health(request, services.worker_group_create(
        key=body.key, description=body.description, allowed_tenants=body.allowedTenants,
        concurrency_limit=body.concurrencyLimit, init_script=body.initScript,
    ))


@worker_groups.get("instance/workergroups/{key}", response={200: WorkerGroup, (401, 404): Error})
def worker_group_get(request, key: str):
    """Get a worker group with its health (as in the list)."""
    return _with_health(request, worker_group_for(request.auth, key))


@worker_groups.put("instance/workergroups/{key}", response={200: WorkerGroup, (400, 401, 403, 404, 413, 422): Error})
def worker_group_update(request, key: str, body: WorkerGroupUpdateBody):
    """Update a worker group: only the properties sent change. Superuser."""
    require_superuser(request.auth, "changing a worker group")
    same_as_path(body.key, key, path="key")
    limit = body.concurrencyLimit if "concurrencyLimit" in body.model_fields_set else services.UNCHANGED
    return _with_health(request, services.worker_group_update(
        key=key, description=body.description, allowed_tenants=body.allowedTenants, concurrency_limit=limit,
        init_script=body.initScript,
    ))


CONTROL_BODY = {"requestBody": {
    "required": False,
    "content": {"application/json": {"schema": WorkerGroupControlBody.model_json_schema()}},
}}


def _control_worker(request, worker: str) -> str:
    """The worker a drain or resume names: in the (optional) JSON body, else in the query."""
    text = text_body(request).strip()
    if request.content_type != "application/json" or not text:
        return worker
    try:
        return WorkerGroupControlBody.model_validate(json_value(text)).worker or worker
    except ValidationError as error:
        raise UserError(f"invalid body: {error.errors()[0]['msg']}", path="worker") from None


@worker_groups.post("instance/workergroups/{key}/drain", openapi_extra=CONTROL_BODY,
                    response={200: WorkerGroup, (400, 401, 403, 404, 413, 422): Error})
def worker_group_drain(request, key: str, worker: str = Query("", description="One worker's hostname.")):
    """Drain the group, or one of its workers (`worker`, in the body or the query): it takes no new
    work and finishes what it runs; waiting task runs stay CREATED (or end per their fallback) until
    `resume`. Stored, so a worker started meanwhile stays idle. Superuser."""
    require_superuser(request.auth, "draining a worker group")
    services.worker_group_drain(key=key, worker=_control_worker(request, worker))
    return _with_health(request, selectors.worker_group_get(key))


@worker_groups.post("instance/workergroups/{key}/resume", openapi_extra=CONTROL_BODY,
                    response={200: WorkerGroup, (400, 401, 403, 404, 413, 422): Error})
def worker_group_resume(request, key: str, worker: str = Query("", description="One worker's hostname.")):
    """Undo a drain of the group (and of each of its workers), or of one worker. Superuser."""
    require_superuser(request.auth, "resuming a worker group")
    services.worker_group_resume(key=key, worker=_control_worker(request, worker))
    return _with_health(request, selectors.worker_group_get(key))


@worker_groups.delete("instance/workergroups/{key}", response={204: None, (401, 403, 404): Error})
def worker_group_delete(request, key: str):
    """Superuser."""
    require_superuser(request.auth, "deleting a worker group")
    services.worker_group_delete(key=key)
    return HttpResponse(status=204)


# --- executions -------------------------------------------------------------------------------
# `search` comes before the execution id it would otherwise be taken for; ids under `.../kill` and
# `.../logs` are UUIDs, so a flow named `kill` or `logs` still reaches `executions/{namespace}/{id}`.

executions = Router(tags=["Executions"])
WAIT_TIMEOUT = 600.0  # seconds `?wait=true` waits for an execution to end before answering as it is
MAX_PAGE = 100_000  # keeps every offset a small number: `page=10**18` is a 422, not a database error
LOGS_PAGE_SIZE, LOGS_MAX_PAGE_SIZE = 1000, 10_000
AnyCaseLevel = Annotated[LogLevel | None, BeforeValidator(lambda value: value.strip().upper() or None)]


def _rendered(execution) -> Execution:
    return Execution.of(execution, selectors.execution_task_runs(execution))


@executions.get("{tenant}/executions/search", response={200: ExecutionSearch, (401, 404, 422): Error})
def execution_search(
    request, tenant: str, namespace: str = "", flowId: str = "",
    state: list[State] = Query([], description="Current state; repeat for several."),
    labels: list[str] = Query([], description="A label `key:value` the execution carries; repeat: all must match."),
    page: int = Query(1, ge=1, le=MAX_PAGE, description="1-based."), size: int = Query(25, ge=1, le=500),
):
    """Search executions, newest first; `namespace` matches itself and its children. Viewer."""
    found, total = selectors.execution_search(
        tenant=tenant_for(request.auth, tenant, Role.VIEWER), namespace=namespace.strip(), flow_id=flowId.strip(),
        states=state, labels=labels_dict(labels), page=page, size=size,
    )
    return ExecutionSearch(results=[_rendered(execution) for execution in found], total=total)


@executions.get("{tenant}/executions/{execution_id}", response={200: Execution, (401, 404): Error})
def execution_get(request, tenant: str, execution_id: str):
    """An execution with its task runs (group, worker, attempts, outputs). Viewer."""
    return _rendered(selectors.execution_get(tenant_for(request.auth, tenant, Role.VIEWER), execution_id))


@executions.delete("{tenant}/executions/{uuid:execution_id}/kill",
                   response={202: Execution, (401, 403, 404, 409): Error})
def execution_kill(request, tenant: str, execution_id: UUID):
    """Kill an execution: running task runs are stopped and nothing new starts (409 if it has
    ended). Developer."""
    execution = selectors.execution_get(tenant_for(request.auth, tenant, Role.DEVELOPER), execution_id)
    engine.execution_kill(execution_id=execution.id)
    execution.refresh_from_db()
    return Status(202, _rendered(execution))


@executions.post("{tenant}/executions/{uuid:execution_id}/resume", openapi_extra=INPUTS_BODY,
                 response={204: None, (400, 401, 403, 404, 409, 415, 422): Error})
def execution_resume(request, tenant: str, execution_id: UUID):
    """Resume a PAUSED execution, with its Pause task's `onResume` inputs as form fields or JSON
    (docs/core-tasks.md); 409 if it is not paused, 422 with every bad input. Developer."""
    execution = selectors.execution_get(tenant_for(request.auth, tenant, Role.DEVELOPER), execution_id)
    engine.execution_resume(execution_id=execution.id, inputs=inputs_body(request))
    return HttpResponse(status=204)


# Restart and replay take no body, as in Kestra; one sent is ignored.
NO_BODY = {"requestBody": {"required": False, "description": "None: anything sent is ignored.",
                           "content": {"application/json": {"schema": {"type": "object"}}}}}


@executions.post("{tenant}/executions/{uuid:execution_id}/restart", openapi_extra=NO_BODY,
                 response={200: Execution, (401, 403, 404, 409): Error})
def execution_restart(request, tenant: str, execution_id: UUID):
    """Run an ended execution again from its failed task runs, each at its next attempt
    (docs/core-tasks.md); 409 if it has not ended or nothing failed. Developer."""
    execution = selectors.execution_get(tenant_for(request.auth, tenant, Role.DEVELOPER), execution_id)
    return _rendered(engine.execution_restart(execution_id=execution.id))


@executions.post("{tenant}/executions/{uuid:execution_id}/replay", openapi_extra=NO_BODY,
                 response={200: Execution, (401, 403, 404, 409): Error})
def execution_replay(request, tenant: str, execution_id: UUID,
                     taskRunId: UUID | None = Query(None, description="Replay from this task run; none: from the start.")):
    """A new execution of the same revision and inputs, from the start or from a task run: what ended
    before it is kept (docs/core-tasks.md). Developer."""
    execution = selectors.execution_get(tenant_for(request.auth, tenant, Role.DEVELOPER), execution_id)
    return _rendered(engine.execution_replay(execution_id=execution.id, taskrun_id=taskRunId))


@executions.get("{tenant}/executions/{uuid:execution_id}/logs", response={200: list[LogEntry], (401, 404, 422): Error})
def execution_logs(
    request, response: HttpResponse, tenant: str, execution_id: UUID,
    minLevel: AnyCaseLevel = Query(None, description="Only this level and above."),
    taskRunId: UUID | None = Query(None, description="Only the lines of this task run."),
    page: int = Query(1, ge=1, le=MAX_PAGE, description="1-based."),
    size: int = Query(LOGS_PAGE_SIZE, ge=1, le=LOGS_MAX_PAGE_SIZE),
):
    """One page of an execution's log lines, oldest first (the first 1000 without `page` and
    `size`). `X-Total-Count` says how many lines match; a `Link` header with `rel="next"` points
    at the next page while there is one. Viewer."""
    execution = selectors.execution_get(tenant_for(request.auth, tenant, Role.VIEWER), execution_id)
    lines, total = selectors.execution_logs(execution, min_level=minLevel or "", task_run_id=taskRunId, page=page,
                                            size=size)
    response["X-Total-Count"] = str(total)
    if page * size < total:
        query = request.GET.copy()
        query["page"] = str(page + 1)
        response["Link"] = f'<{request.path}?{query.urlencode()}>; rel="next"'
    return [LogEntry.of(line) for line in lines]


@executions.post("{tenant}/executions/{namespace}/{id}", openapi_extra=INPUTS_BODY,
                 response={200: Execution, (400, 401, 403, 404, 409, 413, 415, 422): Error})
def execution_create(
    request, tenant: str, namespace: str, id: str,
    labels: list[str] = Query([], description="A label `key:value`; repeat for more."),
    wait: bool = Query(False, description="Answer only once the execution has ended (at most 10 minutes)."),
):
    """Start an execution of the flow's current revision; bad inputs are refused (422, faults at
    `inputs.<id>`) and nothing is created. Developer."""
    tenant_for(request.auth, tenant, Role.DEVELOPER)
    execution = engine.execution_create(
        tenant_key=tenant, namespace=namespace, flow_id=id, inputs=inputs_body(request),
        labels=labels_dict(labels), trigger=None,
    )
    if wait:
        return _rendered(engine.execution_wait(execution, timeout=WAIT_TIMEOUT))
    return Execution.of(execution, [])  # as created: its task runs come once the executor advances it


# --- triggers (docs/triggers.md) ---------------------------------------------------------------

triggers = Router(tags=["Triggers"])


@triggers.get("{tenant}/triggers/search", response={200: TriggerSearch, (401, 404, 422): Error})
def trigger_search(
    request, tenant: str, namespace: str = "", flowId: str = "",
    page: int = Query(1, ge=1, le=MAX_PAGE, description="1-based."), size: int = Query(25, ge=1, le=500),
):
    """The state of each flow trigger: next and last evaluation, the worker of the last polling
    evaluation, the last result; `namespace` matches itself and its children. Viewer."""
    found, total = selectors.trigger_search(
        tenant=tenant_for(request.auth, tenant, Role.VIEWER), namespace=namespace.strip(), flow_id=flowId.strip(),
        page=page, size=size,
    )
    return TriggerSearch(results=[TriggerState.of(state) for state in found], total=total)


# The key in the URL is the credential: no token. Every miss is the same 404 (flows/triggers.py).
webhooks = Router(tags=["Executions"], auth=None)
DROPPED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})  # never stored in an execution


WEBHOOK_BODY = {"requestBody": {
    "required": False,
    "description": "Any body: JSON (an object or array becomes `trigger.body` parsed), other text as it is, "
                   "other bytes in base64.",
    "content": {"application/json": {"schema": {}}, "text/plain": {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}}


@webhooks.api_operation(["GET", "POST", "PUT"], "{tenant}/executions/webhook/{namespace}/{id}/{key}",
                        response={200: Execution, (400, 404, 409, 413, 422): Error}, openapi_extra=WEBHOOK_BODY)
def execution_webhook(request, tenant: str, namespace: str, id: str, key: str):
    """Start an execution through the flow's Webhook trigger whose `key` this is, with the call's
    body, headers and query parameters as `trigger.body`, `trigger.headers`, `trigger.parameters`.
    A wrong key, flow or tenant answers 404 and starts nothing. With `wait: true` on the trigger,
    answers once the execution has ended (at most 10 minutes)."""
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        if name.lower() not in DROPPED_HEADERS:
            headers.setdefault(name, []).append(value)
    execution, wait = trigger_services.webhook_start(
        tenant_key=tenant, namespace=namespace, flow_id=id, key=key, body=request.body, headers=headers,
        parameters={name: request.GET.getlist(name) for name in request.GET},
    )
    if wait:
        return _rendered(engine.execution_wait(execution, timeout=WAIT_TIMEOUT))
    return Execution.of(execution, [])  # as created: its task runs come once the executor advances it

