"""Everything the product stores. Rules live in services, the engine and the reconciler; models
hold data and the constraints the database can check."""
import re
import uuid

from django.core.validators import RegexValidator
from django.db import models

from .storable import nul_replaced

FALLBACK_CHOICES = [("WAIT", "WAIT"), ("FAIL", "FAIL"), ("CANCEL", "CANCEL")]
# Keys of tenants, worker groups, flows, tasks and inputs: Kestra's identifier pattern, matched as a
# whole string (`\A…\Z`; `$` would let a trailing newline through: "main\n"). Compiled, so that
# pydantic matches it with Python's engine too (its default engine knows no `\Z`).
KEY_PATTERN = re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9_-]*\Z")
# Queues the product consumes itself; `default` is the queue of the default worker group.
DEFAULT_QUEUE = "default"
RESERVED_GROUP_KEYS = frozenset({DEFAULT_QUEUE, "executor", "scheduler"})


class StorableTextField(models.TextField):
    """Text whose NUL characters are replaced as it is written (flows/storable.py)."""

    def get_prep_value(self, value):
        return nul_replaced(super().get_prep_value(value))

    def deconstruct(self):  # stored as a plain TextField: nothing changes in the database
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.TextField", args, kwargs


class StorableJSONField(models.JSONField):
    """JSON whose NUL characters (in text and keys) are replaced as it is written (flows/storable.py)."""

    def get_prep_value(self, value):
        return nul_replaced(super().get_prep_value(value))

    def deconstruct(self):
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs


def queue_for_group(key: str) -> str:
    """The Celery queue of a worker group, and its name in messages: the default group has no key."""
    return key or DEFAULT_QUEUE


class State(models.TextChoices):
    CREATED = "CREATED"
    QUEUED = "QUEUED"  # waiting for a place under the flow's concurrency limit
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"  # a Pause task waits for its delay or to be resumed; the execution holds no worker
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    KILLING = "KILLING"
    KILLED = "KILLED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"
    RETRYING = "RETRYING"
    RESTARTED = "RESTARTED"  # in histories: an ended execution or task run started again (docs/core-tasks.md)
    RETRIED = "RETRIED"  # an execution that failed and was followed by a new one (flow retry CREATE_NEW_EXECUTION)


TERMINAL_STATES = frozenset({State.SUCCESS, State.WARNING, State.FAILED, State.KILLED, State.CANCELLED, State.SKIPPED,
                             State.RETRIED})
# A WorkingDirectory's task runs: its worker runs the tasks it holds (docs/core-tasks.md).
WORKING_DIRECTORY_TYPE = "io.kestra.plugin.core.flow.WorkingDirectory"


class Tenant(models.Model):
    key = models.CharField(max_length=100, unique=True)
    worker_group_key = models.CharField(max_length=100, blank=True, default="")
    fallback = models.CharField(max_length=10, choices=FALLBACK_CHOICES, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self):
        return self.key


