"""Every body the API takes or answers, as pydantic models: ninja checks requests against them and
builds the OpenAPI document from them. `<Answer>.of(...)` builds an answer from the database rows."""
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from django.utils import timezone
from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field

from flows import masking, models
from flows.definition import parse_flow_cached
from flows.errors import UserError
from flows.selectors import LOG_LEVELS

Fallback = Literal["WAIT", "FAIL", "CANCEL"]
LogLevel = Literal[LOG_LEVELS]


class Fault(Schema):
    """One located fault: `path` in the document, body or query (e.g. `tasks[0].workerGroup.key`),
    1-based `line` and `column` in the source when known."""

    message: str
    path: str
    line: int | None
    column: int | None


class Error(Schema):
    """Every error answer (400, 401, 404, 405, 409, 415, 422): `message` joins the faults, one per line."""

    message: str
    errors: list[Fault]


# --- request bodies: strict, so a wrong type or an unknown property is a located 422 ----------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class WorkerGroupDefaults(Body):
    """Default worker group of a tenant or namespace; a null or absent key means none of its own."""

    key: str | None = None
    fallback: Fallback | None = None


class WithDefaults(Body):
    workerGroup: WorkerGroupDefaults | None = None

    def defaults(self) -> dict:
        """As the services take them: a PUT replaces both, and '' clears one."""
        group = self.workerGroup or WorkerGroupDefaults()
        return {"worker_group_key": group.key or "", "fallback": group.fallback or ""}


class NamespaceBody(WithDefaults):
    id: str | None = None


class TenantBody(WithDefaults):
    """A tenant is named by `id` (Kestra's word) or `key` (this project's)."""

    id: str | None = None
    key: str | None = None

    def tenant_key(self) -> str:
        if self.id is None and self.key is None:
            raise UserError("missing required property 'id'", path="id")
        if self.id is not None and self.key is not None and self.id != self.key:
            raise UserError(f"'id' ('{self.id}') and 'key' ('{self.key}') differ: send one of them", path="key")
        return self.id if self.id is not None else self.key


class WorkerGroupCreateBody(Body):
    key: str
    description: str = ""
    allowedTenants: list[str] = Field([], description="Empty: every tenant.")
    concurrencyLimit: int | None = Field(None, description="At most this many task runs RUNNING at once across "
                                                           "the group; null: no limit.")
    initScript: str = Field("", description="A shell script each worker of the group runs once at start.")


class WorkerGroupUpdateBody(Body):
    """Only the properties sent change: an omitted allowedTenants never opens a group to every tenant."""

    key: str | None = None
    description: str | None = None
    allowedTenants: list[str] | None = None
    concurrencyLimit: int | None = Field(None, description="Sent as null: no limit any more; left out: unchanged. "
                                                           "Applies at once, without restarting workers.")
    initScript: str | None = None


# --- flows, namespaces, tenants, worker groups ------------------------------------------------


def _document(source: str) -> dict:
    """The parsed flow as Kestra shows it; stored sources always parse, but never fail a read on it."""
    try:
        document = parse_flow_cached(source).document
    except UserError:
        return {}
    return document.model_dump(mode="json", by_alias=True, exclude_none=True)


class Flow(Schema):
    """The flow as stored (`source` exactly as uploaded) merged with its parsed document (`tasks`,
    `triggers`, `inputs`, `pluginDefaults`, ... as in Kestra's flow JSON)."""

    model_config = ConfigDict(extra="allow")
    id: str
    namespace: str
    revision: int
    tenantId: str
    disabled: bool
    deleted: bool
    updated: datetime
    source: str
    tasks: list[dict[str, Any]] = []

    @classmethod
    def of(cls, flow) -> "Flow":
        return cls(**{
            **_document(flow.source), "id": flow.flow_id, "namespace": flow.namespace, "revision": flow.revision,
            "tenantId": flow.tenant.key, "disabled": flow.disabled, "deleted": flow.deleted,
            "updated": flow.updated, "source": flow.source,
        })

    @classmethod
    def of_revision(cls, revision) -> "Flow":
        flow, document = revision.flow, _document(revision.source)
        return cls(**{
            **document, "id": flow.flow_id, "namespace": flow.namespace, "revision": revision.revision,
            "tenantId": flow.tenant.key, "disabled": document.get("disabled", False), "deleted": False,
            "updated": revision.created, "source": revision.source,
        })


