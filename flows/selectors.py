from .errors import NotFound
from .models import Flow, Namespace, Tenant

DEFAULT_TENANT = "main"


def tenant_get(key: str) -> Tenant:
    tenant = Tenant.objects.filter(key=key).first()
    if tenant is None:
        if key == DEFAULT_TENANT:
            tenant, _ = Tenant.objects.get_or_create(key=DEFAULT_TENANT)
            return tenant
        raise NotFound(f"tenant '{key}' does not exist")
    return tenant


def namespace_ancestors(name: str) -> list[str]:
    """`company.team.ml` → [`company.team.ml`, `company.team`, `company`]: nearest first."""
    parts = name.split(".")
    return [".".join(parts[:size]) for size in range(len(parts), 0, -1)]


def namespace_defaults(tenant: Tenant, name: str) -> tuple[str, str]:
    """(worker group key, fallback) of the nearest namespace, itself included, that sets each."""
    rows = {ns.name: ns for ns in Namespace.objects.filter(tenant=tenant, name__in=namespace_ancestors(name))}
    key = fallback = ""
    for candidate in namespace_ancestors(name):
        namespace = rows.get(candidate)
        if namespace is None:
            continue
        key = key or namespace.worker_group_key
        fallback = fallback or namespace.fallback
    return key, fallback


def flow_get(tenant: Tenant, namespace: str, flow_id: str) -> Flow:
    flow = Flow.objects.filter(tenant=tenant, namespace=namespace, flow_id=flow_id, deleted=False).first()
    if flow is None:
        raise NotFound(f"flow '{namespace}.{flow_id}' does not exist in tenant '{tenant.key}'")
    return flow


def tenant_list() -> list[Tenant]:
    return list(Tenant.objects.all())


def namespace_find(tenant: Tenant, name: str) -> Namespace | None:
    """The namespace's own settings row; a namespace without one exists implicitly (as in Kestra)."""
    return Namespace.objects.filter(tenant=tenant, name=name).first()


def namespace_effective_defaults(tenant: Tenant, name: str) -> tuple[str, str]:
    """What a task with no workerGroup of its own (nor its flow) resolves to: namespaces, tenant, default."""
    key, fallback = namespace_defaults(tenant, name)
    return key or tenant.worker_group_key, fallback or tenant.fallback or "WAIT"


def flow_revisions(flow: Flow) -> list:
    """Every kept revision of a flow, oldest first."""
    return list(flow.revisions.order_by("revision"))
