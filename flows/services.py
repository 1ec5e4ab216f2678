"""Writes: tenants, namespaces, worker groups, workers' heartbeats, flows, API tokens and memberships.
(Executions and task runs are written by the engine, `flows/engine/`.)"""
import hashlib
import json
import re
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from . import capacity, dispatch, permissions, storage
from .definition import ParsedFlow, document_json, parse_flow
from .durations import parse_duration
from .errors import Conflict, Fault, NotFound, UserError
from .models import (
    DEFAULT_QUEUE, KEY_PATTERN, RESERVED_GROUP_KEYS, ApiToken, Flow, FlowRevision, KeyValue, Membership, Namespace,
    Role, Tenant, Worker, WorkerGroup, WorkerGroupSample, queue_for_group,
)
from .routing import worker_group_allows
from .schema import NAMESPACE_PATTERN
from .storable import contains_nul
from .selectors import (
    alive_workers, flow_get, kv_checked, kv_entries, namespace_files_root, tenant_get, worker_group_get,
    worker_group_health,
)
from .triggers import triggers_sync

FALLBACKS = ("WAIT", "FAIL", "CANCEL")
TOKEN_USE_RECORDED_EVERY = timedelta(minutes=1)
# The admin's worker-group chart (docs/admin.md): one sample per group a minute, kept a day.
SAMPLE_EVERY = timedelta(minutes=1)
SAMPLES_KEPT = timedelta(hours=24)


def _check_defaults(*, worker_group_key: str, fallback: str, tenant: Tenant | None) -> None:
    if fallback and fallback not in FALLBACKS:
        raise UserError(f"invalid fallback '{fallback}': use one of {', '.join(FALLBACKS)}", path="workerGroup.fallback")
    if worker_group_key:
        group = WorkerGroup.objects.filter(key=worker_group_key).first()
        if group is None:
            raise UserError(f"worker group '{worker_group_key}' does not exist", path="workerGroup.key")
        if tenant is not None and not worker_group_allows(group, tenant):
            raise UserError(f"worker group '{worker_group_key}' does not allow tenant '{tenant.key}'", path="workerGroup.key")


@transaction.atomic
def tenant_create(*, key: str, worker_group_key: str = "", fallback: str = "") -> Tenant:
    if not isinstance(key, str) or not re.match(KEY_PATTERN, key):
        raise UserError(f"invalid tenant key '{key}': it must match {KEY_PATTERN.pattern}", path="key")
    if Tenant.objects.filter(key=key).exists():
        raise Conflict(f"tenant '{key}' already exists", path="key")
    tenant = Tenant.objects.create(key=key)
    _check_defaults(worker_group_key=worker_group_key, fallback=fallback, tenant=tenant)
    tenant.worker_group_key = worker_group_key or ""
    tenant.fallback = fallback or ""
    tenant.save(update_fields=["worker_group_key", "fallback"])
    return tenant


@transaction.atomic
def tenant_update(*, key: str, worker_group_key: str = "", fallback: str = "") -> Tenant:
    tenant = tenant_get(key)
    _check_defaults(worker_group_key=worker_group_key, fallback=fallback, tenant=tenant)
    tenant.worker_group_key = worker_group_key or ""
    tenant.fallback = fallback or ""
    tenant.save(update_fields=["worker_group_key", "fallback", "updated"])
    return tenant


@transaction.atomic
def namespace_set(*, tenant_key: str, name: str, worker_group_key: str = "", fallback: str = "") -> Namespace:
    if not isinstance(name, str) or not re.match(NAMESPACE_PATTERN, name):
        raise UserError(f"invalid namespace '{name}': use lowercase dotted names like company.team", path="namespace")
    tenant = tenant_get(tenant_key)
    _check_defaults(worker_group_key=worker_group_key, fallback=fallback, tenant=tenant)
    namespace, _ = Namespace.objects.update_or_create(
        tenant=tenant, name=name, defaults={"worker_group_key": worker_group_key or "", "fallback": fallback or ""}
    )
    return namespace


# --- worker groups and workers -------------------------------------------------------------------


def _check_group_key(key: str) -> None:
    if not isinstance(key, str) or not re.match(KEY_PATTERN, key):
        raise UserError(f"invalid worker group key '{key}': it must match {KEY_PATTERN.pattern}", path="key")
    if key in RESERVED_GROUP_KEYS:
        raise UserError(f"'{key}' is reserved and cannot be a worker group key", path="key")


def _tenants(keys: list[str]) -> list[Tenant]:
    try:
        return [tenant_get(key) for key in keys]
    except NotFound as error:
        raise UserError(error.message, path="allowedTenants") from None


