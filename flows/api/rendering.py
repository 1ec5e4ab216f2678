"""Models to JSON, and the one function that renders every error."""
from django.http import JsonResponse

from flows.definition import parse_flow_cached
from flows.errors import UserError


def json_response(data, status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status, safe=False, json_dumps_params={"ensure_ascii": False})


def error_response(error: UserError) -> JsonResponse:
    """Every API error: `{"message": ..., "errors": [{message, path, line, column}]}` with its status."""
    response = json_response(error.as_dict(), status=error.status)
    if error.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _date(value):
    return value.isoformat() if value else None


def _worker_group(key: str, fallback: str) -> dict | None:
    if not key and not fallback:
        return None
    return {"key": key or None, "fallback": fallback or None}


def _document(source: str) -> dict:
    """The parsed flow as Kestra shows it; stored sources always parse, but never fail a read on it."""
    try:
        document = parse_flow_cached(source).document
    except UserError:
        return {}
    return document.model_dump(mode="json", by_alias=True, exclude_none=True)


def flow_json(flow) -> dict:
    return {
        **_document(flow.source),
        "id": flow.flow_id,
        "namespace": flow.namespace,
        "revision": flow.revision,
        "tenantId": flow.tenant.key,
        "disabled": flow.disabled,
        "deleted": flow.deleted,
        "updated": _date(flow.updated),
        "source": flow.source,
    }


def flow_revision_json(revision) -> dict:
    flow = revision.flow
    document = _document(revision.source)
    return {
        **document,
        "id": flow.flow_id,
        "namespace": flow.namespace,
        "revision": revision.revision,
        "tenantId": flow.tenant.key,
        "disabled": document.get("disabled", False),
        "deleted": False,
        "updated": _date(revision.created),
        "source": revision.source,
    }


def flow_validation_json(parsed) -> list[dict]:
    """Kestra's validate answer: one entry per flow document, `constraints` null when valid."""
    return [{
        "index": 0,
        "id": parsed.flow_id,
        "namespace": parsed.namespace,
        "flow": f"{parsed.namespace}.{parsed.flow_id}",
        "constraints": None,
    }]


def tenant_json(tenant) -> dict:
    return {
        "id": tenant.key,
        "workerGroup": _worker_group(tenant.worker_group_key, tenant.fallback),
        "created": _date(tenant.created),
        "updated": _date(tenant.updated),
    }


def namespace_json(tenant, name: str, namespace, effective: tuple[str, str]) -> dict:
    """Own settings (null when unset) and what tasks of the namespace fall back to (key null = default group)."""
    key, fallback = effective
    return {
        "id": name,
        "tenantId": tenant.key,
        "workerGroup": _worker_group(namespace.worker_group_key, namespace.fallback) if namespace else None,
        "effectiveWorkerGroup": {"key": key or None, "fallback": fallback},
    }


def worker_group_json(group, health: dict) -> dict:
    return {
        "key": group.key,
        "description": group.description,
        "allowedTenants": sorted(tenant.key for tenant in group.allowed_tenants.all()),
        "health": health,
        "created": _date(group.created),
        "updated": _date(group.updated),
    }
