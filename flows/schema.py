"""Pydantic models of the flow document: one model per task and trigger type."""
import re
from typing import Annotated, Any, ClassVar, Literal, Union

from croniter import croniter
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .durations import parse_duration
from .expressions import is_template
from .models import KEY_PATTERN

# Dotted lowercase names, matched as a whole string like KEY_PATTERN (flows/models.py).
NAMESPACE_PATTERN = re.compile(r"\A[a-z0-9][a-z0-9._-]*\Z")


def _check_duration(value: Any) -> Any:
    if isinstance(value, str) and ("{{" in value):
        return value
    parse_duration(value)  # a number (`interval: 30`) gets the same ISO-8601 message as a bad string
    return value


Duration = Annotated[str, BeforeValidator(_check_duration)]
Fallback = Literal["WAIT", "FAIL", "CANCEL"]

# The standard methods (RFC 9110, and PATCH): nothing else, so that a request cannot speak another
# protocol's commands to a port it reaches, as `SET key value` to Redis (docs/security-scripts.md).
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def _check_http_method(value: Any) -> Any:
    if isinstance(value, str) and not is_template(value) and value.strip().upper() not in HTTP_METHODS:
        raise ValueError(f"'{value}' is not an HTTP method: use one of {', '.join(HTTP_METHODS)}")
    return value


HttpMethod = Annotated[str, AfterValidator(_check_http_method)]


def output_files_problem(pattern: str) -> str | None:
    """Why an outputFiles glob is refused: it must stay inside the working directory."""
    if not pattern.strip():
        return "an empty pattern matches nothing"
    if pattern.startswith(("/", "~", "\\")):
        return f"'{pattern}' is absolute: patterns are relative to the working directory"
    if ".." in pattern.replace("\\", "/").split("/"):
        return f"'{pattern}' goes up with '..': patterns stay inside the working directory"
    return None


def _check_output_file(value: Any) -> Any:
    if isinstance(value, str) and (problem := output_files_problem(value)):
        raise ValueError(problem)
    return value


OutputFilePattern = Annotated[str, AfterValidator(_check_output_file)]


def _none_is_empty(value: Any) -> Any:
    """`defaults: null`, as Kestra's own flows write an empty list."""
    return [] if value is None else value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Label(Strict):
    key: str
    value: str


class WorkerGroupRef(Strict):
    key: str | None = None
    fallback: Fallback | None = None
    maxWait: Duration | None = None


UNBOUNDED_ATTEMPTS = 1_000_000


class Retry(Strict):
    type: Literal["constant", "exponential", "random"] = "constant"
    maxAttempt: int | None = Field(default=None, ge=1)
    maxAttempts: int | None = Field(default=None, ge=1)
    interval: Duration | None = None
    maxInterval: Duration | None = None
    minInterval: Duration | None = None
    delayFactor: float | None = Field(default=None, gt=0)
    maxDuration: Duration | None = None
    warningOnRetry: bool = False
    behavior: Literal["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"] = "RETRY_FAILED_TASK"

    @model_validator(mode="after")
    def _needs_interval(self):
        if self.type in ("constant", "exponential") and self.interval is None:
            raise ValueError(f"a {self.type} retry needs an interval")
        return self

    @property
    def max_attempts(self) -> int:
        """With only `maxDuration`, attempts go on until it is over, as in Kestra."""
        return self.maxAttempt or self.maxAttempts or (UNBOUNDED_ATTEMPTS if self.maxDuration else 1)


class TaskBase(Strict):
    id: str = Field(pattern=KEY_PATTERN)
    description: str | None = None
    workerGroup: WorkerGroupRef | None = None
    retry: Retry | None = None
    timeout: Duration | None = None
    disabled: bool = False
    allowFailure: bool = False
    runIf: Any = None
    logLevel: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] | None = None
    allowWarning: bool = Field(default=False, description="A task run that ends WARNING counts as SUCCESS.")
    logToFile: bool = Field(default=False, description="Accepted; log lines are kept in the database "
                                                        "(docs/flow-properties.md).")

    flowable: ClassVar[bool] = False
    # Sent to a worker as one unit that runs tasks it holds (WorkingDirectory, docs/core-tasks.md).
    block: ClassVar[bool] = False

    @property
    def kind(self) -> str:
        """The task's current Kestra type, whichever of its names (`io.kestra.core.tasks.*`) the flow used."""
        return type(self).model_fields["type"].annotation.__args__[0]


# --- runnable tasks: executed on a worker of the resolved group ----------------------------


class ReturnTask(TaskBase):
    """Renders `format` and returns it as the output `value`."""

    type: Literal["io.kestra.plugin.core.debug.Return", "io.kestra.core.tasks.debugs.Return"]
    format: Any = None


class LogTask(TaskBase):
    """Writes `message` (or each of a list of messages) to the task run's logs at `level`."""

    type: Literal["io.kestra.plugin.core.log.Log", "io.kestra.core.tasks.log.Log"]
    message: str | list[str]
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"


