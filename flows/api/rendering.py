"""Models to JSON, and the one function that renders every error."""
from datetime import datetime

from django.http import JsonResponse
from django.utils import timezone

from flows.definition import parse_flow_cached
from flows.errors import UserError
from flows.models import TERMINAL_STATES, State


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


# --- executions -------------------------------------------------------------------------------


def _duration(start, end) -> str | None:
    """ISO-8601, as Kestra writes durations (PT1.234S); until the end, the time so far."""
    if start is None:
        return None
    seconds = max(((end or timezone.now()) - start).total_seconds(), 0.0)
    return f"PT{seconds:.3f}".rstrip("0").rstrip(".") + "S"


def _state_json(current: str, histories: list[dict], *, end) -> dict:
    """Kestra's State: it starts at its first history entry."""
    start = _parse_date(histories[0]["date"]) if histories else None
    return {
        "current": current, "histories": histories, "startDate": _date(start), "endDate": _date(end),
        "duration": _duration(start, end),
    }


def _parse_date(text: str | None):
    return datetime.fromisoformat(text) if text else None


def _attempt_json(attempt: dict) -> dict:
    """Kestra's TaskRunAttempt (plus its number) from what the workers store per attempt."""
    histories = [{"state": State.RUNNING, "date": attempt["startDate"]}] if attempt.get("startDate") else []
    if attempt.get("endDate"):
        histories.append({"state": attempt["state"], "date": attempt["endDate"]})
    return {
        "attempt": attempt.get("attempt"), "workerId": attempt.get("workerId") or None,
        "state": _state_json(attempt["state"], histories, end=_parse_date(attempt.get("endDate"))),
    }


def _attempts(run) -> list[dict]:
    """Finished attempts, then the current one if a worker has started it and not recorded it yet."""
    attempts = list(run.attempts or [])
    if run.worker_id and run.start_date and all(item.get("attempt") != run.attempt for item in attempts):
        ended = run.state in TERMINAL_STATES
        attempts.append({
            "attempt": run.attempt, "state": run.state, "workerId": run.worker_id,
            "startDate": _date(run.start_date), "endDate": _date(run.end_date) if ended else None,
        })
    return [_attempt_json(attempt) for attempt in attempts]


def taskrun_json(run, *, flowable: bool) -> dict:
    """A task run as in Kestra's `taskRunList`; `workerGroup.key` null is the default group and
    flowable task runs, run by the executor itself, have no worker group."""
    return {
        "id": str(run.id),
        "executionId": str(run.execution_id),
        "parentTaskRunId": str(run.parent_id) if run.parent_id else None,
        "taskId": run.task_id,
        "value": run.value,
        "workerGroup": None if flowable else {"key": run.worker_group or None, "fallback": run.fallback},
        "workerId": run.worker_id or None,
        "attempts": _attempts(run),
        "state": _state_json(run.state, run.state_history, end=run.end_date),
        "outputs": run.outputs,
        "error": run.error or None,
    }


def _flowable_task_ids(source: str) -> set[str]:
    try:
        return {task_id for task_id, task in parse_flow_cached(source).tasks_by_id.items() if task.flowable}
    except UserError:
        return set()


def execution_json(execution, task_runs: list) -> dict:
    flowable = _flowable_task_ids(execution.flow_revision.source)
    return {
        "id": str(execution.id),
        "namespace": execution.namespace,
        "flowId": execution.flow_id,
        "flowRevision": execution.flow_revision.revision,
        "tenantId": execution.tenant.key,
        "inputs": execution.inputs,
        "labels": [{"key": key, "value": value} for key, value in execution.labels.items()],
        "trigger": execution.trigger,
        "state": _state_json(execution.state, execution.state_history, end=execution.end_date),
        "taskRunList": [taskrun_json(run, flowable=run.task_id in flowable) for run in task_runs],
    }


def log_json(line) -> dict:
    return {
        "timestamp": _date(line.timestamp),
        "level": line.level,
        "message": line.message,
        "executionId": str(line.execution_id),
        "taskRunId": str(line.task_run_id) if line.task_run_id else None,
        "taskId": line.task_id or None,
    }
