"""Reads. A selector never writes and never sleeps."""
import logging
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from . import storage
from .definition import parse_flow_cached
from .errors import NotFound, UserError
from .models import (
    TERMINAL_STATES, Execution, Flow, FlowRevision, KeyValue, LogLine, Membership, Namespace, State, TaskRun, Tenant,
    TriggerState, Worker, WorkerGroup, WorkerGroupSample, queue_for_group,
)

logger = logging.getLogger(__name__)

# Created by a data migration (flows/migrations/0002_default_tenant.py), so it always exists.
DEFAULT_TENANT = "main"


def tenant_get(key: str) -> Tenant:
    tenant = Tenant.objects.filter(key=key).first()
    if tenant is None:
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


def flow_current_revision(tenant_key: str, namespace: str, flow_id: str) -> FlowRevision:
    """The current revision of a flow, with its flow and tenant, in one query."""
    revision = (
        FlowRevision.objects.select_related("flow__tenant")
        .filter(flow__tenant__key=tenant_key, flow__namespace=namespace, flow__flow_id=flow_id, flow__deleted=False,
                revision=F("flow__revision"))
        .first()
    )
    if revision is None:  # the tenant or the flow does not exist: the error says which
        flow = flow_get(tenant_get(tenant_key), namespace, flow_id)
        revision = flow.revisions.select_related("flow__tenant").get(revision=flow.revision)
    return revision


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


# --- executions -------------------------------------------------------------------------------

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


def execution_get(tenant: Tenant, execution_id) -> Execution:
    """An execution of `tenant`; one of another tenant does not exist for it."""
    try:
        execution_id = uuid.UUID(str(execution_id))
    except ValueError:
        execution = None
    else:
        execution = (
            Execution.objects.select_related("tenant", "flow_revision").filter(tenant=tenant, id=execution_id).first()
        )
    if execution is None:
        raise NotFound(f"execution '{execution_id}' does not exist in tenant '{tenant.key}'")
    return execution


def execution_task_runs(execution: Execution, *, limit: int | None = None) -> list[TaskRun]:
    """Task runs in creation order; those created together (Parallel branches, ForEach iterations)
    in the order their tasks are declared, then in the order of the loop's values. With `limit`,
    only the first `limit` created."""
    try:
        declared = parse_flow_cached(execution.flow_revision.source).tasks_by_id
    except UserError:
        declared = {}
    order = {task_id: index for index, task_id in enumerate(declared)}
    if limit is None:  # all of them: those a search prefetched, or one query
        runs = sorted(execution.task_runs.all(), key=lambda run: (run.created, run.id))
    else:
        runs = list(execution.task_runs.order_by("created", "id")[:limit])
    values = {run.id: run.outputs.get("values", []) for run in runs if isinstance(run.outputs, dict)}

    def position(run: TaskRun) -> tuple:
        loop_values = values.get(run.parent_id, [])
        return (
            run.created, order.get(run.task_id, len(order)),
            loop_values.index(run.value) if run.value in loop_values else 0,
        )

    return sorted(runs, key=position)


def executions_ahead(execution: Execution) -> int:
    """Executions of `execution`'s flow that hold a place under its concurrency limit (started and not
    ended), plus those queued before it (docs/flow-properties.md)."""
    same_flow = Execution.objects.filter(tenant_id=execution.tenant_id, namespace=execution.namespace,
                                         flow_id=execution.flow_id).exclude(id=execution.id)
    started = Q(start_date__isnull=False) & ~Q(state__in=[*TERMINAL_STATES, State.QUEUED, State.CREATED])
    queued_before = Q(state=State.QUEUED) & (Q(created__lt=execution.created) |
                                             Q(created=execution.created, id__lt=execution.id))
    return same_flow.filter(started | queued_before).count()


