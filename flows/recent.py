"""Routing reads that the engine remembers for ROUTING_CACHE_SECONDS, in each process.

Each new task run is routed (docs/routing.md): its namespace's defaults, whether its group exists
and allows the tenant, whether the group has an alive worker. Read for every step, they were a
quarter of a sequential step's cost; remembered for a second, a chain of steps reads them once.

What is remembered can only err on the side the rules already allow for:
- a group that allows the tenant is remembered; a refusal (no such group, tenant not allowed) is
  read again each time, so a new group or a newly allowed tenant is seen at once;
- a group is remembered alive only until its last known heartbeat is too old by the liveness rule
  (docs/guarantees.md), and a group not alive (no worker, or drained: docs/operations.md) is read
  again each time: a worker that starts is seen at once, a worker that stops, leaves or is drained
  may still count for up to ROUTING_CACHE_SECONDS, as if that had happened just after the task run
  was published (the reconciler then applies the fallback);
- a namespace's defaults changed in another process apply within ROUTING_CACHE_SECONDS.
The reconciler and the scheduler tick never use this: they read afresh on every pass.
"""
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import Tenant
from .routing import worker_group_problem
from .selectors import OUTAGE_GRACE, alive_workers_read, group_drains, namespace_defaults, worker_drained

_remembered: dict = {}


def forget() -> None:
    """Everything this process remembered is read again (the tests start each test this way)."""
    _remembered.clear()


def _recall(key):
    entry = _remembered.get(key)
    if entry is not None and entry[0] > time.monotonic():
        return entry
    return None


def _remember(key, value) -> None:
    now = time.monotonic()
    if len(_remembered) > 10_000:  # keys are namespaces and groups: only a change of data set grows it
        for stale in [k for k, (until, _) in _remembered.items() if until <= now]:
            del _remembered[stale]
    _remembered[key] = (now + settings.ROUTING_CACHE_SECONDS, value)


def namespace_defaults_recent(tenant: Tenant, name: str) -> tuple[str, str]:
    key = ("namespace", tenant.pk, name)
    entry = _recall(key)
    if entry is not None:
        return entry[1]
    defaults = namespace_defaults(tenant, name)
    _remember(key, defaults)
    return defaults


def worker_group_problem_recent(group_key: str, tenant: Tenant) -> str | None:
    key = ("allowed", group_key, tenant.pk)
    if _recall(key) is not None:
        return None
    problem = worker_group_problem(group_key, tenant)
    if problem is None:
        _remember(key, True)
    return problem


def queue_alive_recent(queue: str) -> bool:
    """True while some worker consuming `queue` is alive by the rule on its last heartbeat read."""
    now = timezone.now()
    entry = _recall("alive")
    if entry is not None and now < entry[1].get(queue, now):
        return True
    workers, steady = alive_workers_read()
    drains = group_drains()
    lasting = 3 * timedelta(seconds=settings.WORKER_HEARTBEAT_INTERVAL) + (timedelta(0) if steady else OUTAGE_GRACE)
    alive_until: dict = {}
    for worker in workers:
        for consumed in worker.groups:
            if not worker_drained(worker, consumed, drains):  # a drained group has no alive worker
                until = worker.last_heartbeat + lasting
                alive_until[consumed] = max(alive_until.get(consumed, until), until)
    _remember("alive", alive_until)
    return now < alive_until.get(queue, now)