UNCHANGED = object()  # an update argument left out: the property keeps its value


def _check_limit(limit) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UserError(f"concurrency limit {limit!r} must be a whole number of at least 1, or none",
                        path="concurrencyLimit")
    return limit


@transaction.atomic
def worker_group_create(*, key: str, description: str = "", allowed_tenants: list[str] | None = None,
                        concurrency_limit: int | None = None, init_script: str = "") -> WorkerGroup:
    _check_group_key(key)
    if WorkerGroup.objects.filter(key=key).exists():
        raise Conflict(f"worker group '{key}' already exists", path="key")
    tenants = _tenants(allowed_tenants or [])
    group = WorkerGroup.objects.create(key=key, description=description or "", init_script=init_script or "",
                                       concurrency_limit=_check_limit(concurrency_limit))
    group.allowed_tenants.set(tenants)
    return group


@transaction.atomic
def worker_group_update(*, key: str, description: str | None = None, allowed_tenants: list[str] | None = None,
                        concurrency_limit=UNCHANGED, init_script: str | None = None) -> WorkerGroup:
    """Only what is given changes: an omitted `allowed_tenants` never opens a group to every tenant.
    A new concurrency limit applies at once: task runs waiting for a slot start if it is higher
    (docs/operations.md); `init_script` applies to workers that start afterwards."""
    group = WorkerGroup.objects.select_for_update().filter(key=key).first()
    if group is None:
        raise NotFound(f"worker group '{key}' does not exist")
    changed = []
    if description is not None:
        group.description, changed = description, [*changed, "description"]
    if concurrency_limit is not UNCHANGED:
        group.concurrency_limit, changed = _check_limit(concurrency_limit), [*changed, "concurrency_limit"]
    if init_script is not None:
        group.init_script, changed = init_script, [*changed, "init_script"]
    if changed:
        group.save(update_fields=[*changed, "updated"])
    if allowed_tenants is not None:
        group.allowed_tenants.set(_tenants(allowed_tenants))
    if "concurrency_limit" in changed:
        capacity.slots_hand_on(group.key, when=timezone.now())
    return group


def _alive_members(group: WorkerGroup, worker: str = "") -> list[str]:
    """The alive workers of `group` (only `worker` if named): those a drain or resume is sent to. A
    worker that is not alive is told nothing; it reads the stored drain when it starts."""
    queue = queue_for_group(group.key)
    return [w.hostname for w in alive_workers() if queue in w.groups and (not worker or w.hostname == worker)]


@transaction.atomic
def worker_group_drain(*, key: str, worker: str = "") -> list[str]:
    """The group (or one worker of it) takes no new work: its workers stop consuming the group's queue
    at once (Celery remote control) and finish what they run; the drain is stored, so a worker that
    starts meanwhile stays idle for this group until resumed. Returns the workers told."""
    group = worker_group_get(key)
    told = _alive_members(group, worker)
    if worker:
        group.drained_workers = sorted({*group.drained_workers, worker})
    else:
        group.drained = True
    group.save(update_fields=["drained", "drained_workers", "updated"])
    dispatch.send_consumer_control(dispatch.CANCEL_CONSUMER, queue=queue_for_group(key), destination=told)
    return told


@transaction.atomic
def worker_group_resume(*, key: str, worker: str = "") -> list[str]:
    """Undo a drain: the whole group (every worker drained in it too), or one worker (whose group stays
    drained if it is drained as a whole). Returns the workers told to consume the queue again."""
    group = worker_group_get(key)
    if worker:
        if worker not in group.drained_workers and not group.drained:
            raise UserError(f"worker '{worker}' is not drained in worker group '{key}'", path="worker")
        group.drained_workers = [host for host in group.drained_workers if host != worker]
    else:
        group.drained, group.drained_workers = False, []
    group.save(update_fields=["drained", "drained_workers", "updated"])
    if group.drained:
        return []
    told = [host for host in _alive_members(group, worker) if host not in group.drained_workers]
    dispatch.send_consumer_control(dispatch.ADD_CONSUMER, queue=queue_for_group(key), destination=told)
    return told


@transaction.atomic
def worker_group_delete(*, key: str) -> None:
    deleted, _ = WorkerGroup.objects.filter(key=key).delete()
    if not deleted:
        raise NotFound(f"worker group '{key}' does not exist")