def execution_search(*, tenant: Tenant, namespace: str = "", flow_id: str = "", states: list[str] = (),
                     labels: dict | None = None, page: int = 1, size: int = 25) -> tuple[list[Execution], int]:
    """One page of a tenant's executions, newest first, and how many match in all. `namespace`
    matches itself and its children, as in Kestra; every label of `labels` must be carried."""
    matching = Execution.objects.filter(tenant=tenant)
    if namespace:
        matching = matching.filter(Q(namespace=namespace) | Q(namespace__startswith=f"{namespace}."))
    if flow_id:
        matching = matching.filter(flow_id=flow_id)
    if states:
        matching = matching.filter(state__in=states)
    for index, (key, value) in enumerate((labels or {}).items()):  # the key taken as it is, `__` included
        matching = matching.alias(**{f"label_{index}": KeyTransform(key, "labels")}).filter(**{f"label_{index}": value})
    start = (page - 1) * size
    results = (
        matching.select_related("tenant", "flow_revision").prefetch_related("task_runs")
        .order_by("-created", "-id")[start:start + size]
    )
    return list(results), matching.count()


def execution_logs(execution: Execution, *, min_level: str = "", task_run_id=None, page: int = 1,
                   size: int = 1000) -> tuple[list[LogLine], int]:
    """One page of an execution's log lines, oldest first, and how many there are in all; with
    `min_level`, only that level and above; with `task_run_id`, only that task run's."""
    logs = execution.logs.all()
    if task_run_id is not None:
        logs = logs.filter(task_run_id=task_run_id)
    if min_level:
        logs = logs.filter(level__in=LOG_LEVELS[LOG_LEVELS.index(min_level):])
    start = (page - 1) * size
    return list(logs.order_by("timestamp", "id")[start:start + size]), logs.count()


def execution_progress(execution_id, *, logs_after: int = 0) -> tuple[str, list[dict], list[LogLine]]:
    """What `execute --wait` follows: the execution's state, its task runs (id, task, value, state,
    attempt, group, worker) in creation order, and its log lines stored after line `logs_after`."""
    state = Execution.objects.filter(id=execution_id).values_list("state", flat=True).first()
    runs = list(TaskRun.objects.filter(execution_id=execution_id).order_by("created", "id").values(
        "id", "task_id", "value", "state", "attempt", "worker_group", "worker_id", "published"))
    logs = list(LogLine.objects.filter(execution_id=execution_id, id__gt=logs_after).order_by("id")[:1000])
    return state, runs, logs


# --- workers and worker groups ----------------------------------------------------------------


# How long a heartbeat older than 3 intervals may still count, while the database itself was out.
OUTAGE_GRACE = timedelta(minutes=10)


def _liveness_cutoffs():
    """(the oldest heartbeat that counts, the oldest that shows a worker beating now)."""
    interval = timedelta(seconds=settings.WORKER_HEARTBEAT_INTERVAL)
    now = timezone.now()
    return now - 3 * interval, now - 1.5 * interval


def alive_since():
    """A worker is alive while its last heartbeat is younger than 3 heartbeat intervals, once the
    database is known to have taken heartbeats for that long: some worker has beaten without a break
    (`first_seen` is when its current run of beats began) for 3 intervals, up to a recent beat. Right
    after a database outage no worker has, and every heartbeat is old at once: then a heartbeat counts
    for OUTAGE_GRACE more, rather than every worker being taken for dead (docs/guarantees.md)."""
    cutoff, recent = _liveness_cutoffs()
    steady = Worker.objects.filter(first_seen__lte=cutoff, last_heartbeat__gte=recent).exists()
    return cutoff if steady else cutoff - OUTAGE_GRACE


def alive_workers_read() -> tuple[list[Worker], bool]:
    """The workers alive by `alive_since`'s rule, and whether the database took heartbeats steadily,
    in one query: the workers that may count (a heartbeat within the outage grace) include every
    steady one, so steadiness is decided on them."""
    cutoff, recent = _liveness_cutoffs()
    candidates = list(Worker.objects.filter(last_heartbeat__gte=cutoff - OUTAGE_GRACE))
    steady = any(worker.first_seen <= cutoff and worker.last_heartbeat >= recent for worker in candidates)
    since = cutoff if steady else cutoff - OUTAGE_GRACE
    return [worker for worker in candidates if worker.last_heartbeat >= since], steady


def alive_workers() -> list[Worker]:
    return alive_workers_read()[0]


def group_drains() -> dict[str, tuple[bool, set[str]]]:
    """Stored drains by group key: (the whole group drained, the hostnames drained in it)."""
    return {
        key: (drained, set(hosts))
        for key, drained, hosts in WorkerGroup.objects.filter(Q(drained=True) | ~Q(drained_workers=[]))
        .values_list("key", "drained", "drained_workers")
    }