class FlowValidation(Schema):
    """Kestra's validate answer, one entry per flow document: `constraints` is null when it is valid
    (an invalid flow is answered 422 with an Error)."""

    index: int
    id: str
    namespace: str
    flow: str = Field(description="namespace.id")
    constraints: None

    @classmethod
    def of(cls, parsed) -> "FlowValidation":
        return cls(index=0, id=parsed.flow_id, namespace=parsed.namespace,
                   flow=f"{parsed.namespace}.{parsed.flow_id}", constraints=None)


def _defaults(key: str, fallback: str) -> WorkerGroupDefaults | None:
    return WorkerGroupDefaults(key=key or None, fallback=fallback or None) if key or fallback else None


class ResolvedWorkerGroup(Schema):
    """The group a task runs on (`key: null`: the default group) and what happens while it has no worker."""

    key: str | None
    fallback: Fallback


class Namespace(Schema):
    id: str
    tenantId: str
    workerGroup: WorkerGroupDefaults | None = Field(description="The namespace's own defaults.")
    effectiveWorkerGroup: ResolvedWorkerGroup = Field(
        description="What a task with no workerGroup of its own, in a flow with none, resolves to: the nearest "
                    "namespace (itself, then its parents), then the tenant.")

    @classmethod
    def of(cls, tenant, name: str, row, effective: tuple[str, str]) -> "Namespace":
        key, fallback = effective
        return cls(
            id=name, tenantId=tenant.key,
            workerGroup=_defaults(row.worker_group_key, row.fallback) if row else None,
            effectiveWorkerGroup=ResolvedWorkerGroup(key=key or None, fallback=fallback),
        )


class Tenant(Schema):
    id: str
    workerGroup: WorkerGroupDefaults | None
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, tenant) -> "Tenant":
        return cls(id=tenant.key, workerGroup=_defaults(tenant.worker_group_key, tenant.fallback),
                   created=tenant.created, updated=tenant.updated)


class AliveWorker(Schema):
    hostname: str = Field(description="`<group>@<host>`, as Celery and Flower name it.")
    pid: int
    groups: list[str] = Field(description="Every queue (group) the worker was started for.")
    concurrency: int
    running: int = Field(description="Task runs its pool runs now.")
    lastHeartbeat: datetime
    drained: bool = Field(description="It takes no new work from this group until resumed.")


class WorkerGroupHealth(Schema):
    aliveWorkers: list[AliveWorker] = Field(description="Alive workers consuming the group, drained ones included.")
    alive: int = Field(description="Alive workers that are not drained: those that may take new work.")
    queued: int = Field(description="Task runs CREATED for this group, waiting for a worker (or a slot).")
    running: int = Field(description="Task runs RUNNING on this group.")
    oldestQueuedSince: datetime | None = Field(description="Since when the oldest waiting task run has waited.")
    brokerQueueLength: int | None = Field(
        description="Messages in the group's Redis queue (priority sub-queues included); null for a member who "
                    "is not a superuser, or when the broker does not answer.")
    drained: bool = Field(description="The whole group is drained: its workers take no new work.")
    concurrencyLimit: int | None = Field(description="At most this many task runs RUNNING at once; null: none.")
    flagged: bool = Field(description="Task runs wait and no alive, undrained worker may take them.")


class WorkerGroupControlBody(Body):
    worker: str = Field("", description="One worker's hostname (`<group>@<host>`); empty: the whole group.")


class WorkerGroup(Schema):
    key: str
    description: str
    allowedTenants: list[str] = Field(description="Empty: every tenant. A member who is not a superuser sees "
                                                  "only their own tenants here.")
    concurrencyLimit: int | None
    initScript: str
    drainedWorkers: list[str] = Field(description="Workers drained one by one (`drain` with a `worker`).")
    health: WorkerGroupHealth
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, group, health: dict, *, allowed_tenants: list[str]) -> "WorkerGroup":
        return cls(key=group.key, description=group.description, allowedTenants=sorted(allowed_tenants),
                   concurrencyLimit=group.concurrency_limit, initScript=group.init_script,
                   drainedWorkers=group.drained_workers, health=health, created=group.created, updated=group.updated)


# --- executions -------------------------------------------------------------------------------


class StateHistory(Schema):
    state: str
    date: datetime