class EchoTask(TaskBase):
    """Deprecated in Kestra for Log: writes `format` to the task run's logs at `level`."""

    type: Literal["io.kestra.plugin.core.debug.Echo", "io.kestra.core.tasks.debugs.Echo"]
    format: str
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"


class SleepTask(TaskBase):
    """Waits for `duration` (ISO-8601), stopping promptly on a kill or a timeout."""

    type: Literal["io.kestra.plugin.core.flow.Sleep"]
    duration: Duration


class OutputValuesTask(TaskBase):
    """Renders `values` and returns them as the output `values`."""

    type: Literal["io.kestra.plugin.core.output.OutputValues"]
    values: dict[str, Any] = Field(default_factory=dict)


class FailTask(TaskBase):
    """Fails with `errorMessage`, or only when `condition` is true."""

    type: Literal["io.kestra.plugin.core.execution.Fail", "io.kestra.core.tasks.executions.Fail"]
    errorMessage: str = "Task failure"
    condition: Any = None


class ProcessRunner(Strict):
    type: str

    @field_validator("type")
    @classmethod
    def _only_process(cls, value: str) -> str:
        if value != "io.kestra.plugin.core.runner.Process":
            raise ValueError(
                f"task runner '{value}' is not available: the only task runner is io.kestra.plugin.core.runner.Process"
            )
        return value


class NamespaceFiles(Strict):
    enabled: bool = True
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class ScriptBase(TaskBase):
    beforeCommands: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    interpreter: list[str] | None = None
    taskRunner: ProcessRunner | None = None
    containerImage: str | None = None
    inputFiles: dict[str, str] | None = None
    outputFiles: list[OutputFilePattern] = Field(default_factory=list)
    namespaceFiles: NamespaceFiles | None = None
    warningOnStdErr: bool = False
    failFast: bool = True


class ShellCommandsTask(ScriptBase):
    """Runs `commands` with /bin/sh in a working directory of its own (docs/security-scripts.md)."""

    type: Literal["io.kestra.plugin.scripts.shell.Commands"]
    commands: list[str] = Field(min_length=1)


class ShellScriptTask(ScriptBase):
    """Runs `script` with /bin/sh in a working directory of its own (docs/security-scripts.md)."""

    type: Literal["io.kestra.plugin.scripts.shell.Script"]
    script: str


class PythonCommandsTask(ScriptBase):
    """Runs `commands` (e.g. `python main.py`) in a working directory of its own, with the worker's Python."""

    type: Literal["io.kestra.plugin.scripts.python.Commands"]
    commands: list[str] = Field(min_length=1)


class PythonScriptTask(ScriptBase):
    """Runs the Python `script` in a working directory of its own, with the worker's Python."""

    type: Literal["io.kestra.plugin.scripts.python.Script"]
    script: str


class HttpRequestTask(TaskBase):
    """Sends an HTTP request; outputs `code`, `headers`, `body` and `uri`."""

    type: Literal["io.kestra.plugin.core.http.Request", "io.kestra.plugin.fs.http.Request"]
    uri: str
    method: HttpMethod = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    contentType: str | None = None
    formData: dict[str, Any] | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class LocalFilesTask(TaskBase):
    """Deprecated in Kestra for `inputFiles` and `outputFiles`: writes `inputs` (file name → content,
    or a `kestra:///…` URI copied from storage) into its working directory, then stores the files
    that `outputs` matches (output `uris`: name → URI). Inside a WorkingDirectory that directory is the
    block's, shared with its other tasks (docs/core-tasks.md)."""

    type: Literal["io.kestra.plugin.core.storage.LocalFiles", "io.kestra.core.tasks.storages.LocalFiles"]
    inputs: dict[str, str] | None = None
    outputs: list[OutputFilePattern] = Field(default_factory=list)


class KvTaskBase(TaskBase):
    key: str = Field(min_length=1)
    namespace: str = Field(default="{{ flow.namespace }}", description="The KV store's namespace; the flow's own by default.")


class KvSetTask(KvTaskBase):
    """Stores `value` under `key` in a namespace's KV store (docs/core-tasks.md); with `ttl` it is
    missing once that long has passed."""

    type: Literal["io.kestra.plugin.core.kv.Set"]
    value: Any
    overwrite: bool = Field(default=True, description="When false, a key that exists fails the task run.")
    ttl: Duration | None = None
    kvType: Literal["STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON"] | None = Field(
        default=None, description="Convert the rendered value to this type before storing it.")


class KvGetTask(KvTaskBase):
    """Reads `key` from a namespace's KV store into the output `value` (null when missing, unless `errorOnMissing`)."""

    type: Literal["io.kestra.plugin.core.kv.Get"]
    errorOnMissing: bool = False


class KvDeleteTask(KvTaskBase):
    """Deletes `key` from a namespace's KV store; the output `deleted` says whether it was there."""

    type: Literal["io.kestra.plugin.core.kv.Delete"]
    errorOnMissing: bool = False


# --- flowable tasks: run by the executor, never sent to a group ----------------------------