def worker_heartbeat(*, hostname: str, groups: list[str], pid: int, concurrency: int, running: int,
                     resumed: bool = False, drained: list[str] = (), running_task_runs: list[str] | None = None,
                     running_seen=None) -> None:
    """`resumed`: the worker's first beat, or the first after a break (its beats failed or came late):
    `first_seen` then restarts, so it says since when the worker has been beating without a break.
    `drained`: the queues among `groups` it does not consume now. `running_task_runs`: the ids of
    the task runs its pool was running at `running_seen`."""
    now = timezone.now()
    fields = {"groups": sorted(groups), "drained": sorted(drained), "pid": pid, "concurrency": concurrency,
              "running": running, "last_heartbeat": now}
    if running_task_runs is not None:
        fields.update(running_task_runs=running_task_runs, running_seen=running_seen or now)
    if resumed:
        fields["first_seen"] = now
    if not Worker.objects.filter(hostname=hostname).update(**fields):
        Worker.objects.update_or_create(hostname=hostname, defaults=fields)


def worker_stopped(*, hostname: str) -> None:
    """A worker that shuts down cleanly stops counting as alive at once."""
    Worker.objects.filter(hostname=hostname).delete()


# --- flows -------------------------------------------------------------------------------------


def flow_validate(*, source: str, tenant_key: str) -> ParsedFlow:
    """Every check an upload makes, the worker groups included; raises UserError, stores nothing."""
    tenant = tenant_get(tenant_key)
    parsed = parse_flow(source)
    faults: list[Fault] = []
    groups = {g.key: g for g in WorkerGroup.objects.prefetch_related("allowed_tenants")}
    for key, where in parsed.literal_worker_group_keys():
        if key == DEFAULT_QUEUE:  # names the default group, as a rendered key does (docs/routing.md)
            continue
        group = groups.get(key)
        if group is None:
            message = f"worker group '{key}' does not exist"
        elif not worker_group_allows(group, tenant):
            message = f"worker group '{key}' does not allow tenant '{tenant.key}'"
        else:
            continue
        faults.append(Fault(message=message, path=where.path, line=where.line, column=where.column))
    if faults:
        raise UserError(faults)
    return parsed


def flow_upload(*, source: str, tenant_key: str, namespace: str | None = None, flow_id: str | None = None) -> Flow:
    """Store a flow; a changed source makes a new revision, an unchanged one changes nothing.
    The source is parsed before the write transaction starts (docs/limits.md)."""
    parsed = flow_validate(source=source, tenant_key=tenant_key)
    document = parsed.document
    if namespace is not None and (namespace, flow_id) != (document.namespace, document.id):
        raise UserError(
            f"the document declares '{document.namespace}.{document.id}' but was sent to '{namespace}.{flow_id}'",
            path="id",
        )
    return _flow_store(tenant=tenant_get(tenant_key), source=source, parsed=parsed)


def _flow_read_back(*, flow: Flow, parsed: ParsedFlow) -> None:
    """What was stored must read back as it was parsed, and show as JSON: otherwise the transaction
    is rolled back, so that a flow never exists whose every read fails."""
    stored = FlowRevision.objects.filter(flow=flow, revision=flow.revision).values_list("source", flat=True).first()
    if stored != flow.source:
        raise UserError("the flow was not stored: the database did not give back the text it was sent")
    try:
        json.dumps(document_json(parsed.document), allow_nan=False)
    except (ValueError, TypeError, RecursionError) as error:
        raise UserError(f"the flow was not stored: it cannot be shown as JSON ({error})") from None


@transaction.atomic
def _flow_store(*, tenant: Tenant, source: str, parsed: ParsedFlow) -> Flow:
    document = parsed.document
    flow = (
        Flow.objects.select_for_update()
        .filter(tenant=tenant, namespace=document.namespace, flow_id=document.id)
        .first()
    )
    if flow is None:
        flow = Flow.objects.create(
            tenant=tenant, namespace=document.namespace, flow_id=document.id, revision=1,
            source=source, disabled=document.disabled,
        )
        FlowRevision.objects.create(flow=flow, revision=1, source=source)
    elif flow.source != source or flow.deleted:
        last = flow.revisions.order_by("-revision").values_list("revision", flat=True).first() or flow.revision
        flow.revision = last + 1
        flow.source = source
        flow.disabled = document.disabled
        flow.deleted = False
        flow.save(update_fields=["revision", "source", "disabled", "deleted", "updated"])
        FlowRevision.objects.create(flow=flow, revision=flow.revision, source=source)
    triggers_sync(flow=flow, document=document)  # also for an unchanged source: states it lacks are made
    _flow_read_back(flow=flow, parsed=parsed)
    return flow


@transaction.atomic
def flow_delete(*, tenant_key: str, namespace: str, flow_id: str) -> None:
    flow = flow_get(tenant_get(tenant_key), namespace, flow_id)
    flow.deleted = True
    flow.save(update_fields=["deleted", "updated"])
    triggers_sync(flow=flow, document=None)  # a deleted flow's triggers stop


