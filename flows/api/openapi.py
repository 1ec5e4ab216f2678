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
    "StateHistory": {"type": "object", "properties": {"state": STRING, "date": DATE_TIME}},
    "State": {
        "type": "object",
        "description": "Kestra's state: `current` is one of CREATED, RUNNING, SUCCESS, WARNING, FAILED, KILLING, "
                       "KILLED, CANCELLED, SKIPPED, RETRYING; `duration` (ISO-8601) runs until `endDate`.",
        "properties": {
            "current": STRING, "histories": {"type": "array", "items": ref("StateHistory")},
            "startDate": nullable(DATE_TIME), "endDate": nullable(DATE_TIME), "duration": nullable(STRING),
        },
    },
    "TaskRunAttempt": {
        "type": "object",
        "properties": {"attempt": INTEGER, "workerId": nullable(STRING), "state": ref("State")},
    },
    "TaskRun": {
        "type": "object",
        "properties": {
            "id": STRING, "executionId": STRING, "parentTaskRunId": nullable(STRING), "taskId": STRING,
            "value": nullable(STRING),
            "workerGroup": nullable({
                "type": "object",
                "description": "The resolved group (`key: null`: the default group) and fallback; null for "
                               "flowable tasks, which the executor runs itself.",
                "properties": {"key": nullable(STRING), "fallback": {"enum": ["WAIT", "FAIL", "CANCEL"]}},
            }),
            "workerId": nullable({"type": "string", "description": "Hostname (`<group>@<host>`) of the worker "
                                                                   "running or that ran the current attempt."}),
            "attempts": {"type": "array", "items": ref("TaskRunAttempt")},
            "state": ref("State"), "outputs": {"type": "object"}, "error": nullable(STRING),
        },
    },
    "Execution": {
        "type": "object",
        "properties": {
            "id": STRING, "namespace": STRING, "flowId": STRING, "flowRevision": INTEGER, "tenantId": STRING,
            "inputs": {"type": "object"},
            "labels": {"type": "array", "items": {"type": "object", "properties": {"key": STRING, "value": STRING}}},
            "trigger": nullable({"type": "object", "description": "The trigger that started it: `id`, `type`, "
                                                                  "`variables`; null when started by hand."}),
            "state": ref("State"), "taskRunList": {"type": "array", "items": ref("TaskRun")},
        },
    },
    "ExecutionSearch": {
        "type": "object",
        "properties": {"results": {"type": "array", "items": ref("Execution")}, "total": INTEGER},
    },
    "LogEntry": {
        "type": "object",
        "properties": {
            "timestamp": DATE_TIME, "level": {"enum": ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]},
            "message": STRING, "executionId": STRING, "taskRunId": nullable(STRING), "taskId": nullable(STRING),
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
EXECUTION_ID = _parameter("execution_id", "Execution id (a UUID).")


def _query(name: str, schema: dict, description: str, *, repeated: bool = False) -> dict:
    if repeated:
        schema = {"type": "array", "items": schema}
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description,
            **({"style": "form", "explode": True} if repeated else {})}

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
    "409": "Already exists, or a conflicting state",
    "415": "Unsupported content type",
    "422": "Invalid input: located faults",
}


def operation(summary: str, tag: str, *, ok: dict | None, body: dict | None = None, errors: str = "401 404 422",
              status: str = "200", secured: bool = True) -> dict:
    responses = {status: {"description": {"200": "OK", "202": "Accepted", "204": "No content"}[status]}}
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
    "/api/v1/{tenant}/executions/{namespace}/{id}": {
        "parameters": FLOW_PATH,
        "post": operation(
            "Start an execution of the flow's current revision; bad inputs are refused (422, faults at "
            "`inputs.<id>`) and nothing is created", "Executions",
            ok=ref("Execution"), errors="400 401 404 409 415 422",
            body={
                "required": False,
                "description": "Inputs as form fields or as a JSON object of input id to value; values are typed "
                               "by the flow's input declarations.",
                "content": {
                    "multipart/form-data": {"schema": {"type": "object", "additionalProperties": STRING}},
                    "application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": STRING}},
                    "application/json": {"schema": {"type": "object"}},
                },
            },
        ) | {"parameters": [
            _query("labels", STRING, "A label `key:value`; repeat for more.", repeated=True),
            _query("wait", BOOLEAN, "Answer only once the execution has ended (at most 10 minutes)."),
        ]},
    },
    "/api/v1/{tenant}/executions/search": {
        "parameters": [TENANT],
        "get": operation(
            "Search executions, newest first", "Executions", ok=ref("ExecutionSearch"), errors="401 404 422",
        ) | {"parameters": [
            _query("namespace", STRING, "The namespace and its children."),
            _query("flowId", STRING, "Flow id."),
            _query("state", STRING, "Current state; repeat for several.", repeated=True),
            _query("page", {"type": "integer", "minimum": 1, "default": 1}, "1-based page."),
            _query("size", {"type": "integer", "minimum": 1, "maximum": 500, "default": 25}, "Page size."),
        ]},
    },
    "/api/v1/{tenant}/executions/{execution_id}": {
        "parameters": [TENANT, EXECUTION_ID],
        "get": operation("An execution with its task runs (group, worker, attempts, outputs)", "Executions",
                         ok=ref("Execution"), errors="401 404"),
    },
    "/api/v1/{tenant}/executions/{execution_id}/kill": {
        "parameters": [TENANT, EXECUTION_ID],
        "delete": operation(
            "Kill an execution: running task runs are stopped and nothing new starts (409 if it has ended)",
            "Executions", ok=ref("Execution"), status="202", errors="401 404 409",
        ),
    },
    "/api/v1/{tenant}/executions/{execution_id}/logs": {
        "parameters": [TENANT, EXECUTION_ID],
        "get": operation("An execution's log lines, oldest first", "Executions", ok=array_of("LogEntry"),
                         errors="401 404 422") | {"parameters": [
            _query("minLevel", {"enum": ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]}, "Only this level and above."),
        ]},
    },
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