class FlowableBase(TaskBase):
    errors: list["Task"] = Field(default_factory=list)

    flowable: ClassVar[bool] = True


class SequentialTask(FlowableBase):
    """Runs its `tasks` one after the other."""

    type: Literal["io.kestra.plugin.core.flow.Sequential", "io.kestra.core.tasks.flows.Sequential"]
    tasks: list["Task"] = Field(min_length=1)


class ParallelTask(FlowableBase):
    """Runs its `tasks` at the same time, at most `concurrent` at once (0: no limit)."""

    type: Literal["io.kestra.plugin.core.flow.Parallel", "io.kestra.core.tasks.flows.Parallel"]
    tasks: list["Task"] = Field(min_length=1)
    concurrent: int = Field(default=0, ge=0)


class IfTask(FlowableBase):
    """Runs `then` when `condition` is true, else `else`."""

    type: Literal["io.kestra.plugin.core.flow.If", "io.kestra.core.tasks.flows.If"]
    condition: Any
    then: list["Task"] = Field(min_length=1)
    else_: list["Task"] = Field(default_factory=list, alias="else")


class SwitchTask(FlowableBase):
    """Runs the tasks of the case whose key equals the rendered `value`, else `defaults`."""

    type: Literal["io.kestra.plugin.core.flow.Switch", "io.kestra.core.tasks.flows.Switch"]
    value: Any
    cases: dict[str, list["Task"]] = Field(default_factory=dict)
    defaults: Annotated[list["Task"], BeforeValidator(_none_is_empty)] = Field(default_factory=list)


class ForEachTask(FlowableBase):
    """Runs its `tasks` once per item of `values` (`taskrun.value`), `concurrencyLimit` at once (0: no limit)."""

    type: Literal["io.kestra.plugin.core.flow.ForEach"]
    values: Any
    concurrencyLimit: int = Field(default=1, ge=0)
    tasks: list["Task"] = Field(min_length=1)


class EachSequentialTask(FlowableBase):
    """Deprecated in Kestra for ForEach: runs its `tasks` once per item of `value`, one item at a time."""

    type: Literal["io.kestra.plugin.core.flow.EachSequential", "io.kestra.core.tasks.flows.EachSequential"]
    value: Any
    tasks: list["Task"] = Field(min_length=1)


class EachParallelTask(FlowableBase):
    """Deprecated in Kestra for ForEach: runs each of its `tasks` for each item of `value`, all at the
    same time, at most `concurrent` at once (0: no limit)."""

    type: Literal["io.kestra.plugin.core.flow.EachParallel", "io.kestra.core.tasks.flows.EachParallel"]
    value: Any
    concurrent: int = Field(default=0, ge=0)
    tasks: list["Task"] = Field(min_length=1)


class AllowFailureTask(FlowableBase):
    """Deprecated in Kestra for `allowFailure: true`: runs its `tasks` one after the other; when they
    fail, its `errors` tasks run and it ends WARNING, so the flow goes on."""

    type: Literal["io.kestra.plugin.core.flow.AllowFailure", "io.kestra.core.tasks.flows.AllowFailure"]
    tasks: list["Task"] = Field(min_length=1)
    allowFailure: bool = True


class CheckFrequency(Strict):
    maxIterations: int = Field(default=100, ge=1, description="Stop after this many iterations.")
    maxDuration: Duration = Field(default="PT1H", description="Stop once the task run is older than this.")
    interval: Duration = Field(default="PT1S", description="The wait between the end of an iteration and the next.")


class WaitForTask(FlowableBase):
    """Runs its `tasks` again and again, `checkFrequency.interval` apart, until `condition` is true
    after an iteration, or `maxIterations` or `maxDuration` is reached (then FAILED with
    `failOnMaxReached`). `outputs.<id>.iterationCount` is the current iteration, from 1."""

    type: Literal["io.kestra.plugin.core.flow.WaitFor"]
    tasks: list["Task"] = Field(min_length=1)
    condition: Any
    failOnMaxReached: bool = False
    checkFrequency: CheckFrequency = Field(default_factory=CheckFrequency)


class DagEntry(Strict):
    task: "Task"
    dependsOn: list[str] = Field(default_factory=list,
                                 description="Ids of tasks of the same Dag that must have ended first.")


class DagTask(FlowableBase):
    """Runs each of its `tasks` once every task it `dependsOn` has ended, independent ones at the
    same time, at most `concurrent` at once (0: no limit). Unknown ids and cycles are refused at upload."""

    type: Literal["io.kestra.plugin.core.flow.Dag", "io.kestra.core.tasks.flows.Dag"]
    concurrent: int = Field(default=0, ge=0)
    tasks: list[DagEntry] = Field(min_length=1)


