"""The executor: advances an execution from the states of its task runs (SPEC §4, §5).

`execution_advance` is idempotent: it looks at what exists, creates the task runs whose turn has
come, ends flowable task runs whose children are done and ends the execution. It runs under a row
lock on the execution, so the executor and group workers may all call it for the same execution.
"""
import hashlib
import json
import uuid
from datetime import datetime

from celery import current_app
from django.db import transaction
from django.utils import timezone

from workers.selectors import alive_workers, queue_for_group, worker_group_problem

from .context import execution_context, with_taskrun
from .definition import ParsedFlow, parse_flow_cached
from .errors import UserError
from .expressions import ExpressionError, is_truthy, render, render_deep
from .inputs import inputs_resolve
from .models import TERMINAL_STATES, Execution, LogLine, State, TaskRun
from .routing import RoutingError, route_resolve
from .selectors import flow_get, tenant_get

RUN_TASKRUN = "workers.run_taskrun"
ADVANCE_EXECUTION = "flows.execution_advance"


def history_with(obj, *states: str, when: datetime) -> list:
    """`obj`'s state history with `states` appended, for a conditional update to write."""
    return [*obj.state_history, *({"state": state, "date": when.isoformat()} for state in states)]


def transition(obj, state: str, when: datetime) -> None:
    obj.state = state
    obj.state_history = history_with(obj, state, when=when)


def attempts_with(run: TaskRun, state: str, when: datetime) -> list:
    """`run`'s attempts with the current one recorded as ended in `state`."""
    return [*run.attempts, {
        "attempt": run.attempt, "state": state, "workerId": run.worker_id,
        "startDate": run.start_date.isoformat() if run.start_date else None, "endDate": when.isoformat(),
    }]


def scope_key(parent_id, task_id: str, value: str | None) -> str:
    raw = f"{parent_id or ''}|{task_id}|{'' if value is None else value}"
    return hashlib.sha1(raw.encode()).hexdigest()


def group_label(key: str) -> str:
    return key or "default"


def publish_taskruns(items: list[tuple[str, int, str]], countdown: float | None = None) -> None:
    for taskrun_id, attempt, group_key in items:
        current_app.send_task(
            RUN_TASKRUN, args=[taskrun_id, attempt], queue=queue_for_group(group_key), countdown=countdown
        )


def publish_advance(execution_id) -> None:
    current_app.send_task(ADVANCE_EXECUTION, args=[str(execution_id)], queue="executor")


def _combine(states: list[str]) -> str:
    for state in (State.RUNNING, State.FAILED, State.KILLED, State.WARNING):
        if state in states:
            return state
    return State.SUCCESS