def drain_stored(hostname: str, queue: str, drains: dict) -> bool:
    """Whether the stored drains (`group_drains()`) say worker `hostname` must not consume `queue`."""
    group_drained, hosts = drains.get(queue, (False, set()))
    return group_drained or hostname in hosts


def worker_drained(worker: Worker, queue: str, drains: dict) -> bool:
    """A worker takes no new work from `queue` once it stopped consuming it (its heartbeat says so),
    and, before it has, as soon as the drain is stored (docs/operations.md)."""
    return queue in worker.drained or drain_stored(worker.hostname, queue, drains)


def alive_queues() -> set[str]:
    """The queues (group keys, `default` for the default group) that some alive worker consumes and
    is not drained from: a drained group counts as having no alive worker (docs/operations.md)."""
    drains = group_drains()
    return {
        queue for worker in alive_workers() for queue in worker.groups if not worker_drained(worker, queue, drains)
    }


def broker_queue_lengths(queues: list[str]) -> dict[str, int | None]:
    """Messages waiting in each queue on the Redis broker, priority sub-queues included (kombu keeps a
    queue as one list per priority step); None for each when the broker does not answer at once."""
    from celery import current_app

    if not queues:
        return {}
    try:
        with current_app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=0)
            channel = connection.default_channel
            pipeline = channel.client.pipeline()
            for queue in queues:
                for priority in channel.priority_steps:
                    pipeline.llen(channel._q_for_pri(queue, priority))
            lengths = iter(pipeline.execute())
            return {queue: sum(next(lengths) for _ in channel.priority_steps) for queue in queues}
    except Exception as error:  # a broker we cannot ask: do not guess
        logger.warning("could not read the length of queues %s: %s", ", ".join(queues), error)
        return dict.fromkeys(queues)


def broker_queue_length(queue: str) -> int | None:
    return broker_queue_lengths([queue])[queue]


def worker_group_health(keys: list[str] | None = None, *, tenants=None, broker: bool = True) -> dict[str, dict]:
    """The health of each group ('' is the default group), keys as the API shows them:
    - `aliveWorkers`: the alive workers that consume the group's queue (hostname, pid, groups,
      concurrency, running, last heartbeat, drained from this group or not), and `alive`: how many
      of them are not drained;
    - `queued` (CREATED task runs: waiting for a worker or a slot), `running` (RUNNING) and
      `oldestQueuedSince` (since when the longest waiting one has waited), counting only the task
      runs of `tenants` if given; `brokerQueueLength`: the messages in the group's Redis queue
      (all tenants'; only without `tenants`, and with `broker`);
    - `drained`, `concurrencyLimit`; `flagged`: work waits and no alive worker may take it."""
    workers = alive_workers()
    drains = group_drains()
    runs = TaskRun.objects.filter(state__in=[State.CREATED, State.RUNNING])
    if keys is not None:
        runs = runs.filter(worker_group__in=keys)
    if tenants is not None:
        runs = runs.filter(execution__tenant__in=tenants)
    counts = runs.values("worker_group").annotate(
        queued=Count("id", filter=Q(state=State.CREATED)), running=Count("id", filter=Q(state=State.RUNNING)),
        oldest=Min(Coalesce("published", "created"), filter=Q(state=State.CREATED)),
    )
    by_group = {row["worker_group"]: row for row in counts}
    groups = {group.key: group for group in WorkerGroup.objects.filter(**({} if keys is None else {"key__in": keys}))}
    wanted = keys if keys is not None else ["", *sorted(groups)]
    lengths = broker_queue_lengths([queue_for_group(key) for key in wanted]) if broker and tenants is None else {}
    health = {}
    for key in wanted:
        queue = queue_for_group(key)
        members = [w for w in workers if queue in w.groups]
        row = by_group.get(key, {})
        alive_members = [
            # A member sees only this group among a worker's queues: the others may be restricted groups.
            {"hostname": w.hostname, "pid": w.pid, "groups": w.groups if tenants is None else [queue],
             "concurrency": w.concurrency,
             "running": w.running, "lastHeartbeat": w.last_heartbeat.isoformat(),
             "drained": worker_drained(w, queue, drains)}
            for w in members
        ]
        alive = sum(1 for member in alive_members if not member["drained"])
        queued = row.get("queued", 0)
        group = groups.get(key)
        health[key] = {
            "aliveWorkers": alive_members,
            "alive": alive,
            "queued": queued,
            "running": row.get("running", 0),
            "oldestQueuedSince": row.get("oldest"),
            "brokerQueueLength": lengths.get(queue),
            "drained": bool(group and group.drained),
            "concurrencyLimit": group.concurrency_limit if group else None,
            "flagged": queued > 0 and alive == 0,
        }
    return health




