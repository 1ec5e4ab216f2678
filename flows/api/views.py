"""Endpoint handlers: parse the input, call one service (or selector), render the result.

Each is wired to its URL and HTTP method by `urls.py` through `http.route`, which handles
auth, 405s and errors, so a handler only raises UserError and returns a response.
"""
from django.http import HttpResponse

from flows import engine, selectors, services
from flows.errors import NotFound, UserError
from flows.models import State
from flows import selectors as worker_selectors
from flows import services as worker_services

from . import rendering
from .bodies import (
    NamespaceBody, TenantBody, WorkerGroupCreateBody, WorkerGroupUpdateBody, flag_query, inputs_body, int_query,
    json_body, labels_query, same_as_path, text_body,
)
from .openapi import openapi_document
from .rendering import json_response


def openapi(request):
    return json_response(openapi_document())


def not_found(request, path: str = ""):
    return rendering.error_response(NotFound(f"no API endpoint at {request.path}: see /api/v1/openapi.json"))


# --- flows ------------------------------------------------------------------------------------


def flow_create(request, tenant: str):
    flow = services.flow_upload(source=text_body(request), tenant_key=tenant)
    return json_response(rendering.flow_json(flow))


def flow_validate(request, tenant: str):
    parsed = services.flow_validate(source=text_body(request), tenant_key=tenant)
    return json_response(rendering.flow_validation_json(parsed))


def flow_get(request, tenant: str, namespace: str, flow_id: str):
    flow = selectors.flow_get(selectors.tenant_get(tenant), namespace, flow_id)
    return json_response(rendering.flow_json(flow))


def flow_update(request, tenant: str, namespace: str, flow_id: str):
    selectors.flow_get(selectors.tenant_get(tenant), namespace, flow_id)  # PUT updates; POST creates
    flow = services.flow_upload(source=text_body(request), tenant_key=tenant, namespace=namespace, flow_id=flow_id)
    return json_response(rendering.flow_json(flow))


def flow_delete(request, tenant: str, namespace: str, flow_id: str):
    services.flow_delete(tenant_key=tenant, namespace=namespace, flow_id=flow_id)
    return HttpResponse(status=204)


def flow_revisions(request, tenant: str, namespace: str, flow_id: str):
    flow = selectors.flow_get(selectors.tenant_get(tenant), namespace, flow_id)
    return json_response([rendering.flow_revision_json(revision) for revision in selectors.flow_revisions(flow)])


# --- namespaces -------------------------------------------------------------------------------


def namespace_get(request, tenant: str, namespace: str):
    tenant_row = selectors.tenant_get(tenant)
    return json_response(rendering.namespace_json(
        tenant_row, namespace, selectors.namespace_find(tenant_row, namespace),
        selectors.namespace_effective_defaults(tenant_row, namespace),
    ))


def namespace_update(request, tenant: str, namespace: str):
    body = json_body(request, NamespaceBody)
    same_as_path(body.id, namespace, path="id")
    services.namespace_set(tenant_key=tenant, name=namespace, **body.defaults())
    return namespace_get(request, tenant, namespace)


# --- tenants ----------------------------------------------------------------------------------


def tenant_list(request):
    return json_response([rendering.tenant_json(tenant) for tenant in selectors.tenant_list()])


def tenant_create(request):
    body = json_body(request, TenantBody)
    tenant = services.tenant_create(key=body.tenant_key(), **body.defaults())
    return json_response(rendering.tenant_json(tenant))


def tenant_get(request, tenant: str):
    return json_response(rendering.tenant_json(selectors.tenant_get(tenant)))


def tenant_update(request, tenant: str):
    body = json_body(request, TenantBody)
    if body.id is not None or body.key is not None:
        same_as_path(body.tenant_key(), tenant, path="id")
    tenant_row = services.tenant_update(key=tenant, **body.defaults())
    return json_response(rendering.tenant_json(tenant_row))


# --- worker groups ----------------------------------------------------------------------------


def _worker_group_response(group):
    health = worker_selectors.worker_group_health([group.key])[group.key]
    return json_response(rendering.worker_group_json(group, health))


def worker_group_list(request):
    groups = worker_selectors.worker_group_list()
    health = worker_selectors.worker_group_health([group.key for group in groups])
    return json_response([rendering.worker_group_json(group, health[group.key]) for group in groups])


def worker_group_create(request):
    body = json_body(request, WorkerGroupCreateBody)
    group = worker_services.worker_group_create(
        key=body.key, description=body.description, allowed_tenants=body.allowedTenants,
    )
    return _worker_group_response(group)


def worker_group_get(request, key: str):
    return _worker_group_response(worker_selectors.worker_group_get(key))


def worker_group_update(request, key: str):
    body = json_body(request, WorkerGroupUpdateBody)
    same_as_path(body.key, key, path="key")
    group = worker_services.worker_group_update(
        key=key, description=body.description, allowed_tenants=body.allowedTenants,
    )
    return _worker_group_response(group)


def worker_group_delete(request, key: str):
    worker_services.worker_group_delete(key=key)
    return HttpResponse(status=204)


# --- executions -------------------------------------------------------------------------------

WAIT_TIMEOUT = 600.0  # seconds `?wait=true` waits for an execution to end before answering as it is


def _execution_response(execution, status: int = 200):
    return json_response(
        rendering.execution_json(execution, selectors.execution_task_runs(execution)), status=status,
    )


def execution_create(request, tenant: str, namespace: str, flow_id: str):
    wait = flag_query(request, "wait")
    execution = engine.execution_create(
        tenant_key=tenant, namespace=namespace, flow_id=flow_id, inputs=inputs_body(request),
        labels=labels_query(request), trigger=None,
    )
    if wait:
        execution = selectors.execution_wait(execution, timeout=WAIT_TIMEOUT)
    return _execution_response(execution)


def execution_get(request, tenant: str, execution_id):
    return _execution_response(selectors.execution_get(selectors.tenant_get(tenant), execution_id))


def execution_search(request, tenant: str):
    states = request.GET.getlist("state")
    unknown = [state for state in states if state not in State.values]
    if unknown:
        raise UserError(f"unknown state '{unknown[0]}' (one of {', '.join(State.values)})", path="state")
    executions, total = selectors.execution_search(
        tenant=selectors.tenant_get(tenant),
        namespace=request.GET.get("namespace", "").strip(),
        flow_id=request.GET.get("flowId", "").strip(),
        states=states,
        page=int_query(request, "page", default=1, low=1),
        size=int_query(request, "size", default=25, low=1, high=500),
    )
    results = [rendering.execution_json(item, selectors.execution_task_runs(item)) for item in executions]
    return json_response({"results": results, "total": total})


def execution_kill(request, tenant: str, execution_id):
    execution = selectors.execution_get(selectors.tenant_get(tenant), execution_id)
    engine.execution_kill(execution_id=execution.id)
    execution.refresh_from_db()
    return _execution_response(execution, status=202)


def execution_logs(request, tenant: str, execution_id):
    execution = selectors.execution_get(selectors.tenant_get(tenant), execution_id)
    min_level = request.GET.get("minLevel", "").strip().upper()
    if min_level and min_level not in selectors.LOG_LEVELS:
        raise UserError(f"unknown level '{min_level}' (one of {', '.join(selectors.LOG_LEVELS)})", path="minLevel")
    lines = selectors.execution_logs(execution, min_level=min_level)
    return json_response([rendering.log_json(line) for line in lines])