class State(Schema):
    """Kestra's state: `current` is one of CREATED, QUEUED, RUNNING, SUCCESS, WARNING, FAILED, KILLING,
    KILLED, CANCELLED, SKIPPED, RETRYING, RETRIED; `duration` (ISO-8601) runs until `endDate`."""

    current: str
    histories: list[StateHistory]
    startDate: datetime | None
    endDate: datetime | None
    duration: str | None

    @classmethod
    def of(cls, current: str, histories: list[dict], *, end) -> "State":
        """It starts at its first history entry; until it ends, the duration is the time so far."""
        histories = [StateHistory(**entry) for entry in histories]
        start = histories[0].date if histories else None
        duration = None
        if start is not None:
            seconds = max(((end or timezone.now()) - start).total_seconds(), 0.0)
            duration = f"PT{seconds:.3f}".rstrip("0").rstrip(".") + "S"
        return cls(current=current, histories=histories, startDate=start, endDate=end, duration=duration)


class TaskRunAttempt(Schema):
    attempt: int | None
    workerId: str | None
    state: State

    @classmethod
    def of(cls, attempt: dict) -> "TaskRunAttempt":
        """From what the workers store per attempt."""
        histories = [{"state": models.State.RUNNING, "date": attempt["startDate"]}] if attempt.get("startDate") else []
        if attempt.get("endDate"):
            histories.append({"state": attempt["state"], "date": attempt["endDate"]})
        end = datetime.fromisoformat(attempt["endDate"]) if attempt.get("endDate") else None
        return cls(attempt=attempt.get("attempt"), workerId=attempt.get("workerId") or None,
                   state=State.of(attempt["state"], histories, end=end))


class TaskRun(Schema):
    id: UUID
    executionId: UUID
    parentTaskRunId: UUID | None
    taskId: str
    value: str | None
    workerGroup: ResolvedWorkerGroup | None = Field(
        description="null for flowable tasks, which the executor runs itself.")
    workerId: str | None = Field(
        description="Hostname (`<group>@<host>`) of the worker running or that ran the current attempt.")
    attempts: list[TaskRunAttempt]
    state: State
    outputs: dict[str, Any]
    error: str | None

    @classmethod
    def of(cls, run, *, flowable: bool, secrets: list[str] = ()) -> "TaskRun":
        """`secrets`: the execution's SECRET inputs, masked in outputs and errors (docs/inputs.md)."""
        attempts = list(run.attempts or [])
        if run.worker_id and run.start_date and all(item.get("attempt") != run.attempt for item in attempts):
            # started by a worker that has not recorded the attempt yet
            attempts.append({
                "attempt": run.attempt, "state": run.state, "workerId": run.worker_id,
                "startDate": run.start_date.isoformat(),
                "endDate": run.end_date.isoformat() if run.end_date and run.state in models.TERMINAL_STATES else None,
            })
        return cls(
            id=run.id, executionId=run.execution_id, parentTaskRunId=run.parent_id, taskId=run.task_id,
            value=run.value,
            workerGroup=None if flowable else ResolvedWorkerGroup(key=run.worker_group or None, fallback=run.fallback),
            workerId=run.worker_id or None, attempts=[TaskRunAttempt.of(attempt) for attempt in attempts],
            state=State.of(run.state, run.state_history, end=run.end_date),
            outputs=masking.mask_deep(run.outputs, secrets), error=masking.mask_text(run.error, secrets) or None,
        )


class Label(Schema):
    key: str
    value: str


class Execution(Schema):
    id: UUID
    namespace: str
    flowId: str
    flowRevision: int
    tenantId: str
    inputs: dict[str, Any]
    labels: list[Label]
    trigger: dict[str, Any] | None = Field(
        description="The trigger that started it: `id`, `type`, `variables`; null when started by hand.")
    state: State
    outputs: dict[str, Any] | None = Field(
        description="The flow's `outputs`, rendered when the execution ended; null until then, or when it has none.")
    taskRunList: list[TaskRun]

    @classmethod
    def of(cls, execution, task_runs: list) -> "Execution":
        try:
            tasks = parse_flow_cached(execution.flow_revision.source).tasks_by_id
        except UserError:
            tasks = {}
        flowable = {task_id for task_id, task in tasks.items() if task.flowable}
        secrets = masking.secret_values(execution.inputs)
        return cls(
            id=execution.id, namespace=execution.namespace, flowId=execution.flow_id,
            flowRevision=execution.flow_revision.revision, tenantId=execution.tenant.key,
            inputs=masking.hide(execution.inputs),
            labels=[Label(key=key, value=value) for key, value in execution.labels.items()],
            trigger=execution.trigger, state=State.of(execution.state, execution.state_history, end=execution.end_date),
            outputs=masking.mask_deep(masking.hide(execution.outputs), secrets) if execution.outputs is not None else None,
            taskRunList=[TaskRun.of(run, flowable=run.task_id in flowable, secrets=secrets) for run in task_runs],
        )