def _routed_task_runs():
    """Task runs sent to a worker group: flowable ones (run by the executor) are never published."""
    return TaskRun.objects.filter(Q(published__isnull=False) | ~Q(worker_group=""))


def taskruns_ended_counts() -> list[tuple[str, str, int]]:
    """(group key, state, how many) of the task runs sent to a group that have ended (/metrics)."""
    return list(
        _routed_task_runs().filter(state__in=TERMINAL_STATES).order_by()
        .values_list("worker_group", "state").annotate(count=Count("id"))
    )


def dispatch_latency_histogram(bounds: tuple[float, ...]) -> dict[str, tuple[list[int], int, float]]:
    """Per group key: how many started task runs waited at most each of `bounds` seconds from their
    creation to the start of their last attempt (cumulative, as Prometheus counts), how many started
    in all, and the seconds they waited in all. One aggregate query over the started task runs."""
    waited = ExpressionWrapper(F("start_date") - F("created"), output_field=DurationField())
    buckets = {
        f"le{index}": Count("id", filter=Q(start_date__lte=F("created") + timedelta(seconds=bound)))
        for index, bound in enumerate(bounds)
    }
    rows = (
        _routed_task_runs().filter(start_date__isnull=False).order_by().values("worker_group")
        .annotate(started=Count("id"), waited=Sum(waited), **buckets)
    )
    return {
        row["worker_group"]: (
            [row[f"le{index}"] for index in range(len(bounds))], row["started"],
            row["waited"].total_seconds() if row["waited"] else 0.0,
        )
        for row in rows
    }


def worker_group_samples(key: str, *, since) -> list[WorkerGroupSample]:
    """A group's recorded samples ('' is the default group) since `since`, oldest first: at most one
    a minute (flows.services.worker_group_samples_record), so an hour is some 60 rows."""
    return list(WorkerGroupSample.objects.filter(group_key=key, at__gte=since).order_by("at")[:1000])


def worker_group_list():
    return WorkerGroup.objects.prefetch_related("allowed_tenants")


def worker_group_get(key: str) -> WorkerGroup:
    group = WorkerGroup.objects.filter(key=key).prefetch_related("allowed_tenants").first()
    if group is None:
        raise NotFound(f"worker group '{key}' does not exist")
    return group


# --- memberships ------------------------------------------------------------------------------


def membership_list(*, tenant_key: str = "", username: str = ""):
    """Memberships by tenant then user; only a tenant's, or a user's, if named."""
    memberships = Membership.objects.select_related("user", "tenant")
    if tenant_key:
        memberships = memberships.filter(tenant__key=tenant_key)
    if username:
        memberships = memberships.filter(user__username=username)
    return memberships


# --- triggers ---------------------------------------------------------------------------------


def triggers_due(*, now, limit: int) -> list[tuple[int, object]]:
    """(id, due date) of the trigger states due at `now`, longest due first: an indexed range on
    `next_date`, so it costs what is due, not what is defined (docs/triggers.md)."""
    return list(
        TriggerState.objects.filter(next_date__lte=now).order_by("next_date").values_list("pk", "next_date")[:limit]
    )


def trigger_search(*, tenant: Tenant, namespace: str = "", flow_id: str = "", page: int = 1,
                   size: int = 25) -> tuple[list[TriggerState], int]:
    """One page of a tenant's trigger states (by namespace, flow and trigger id) and how many match;
    `namespace` matches itself and its children."""
    matching = TriggerState.objects.filter(flow__tenant=tenant, flow__deleted=False)
    if namespace:
        matching = matching.filter(Q(flow__namespace=namespace) | Q(flow__namespace__startswith=f"{namespace}."))
    if flow_id:
        matching = matching.filter(flow__flow_id=flow_id)
    start = (page - 1) * size
    results = matching.select_related("flow__tenant").order_by("flow__namespace", "flow__flow_id", "trigger_id")
    return list(results[start:start + size]), matching.count()