class PauseTask(FlowableBase):
    """Pauses the execution (its task run and the execution become PAUSED, holding no worker) until
    it is resumed (API, admin, the Resume task), or for `delay`; past `timeout` without a resume the
    task run fails. `onResume` declares inputs given on resume (`outputs.<id>.onResume`)."""

    type: Literal["io.kestra.plugin.core.flow.Pause", "io.kestra.core.tasks.flows.Pause"]
    delay: Duration | None = None
    timeout: Duration | None = None
    onResume: list["Input"] = Field(default_factory=list)
    tasks: list["Task"] = Field(default_factory=list, description="Deprecated in Kestra: run after the pause.")

    @field_validator("onResume")
    @classmethod
    def _distinct_resume_inputs(cls, value: list) -> list:
        return _distinct_input_ids(value)


class ResumeTask(TaskBase):
    """Resumes a paused execution of the same tenant (this one by default), with `inputs` for its
    Pause task's `onResume`."""

    type: Literal["io.kestra.plugin.core.execution.Resume"]
    executionId: str = "{{ execution.id }}"
    namespace: str | None = None
    flowId: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)


class SubflowTask(TaskBase):
    """Starts an execution of another flow of the same tenant (its tasks routed by its own flow's
    worker-group rules); with `wait`, ends as the child ends and takes its flow `outputs`."""

    type: Literal["io.kestra.plugin.core.flow.Subflow", "io.kestra.core.tasks.flows.Subflow",
                  "io.kestra.core.tasks.flows.Flow"]
    namespace: str
    flowId: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] | list[Label] = Field(default_factory=dict)
    wait: bool = True
    transmitFailed: bool = Field(default=True, description="With `wait`: a child that ends FAILED, KILLED or "
                                 "WARNING ends this task run so; otherwise it ends SUCCESS.")
    inheritLabels: bool = False
    outputs: dict[str, Any] | None = Field(default=None, description="Deprecated in Kestra for the child flow's "
                                           "`outputs`: rendered in the child's context once it has ended.")

    flowable: ClassVar[bool] = True  # the executor starts and watches the child; no worker is held


class ItemsBatch(Strict):
    rows: int | str | None = Field(default=None, description="Lines per batch.")
    bytes: str | None = Field(default=None, description="At most this size per batch (`10MB`, `512KB`, `100B`).")
    partitions: int | str | None = Field(default=None, description="This many batches of near-equal line counts.")

    @model_validator(mode="after")
    def _one_way(self):
        if sum(value is not None for value in (self.rows, self.bytes, self.partitions)) > 1:
            raise ValueError("split the items by one of rows, bytes or partitions")
        if self.rows is None and self.bytes is None and self.partitions is None:
            self.rows = 1
        return self


class ForEachItemTask(SubflowTask):
    """Splits the file `items` (a `kestra:///` URI of the flow's namespace, one item per line) into
    batches and starts one execution of the subflow per batch (`{{ taskrun.items }}` is the batch's
    URI, `{{ taskrun.iteration }}` its index), at most `concurrencyLimit` running at once (0: no limit)."""

    type: Literal["io.kestra.plugin.core.flow.ForEachItem", "io.kestra.core.tasks.flows.ForEachItem"]
    items: str
    batch: ItemsBatch = Field(default_factory=ItemsBatch)
    concurrencyLimit: int = Field(default=0, ge=0)


class LabelsTask(TaskBase):
    """Adds `labels` (a map, a list of key/value, or an expression that renders a map) to the
    execution's labels, replacing those of the same key; keys and values are rendered. Run by the
    executor, never sent to a worker group."""

    type: Literal["io.kestra.plugin.core.execution.Labels", "io.kestra.core.tasks.executions.Labels"]
    labels: dict[str, Any] | list[Label] | str

    flowable: ClassVar[bool] = True  # no children, but the executor runs it


class WorkingDirectoryCache(Strict):
    patterns: list[OutputFilePattern] = Field(min_length=1, description="Globs of the files of the working "
                                                                        "directory to keep between executions.")
    ttl: Duration | None = Field(default=None, description="How long a kept archive is used after it was made.")


class WorkingDirectoryTask(TaskBase):
    """Runs its `tasks` (runnable tasks only) one after another on one worker of its worker group, in
    one working directory they share (`{{ workingDir }}`): a file written by one is there for the
    next. Each task still has a task run of its own. `namespaceFiles` and `inputFiles` are laid in
    before the first task; `outputFiles` are stored after the last (`outputs.<id>.outputFiles`).
    A worker lost mid-block: the block starts again on another worker of the same group."""

    type: Literal["io.kestra.plugin.core.flow.WorkingDirectory", "io.kestra.core.tasks.flows.WorkingDirectory",
                  "io.kestra.core.tasks.flows.Worker"]
    tasks: list["Task"] = Field(min_length=1)
    errors: list["Task"] = Field(default_factory=list)
    inputFiles: dict[str, str] | None = None
    namespaceFiles: NamespaceFiles | None = None
    outputFiles: list[OutputFilePattern] = Field(default_factory=list)
    cache: WorkingDirectoryCache | None = Field(default=None, description="Files kept from one execution to "
                                                                          "the next (docs/core-tasks.md).")

    block: ClassVar[bool] = True


