"""Pydantic models of the flow document: one model per task and trigger type."""
import re
from typing import Annotated, Any, ClassVar, Literal, Union

from croniter import croniter
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .durations import parse_duration
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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WorkerGroupRef(Strict):
    key: str | None = None
    fallback: Fallback | None = None
    maxWait: Duration | None = None


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
        return self.maxAttempt or self.maxAttempts or 1


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

    flowable: ClassVar[bool] = False


# --- runnable tasks: executed on a worker of the resolved group ----------------------------


class ReturnTask(TaskBase):
    type: Literal["io.kestra.plugin.core.debug.Return"]
    format: Any = None


class LogTask(TaskBase):
    type: Literal["io.kestra.plugin.core.log.Log"]
    message: str | list[str]
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"


class SleepTask(TaskBase):
    type: Literal["io.kestra.plugin.core.flow.Sleep"]
    duration: Duration


class OutputValuesTask(TaskBase):
    type: Literal["io.kestra.plugin.core.output.OutputValues"]
    values: dict[str, Any] = Field(default_factory=dict)


class FailTask(TaskBase):
    type: Literal["io.kestra.plugin.core.execution.Fail"]
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
    outputFiles: list[str] = Field(default_factory=list)
    namespaceFiles: NamespaceFiles | None = None
    warningOnStdErr: bool = False
    failFast: bool = True


class ShellCommandsTask(ScriptBase):
    type: Literal["io.kestra.plugin.scripts.shell.Commands"]
    commands: list[str] = Field(min_length=1)


class ShellScriptTask(ScriptBase):
    type: Literal["io.kestra.plugin.scripts.shell.Script"]
    script: str


class PythonCommandsTask(ScriptBase):
    type: Literal["io.kestra.plugin.scripts.python.Commands"]
    commands: list[str] = Field(min_length=1)


class PythonScriptTask(ScriptBase):
    type: Literal["io.kestra.plugin.scripts.python.Script"]
    script: str


class HttpRequestTask(TaskBase):
    type: Literal["io.kestra.plugin.core.http.Request"]
    uri: str
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    contentType: str | None = None
    formData: dict[str, Any] | None = None
    options: dict[str, Any] = Field(default_factory=dict)


# --- flowable tasks: run by the executor, never sent to a group ----------------------------


class FlowableBase(TaskBase):
    errors: list["Task"] = Field(default_factory=list)

    flowable: ClassVar[bool] = True


class SequentialTask(FlowableBase):
    type: Literal["io.kestra.plugin.core.flow.Sequential"]
    tasks: list["Task"] = Field(min_length=1)


class ParallelTask(FlowableBase):
    type: Literal["io.kestra.plugin.core.flow.Parallel"]
    tasks: list["Task"] = Field(min_length=1)
    concurrent: int = Field(default=0, ge=0)


class IfTask(FlowableBase):
    type: Literal["io.kestra.plugin.core.flow.If"]
    condition: Any
    then: list["Task"] = Field(min_length=1)
    else_: list["Task"] = Field(default_factory=list, alias="else")


class SwitchTask(FlowableBase):
    type: Literal["io.kestra.plugin.core.flow.Switch"]
    value: Any
    cases: dict[str, list["Task"]] = Field(default_factory=dict)
    defaults: list["Task"] = Field(default_factory=list)


class ForEachTask(FlowableBase):
    type: Literal["io.kestra.plugin.core.flow.ForEach"]
    values: Any
    concurrencyLimit: int = Field(default=1, ge=0)
    tasks: list["Task"] = Field(min_length=1)


Task = Annotated[
    Union[
        ReturnTask, LogTask, SleepTask, OutputValuesTask, FailTask,
        ShellCommandsTask, ShellScriptTask, PythonCommandsTask, PythonScriptTask, HttpRequestTask,
        SequentialTask, ParallelTask, IfTask, SwitchTask, ForEachTask,
    ],
    Field(discriminator="type"),
]

for _model in (FlowableBase, SequentialTask, ParallelTask, IfTask, SwitchTask, ForEachTask):
    _model.model_rebuild()


# --- triggers -----------------------------------------------------------------------------


class TriggerBase(Strict):
    id: str = Field(pattern=KEY_PATTERN)
    description: str | None = None
    disabled: bool = False


class ScheduleTrigger(TriggerBase):
    type: Literal["io.kestra.plugin.core.trigger.Schedule"]
    withSeconds: bool = False
    timezone: str = "UTC"
    cron: str
    inputs: dict[str, Any] = Field(default_factory=dict)

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


class PollingTriggerBase(TriggerBase):
    interval: Duration = "PT60S"
    workerGroup: WorkerGroupRef | None = None


class HttpTrigger(PollingTriggerBase):
    type: Literal["io.kestra.plugin.core.http.Trigger"]
    uri: str
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    responseCondition: str = "{{ response.statusCode < 400 }}"


class LocalFileTrigger(PollingTriggerBase):
    type: Literal["io.kestra.plugin.fs.local.Trigger"]
    directory: str
    regExp: str = ".*"
    recursive: bool = False
    action: Literal["NONE", "MOVE", "DELETE"] = "NONE"
    moveDirectory: str | None = None


Trigger = Annotated[Union[ScheduleTrigger, HttpTrigger, LocalFileTrigger], Field(discriminator="type")]


# --- the flow -----------------------------------------------------------------------------


class Input(Strict):
    id: str = Field(pattern=KEY_PATTERN)
    type: Literal["STRING", "INT", "FLOAT", "BOOLEAN", "JSON", "DATETIME", "SELECT"] = "STRING"
    defaults: Any = None
    description: str | None = None
    displayName: str | None = None
    required: bool = True
    values: list[str] | None = None

    @model_validator(mode="after")
    def _select_has_values(self):
        if self.type == "SELECT" and not self.values:
            raise ValueError("a SELECT input needs a list of values")
        return self


class PluginDefault(Strict):
    type: str = Field(min_length=1)
    forced: bool = False
    values: dict[str, Any]


class Label(Strict):
    key: str
    value: str


class FlowDocument(Strict):
    id: str = Field(pattern=KEY_PATTERN)
    namespace: str = Field(pattern=NAMESPACE_PATTERN)
    revision: int | None = None
    description: str | None = None
    labels: dict[str, Any] | list[Label] = Field(default_factory=dict)
    inputs: list[Input] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)
    pluginDefaults: list[PluginDefault] = Field(default_factory=list)
    triggers: list[Trigger] = Field(default_factory=list)
    workerGroup: WorkerGroupRef | None = None
    disabled: bool = False

    @property
    def label_map(self) -> dict[str, str]:
        if isinstance(self.labels, list):
            return {label.key: label.value for label in self.labels}
        return {key: str(value) for key, value in self.labels.items()}


def child_lists(task) -> list[tuple[str, list]]:
    """The task lists a flowable task holds, as (property path, tasks)."""
    lists = []
    for name in ("tasks", "then", "else_", "defaults", "errors"):
        tasks = getattr(task, name, None)
        if tasks:
            lists.append(("else" if name == "else_" else name, tasks))
    for case, tasks in (getattr(task, "cases", None) or {}).items():
        lists.append((f"cases.{case}", tasks))
    return lists


def walk_tasks(tasks: list):
    for task in tasks:
        yield task
        for _, children in child_lists(task):
            yield from walk_tasks(children)
