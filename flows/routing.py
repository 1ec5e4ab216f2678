"""Worker-group resolution (SPEC §5): task → flow → namespace → tenant → default group."""
from dataclasses import dataclass

from .durations import parse_duration
from .expressions import ExpressionError, render
from .models import Tenant
from .schema import FlowDocument
from .selectors import namespace_defaults


@dataclass(frozen=True)
class Route:
    key: str  # '' is the default worker group
    fallback: str
    max_wait_seconds: float | None


class RoutingError(Exception):
    pass


def route_resolve(*, holder, document: FlowDocument, tenant: Tenant, context: dict, namespace_cache: dict | None = None) -> Route:
    """`holder` is a task or polling trigger, with pluginDefaults already applied to it."""
    own = getattr(holder, "workerGroup", None)
    flow_level = document.workerGroup
    key_template = (own.key if own else None) or (flow_level.key if flow_level else None)
    fallback = (own.fallback if own else None) or (flow_level.fallback if flow_level else None)
    max_wait = (own.maxWait if own else None) or (flow_level.maxWait if flow_level else None)
    if not key_template or not fallback:
        if namespace_cache is not None and document.namespace in namespace_cache:
            ns_key, ns_fallback = namespace_cache[document.namespace]
        else:
            ns_key, ns_fallback = namespace_defaults(tenant, document.namespace)
            if namespace_cache is not None:
                namespace_cache[document.namespace] = (ns_key, ns_fallback)
        key_template = key_template or ns_key or tenant.worker_group_key
        fallback = fallback or ns_fallback or tenant.fallback
    try:
        key = str(render(key_template or "", context)).strip()
    except ExpressionError as error:
        raise RoutingError(f"workerGroup.key: {error}") from None
    if key == "default":
        key = ""
    try:
        seconds = parse_duration(str(render(max_wait, context))).total_seconds() if max_wait else None
    except (ExpressionError, ValueError) as error:
        raise RoutingError(f"workerGroup.maxWait: {error}") from None
    return Route(key=key, fallback=fallback or "WAIT", max_wait_seconds=seconds)