Task = Annotated[
    Union[
        ReturnTask, LogTask, EchoTask, SleepTask, OutputValuesTask, FailTask,
        ShellCommandsTask, ShellScriptTask, PythonCommandsTask, PythonScriptTask, HttpRequestTask,
        KvSetTask, KvGetTask, KvDeleteTask, ResumeTask, LocalFilesTask, SequentialTask, ParallelTask, IfTask, SwitchTask, ForEachTask, EachSequentialTask, EachParallelTask,
        AllowFailureTask, WaitForTask, DagTask, PauseTask, SubflowTask, ForEachItemTask, LabelsTask,
        WorkingDirectoryTask,
    ],
    Field(discriminator="type"),
]



# --- triggers (docs/triggers.md) -----------------------------------------------------------

StateName = Literal["CREATED", "QUEUED", "RUNNING", "PAUSED", "SUCCESS", "WARNING", "FAILED", "KILLING", "KILLED",
                    "CANCELLED", "SKIPPED", "RETRYING", "RETRIED"]
# What a Flow trigger listens to unless it says otherwise: an execution that has ended.
ENDED_STATES = ["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED"]


class TriggerBase(Strict):
    id: str = Field(pattern=KEY_PATTERN)
    description: str | None = None
    disabled: bool = False
    # The trigger disables itself once an execution it started ends in one of these states.
    stopAfter: list[StateName] = Field(default_factory=list)

    polling: ClassVar[bool] = False  # evaluated on a worker of its group, every `interval`


class ScheduleTrigger(TriggerBase):
    """Starts an execution at each date of `cron`, evaluated by the scheduler."""

    type: Literal["io.kestra.plugin.core.trigger.Schedule"]
    withSeconds: bool = False
    timezone: str = "UTC"
    cron: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    recoverMissedSchedules: Literal["ALL", "LAST", "NONE"] = "ALL"

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except Exception:
            raise ValueError(f"unknown timezone '{value}'") from None
        return value

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str, info: ValidationInfo) -> str:
        with_seconds = bool(info.data.get("withSeconds"))
        expected = 6 if with_seconds else 5
        fields = len(value.split())
        if not value.startswith("@") and fields != expected:
            hint = "6 fields, seconds first (withSeconds: true)" if with_seconds else "5 fields"
            raise ValueError(f"invalid cron expression '{value}': expected {hint}, found {fields}")
        if not croniter.is_valid(value, second_at_beginning=with_seconds):
            raise ValueError(f"invalid cron expression '{value}': a field is out of range or malformed")
        return value


def _check_interval(value: Any) -> Any:
    if isinstance(value, str) and parse_duration(value).total_seconds() <= 0:
        raise ValueError(f"'{value}' is not a positive duration")
    return value


class PollingTriggerBase(TriggerBase):
    interval: Annotated[Duration, AfterValidator(_check_interval)] = "PT60S"
    workerGroup: WorkerGroupRef | None = None

    polling: ClassVar[bool] = True


class HttpTrigger(PollingTriggerBase):
    """Calls `uri` every `interval` on a worker of its group, and starts an execution when `responseCondition` is true."""

    # Also accepted under its older name, as in Kestra.
    type: Literal["io.kestra.plugin.core.http.Trigger", "io.kestra.plugin.fs.http.Trigger"]
    uri: str
    method: HttpMethod = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    contentType: str | None = None
    responseCondition: str = "{{ response.statusCode < 400 }}"


class LocalFileTrigger(PollingTriggerBase):
    """Watches a directory on a worker of its group every `interval`, and starts an execution per new file."""

    type: Literal["io.kestra.plugin.fs.local.Trigger"]
    directory: str | None = None
    from_: str | None = Field(default=None, alias="from")  # Kestra's name for `directory`
    regExp: str | None = None
    recursive: bool = False
    action: Literal["NONE", "MOVE", "DELETE"] = "NONE"
    moveDirectory: str | None = None
    maxFiles: int = Field(default=25, ge=1)

    @field_validator("regExp")
    @classmethod
    def _check_regexp(cls, value: str | None) -> str | None:
        if value is not None and not is_template(value):
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"invalid regular expression '{value}': {error}") from None
        return value

    @model_validator(mode="after")
    def _directories(self):
        if (self.directory is None) == (self.from_ is None):
            raise ValueError("give the directory to watch as 'directory' (or Kestra's 'from'), once")
        if self.action == "MOVE" and not self.moveDirectory:
            raise ValueError("action MOVE needs a moveDirectory")
        return self

    @property
    def watched(self) -> str:
        return self.directory if self.directory is not None else self.from_


def _condition_types(name: str) -> tuple[str, ...]:
    """Kestra's current name and its older aliases."""
    return (f"io.kestra.plugin.core.condition.{name}", f"io.kestra.plugin.core.condition.{name}Condition",
            f"io.kestra.core.models.conditions.types.{name}Condition")


class ExecutionStatusCondition(Strict):
    type: Literal[_condition_types("ExecutionStatus")]
    in_: list[StateName] = Field(default_factory=list, alias="in")
    notIn: list[StateName] = Field(default_factory=list)


