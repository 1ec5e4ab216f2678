"""One evaluation of an execution's task tree.

`ExecutionEvaluation` walks the flow's tasks against the task runs that exist: it creates the task
runs whose turn has come (routing each runnable one to its worker group, by the fallback policy),
asks each flowable task's handler how its children stand, ends flowable task runs whose children
are done, and returns the state of the whole tree. It only decides; `save()` hands the writes to
`flows.states` and the messages to `flows.dispatch`.
"""
import hashlib
import uuid

from django.utils import timezone

from .. import dispatch
from ..context import execution_context, with_taskrun
from ..definition import ParsedFlow
from ..expressions import ExpressionError, is_truthy, render
from ..fallback import WAIT, fallback_decide
from ..models import TERMINAL_STATES, Execution, LogLine, State, TaskRun, queue_for_group
from ..recent import namespace_defaults_recent, queue_alive_recent, worker_group_problem_recent
from ..routing import RoutingError, route_resolve
from ..states import execution_labels_save, taskruns_save, transition
from .flowables import combine, handler_for

# How a task run's own state counts for the sequence that holds it.
STATE_IN_SEQUENCE = {State.CANCELLED: State.KILLED, State.SKIPPED: State.SUCCESS}


def scope_key(parent_id, task_id: str, value: str | None, iteration: int | None = None) -> str:
    """Identifies a task run inside its execution: (parent, task id, loop value), and the iteration
    of a WaitFor that runs its children again."""
    raw = f"{parent_id or ''}|{task_id}|{'' if value is None else value}"
    if iteration is not None:
        raw += f"|{iteration}"
    return hashlib.sha1(raw.encode()).hexdigest()


def tolerated(task, state: str) -> str:
    """A task's own state as its `allowFailure` and `allowWarning` let it count: FAILED → WARNING,
    WARNING → SUCCESS (both: FAILED → SUCCESS), as Kestra's worker does."""
    if state == State.FAILED and task.allowFailure:
        state = State.WARNING
    if state == State.WARNING and task.allowWarning:
        state = State.SUCCESS
    return state