class Namespace(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="namespaces")
    name = models.CharField(max_length=255)
    worker_group_key = models.CharField(max_length=100, blank=True, default="")
    fallback = models.CharField(max_length=10, choices=FALLBACK_CHOICES, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant__key", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="namespace_unique_per_tenant")]

    def __str__(self):
        return f"{self.tenant.key}/{self.name}"


class Flow(models.Model):
    """The current revision of a flow; every revision's source is kept in FlowRevision."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="flows")
    namespace = models.CharField(max_length=255)
    flow_id = models.CharField(max_length=255)
    revision = models.PositiveIntegerField(default=1)
    source = models.TextField()
    disabled = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant__key", "namespace", "flow_id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "namespace", "flow_id"], name="flow_unique_per_namespace"),
        ]

    def __str__(self):
        return f"{self.namespace}.{self.flow_id}"


class FlowRevision(models.Model):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="revisions")
    revision = models.PositiveIntegerField()
    source = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["flow", "-revision"]
        constraints = [models.UniqueConstraint(fields=["flow", "revision"], name="flow_revision_unique")]

    def __str__(self):
        return f"{self.flow} rev {self.revision}"


class Execution(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="executions")
    flow_revision = models.ForeignKey(FlowRevision, on_delete=models.PROTECT, related_name="executions")
    namespace = models.CharField(max_length=255)
    flow_id = models.CharField(max_length=255)
    inputs = StorableJSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.CREATED)
    state_history = models.JSONField(default=list, blank=True)
    trigger = StorableJSONField(null=True, blank=True)
    labels = StorableJSONField(default=dict, blank=True)
    # The flow's `outputs`, rendered when the execution ended successfully (docs/flow-properties.md).
    outputs = StorableJSONField(null=True, blank=True)
    # A flow retry CREATE_NEW_EXECUTION: the first execution of the chain, and this one's attempt number.
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    attempt = models.PositiveIntegerField(default=1)
    created = models.DateTimeField(auto_now_add=True)
    start_date = models.DateTimeField(null=True, blank=True)
    end_date = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["tenant", "namespace", "flow_id", "-created"]),
            models.Index(fields=["state"]),
            # the API's search: pages newest first, whatever the filters (docs/api.md)
            models.Index(fields=["tenant", "-created", "-id"], name="execution_newest"),
            # ... and its count of a state's executions in a namespace, read from the index alone
            models.Index(fields=["tenant", "state", "namespace"], name="execution_state_namespace"),
        ]

    def __str__(self):
        return f"{self.namespace}.{self.flow_id} {self.id}"


class TaskRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="task_runs")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    # Identifies the task run inside its execution: (parent, task id, value). Unique, so two
    # processes advancing the same execution can never create the same task run twice.
    scope_key = models.CharField(max_length=64)
    task_id = models.CharField(max_length=255)
    task_type = models.CharField(max_length=255)
    value = StorableTextField(null=True, blank=True)
    worker_group = models.CharField(max_length=100, blank=True, default="")
    fallback = models.CharField(max_length=10, choices=FALLBACK_CHOICES, default="WAIT")
    max_wait_seconds = models.FloatField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    attempts = models.JSONField(default=list, blank=True)
    worker_id = models.CharField(max_length=255, blank=True, default="")
    state = models.CharField(max_length=10, choices=State.choices, default=State.CREATED)
    state_history = models.JSONField(default=list, blank=True)
    outputs = StorableJSONField(default=dict, blank=True)
    error = StorableTextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    published = models.DateTimeField(null=True, blank=True)
    # Set while the task run waits for a slot of its group's concurrency limit (refused by a claim):
    # such task runs start in this order as slots free (docs/operations.md).
    slot_wait_since = models.DateTimeField(null=True, blank=True)
    start_date = models.DateTimeField(null=True, blank=True)
    end_date = models.DateTimeField(null=True, blank=True)
    # A PAUSED task run's end of pause (its delay, or its timeout): the reconciler advances it then.
    resume_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "scope_key"], name="taskrun_unique_scope"),
        ]
        indexes = [models.Index(fields=["state", "worker_group"])]

    def __str__(self):
        return f"{self.task_id} ({self.state})"


class LogLine(models.Model):
    """A log line of an execution (and maybe one of its task runs), or of a trigger (docs/triggers.md)."""

    execution = models.ForeignKey(Execution, null=True, blank=True, on_delete=models.CASCADE, related_name="logs")
    task_run = models.ForeignKey(TaskRun, null=True, blank=True, on_delete=models.CASCADE, related_name="logs")
    trigger_state = models.ForeignKey("TriggerState", null=True, blank=True, on_delete=models.CASCADE,
                                      related_name="logs")
    task_id = models.CharField(max_length=255, blank=True, default="")
    level = models.CharField(max_length=10, default="INFO")
    message = StorableTextField()
    timestamp = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["timestamp", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(execution__isnull=False) | models.Q(trigger_state__isnull=False),
                                   name="logline_of_execution_or_trigger"),
        ]

    def __str__(self):
        return f"[{self.level}] {self.message[:80]}"


class Role(models.TextChoices):
    """A user's role in a tenant; each includes the ones before it (docs/security.md)."""

    VIEWER = "viewer"
    DEVELOPER = "developer"
    ADMIN = "admin"


class Membership(models.Model):
    """A user belongs to a tenant with one role."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant__key", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_per_tenant"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_known"),
        ]

    def __str__(self):
        return f"{self.user} in {self.tenant}: {self.role}"


class ApiToken(models.Model):
    """A bearer token for the REST API; only its SHA-256 digest is stored. It acts with its user's
    roles, narrowed at creation to some tenants (`all_tenants` false) and/or to at most `role`."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="api_tokens")
    digest = models.CharField(max_length=64, unique=True)
    # False: the token acts only in `tenants` (none left, e.g. after a tenant is deleted: nowhere).
    all_tenants = models.BooleanField(default=True)
    tenants = models.ManyToManyField(Tenant, blank=True, related_name="api_tokens")
    # The most the token may do in a tenant; blank: as much as its user.
    role = models.CharField(max_length=10, choices=Role.choices, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(role__in=["", *Role.values]), name="api_token_role_known"),
        ]

    @property
    def narrowed(self) -> bool:
        return not self.all_tenants or bool(self.role)

    def __str__(self):
        return f"token of {self.user} ({self.digest[:8]}…)"


class WorkerGroup(models.Model):
    """A worker group; its key is the Celery queue its workers consume."""

    key = models.CharField(max_length=100, unique=True, validators=[RegexValidator(KEY_PATTERN)])
    description = models.TextField(blank=True, default="")
    allowed_tenants = models.ManyToManyField(Tenant, blank=True, related_name="worker_groups")
    # Live control (docs/operations.md): a drained group, or a drained worker of it (by hostname),
    # takes no new work until resumed; a worker that starts meanwhile stays idle for this group.
    drained = models.BooleanField(default=False)
    drained_workers = models.JSONField(default=list, blank=True)
    # At most this many task runs RUNNING at once across the group; null: no limit.
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    # A shell script each worker of the group runs once at start, before it takes work.
    init_script = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(key__in=sorted(RESERVED_GROUP_KEYS)), name="worker_group_key_not_reserved",
            ),
        ]

    def __str__(self):
        return self.key