# --- API tokens --------------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(username: str, *, create: bool):
    if not isinstance(username, str) or not username.strip():
        raise UserError("a username is required", path="username")
    User = get_user_model()
    if create:
        return User.objects.get_or_create(username=username.strip())[0]
    user = User.objects.filter(username=username.strip()).first()
    if user is None:
        raise NotFound(f"user '{username.strip()}' does not exist", path="username")
    return user


def _check_role(role: str, *, blank: bool = False) -> None:
    if not (role in Role.values or (blank and role == "")):
        raise UserError(f"invalid role '{role}': use one of {', '.join(Role.values)}", path="role")


@transaction.atomic
def token_create(*, username: str, tenant_keys: list[str] = (), role: str = "") -> str:
    """A new token for `username` (created if needed), acting with the user's roles; narrowed, if
    asked, to some tenants and to at most `role`. A token never gets more than its user: asking for
    a tenant the user has no role in, or a role above the user's, is refused (docs/security.md)."""
    user = _user(username, create=True)
    _check_role(role, blank=True)
    actor = permissions.actor_for_user(user)
    tenants = []
    for key in dict.fromkeys(tenant_keys):
        tenant = Tenant.objects.filter(key=key).first()
        if tenant is None:
            raise NotFound(f"tenant '{key}' does not exist", path="tenant")
        held = permissions.role_in(actor, tenant.id)
        if not held:
            raise UserError(f"user '{user.username}' has no role in tenant '{key}'", path="tenant")
        if role and not permissions.role_at_least(held, role):
            raise UserError(f"user '{user.username}' is {held} in tenant '{key}': a token cannot be {role} there",
                            path="role")
        tenants.append(tenant)
    if role and not tenants and not permissions.has_role_somewhere(actor, role):
        raise UserError(f"user '{user.username}' is {role} in no tenant: a token cannot have more than its user",
                        path="role")
    token = secrets.token_urlsafe(32)
    api_token = ApiToken.objects.create(user=user, digest=_digest(token), all_tenants=not tenants, role=role)
    api_token.tenants.set(tenants)
    return token


def token_find(token: str) -> ApiToken | None:
    """The API token of a bearer token whose user is active, or None; records when it was used."""
    api_token = ApiToken.objects.select_related("user").filter(digest=_digest(token)).first()
    if api_token is None or not api_token.user.is_active:
        return None
    now = timezone.now()
    if api_token.last_used is None or now - api_token.last_used > TOKEN_USE_RECORDED_EVERY:
        ApiToken.objects.filter(pk=api_token.pk).update(last_used=now)
    return api_token


def token_user(token: str):
    """The user a bearer token belongs to, or None."""
    api_token = token_find(token)
    return api_token.user if api_token is not None else None


# --- memberships -------------------------------------------------------------------------------


@transaction.atomic
def membership_set(*, username: str, tenant_key: str, role: str) -> Membership:
    """Give `username` (created if needed) `role` in a tenant, replacing the role it had there."""
    _check_role(role)
    user = _user(username, create=True)
    tenant = tenant_get(tenant_key)
    membership, _ = Membership.objects.update_or_create(user=user, tenant=tenant, defaults={"role": role})
    return membership


@transaction.atomic
def membership_remove(*, username: str, tenant_key: str) -> None:
    user = _user(username, create=False)
    deleted, _ = Membership.objects.filter(user=user, tenant=tenant_get(tenant_key)).delete()
    if not deleted:
        raise NotFound(f"user '{user.username}' has no role in tenant '{tenant_key}'")


# --- namespace files (docs/namespace-files.md): written to the shared storage --------------------


def namespace_file_put(*, tenant_key: str, namespace: str, path: str, content) -> str:
    """Store one file (bytes or a Django File) at `path` among the namespace's files, replacing
    it; returns its `kestra:///…` URI. A bad path or namespace, or a file over the size cap,
    stores nothing."""
    tenant = tenant_get(tenant_key)
    relative = storage.clean_path(path)
    root = namespace_files_root(namespace)
    if storage.walk_files(tenant_key=tenant.key, path=f"{root}/{relative}"):
        raise Conflict(f"'{relative}' is a directory of namespace '{namespace}'", path="path")
    return storage.put(tenant_key=tenant.key, path=f"{root}/{relative}", content=content, where="path")