class ExecutionFlowCondition(Strict):
    type: Literal[_condition_types("ExecutionFlow")]
    namespace: str
    flowId: str


class ExecutionNamespaceCondition(Strict):
    type: Literal[_condition_types("ExecutionNamespace")]
    namespace: str
    comparison: Literal["EQUALS", "PREFIX", "SUFFIX"] | None = None
    prefix: bool = False


Condition = Annotated[
    Union[ExecutionStatusCondition, ExecutionFlowCondition, ExecutionNamespaceCondition], Field(discriminator="type"),
]


class FlowTrigger(TriggerBase):
    """Starts an execution when an execution of another flow ends and every condition holds."""

    type: Literal["io.kestra.plugin.core.trigger.Flow"]
    conditions: list[Condition] = Field(default_factory=list)
    states: list[StateName] = Field(default_factory=lambda: list(ENDED_STATES))
    inputs: dict[str, Any] = Field(default_factory=dict)


class WebhookTrigger(TriggerBase):
    """Starts an execution on `GET|POST|PUT /api/v1/{tenant}/executions/webhook/{namespace}/{flowId}/{key}`."""

    type: Literal["io.kestra.plugin.core.trigger.Webhook"]
    key: str = Field(min_length=1, max_length=256)
    inputs: dict[str, Any] = Field(default_factory=dict)
    wait: bool = False

    @field_validator("key")
    @classmethod
    def _key_fits_a_url(cls, value: str) -> str:
        if is_template(value):  # rendered at each call (a secret, a flow variable): checked then
            return value
        if value != value.strip() or "/" in value:
            raise ValueError("the webhook key may not contain '/' nor start or end with a blank")
        return value


Trigger = Annotated[
    Union[ScheduleTrigger, HttpTrigger, LocalFileTrigger, FlowTrigger, WebhookTrigger], Field(discriminator="type"),
]


# --- the flow -----------------------------------------------------------------------------


# --- inputs (docs/inputs.md): one model per Kestra input type ------------------------------

# Kestra's input ids: a `.` nests the input (`nested.string` is `{{ inputs.nested.string }}`).
INPUT_ID_PATTERN = re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9_-]*(?:\.[a-zA-Z0-9][a-zA-Z0-9_-]*)*\Z")
# Types an ARRAY or MULTISELECT may hold: values that are typed one by one.
ItemType = Literal["STRING", "INT", "FLOAT", "BOOLEAN", "BOOL", "DATETIME", "DATE", "TIME", "DURATION", "JSON", "YAML",
                   "URI", "EMAIL"]


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"invalid regular expression '{value}': {error}") from None
    return value


Regex = Annotated[str, AfterValidator(_check_regex)]


class DependsOn(Strict):
    """The input is asked for only when every input it depends on is, and `condition` (an
    expression over `inputs`) is true."""

    inputs: list[str] = Field(default_factory=list)
    condition: str | None = None


class InputBase(Strict):
    id: str = Field(pattern=INPUT_ID_PATTERN, description="The input's id: `{{ inputs.<id> }}`; a `.` nests it.")
    name: str | None = Field(default=None, description="Deprecated: Kestra's old name for `id`.")
    description: str | None = None
    displayName: str | None = Field(default=None, max_length=64, description="The name the admin's form shows.")
    required: bool = Field(default=True, description="Refuse an execution without a value (and no defaults).")
    defaults: Any = Field(default=None, description="The value when none is given; an expression is rendered.")
    prefill: Any = Field(default=None, description="A value the admin's form starts with, that can be cleared "
                                                   "(use it instead of `defaults` on an optional input).")
    dependsOn: DependsOn | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_is_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "id" not in data and isinstance(data.get("name"), str):
            data = {**data, "id": data["name"]}
        return data

    @model_validator(mode="after")
    def _defaults_are_valid(self):
        if self.defaults is not None and self.prefill is not None:
            raise ValueError("prefill and defaults cannot be used on the same input")
        from .inputs import check_literal  # the typing rules live with the values they type

        for name in ("defaults", "prefill"):
            value = getattr(self, name)
            if value is not None and not is_template(value):
                message = check_literal(self, value)
                if message:
                    raise ValueError(f"'{name}': {message}")
        return self


class StringInput(InputBase):
    """Any text; `validator` is a regular expression the whole value must match."""

    type: Literal["STRING"]
    validator: Regex | None = None


class IntInput(InputBase):
    """A whole number, between `min` and `max` when they are set."""

    type: Literal["INT"]
    min: int | None = None
    max: int | None = None


class FloatInput(InputBase):
    """A number, between `min` and `max` when they are set."""

    type: Literal["FLOAT"]
    min: float | None = None
    max: float | None = None


class BooleanInput(InputBase):
    """`true` or `false` (also `"false"`, `0`, `"0"`, `"-0"`, `""` for false, as Kestra reads them)."""

    type: Literal["BOOLEAN"]


class BoolInput(InputBase):
    """A boolean, shown as a toggle: the same values as BOOLEAN."""

    type: Literal["BOOL"]