class Worker(models.Model):
    """A Celery worker as seen through its heartbeats; `groups` are the queues it consumes."""

    hostname = models.CharField(max_length=255, unique=True)
    groups = models.JSONField(default=list)
    # Queues among `groups` the worker does not consume now: drained (docs/operations.md).
    drained = models.JSONField(default=list, blank=True)
    pid = models.PositiveIntegerField(default=0)
    concurrency = models.PositiveIntegerField(default=0)
    running = models.PositiveIntegerField(default=0)
    # The task runs its pool was running when `running_seen` was read: a task run RUNNING here but
    # missing from a later reading lost its pool process (flows/reconciler.py).
    running_task_runs = models.JSONField(default=list, blank=True)
    running_seen = models.DateTimeField(null=True, blank=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_heartbeat = models.DateTimeField()

    class Meta:
        ordering = ["hostname"]

    def __str__(self):
        return self.hostname


class TriggerState(models.Model):
    """What the scheduler knows of one trigger of one flow (docs/triggers.md). `next_date` is when it
    is due next; null means never by the clock: a Flow or Webhook trigger, or a stopped one (disabled
    in the YAML or here, its flow disabled)."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="trigger_states")
    trigger_id = models.CharField(max_length=255)
    trigger_type = models.CharField(max_length=255)
    # The trigger as parsed (pluginDefaults applied), and its digest: a re-upload keeps the state of
    # a trigger whose digest is unchanged and resets the others.
    definition = models.JSONField(default=dict)
    fingerprint = models.CharField(max_length=64)
    next_date = models.DateTimeField(null=True, blank=True)
    # Schedule: the last date it fired for; polling trigger: the last evaluation that ended.
    last_date = models.DateTimeField(null=True, blank=True)
    evaluated = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=255, blank=True, default="")
    last_result = StorableTextField(blank=True, default="")
    last_error = StorableTextField(blank=True, default="")
    last_execution = models.UUIDField(null=True, blank=True)
    disabled = models.BooleanField(default=False)
    # A polling evaluation sent to its group (`evaluation`, when `published`), and the worker that
    # took it (`lock_owner`, since `locked`); all empty when none is under way.
    evaluation = models.UUIDField(null=True, blank=True)
    published = models.DateTimeField(null=True, blank=True)
    lock_owner = models.CharField(max_length=255, blank=True, default="")
    locked = models.DateTimeField(null=True, blank=True)
    # What the trigger type remembers between evaluations (the filesystem trigger: files already fired).
    memory = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["flow__tenant__key", "flow__namespace", "flow__flow_id", "trigger_id"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "trigger_id"], name="trigger_state_unique_per_flow"),
        ]
        indexes = [
            # The tick reads only what is due: its cost follows the due triggers, not the defined ones.
            models.Index(fields=["next_date"], name="trigger_state_due"),
            # An ending execution looks for the Flow triggers only; a webhook call for the Webhooks.
            models.Index(fields=["trigger_type"], name="trigger_state_type"),
        ]

    def __str__(self):
        return f"{self.flow} / {self.trigger_id}"


class SchedulerTick(models.Model):
    """One row: when a scheduler tick last ran. A longer silence means no scheduler ran, and the
    Schedule triggers' recoverMissedSchedules decides about the dates missed meanwhile."""

    last_tick = models.DateTimeField()



class WorkerGroupSample(models.Model):
    """A group's waiting and running task runs and alive workers at one moment, recorded by the
    reconciler at most once a minute and kept a day, for the admin's chart (docs/admin.md)."""

    group_key = models.CharField(max_length=100, blank=True, default="")  # '' is the default group
    at = models.DateTimeField()
    waiting = models.PositiveIntegerField()
    running = models.PositiveIntegerField()
    alive = models.PositiveIntegerField()

    class Meta:
        ordering = ["group_key", "at"]
        indexes = [models.Index(fields=["group_key", "at"], name="worker_group_sample_at"),
                   models.Index(fields=["at"], name="worker_group_sample_prune")]

    def __str__(self):
        return f"{queue_for_group(self.group_key)} at {self.at:%H:%M}: {self.waiting} waiting, {self.running} running"


class KeyValue(models.Model):
    """A value of a namespace's KV store (docs/core-tasks.md); one past `expires` counts as missing."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="key_values")
    namespace = models.CharField(max_length=255)
    key = models.CharField(max_length=255)
    value = models.JSONField(null=True)
    expires = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant__key", "namespace", "key"]
        constraints = [models.UniqueConstraint(fields=["tenant", "namespace", "key"], name="key_value_unique")]

    def __str__(self):
        return f"{self.namespace}/{self.key}"