# --- namespace files (docs/namespace-files.md): read from the shared storage ---------------------


def namespace_files_root(namespace: str) -> str:
    """The storage path of a namespace's files; a namespace must be a valid dotted name, and none of
    its segments may start with `_` (`company._files` would be `company`'s own files)."""
    from .schema import NAMESPACE_PATTERN

    if not isinstance(namespace, str) or not NAMESPACE_PATTERN.match(namespace):
        raise UserError(f"invalid namespace '{namespace}': use lowercase dotted names like company.team",
                        path="namespace")
    if any(part.startswith("_") for part in namespace.split(".")):
        raise UserError(f"namespace '{namespace}' has a segment starting with '_': it cannot hold files",
                        path="namespace")
    return storage.namespace_files_prefix(namespace)


def namespace_file_read(*, tenant: Tenant, namespace: str, path: str) -> bytes:
    relative = storage.clean_path(path)
    full = f"{namespace_files_root(namespace)}/{relative}"
    if not storage.exists(tenant_key=tenant.key, path=full) or storage.walk_files(tenant_key=tenant.key, path=full):
        raise NotFound(f"no namespace file '{relative}' in namespace '{namespace}'")
    return storage.read(tenant_key=tenant.key, path=full)


def namespace_files_list(*, tenant: Tenant, namespace: str, path: str = "") -> list:
    """The entries of one directory of a namespace's files (`storage.Entry`), directories first."""
    relative = storage.clean_path(path, allow_root=True)
    root = namespace_files_root(namespace)
    return storage.list_directory(tenant_key=tenant.key, path=f"{root}/{relative}" if relative else root)


def namespace_files_all(*, tenant: Tenant, namespace: str) -> list[str]:
    """Every file of a namespace, as paths relative to its root."""
    return storage.walk_files(tenant_key=tenant.key, path=namespace_files_root(namespace))


# --- KV store (docs/core-tasks.md) ---------------------------------------------------------------

# Kestra's KV keys.
KV_KEY_PATTERN = re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9._-]*\Z")
MISSING = object()


def kv_checked(namespace: str, key: str) -> None:
    """A KV store's namespace is a valid dotted name, and its key Kestra's key pattern."""
    from .schema import NAMESPACE_PATTERN

    if not isinstance(namespace, str) or not NAMESPACE_PATTERN.match(namespace):
        raise UserError(f"invalid namespace '{namespace}': use lowercase dotted names like company.team",
                        path="namespace")
    if not isinstance(key, str) or len(key) > 255 or not KV_KEY_PATTERN.match(key):
        raise UserError(f"invalid key '{key}': letters, digits, '.', '_' and '-', starting with a letter or digit",
                        path="key")


def kv_entries(tenant: Tenant, namespace: str):
    """The namespace's live (unexpired) key-values, by key."""
    now = timezone.now()
    return (KeyValue.objects.filter(tenant=tenant, namespace=namespace)
            .filter(Q(expires__isnull=True) | Q(expires__gt=now)).order_by("key"))


MAX_ERROR_LOGS = 100  # errorLogs() in an expression: the first ones, enough to say what failed


def execution_error_logs(*, tenant_key: str, execution_id: str) -> list[dict]:
    """The ERROR log lines of an execution, oldest first, as Kestra's `errorLogs()` gives them."""
    lines = (LogLine.objects.filter(execution_id=execution_id, execution__tenant__key=tenant_key, level="ERROR")
             .select_related("execution").order_by("id")[:MAX_ERROR_LOGS])
    return [{"taskId": line.task_id or None, "taskRunId": str(line.task_run_id) if line.task_run_id else None,
             "executionId": str(line.execution_id), "namespace": line.execution.namespace,
             "flowId": line.execution.flow_id, "level": line.level, "message": line.message,
             "timestamp": line.timestamp.isoformat()} for line in lines]


def kv_value(*, tenant_key: str, namespace: str, key: str):
    """The value stored under `key`, or MISSING (never stored, deleted, or past its TTL)."""
    kv_checked(namespace, key)
    entry = kv_entries(tenant_get(tenant_key), namespace).filter(key=key).first()
    return MISSING if entry is None else entry.value
