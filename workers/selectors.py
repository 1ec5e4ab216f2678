from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from flows.errors import NotFound
from flows.models import State, TaskRun, Tenant

from .models import Worker, WorkerGroup

DEFAULT_GROUP = "default"


def queue_for_group(key: str) -> str:
    """The default worker group has no key; its queue is `default`."""
    return key or DEFAULT_GROUP


def alive_since():
    return timezone.now() - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_INTERVAL)


def alive_workers(group_key: str | None = None) -> list[Worker]:
    workers = list(Worker.objects.filter(last_heartbeat__gte=alive_since()))
    if group_key is None:
        return workers
    queue = queue_for_group(group_key)
    return [worker for worker in workers if queue in worker.groups]


def group_has_alive_worker(group_key: str) -> bool:
    return bool(alive_workers(group_key))


def worker_group_allows(group: WorkerGroup, tenant: Tenant) -> bool:
    allowed = [t.pk for t in group.allowed_tenants.all()]
    return not allowed or tenant.pk in allowed


def worker_group_problem(key: str, tenant: Tenant) -> str | None:
    """Why `tenant` cannot run on group `key`, or None when it can. The default group is open to all."""
    if not key:
        return None
    group = WorkerGroup.objects.filter(key=key).prefetch_related("allowed_tenants").first()
    if group is None:
        return f"worker group '{key}' does not exist"
    if not worker_group_allows(group, tenant):
        return f"worker group '{key}' does not allow tenant '{tenant.key}'"
    return None


def worker_group_health(keys: list[str] | None = None) -> dict[str, dict]:
    """Alive workers and queued/running task runs per group key ('' is the default group)."""
    workers = alive_workers()
    counts = TaskRun.objects.filter(state__in=[State.CREATED, State.RUNNING])
    if keys is not None:
        counts = counts.filter(worker_group__in=keys)
    counts = counts.values("worker_group").annotate(
        queued=Count("id", filter=Q(state=State.CREATED)), running=Count("id", filter=Q(state=State.RUNNING))
    )
    by_group = {row["worker_group"]: row for row in counts}
    wanted = keys if keys is not None else sorted({""} | set(WorkerGroup.objects.values_list("key", flat=True)))
    health = {}
    for key in wanted:
        queue = queue_for_group(key)
        members = [w for w in workers if queue in w.groups]
        health[key] = {
            "aliveWorkers": [
                {"hostname": w.hostname, "lastHeartbeat": w.last_heartbeat.isoformat(), "pid": w.pid,
                 "concurrency": w.concurrency, "running": w.running}
                for w in members
            ],
            "queued": by_group.get(key, {}).get("queued", 0),
            "running": by_group.get(key, {}).get("running", 0),
        }
    return health


def worker_group_list() -> list[WorkerGroup]:
    return list(WorkerGroup.objects.prefetch_related("allowed_tenants"))


def worker_group_get(key: str) -> WorkerGroup:
    group = WorkerGroup.objects.filter(key=key).prefetch_related("allowed_tenants").first()
    if group is None:
        raise NotFound(f"worker group '{key}' does not exist")
    return group