class _Pass:
    """One evaluation of an execution; collects the writes and publishes after commit."""

    def __init__(self, execution: Execution, parsed: ParsedFlow, runs: list[TaskRun]):
        self.execution = execution
        self.document = parsed.document
        self.now = timezone.now()
        self.runs = runs
        self.by_scope = {run.scope_key: run for run in runs}
        self.by_id = {run.id: run for run in runs}
        self._context: dict | None = None
        self.started = {(run.parent_id, run.value) for run in runs}
        self.new_runs: list[TaskRun] = []
        self.changed: dict = {}
        self.logs: list[LogLine] = []
        self.to_publish: list[tuple[str, int, str]] = []
        self.killing = execution.state == State.KILLING
        self.kill_requested = False
        self._alive_queues: set | None = None
        self._group_problems: dict = {}
        self._namespaces: dict = {}

    # --- evaluation ---------------------------------------------------------------------

    def evaluate(self) -> str:
        state = self.sequence(self.document.tasks, None, None)
        if state == State.FAILED and self.document.errors and not self.killing:
            if self.sequence(self.document.errors, None, None) == State.RUNNING:
                return State.RUNNING
        return state

    def step(self, task, parent: TaskRun | None, value: str | None) -> str:
        run = self.by_scope.get(scope_key(parent.id if parent else None, task.id, value))
        if run is None:
            if self.killing:
                return State.KILLED
            run = self.create(task, parent, value)
        state = self.flowable(run, task) if task.flowable else run.state
        if state not in TERMINAL_STATES:
            return State.RUNNING
        if state == State.FAILED and task.allowFailure:
            return State.WARNING
        if state == State.CANCELLED:
            return State.KILLED
        if state == State.SKIPPED:
            return State.SUCCESS
        return state

    def sequence(self, tasks: list, parent: TaskRun | None, value: str | None) -> str:
        warning = False
        for task in tasks:
            if task.disabled:
                continue
            state = self.step(task, parent, value)
            if state in (State.RUNNING, State.FAILED, State.KILLED):
                return state
            warning = warning or state == State.WARNING
        return State.WARNING if warning else State.SUCCESS

    def concurrently(self, branches: list, limit: int) -> str:
        """Run (started?, thunk) branches side by side, at most `limit` at once (0: no limit)."""
        states, active, failed = [], 0, False
        for started, run_branch in branches:
            if not started:
                if failed or self.killing:
                    continue
                if limit and active >= limit:
                    states.append(State.RUNNING)
                    continue
            state = run_branch()
            active += state == State.RUNNING
            failed = failed or state == State.FAILED
            states.append(state)
        return _combine(states)

    def flowable(self, run: TaskRun, task) -> str:
        if run.state in TERMINAL_STATES:
            return run.state
        value = run.value
        kind = task.type.rsplit(".", 1)[-1]
        if kind == "Sequential":
            state = self.sequence(task.tasks, run, value)
        elif kind == "Parallel":
            branches = [
                (scope_key(run.id, child.id, value) in self.by_scope,
                 lambda child=child: self.step(child, run, value))
                for child in task.tasks if not child.disabled
            ]
            state = self.concurrently(branches, task.concurrent)
        elif kind == "If":
            branch = task.then if run.outputs.get("evaluationResult") else task.else_
            state = self.sequence(branch, run, value)
        elif kind == "Switch":
            case = run.outputs.get("value")
            branch = task.defaults if run.outputs.get("defaults") else task.cases.get(case, [])
            state = self.sequence(branch, run, value)
        else:  # ForEach
            branches = [
                ((run.id, item) in self.started, lambda item=item: self.sequence(task.tasks, run, item))
                for item in run.outputs.get("values", [])
            ]
            state = self.concurrently(branches, task.concurrencyLimit)
        if state == State.FAILED and task.errors and not self.killing:
            if self.sequence(task.errors, run, value) == State.RUNNING:
                return State.RUNNING
        if state == State.RUNNING:
            return state
        if state == State.FAILED and task.allowFailure:
            state = State.WARNING
        self.finish(run, state)
        return state

    def context(self) -> dict:
        """Outputs only change when task runs end, never during one pass: build them once."""
        if self._context is None:
            self._context = execution_context(execution=self.execution, document=self.document, runs=self.runs,
                                              runs_by_id=self.by_id)
        return self._context

    # --- creation -----------------------------------------------------------------------

    def create(self, task, parent: TaskRun | None, value: str | None) -> TaskRun:
        run = TaskRun(
            id=uuid.uuid4(), execution=self.execution, parent=parent, scope_key=scope_key(parent.id if parent else None, task.id, value),
            task_id=task.id, task_type=task.type, value=value, state=State.CREATED,
            state_history=[{"state": State.CREATED, "date": self.now.isoformat()}], created=self.now,
        )
        self.new_runs.append(run)
        self.by_scope[run.scope_key] = run
        self.by_id[run.id] = run
        self.started.add((run.parent_id, run.value))
        context = with_taskrun(self.context(), run, self.by_id)
        try:
            if task.runIf is not None and not is_truthy(render(task.runIf, context)):
                transition(run, State.SKIPPED, self.now)
                run.end_date = self.now
                return run
            if task.flowable:
                self.plan_flowable(run, task, context)
            else:
                self.route(run, task, context)
        except (ExpressionError, RoutingError) as error:
            self.fail(run, str(error))
        return run

    def plan_flowable(self, run: TaskRun, task, context: dict) -> None:
        kind = task.type.rsplit(".", 1)[-1]
        if kind == "If":
            run.outputs = {"evaluationResult": is_truthy(render(task.condition, context))}
        elif kind == "Switch":
            case = render(task.value, context)
            case = case if isinstance(case, str) else json.dumps(case)
            run.outputs = {"value": case, "defaults": case not in task.cases}
        elif kind == "ForEach":
            values = render_deep(task.values, context)
            if isinstance(values, str):
                try:
                    values = json.loads(values)
                except json.JSONDecodeError:
                    raise ExpressionError(f"ForEach values must be a list or a JSON array, got '{values[:200]}'") from None
            if not isinstance(values, list):
                raise ExpressionError(f"ForEach values must be a list, got {type(values).__name__}")
            run.outputs = {"values": [item if isinstance(item, str) else json.dumps(item) for item in values]}
        run.start_date = self.now
        transition(run, State.RUNNING, self.now)

    def route(self, run: TaskRun, task, context: dict) -> None:
        route = route_resolve(holder=task, document=self.document, tenant=self.execution.tenant, context=context,
                              namespace_cache=self._namespaces)
        run.worker_group, run.fallback, run.max_wait_seconds = route.key, route.fallback, route.max_wait_seconds
        label = group_label(route.key)
        if route.key not in self._group_problems:
            self._group_problems[route.key] = worker_group_problem(route.key, self.execution.tenant)
        problem = self._group_problems[route.key]
        if problem:
            self.fail(run, problem)
            return
        if not self.group_alive(route.key):
            if route.fallback == "FAIL":
                self.fail(run, f"no alive worker in worker group '{label}' (fallback FAIL)")
                return
            if route.fallback == "CANCEL":
                self.log(run, "WARN", f"no alive worker in worker group '{label}': task run cancelled (fallback CANCEL)")
                transition(run, State.CANCELLED, self.now)
                run.end_date = self.now
                self.kill_requested = True
                return
            wait = f" (at most {route.max_wait_seconds:g}s)" if route.max_wait_seconds else ""
            self.log(run, "WARN", f"waiting for a worker of worker group '{label}'{wait}")
        run.published = self.now
        self.to_publish.append((str(run.id), run.attempt, route.key))

    def group_alive(self, key: str) -> bool:
        if self._alive_queues is None:
            self._alive_queues = {queue for worker in alive_workers() for queue in worker.groups}
        return queue_for_group(key) in self._alive_queues

    # --- writes -------------------------------------------------------------------------

    def fail(self, run: TaskRun, message: str) -> None:
        run.error = message
        run.end_date = self.now
        transition(run, State.FAILED, self.now)
        self.log(run, "ERROR", message)
        self.changed[run.id] = run

    def finish(self, run: TaskRun, state: str) -> None:
        run.end_date = self.now
        transition(run, state, self.now)
        self.changed[run.id] = run

    def log(self, run: TaskRun, level: str, message: str) -> None:
        self.logs.append(LogLine(execution_id=self.execution.id, task_run=run, task_id=run.task_id, level=level, message=message))

    def save(self) -> None:
        new_ids = {run.id for run in self.new_runs}
        if self.new_runs:
            TaskRun.objects.bulk_create(self.new_runs)
        for run in self.changed.values():
            if run.id not in new_ids:
                run.save(update_fields=["state", "state_history", "end_date", "error", "outputs"])
        if self.logs:
            LogLine.objects.bulk_create(self.logs)
        if self.to_publish:
            items = list(self.to_publish)
            transaction.on_commit(lambda: publish_taskruns(items))