def namespace_file_delete(*, tenant_key: str, namespace: str, path: str) -> int:
    """Delete a file, or a directory and every file under it; returns how many files went."""
    tenant = tenant_get(tenant_key)
    relative = storage.clean_path(path)
    full = f"{namespace_files_root(namespace)}/{relative}"
    if not storage.exists(tenant_key=tenant.key, path=full) and not storage.walk_files(tenant_key=tenant.key, path=full):
        raise NotFound(f"no namespace file or directory '{relative}' in namespace '{namespace}'")
    return storage.delete_tree(tenant_key=tenant.key, path=full)


def namespace_files_upload(*, tenant_key: str, namespace: str, files: dict) -> list[str]:
    """Store several files (relative path → bytes) at once: every path and size is checked first,
    so a bad one stores none of them. Returns the paths stored."""
    tenant_get(tenant_key)
    root = namespace_files_root(namespace)
    faults, checked = [], {}
    for path, content in files.items():
        try:
            relative = storage.clean_path(path, where=path)
        except UserError as error:
            faults.extend(error.faults)
            continue
        if len(content) > storage.max_file_bytes():
            faults.append(Fault(f"the file is {len(content)} bytes: at most {storage.max_file_bytes()} bytes "
                                "(STORAGE_MAX_FILE_BYTES)", path=path))
        checked[relative] = content
    if faults:
        raise UserError(faults)
    for relative, content in checked.items():
        storage.put(tenant_key=tenant_key, path=f"{root}/{relative}", content=content, where=relative)
    return sorted(checked)


# --- worker-group samples (docs/admin.md) -------------------------------------------------------


def worker_group_samples_record(*, now=None) -> int:
    """Record every group's waiting and running task runs and alive workers, unless a sample is
    younger than SAMPLE_EVERY; forget samples older than SAMPLES_KEPT. Returns the samples written.
    Two reconcilers passing at once may both write: a chart point twice, nothing worse."""
    now = now or timezone.now()
    if WorkerGroupSample.objects.filter(at__gt=now - SAMPLE_EVERY, at__lte=now).exists():
        return 0
    samples = [
        WorkerGroupSample(group_key=key, at=now, waiting=health["queued"], running=health["running"],
                          alive=health["alive"])
        for key, health in worker_group_health(broker=False).items()
    ]
    WorkerGroupSample.objects.bulk_create(samples)
    WorkerGroupSample.objects.filter(at__lt=now - SAMPLES_KEPT).delete()
    return len(samples)


# --- KV store (docs/core-tasks.md) ---------------------------------------------------------------

KV_VALUE_MAX_CHARS = 1_000_000  # a value's JSON text


def kv_put(*, tenant_key: str, namespace: str, key: str, value, ttl: str | None = None,
           overwrite: bool = True) -> KeyValue:
    """Store `value` (anything JSON can hold) under `key`; with `ttl` (ISO-8601) it is missing once
    that long has passed. With `overwrite` false, a live value already there is a conflict."""
    kv_checked(namespace, key)
    tenant = tenant_get(tenant_key)
    try:
        size = len(json.dumps(value, allow_nan=False))  # NaN and infinities are no JSON (PostgreSQL refuses them)
    except (TypeError, ValueError, RecursionError):
        raise UserError("a KV value must be JSON: text, a number, a boolean, null, a list or a map",
                        path="value") from None
    if size > KV_VALUE_MAX_CHARS:
        raise UserError(f"the value is {size} characters of JSON: at most {KV_VALUE_MAX_CHARS}", path="value")
    if contains_nul(value):
        raise UserError("the value holds a NUL character (\\u0000), which cannot be stored", path="value")
    expires = None
    if ttl:
        try:
            lifetime = parse_duration(ttl)
        except ValueError as error:
            raise UserError(str(error), path="ttl") from None
        if lifetime.total_seconds() <= 0:
            raise UserError(f"'{ttl}' is not a positive duration", path="ttl")
        expires = timezone.now() + lifetime
    with transaction.atomic():
        if not overwrite and kv_entries(tenant, namespace).filter(key=key).exists():
            raise Conflict(f"key '{key}' already exists in namespace '{namespace}' (overwrite is false)", path="key")
        entry, _ = KeyValue.objects.update_or_create(tenant=tenant, namespace=namespace, key=key,
                                                     defaults={"value": value, "expires": expires})
    return entry


def kv_delete(*, tenant_key: str, namespace: str, key: str) -> bool:
    """Remove `key`; true if a live value was there."""
    kv_checked(namespace, key)
    tenant = tenant_get(tenant_key)
    live = kv_entries(tenant, namespace).filter(key=key).exists()
    KeyValue.objects.filter(tenant=tenant, namespace=namespace, key=key).delete()
    return live