class ExecutionEvaluation:
    def __init__(self, execution: Execution, parsed: ParsedFlow, runs: list[TaskRun]):
        self.execution = execution
        self.parsed = parsed
        self.document = parsed.document
        self.now = timezone.now()
        self.runs = runs
        self.by_scope = {run.scope_key: run for run in runs}
        self.by_id = {run.id: run for run in runs}
        self.started = {(run.parent_id, run.value) for run in runs}
        self.killing = execution.state == State.KILLING
        self.kill_requested = False
        self.labels_changed = False
        self.started_executions: list[Execution] = []
        self.executions_to_kill: list = []
        self.created: list[TaskRun] = []
        self.changed: dict = {}
        self.logs: list[LogLine] = []
        self.messages: list[dispatch.Message] = []
        self._context: dict | None = None
        self._alive_groups: dict = {}  # one answer per group within an evaluation (flows/recent.py across them)
        self._group_problems: dict = {}

    # --- walking the tree ------------------------------------------------------------------------

    def evaluate(self) -> str:
        state = self.sequence(self.document.tasks, None, None)
        return self.with_errors(state, self.document.errors, None, None)

    def with_errors(self, state: str, errors: list, parent: TaskRun | None, value: str | None) -> str:
        """A failed block runs its `errors` tasks; it stays running until they end."""
        if state == State.FAILED and errors and not self.killing:
            if self.sequence(errors, parent, value) == State.RUNNING:
                return State.RUNNING
        return state

    def sequence(self, tasks: list, parent: TaskRun | None, value: str | None, iteration: int | None = None) -> str:
        """Tasks one after another: stops at the first one running, failed or killed."""
        warning = False
        for task in tasks:
            if task.disabled:
                continue
            state = self.step(task, parent, value, iteration)
            if state in (State.RUNNING, State.FAILED, State.KILLED):
                return state
            warning = warning or state == State.WARNING
        return State.WARNING if warning else State.SUCCESS

    def concurrently(self, branches: list, limit: int) -> str:
        """Branches side by side, at most `limit` at once (0: no limit). A branch is (started, run it);
        after a failure or a kill, branches not started yet never start."""
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
        return combine(states)

    def step(self, task, parent: TaskRun | None, value: str | None, iteration: int | None = None) -> str:
        """The state of one task within its sequence, creating its task run when its turn has come."""
        run = self.by_scope.get(scope_key(parent.id if parent else None, task.id, value, iteration))
        if run is None:
            if self.killing:
                return State.KILLED
            run = self.create(task, parent, value, iteration)
        state = self.advance_flowable(run, task) if task.flowable else run.state
        if task.block and state in TERMINAL_STATES:  # a WorkingDirectory's worker ended it: its errors run here
            state = self.with_errors(state, task.errors, run, run.value)
        if state not in TERMINAL_STATES:
            return State.RUNNING
        state = tolerated(task, state)
        return STATE_IN_SEQUENCE.get(state, state)

    def advance_flowable(self, run: TaskRun, task) -> str:
        if run.state in TERMINAL_STATES:
            return run.state
        try:
            state = handler_for(task).advance(self, run, task)
        except ExpressionError as error:  # a WaitFor's condition, rendered after each iteration
            run.error = str(error)
            self.log(run, "ERROR", run.error)
            state = State.FAILED
        state = self.with_errors(state, getattr(task, "errors", []), run, run.value)
        if state == State.RUNNING:
            return state
        state = tolerated(task, state)
        transition(run, state, self.now)
        self.changed[run.id] = run
        return state

    def has_run(self, parent: TaskRun, task_id: str, value: str | None, iteration: int | None = None) -> bool:
        return scope_key(parent.id, task_id, value, iteration) in self.by_scope

    def run_of(self, parent: TaskRun, task_id: str, value: str | None, iteration: int | None = None) -> TaskRun | None:
        return self.by_scope.get(scope_key(parent.id, task_id, value, iteration))

    def set_outputs(self, run: TaskRun, outputs: dict) -> None:
        """A running flowable task run's outputs change (a WaitFor's iteration count): saved with the evaluation."""
        run.outputs = outputs
        self.changed[run.id] = run
        self._context = None  # the outputs of the context are built from the task runs

    def pause(self, run: TaskRun, resume_at) -> None:
        """A Pause task run waits (PAUSED, on no worker) until it is resumed, or until `resume_at`."""
        run.resume_at = resume_at
        transition(run, State.PAUSED, self.now)
        self.changed[run.id] = run

    def unpause(self, run: TaskRun) -> None:
        """A paused task run whose delay is over goes on."""
        run.resume_at = None
        transition(run, State.RUNNING, self.now)
        self.changed[run.id] = run

    def has_paused(self) -> bool:
        return any(run.state == State.PAUSED for run in self.by_id.values())

    def start_execution(self, child: Execution) -> None:
        """A Subflow's child execution, stored and started with this evaluation."""
        self.started_executions.append(child)

    def kill_execution(self, execution_id) -> None:
        """A killed Subflow's child, killed once this evaluation is stored."""
        self.executions_to_kill.append(execution_id)

    def set_labels(self, labels: dict) -> None:
        """The execution's labels change (a Labels task): saved with the evaluation."""
        self.execution.labels = {**self.execution.labels, **labels}
        self.labels_changed = True
        self._context = None

    def wake_up_in(self, seconds: float) -> None:
        """Advance the execution again in `seconds`, when nothing else would (a WaitFor's interval)."""
        self.messages.append(dispatch.advance_message(execution_id=self.execution.id, countdown=seconds))

    def has_started_iteration(self, parent: TaskRun, value: str) -> bool:
        return (parent.id, value) in self.started

    def context(self) -> dict:
        """Outputs only change when task runs end, never during one evaluation: built once."""
        if self._context is None:
            self._context = execution_context(execution=self.execution, document=self.document, runs=self.runs,
                                              runs_by_id=self.by_id)
        return self._context

    # --- creating task runs ------------------------------------------------------------------------

    def create(self, task, parent: TaskRun | None, value: str | None, iteration: int | None = None) -> TaskRun:
        run = TaskRun(
            id=uuid.uuid4(), execution=self.execution, parent=parent,
            scope_key=scope_key(parent.id if parent else None, task.id, value, iteration),
            task_id=task.id, task_type=task.kind, value=value, state=State.CREATED,
            state_history=[{"state": State.CREATED, "date": self.now.isoformat()}], created=self.now,
        )
        self.created.append(run)
        self.by_scope[run.scope_key] = run
        self.by_id[run.id] = run
        self.started.add((run.parent_id, run.value))
        context = with_taskrun(self.context(), run, self.by_id)
        try:
            if task.runIf is not None and not is_truthy(render(task.runIf, context)):
                transition(run, State.SKIPPED, self.now)
            elif task.flowable:
                run.outputs = handler_for(task).plan(task, context)
                run.start_date = self.now
                transition(run, State.RUNNING, self.now)
            else:
                self.route(run, task, context)
        except (ExpressionError, RoutingError) as error:
            self.fail(run, str(error))
        return run

    def route(self, run: TaskRun, task, context: dict) -> None:
        route = route_resolve(holder=task, document=self.document, tenant=self.execution.tenant, context=context,
                              namespace_defaults_of=namespace_defaults_recent)
        run.worker_group, run.fallback, run.max_wait_seconds = route.key, route.fallback, route.max_wait_seconds
        decision = fallback_decide(
            group_key=route.key, fallback=route.fallback, max_wait_seconds=route.max_wait_seconds,
            problem=self.group_problem(route.key), alive=self.group_alive(route.key), waited_seconds=0.0,
        )
        if decision.action == State.FAILED:
            self.fail(run, decision.message)
        elif decision.action == State.CANCELLED:
            self.log(run, "WARN", decision.message)
            transition(run, State.CANCELLED, self.now)
            self.kill_requested = True
        else:  # PUBLISH, or WAIT: sent all the same, to wait in the group's queue
            if decision.action == WAIT:
                self.log(run, "WARN", decision.message)
            run.published = self.now
            self.messages.append(dispatch.taskrun_message(taskrun_id=run.id, attempt=run.attempt,
                                                          queue=queue_for_group(route.key)))

    def group_problem(self, key: str) -> str | None:
        if key not in self._group_problems:
            self._group_problems[key] = worker_group_problem_recent(key, self.execution.tenant)
        return self._group_problems[key]

    def group_alive(self, key: str) -> bool:
        if key not in self._alive_groups:
            self._alive_groups[key] = queue_alive_recent(queue_for_group(key))
        return self._alive_groups[key]

    def fail(self, run: TaskRun, message: str) -> None:
        run.error = message
        transition(run, State.FAILED, self.now)
        self.log(run, "ERROR", message)
        self.changed[run.id] = run

    def log(self, run: TaskRun, level: str, message: str) -> None:
        self.logs.append(LogLine(execution_id=self.execution.id, task_run=run, task_id=run.task_id, level=level,
                                 message=message))

    def save(self) -> None:
        taskruns_save(created=self.created, changed=list(self.changed.values()), logs=self.logs)
        if self.labels_changed:
            execution_labels_save(self.execution)
        dispatch.send(self.messages)