def _lock(execution_id) -> Execution | None:
    return (
        Execution.objects.select_for_update(of=("self",))
        .select_related("flow_revision", "tenant")
        .filter(id=execution_id)
        .first()
    )


def _advance_locked(execution: Execution) -> None:
    parsed = parse_flow_cached(execution.flow_revision.source)
    runs = list(execution.task_runs.all())
    evaluation = _Pass(execution, parsed, runs)
    state_before = execution.state
    if execution.state == State.CREATED:
        execution.start_date = evaluation.now
        transition(execution, State.RUNNING, evaluation.now)
    state = evaluation.evaluate()
    if evaluation.kill_requested and not evaluation.killing:
        evaluation.save()
        _mark_killing(execution, evaluation.now)
        return _advance_locked(execution)
    evaluation.save()
    if state != State.RUNNING:
        execution.end_date = evaluation.now
        transition(execution, State.KILLED if evaluation.killing else state, evaluation.now)
    if execution.state != state_before:
        execution.save(update_fields=["state", "state_history", "start_date", "end_date"])


def _mark_killing(execution: Execution, now: datetime) -> None:
    transition(execution, State.KILLING, now)
    execution.save(update_fields=["state", "state_history"])
    for run in execution.task_runs.filter(state=State.CREATED):
        transition(run, State.KILLED, now)
        run.end_date = now
        run.save(update_fields=["state", "state_history", "end_date"])


def execution_advance(*, execution_id) -> None:
    with transaction.atomic(savepoint=False):
        execution = _lock(execution_id)
        if execution is None or execution.state in TERMINAL_STATES:
            return
        _advance_locked(execution)


def execution_create(*, tenant_key: str, namespace: str, flow_id: str, inputs: dict | None = None,
                     labels: dict | None = None, trigger: dict | None = None) -> Execution:
    tenant = tenant_get(tenant_key)
    flow = flow_get(tenant, namespace, flow_id)
    if flow.disabled:
        raise UserError(f"flow '{namespace}.{flow_id}' is disabled", status=409)
    revision = flow.revisions.get(revision=flow.revision)
    document = parse_flow_cached(revision.source).document
    resolved = inputs_resolve(document.inputs, inputs or {})
    if labels is not None and (not isinstance(labels, dict) or not all(isinstance(v, (str, int, float, bool)) for v in labels.values())):
        raise UserError("labels must be a mapping of names to plain values", path="labels")
    now = timezone.now()
    with transaction.atomic():
        execution = Execution.objects.create(
            tenant=tenant, flow_revision=revision, namespace=namespace, flow_id=flow_id, inputs=resolved,
            labels={**document.label_map, **{k: str(v) for k, v in (labels or {}).items()}}, trigger=trigger,
            state=State.CREATED, state_history=[{"state": State.CREATED, "date": now.isoformat()}],
        )
        transaction.on_commit(lambda: publish_advance(execution.id))
    return execution


def execution_kill(*, execution_id) -> Execution:
    with transaction.atomic():
        execution = _lock(execution_id)
        if execution is None:
            raise UserError(f"execution '{execution_id}' does not exist", status=404)
        if execution.state in TERMINAL_STATES:
            raise UserError(f"execution '{execution_id}' has already ended ({execution.state})", status=409)
        if execution.state != State.KILLING:
            _mark_killing(execution, timezone.now())
        _advance_locked(execution)
    return execution
