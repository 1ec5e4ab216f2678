"""Worker-group routing: which group a task run (or polling trigger) goes to, and whether its tenant
may use it. The rules, for users, are in docs/routing.md."""
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Exists, OuterRef

from .durations import parse_duration
from .expressions import ExpressionError, render
from .models import DEFAULT_QUEUE, Tenant, WorkerGroup
from .schema import FlowDocument
from .selectors import namespace_defaults


@dataclass(frozen=True)
class Route:
    key: str  # '' is the default worker group
    fallback: str
    max_wait_seconds: float | None


class RoutingError(Exception):
    pass


def route_resolve(*, holder, document: FlowDocument, tenant: Tenant, context: dict,
                  namespace_defaults_of: Callable[[Tenant, str], tuple[str, str]] = namespace_defaults) -> Route:
    """First match wins: `holder`'s own workerGroup (a task or polling trigger, pluginDefaults already
    applied), the flow's, the nearest namespace's (`namespace_defaults_of`, which a caller may make
    remember), the tenant's, else the default group."""
    own = getattr(holder, "workerGroup", None)
    flow_level = document.workerGroup
    key_template = (own.key if own else None) or (flow_level.key if flow_level else None)
    fallback = (own.fallback if own else None) or (flow_level.fallback if flow_level else None)
    max_wait = (own.maxWait if own else None) or (flow_level.maxWait if flow_level else None)
    if not key_template or not fallback:
        ns_key, ns_fallback = namespace_defaults_of(tenant, document.namespace)
        key_template = key_template or ns_key or tenant.worker_group_key
        fallback = fallback or ns_fallback or tenant.fallback
    try:
        key = str(render(key_template or "", context)).strip()
    except ExpressionError as error:
        raise RoutingError(f"workerGroup.key: {error}") from None
    if key == DEFAULT_QUEUE:
        key = ""
    try:
        seconds = parse_duration(str(render(max_wait, context))).total_seconds() if max_wait else None
    except (ExpressionError, ValueError) as error:
        raise RoutingError(f"workerGroup.maxWait: {error}") from None
    return Route(key=key, fallback=fallback or "WAIT", max_wait_seconds=seconds)


def route_describe(*, holder, document: FlowDocument, tenant: Tenant, own_key_declared: bool,
                   namespace_cache: dict, own_rule: str = "task") -> tuple[str, str]:
    """(group, rule) that route_resolve's rules give `holder` before an execution exists: the rule is
    where the key comes from (task, pluginDefaults, flow, namespace, tenant, default); an expression
    key is shown as written, since only an execution's context resolves it. '' is the default group.
    `own_key_declared`: the holder's YAML itself names a key (else pluginDefaults gave it), a rule
    called `own_rule` ("task", or "trigger" for a polling trigger)."""
    own = getattr(holder, "workerGroup", None)
    flow_level = document.workerGroup
    if own and own.key:
        key, rule = own.key, own_rule if own_key_declared else "pluginDefaults"
    elif flow_level and flow_level.key:
        key, rule = flow_level.key, "flow"
    else:
        if document.namespace not in namespace_cache:
            namespace_cache[document.namespace] = namespace_defaults(tenant, document.namespace)
        namespace_key = namespace_cache[document.namespace][0]
        key, rule = (namespace_key, "namespace") if namespace_key else (tenant.worker_group_key, "tenant")
    key = key.strip()
    if not key:
        return "", "default"
    return ("" if key == DEFAULT_QUEUE else key), rule


def worker_group_allows(group: WorkerGroup, tenant: Tenant) -> bool:
    allowed = [t.pk for t in group.allowed_tenants.all()]
    return not allowed or tenant.pk in allowed


def worker_group_problem(key: str, tenant: Tenant) -> str | None:
    """Why `tenant` cannot run on group `key`, or None when it can. The default group is open to all.
    One query: whether the group exists, restricts its tenants, and lists this one."""
    if not key:
        return None
    allowed = WorkerGroup.allowed_tenants.through.objects.filter(workergroup=OuterRef("pk"))
    group = (
        WorkerGroup.objects.filter(key=key)
        .annotate(restricted=Exists(allowed), allows=Exists(allowed.filter(tenant=tenant.pk)))
        .values("restricted", "allows")
        .first()
    )
    if group is None:
        return f"worker group '{key}' does not exist"
    if group["restricted"] and not group["allows"]:
        return f"worker group '{key}' does not allow tenant '{tenant.key}'"
    return None