class DateTimeInput(InputBase):
    """An ISO-8601 date-time with a time zone (`2042-04-02T04:20:42Z`), kept in UTC; `after` and
    `before` bound it."""

    type: Literal["DATETIME"]
    after: str | None = None
    before: str | None = None


class DateInput(InputBase):
    """An ISO-8601 date (`2042-12-03`); `after` and `before` bound it."""

    type: Literal["DATE"]
    after: str | None = None
    before: str | None = None


class TimeInput(InputBase):
    """An ISO-8601 time without zone (`10:15:30`); `after` and `before` bound it."""

    type: Literal["TIME"]
    after: str | None = None
    before: str | None = None


class DurationInput(InputBase):
    """An ISO-8601 duration (`PT5M6S`), between `min` and `max` when they are set."""

    type: Literal["DURATION"]
    min: Duration | None = None
    max: Duration | None = None


class JsonInput(InputBase):
    """JSON text (or an already structured value), parsed."""

    type: Literal["JSON"]


class YamlInput(InputBase):
    """YAML text (or an already structured value), parsed."""

    type: Literal["YAML"]


class UriInput(InputBase):
    """A URI with a scheme (`https://example.com/orders.csv`), kept as text."""

    type: Literal["URI"]


class EmailInput(InputBase):
    """An e-mail address."""

    type: Literal["EMAIL"]


class _Choices(InputBase):
    values: list[str] | None = Field(default=None, description="The values to choose from.")
    expression: str | None = Field(default=None, description="An expression that renders the list of values.")
    allowCustomValue: bool = Field(default=False, description="Accept a value that is not listed (Kestra's older name: `allowInput`).")
    allowInput: bool | None = Field(default=None, description="Deprecated: Kestra's older name for `allowCustomValue`.")
    autoSelectFirst: bool = False

    @property
    def custom_allowed(self) -> bool:
        return self.allowCustomValue or bool(self.allowInput)

    def _needs_values(self, values):
        if values is None and self.expression is None:
            raise ValueError(f"a {self.type} input needs a list of values (or an expression that renders one)")
        if values is not None and self.expression is not None:
            raise ValueError("give either 'values' or 'expression', not both")


class SelectInput(_Choices):
    """One of `values`."""

    type: Literal["SELECT"]
    isRadio: bool = False

    @model_validator(mode="after")
    def _has_values(self):
        self._needs_values(self.values)
        return self


class MultiselectInput(_Choices):
    """A list of `values` (a JSON array, or repeated form fields), each typed by `itemType`."""

    type: Literal["MULTISELECT"]
    options: list[str] | None = Field(default=None, description="Deprecated: Kestra's older name for `values`.")
    itemType: ItemType = "STRING"

    @model_validator(mode="after")
    def _has_values(self):
        if self.values is not None and self.options is not None:
            raise ValueError("give either 'values' or 'options' (its older name), not both")
        self._needs_values(self.values if self.values is not None else self.options)
        return self

    @property
    def choices(self) -> list[str] | None:
        return self.values if self.values is not None else self.options


class EnumInput(InputBase):
    """Deprecated in Kestra for SELECT: one of `values`."""

    type: Literal["ENUM"]
    values: list[str] = Field(min_length=1)


class ArrayInput(InputBase):
    """A list (a JSON array, or repeated form fields) whose items are typed by `itemType`."""

    type: Literal["ARRAY"]
    itemType: ItemType


class SecretInput(InputBase):
    """Text stored encrypted and masked wherever it is shown (API, admin, logs); tasks get the plain
    value. `validator` is a regular expression the whole value must match."""

    type: Literal["SECRET"]
    validator: Regex | None = None


class FileInput(InputBase):
    """A file uploaded with the execution (a multipart part named after the input), stored in the
    shared storage; the input's value is its `kestra:///…` URI. `defaults` may name a namespace
    file (`nsfile:///data/orders.csv`)."""

    type: Literal["FILE"]
    extension: str | None = Field(default=None, description="Deprecated; accepted and ignored.")
    allowedFileExtensions: list[str] | None = Field(
        default=None, description="Accept only files whose name ends with one of these (`.csv`).")


def _input_type_default(value: Any) -> Any:
    """An input without `type` is a STRING, as this project has always read it."""
    if isinstance(value, dict) and "type" not in value:
        return {**value, "type": "STRING"}
    return value


INPUT_MODELS = (
    StringInput, IntInput, FloatInput, BooleanInput, BoolInput, DateTimeInput, DateInput, TimeInput, DurationInput,
    JsonInput, YamlInput, UriInput, EmailInput, SelectInput, MultiselectInput, EnumInput, ArrayInput, SecretInput,
    FileInput,
)
Input = Annotated[
    Annotated[Union[INPUT_MODELS], Field(discriminator="type")], BeforeValidator(_input_type_default),
]
INPUT_TYPES = tuple(model.model_fields["type"].annotation.__args__[0] for model in INPUT_MODELS)

