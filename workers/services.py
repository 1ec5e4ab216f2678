import re

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from flows.errors import NotFound, UserError
from flows.models import Tenant

from .models import WORKER_GROUP_KEY_PATTERN, Worker, WorkerGroup


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not re.match(WORKER_GROUP_KEY_PATTERN, key):
        raise UserError(f"invalid worker group key '{key}': it must match {WORKER_GROUP_KEY_PATTERN}", path="key")
    if key in settings.RESERVED_WORKER_GROUP_KEYS:
        raise UserError(f"'{key}' is reserved and cannot be a worker group key", path="key")


def _tenants(keys: list[str]) -> list[Tenant]:
    tenants = []
    for key in keys:
        tenant = Tenant.objects.filter(key=key).first()
        if tenant is None:
            raise UserError(f"unknown tenant '{key}'", path="allowedTenants")
        tenants.append(tenant)
    return tenants


@transaction.atomic
def worker_group_create(*, key: str, description: str = "", allowed_tenants: list[str] | None = None) -> WorkerGroup:
    _check_key(key)
    if WorkerGroup.objects.filter(key=key).exists():
        raise UserError(f"worker group '{key}' already exists", path="key", status=409)
    tenants = _tenants(allowed_tenants or [])
    group = WorkerGroup.objects.create(key=key, description=description or "")
    group.allowed_tenants.set(tenants)
    return group


@transaction.atomic
def worker_group_update(*, key: str, description: str | None = None, allowed_tenants: list[str] | None = None) -> WorkerGroup:
    group = WorkerGroup.objects.filter(key=key).first()
    if group is None:
        raise NotFound(f"worker group '{key}' does not exist")
    if description is not None:
        group.description = description
        group.save(update_fields=["description", "updated"])
    if allowed_tenants is not None:
        group.allowed_tenants.set(_tenants(allowed_tenants))
    return group


@transaction.atomic
def worker_group_delete(*, key: str) -> None:
    deleted, _ = WorkerGroup.objects.filter(key=key).delete()
    if not deleted:
        raise NotFound(f"worker group '{key}' does not exist")


def worker_heartbeat(*, hostname: str, groups: list[str], pid: int, concurrency: int, running: int) -> None:
    now = timezone.now()
    updated = Worker.objects.filter(hostname=hostname).update(
        groups=sorted(groups), pid=pid, concurrency=concurrency, running=running, last_heartbeat=now
    )
    if not updated:
        Worker.objects.update_or_create(
            hostname=hostname,
            defaults={"groups": sorted(groups), "pid": pid, "concurrency": concurrency, "running": running,
                      "last_heartbeat": now},
        )


def worker_stopped(*, hostname: str) -> None:
    """A worker that shuts down cleanly stops counting as alive at once."""
    Worker.objects.filter(hostname=hostname).delete()
