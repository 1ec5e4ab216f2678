"""The OpenAPI 3.1 document served at /api/v1/openapi.json, written by hand.

To document new endpoints (the executions API, say), add their shapes to SCHEMAS and their
operations to PATHS, under the same path strings as in `urls.py` (`{tenant}` for `<str:tenant>`);
tests/flows/test_api.py checks that every route is documented.
"""
import copy

from .bodies import NamespaceBody, TenantBody, WorkerGroupCreateBody, WorkerGroupUpdateBody


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
DATE_TIME = {"type": "string", "format": "date-time"}


def _request_schemas(*models) -> dict:
    """Request bodies straight from the pydantic models that parse them, so both always agree."""
    schemas = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


SCHEMAS: dict = {
    "Fault": {
        "type": "object",
        "description": "One located fault: `path` in the document or body (e.g. `tasks[0].workerGroup.key`), "
                       "1-based `line` and `column` in the YAML source when known.",
        "properties": {"message": STRING, "path": STRING, "line": nullable(INTEGER), "column": nullable(INTEGER)},
        "required": ["message", "path", "line", "column"],
    },
    "Error": {
        "type": "object",
        "description": "Every error (400, 401, 404, 405, 409, 422): `message` joins the faults, one per line.",
        "properties": {"message": STRING, "errors": {"type": "array", "items": ref("Fault")}},
        "required": ["message", "errors"],
    },
    "Flow": {
        "type": "object",
        "description": "The flow as stored (`source` exactly as uploaded) merged with its parsed document "
                       "(`tasks`, `triggers`, `inputs`, `pluginDefaults`, ... as in Kestra's flow JSON).",
        "properties": {
            "id": STRING, "namespace": STRING, "revision": INTEGER, "tenantId": STRING,
            "disabled": BOOLEAN, "deleted": BOOLEAN, "updated": DATE_TIME, "source": STRING,
            "tasks": {"type": "array", "items": {"type": "object"}},
            "triggers": {"type": "array", "items": {"type": "object"}},
            "workerGroup": {"type": "object"},
        },
        "required": ["id", "namespace", "revision", "tenantId", "disabled", "deleted", "source"],
        "additionalProperties": True,
    },
    "FlowValidation": {
        "type": "array",
        "description": "A valid flow: one entry with `constraints: null`. An invalid one is answered 422 with an `Error`.",
        "items": {
            "type": "object",
            "properties": {
                "index": INTEGER, "id": STRING, "namespace": STRING,
                "flow": {"type": "string", "description": "namespace.id"}, "constraints": {"type": "null"},
            },
        },
    },
    "EffectiveWorkerGroup": {
        "type": "object",
        "description": "What a task with no workerGroup of its own, in a flow with none, resolves to: nearest "
                       "namespace (itself, then its parents), then the tenant; `key: null` is the default group.",
        "properties": {"key": nullable(STRING), "fallback": {"enum": ["WAIT", "FAIL", "CANCEL"]}},
    },
    "Namespace": {
        "type": "object",
        "properties": {
            "id": STRING, "tenantId": STRING,
            "workerGroup": nullable(ref("WorkerGroupDefaults") | {"description": "The namespace's own defaults."}),
            "effectiveWorkerGroup": ref("EffectiveWorkerGroup"),
        },
    },
    "Tenant": {
        "type": "object",
        "properties": {
            "id": STRING, "workerGroup": nullable(ref("WorkerGroupDefaults")),
            "created": DATE_TIME, "updated": DATE_TIME,
        },
    },
    "AliveWorker": {
        "type": "object",
        "properties": {
            "hostname": STRING, "lastHeartbeat": DATE_TIME, "pid": INTEGER, "concurrency": INTEGER,
            "running": INTEGER,
        },
    },
    "WorkerGroupHealth": {
        "type": "object",
        "properties": {
            "aliveWorkers": {"type": "array", "items": ref("AliveWorker")},
            "queued": {"type": "integer", "description": "Task runs CREATED for this group, waiting for a worker."},
            "running": {"type": "integer", "description": "Task runs RUNNING on this group."},
        },
    },
    "WorkerGroup": {
        "type": "object",
        "properties": {
            "key": STRING, "description": STRING,
            "allowedTenants": {"type": "array", "items": STRING, "description": "Empty: every tenant."},
            "health": ref("WorkerGroupHealth"), "created": DATE_TIME, "updated": DATE_TIME,
        },
    },
    **_request_schemas(NamespaceBody, TenantBody, WorkerGroupCreateBody, WorkerGroupUpdateBody),
}