# The Pause task's `onResume` inputs are Inputs, defined after the tasks: rebuild what holds tasks.
for _model in (PauseTask, FlowableBase, SequentialTask, ParallelTask, IfTask, SwitchTask, ForEachTask,
               EachSequentialTask, EachParallelTask, AllowFailureTask, WaitForTask, DagEntry, DagTask,
               WorkingDirectoryTask):
    _model.model_rebuild(force=True)


def _distinct_input_ids(inputs: list) -> list:
    """Two inputs with the same id, or one nested under another's id (`a` and `a.b`), are refused."""
    faults, seen = [], set()
    for spec in inputs:
        if spec.id in seen:
            faults.append(f"duplicate input id '{spec.id}'")
        seen.add(spec.id)
    for spec in inputs:
        parts = spec.id.split(".")
        for size in range(1, len(parts)):
            if ".".join(parts[:size]) in seen:
                faults.append(f"input '{spec.id}' is nested under input '{'.'.join(parts[:size])}', which is a value")
    if faults:
        raise ValueError("; ".join(faults))
    return inputs


class PluginDefault(Strict):
    type: str = Field(min_length=1)
    forced: bool = False
    values: dict[str, Any]


# --- flow-level properties (docs/flow-properties.md) ----------------------------------------


class FlowOutput(Strict):
    """A value rendered when the execution ends successfully, typed, and kept as the execution's outputs."""

    id: str = Field(pattern=re.compile(r"\A[a-zA-Z0-9][.a-zA-Z0-9_-]*\Z"))
    type: Literal[INPUT_TYPES]
    value: Any = Field(description="An expression, or a list or mapping of them, over the execution's context.")
    description: str | None = None
    displayName: str | None = None

    @field_validator("value")
    @classmethod
    def _has_value(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("an output needs a value")
        return value


class Concurrency(Strict):
    """At most `limit` executions of the flow run at once, counted across every process."""

    limit: int = Field(ge=1)
    behavior: Literal["QUEUE", "CANCEL", "FAIL"] = "QUEUE"


class SlaBase(Strict):
    id: str = Field(min_length=1)
    behavior: Literal["FAIL", "CANCEL", "NONE"]
    labels: dict[str, Any] | list[Label] = Field(default_factory=dict)

    @property
    def label_map(self) -> dict[str, str]:
        return labels_as_map(self.labels)


class MaxDurationSla(SlaBase):
    """Violated when the execution runs longer than `duration` (checked by every reconciler pass)."""

    type: Literal["MAX_DURATION"]
    duration: Annotated[Duration, AfterValidator(_check_interval)]


class ExecutionAssertionSla(SlaBase):
    """Violated when `assert` renders false once the execution's tasks have ended."""

    type: Literal["EXECUTION_ASSERTION"]
    assert_: str = Field(alias="assert", min_length=1)


Sla = Annotated[Union[MaxDurationSla, ExecutionAssertionSla], Field(discriminator="type")]


def labels_as_map(labels: dict | list) -> dict[str, str]:
    """Labels in either of Kestra's forms (a mapping, or a list of {key, value}) as a mapping."""
    if isinstance(labels, list):
        return {label.key: label.value for label in labels}
    return {key: str(value) for key, value in labels.items()}


class FlowDocument(Strict):
    id: str = Field(pattern=KEY_PATTERN)
    namespace: str = Field(pattern=NAMESPACE_PATTERN)
    revision: int | None = None
    description: str | None = None
    labels: dict[str, Any] | list[Label] = Field(default_factory=dict)
    inputs: Annotated[list[Input], AfterValidator(_distinct_input_ids)] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)
    pluginDefaults: list[PluginDefault] = Field(default_factory=list)
    taskDefaults: list[PluginDefault] = Field(default_factory=list, description="Kestra's older name for "
                                                                              "`pluginDefaults`.")
    triggers: list[Trigger] = Field(default_factory=list)
    workerGroup: WorkerGroupRef | None = None
    disabled: bool = False
    outputs: list[FlowOutput] = Field(default_factory=list)
    retry: Retry | None = Field(default=None, description="The retry of every runnable task that has none "
                                                          "of its own, nor an enclosing task's.")
    concurrency: Concurrency | None = None
    sla: list[Sla] = Field(default_factory=list)

    @property
    def label_map(self) -> dict[str, str]:
        return labels_as_map(self.labels)


def child_lists(task) -> list[tuple[str, list]]:
    """The task lists a flowable task holds, as (property path, tasks)."""
    lists = []
    for name in ("tasks", "then", "else_", "defaults", "errors"):
        tasks = getattr(task, name, None)
        if tasks:
            tasks = [entry.task if isinstance(entry, DagEntry) else entry for entry in tasks]
            lists.append(("else" if name == "else_" else name, tasks))
    for case, tasks in (getattr(task, "cases", None) or {}).items():
        lists.append((f"cases.{case}", tasks))
    return lists


def walk_tasks(tasks: list):
    for task in tasks:
        yield task
        for _, children in child_lists(task):
            yield from walk_tasks(children)