class ExecutionSearch(Schema):
    results: list[Execution]
    total: int


class LogEntry(Schema):
    timestamp: datetime
    level: LogLevel
    message: str
    executionId: UUID
    taskRunId: UUID | None
    taskId: str | None

    @classmethod
    def of(cls, line) -> "LogEntry":
        return cls(timestamp=line.timestamp, level=line.level, message=line.message, executionId=line.execution_id,
                   taskRunId=line.task_run_id, taskId=line.task_id or None)


# --- triggers (docs/triggers.md) ---------------------------------------------------------------


class TriggerState(Schema):
    """One flow trigger as the scheduler sees it (Kestra's trigger context)."""

    tenantId: str
    namespace: str
    flowId: str
    triggerId: str
    type: str
    disabled: bool = Field(description="Disabled in the YAML, by hand, or by `stopAfter`.")
    nextExecutionDate: datetime | None = Field(
        description="When it is due next; null for Flow and Webhook triggers, and while it or its flow is disabled.")
    date: datetime | None = Field(
        description="Schedule: the last date it fired for; polling trigger: when its last evaluation ended; "
                    "Webhook: its last call.")
    evaluatedDate: datetime | None = Field(description="When it was last evaluated, whatever the outcome.")
    workerId: str | None = Field(description="The worker (`<group>@<host>`) that ran its last polling evaluation.")
    lastResult: str | None
    lastError: str | None
    executionId: UUID | None = Field(description="The last execution it started.")
    evaluateRunningDate: datetime | None = Field(
        description="When the polling evaluation under way was sent to its group; null when none is.")
    lockOwner: str | None = Field(description="The worker running the evaluation under way.")

    @classmethod
    def of(cls, state) -> "TriggerState":
        flow = state.flow
        return cls(
            tenantId=flow.tenant.key, namespace=flow.namespace, flowId=flow.flow_id, triggerId=state.trigger_id,
            type=state.trigger_type, disabled=state.disabled or bool(state.definition.get("disabled")),
            nextExecutionDate=state.next_date, date=state.last_date, evaluatedDate=state.evaluated,
            workerId=state.worker_id or None, lastResult=state.last_result or None, lastError=state.last_error or None,
            executionId=state.last_execution, evaluateRunningDate=state.published if state.evaluation else None,
            lockOwner=state.lock_owner or None,
        )


class TriggerSearch(Schema):
    results: list[TriggerState]
    total: int


# --- namespace files (docs/namespace-files.md) ------------------------------------------------


class FileAttributes(Schema):
    """One entry of a namespace files directory, as Kestra lists it."""

    fileName: str
    type: Literal["File", "Directory"]
    size: int
    lastModifiedTime: datetime | None

    @classmethod
    def of(cls, entry) -> "FileAttributes":
        return cls(fileName=entry.name, type="Directory" if entry.is_directory else "File", size=entry.size,
                   lastModifiedTime=entry.modified)


class NamespaceFileStored(Schema):
    """A namespace file just stored: its path and the `kestra:///…` URI tasks may name it by."""

    path: str
    uri: str
    size: int


class KvEntry(Schema):
    """A key of a namespace's KV store, as Kestra lists it."""

    key: str
    creationDate: datetime
    updateDate: datetime
    expirationDate: datetime | None

    @classmethod
    def of(cls, entry) -> "KvEntry":
        return cls(key=entry.key, creationDate=entry.created, updateDate=entry.updated, expirationDate=entry.expires)


class KvValue(Schema):
    """A KV value and its type, as Kestra answers it."""

    type: Literal["STRING", "NUMBER", "BOOLEAN", "JSON"]
    value: Any = None

    @classmethod
    def of(cls, value) -> "KvValue":
        if isinstance(value, str):
            kind = "STRING"
        elif isinstance(value, bool):
            kind = "BOOLEAN"
        elif isinstance(value, (int, float)):
            kind = "NUMBER"
        else:
            kind = "JSON"
        return cls(type=kind, value=value)