def _parameter(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": STRING, "description": description}


TENANT = _parameter("tenant", "Tenant key; `main` is the default tenant.")
NAMESPACE = _parameter("namespace", "Dotted namespace, e.g. `company.team`.")
FLOW_ID = _parameter("id", "Flow id.")
GROUP_KEY = _parameter("key", "Worker group key (its Celery queue).")

YAML_BODY = {
    "required": True,
    "description": "A flow document in YAML (any content type is read as UTF-8 text).",
    "content": {"application/x-yaml": {"schema": STRING}},
}

ERRORS = {
    "400": "Malformed body (not UTF-8, not JSON)",
    "401": "Missing or invalid bearer token",
    "404": "Unknown tenant, flow or worker group",
    "405": "Method not allowed here",
    "409": "Already exists",
    "422": "Invalid input: located faults",
}


def operation(summary: str, tag: str, *, ok: dict | None, body: dict | None = None, errors: str = "401 404 422",
              status: str = "200", secured: bool = True) -> dict:
    responses = {status: {"description": "OK" if status == "200" else "No content"}}
    if ok is not None:
        responses[status] |= json_content(ok)
    for code in errors.split():
        responses[code] = {"description": ERRORS[code]} | json_content(ref("Error"))
    op = {"summary": summary, "tags": [tag], "responses": responses}
    if body is not None:
        op["requestBody"] = body
    if not secured:
        op["security"] = []
    return op


def json_body(schema_name: str) -> dict:
    return {"required": True} | json_content(ref(schema_name))


def array_of(name: str) -> dict:
    return {"type": "array", "items": ref(name)}


FLOW_PATH = [TENANT, NAMESPACE, FLOW_ID]

PATHS: dict = {
    "/api/v1/openapi.json": {
        "get": operation("This document", "Meta", ok={"type": "object"}, errors="", secured=False),
    },
    "/api/v1/{tenant}/flows": {
        "parameters": [TENANT],
        "post": operation(
            "Create a flow, or a new revision of it (an unchanged source changes nothing)", "Flows",
            ok=ref("Flow"), body=YAML_BODY, errors="400 401 404 422",
        ),
    },
    "/api/v1/{tenant}/flows/validate": {
        "parameters": [TENANT],
        "post": operation(
            "Validate a flow without storing it (schema, expressions, worker groups and tenant access)", "Flows",
            ok=ref("FlowValidation"), body=YAML_BODY, errors="400 401 404 422",
        ),
    },
    "/api/v1/{tenant}/flows/{namespace}/{id}": {
        "parameters": FLOW_PATH,
        "get": operation("Get a flow", "Flows", ok=ref("Flow"), errors="401 404"),
        "put": operation(
            "Update a flow; the document must declare the same namespace and id", "Flows",
            ok=ref("Flow"), body=YAML_BODY, errors="400 401 404 422",
        ),
        "delete": operation("Delete a flow (its revisions are kept)", "Flows", ok=None, status="204", errors="401 404"),
    },
    "/api/v1/{tenant}/flows/{namespace}/{id}/revisions": {
        "parameters": FLOW_PATH,
        "get": operation("Every revision of a flow, oldest first", "Flows", ok=array_of("Flow"), errors="401 404"),
    },
    "/api/v1/{tenant}/namespaces/{namespace}": {
        "parameters": [TENANT, NAMESPACE],
        "get": operation("A namespace's own worker-group defaults and the effective ones", "Namespaces",
                         ok=ref("Namespace"), errors="401 404"),
        "put": operation(
            "Replace a namespace's worker-group defaults (`{}` or `workerGroup: null` clears them)", "Namespaces",
            ok=ref("Namespace"), body=json_body("NamespaceBody"), errors="400 401 404 422",
        ),
    },
    "/api/v1/tenants": {
        "get": operation("List tenants", "Tenants", ok=array_of("Tenant"), errors="401"),
        "post": operation("Create a tenant", "Tenants", ok=ref("Tenant"), body=json_body("TenantBody"),
                          errors="400 401 409 422"),
    },
    "/api/v1/tenants/{tenant}": {
        "parameters": [TENANT],
        "get": operation("Get a tenant", "Tenants", ok=ref("Tenant"), errors="401 404"),
        "put": operation("Replace a tenant's worker-group defaults", "Tenants", ok=ref("Tenant"),
                         body=json_body("TenantBody"), errors="400 401 404 422"),
    },
    "/api/v1/instance/workergroups": {
        "get": operation("List worker groups with their health", "Worker groups", ok=array_of("WorkerGroup"),
                         errors="401"),
        "post": operation(
            "Create a worker group (`default`, `executor` and `scheduler` are reserved)", "Worker groups",
            ok=ref("WorkerGroup"), body=json_body("WorkerGroupCreateBody"), errors="400 401 409 422",
        ),
    },
    "/api/v1/instance/workergroups/{key}": {
        "parameters": [GROUP_KEY],
        "get": operation("Get a worker group with its health", "Worker groups", ok=ref("WorkerGroup"),
                         errors="401 404"),
        "put": operation(
            "Update a worker group: only the properties sent change", "Worker groups",
            ok=ref("WorkerGroup"), body=json_body("WorkerGroupUpdateBody"), errors="400 401 404 422",
        ),
        "delete": operation("Delete a worker group", "Worker groups", ok=None, status="204", errors="401 404"),
    },
    # Executions: add "/api/v1/{tenant}/executions/..." operations here.
}


def openapi_document() -> dict:
    return copy.deepcopy({
        "openapi": "3.1.0",
        "info": {
            "title": "Worker groups for Celery",
            "version": "1",
            "description": "Kestra-style flows whose tasks run on Celery worker groups. Every endpoint but this "
                           "document needs `Authorization: Bearer <token>` (`python manage.py token create USER`).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    })
