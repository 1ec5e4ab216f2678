"""One handler per flowable task type, chosen by the task's schema class.

A handler has two moments: `plan`, when its task run is created (what it decided then is stored as
the task run's outputs, so later evaluations see the same branch or the same loop values), and
`advance`, on every evaluation while it runs (it returns the state of its children, and lets the
evaluation create those whose turn has come). Errors blocks, allowFailure and ending the task run
are the evaluation's, the same for every type.
"""
import ast
import json
from collections import Counter
from datetime import timedelta

from .. import schema
from ..context import with_taskrun
from ..durations import parse_duration
from ..expressions import ExpressionError, is_template, is_truthy, render, render_deep
from ..models import TERMINAL_STATES, Execution, State
from .subflows import items_split, subflow_child, subflow_outcome


WAITFOR_TYPE = "io.kestra.plugin.core.flow.WaitFor"


def combine(states: list[str]) -> str:
    """The state of branches run side by side: running while any runs, else the worst outcome."""
    for state in (State.RUNNING, State.FAILED, State.KILLED, State.WARNING):
        if state in states:
            return state
    return State.SUCCESS


class Sequential:
    def plan(self, task: schema.SequentialTask, context: dict) -> dict:
        return {}

    def advance(self, evaluation, run, task: schema.SequentialTask) -> str:
        return evaluation.sequence(task.tasks, run, run.value)


class Parallel:
    def plan(self, task: schema.ParallelTask, context: dict) -> dict:
        return {}

    def advance(self, evaluation, run, task: schema.ParallelTask) -> str:
        branches = [
            (evaluation.has_run(run, child.id, run.value), lambda child=child: evaluation.step(child, run, run.value))
            for child in task.tasks if not child.disabled
        ]
        return evaluation.concurrently(branches, task.concurrent)


class If:
    def plan(self, task: schema.IfTask, context: dict) -> dict:
        return {"evaluationResult": is_truthy(render(task.condition, context))}

    def advance(self, evaluation, run, task: schema.IfTask) -> str:
        branch = task.then if run.outputs.get("evaluationResult") else task.else_
        return evaluation.sequence(branch, run, run.value)


class Switch:
    def plan(self, task: schema.SwitchTask, context: dict) -> dict:
        case = render(task.value, context)
        case = case if isinstance(case, str) else json.dumps(case)
        if case not in task.cases and not task.defaults:  # Kestra: no branch to run fails the task
            raise ExpressionError(f"no case matches '{case[:200]}' and the Switch has no defaults")
        return {"value": case, "defaults": case not in task.cases}

    def advance(self, evaluation, run, task: schema.SwitchTask) -> str:
        branch = task.defaults if run.outputs.get("defaults") else task.cases.get(run.outputs.get("value"), [])
        return evaluation.sequence(branch, run, run.value)


def loop_values(values, context: dict, task_type: str) -> dict:
    """A loop's items, rendered, as the task run's outputs (strings: `taskrun.value`)."""
    values = render_deep(values, context)
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except json.JSONDecodeError:
            raise ExpressionError(f"{task_type} values must be a list or a JSON array, got '{values[:200]}'") from None
    if not isinstance(values, list):
        raise ExpressionError(f"{task_type} values must be a list, got {type(values).__name__}")
    if None in values:  # Kestra refuses a null item rather than iterating over "null"
        nulls = sum(item is None for item in values)
        raise ExpressionError(f"{task_type} values hold {nulls} null item(s): {json.dumps(values)[:200]}")
    return {"values": [item if isinstance(item, str) else json.dumps(item) for item in values]}


class ForEach:
    def plan(self, task: schema.ForEachTask, context: dict) -> dict:
        return loop_values(task.values, context, "ForEach")

    def limit(self, task: schema.ForEachTask) -> int:
        return task.concurrencyLimit

    def advance(self, evaluation, run, task: schema.ForEachTask) -> str:
        branches = [
            (evaluation.has_started_iteration(run, item), lambda item=item: evaluation.sequence(task.tasks, run, item))
            for item in run.outputs.get("values", [])
        ]
        return evaluation.concurrently(branches, self.limit(task))


class EachSequential(ForEach):
    def plan(self, task: schema.EachSequentialTask, context: dict) -> dict:
        return loop_values(task.value, context, "EachSequential")

    def limit(self, task: schema.EachSequentialTask) -> int:
        return 1


class EachParallel:
    """Every task for every item is a branch of its own, as in Kestra (wrap tasks in a Sequential to
    run them in order for each item)."""

    def plan(self, task: schema.EachParallelTask, context: dict) -> dict:
        return loop_values(task.value, context, "EachParallel")

    def advance(self, evaluation, run, task: schema.EachParallelTask) -> str:
        branches = [
            (evaluation.has_run(run, child.id, item), lambda child=child, item=item: evaluation.step(child, run, item))
            for item in run.outputs.get("values", []) for child in task.tasks if not child.disabled
        ]
        return evaluation.concurrently(branches, task.concurrent)


def _as_mapping(text: str) -> dict | None:
    """A rendered map: JSON as Kestra prints one, or as this renderer prints a dict today."""
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        return value if isinstance(value, dict) else None
    return None


class Labels:
    """Sets the execution's labels when its task run is created, and ends at once."""

    def plan(self, task: schema.LabelsTask, context: dict) -> dict:
        return {}

    def advance(self, evaluation, run, task: schema.LabelsTask) -> str:
        context = with_taskrun(evaluation.context(), run, evaluation.by_id)
        labels = task.labels
        if isinstance(labels, str):
            labels = _as_mapping(render(labels, context))
            if labels is None:
                raise ExpressionError(f"Labels: '{task.labels}' must render a map of labels")
        pairs = labels.items() if isinstance(labels, dict) else ((label.key, label.value) for label in labels)
        rendered = {}
        for key, value in pairs:
            key, value = render(key, context), render_deep(value, context)
            rendered[str(key)] = value if isinstance(value, str) else json.dumps(value)
        evaluation.set_labels(rendered)
        return State.SUCCESS


def duration_seconds(duration: str, evaluation, run) -> float:
    """An ISO-8601 duration property of a flowable task, rendered first when it is an expression."""
    if is_template(duration):
        duration = str(render(duration, with_taskrun(evaluation.context(), run, evaluation.by_id)))
    try:
        return parse_duration(duration).total_seconds()
    except ValueError as error:
        raise ExpressionError(str(error)) from None


class WaitFor:
    """Iteration n's children are scoped by n, so each iteration creates its own task runs; the
    count lives in the task run's outputs (`iterationCount`, as Kestra names it)."""

    def plan(self, task: schema.WaitForTask, context: dict) -> dict:
        return {"iterationCount": 1}

    def advance(self, evaluation, run, task: schema.WaitForTask) -> str:
        iteration = run.outputs.get("iterationCount", 1)
        if iteration > 1 and not evaluation.has_run(run, task.tasks[0].id, run.value, iteration):
            if evaluation.killing:
                return State.KILLED
            remaining = (self._previous_end(evaluation, run, task, iteration) - evaluation.now).total_seconds()
            remaining += duration_seconds(task.checkFrequency.interval, evaluation, run)
            if remaining > 0:
                evaluation.wake_up_in(remaining)
                return State.RUNNING
        state = evaluation.sequence(task.tasks, run, run.value, iteration)
        if state != State.SUCCESS:
            return state  # running, or an iteration that did not fully succeed ends the loop in its state
        evaluation.set_outputs(run, {**run.outputs, "iterationCount": iteration + 1})
        if self._reached_maximum(evaluation, run, task, iteration + 1):
            return State.FAILED if task.failOnMaxReached else State.SUCCESS
        if is_truthy(render(task.condition, with_taskrun(evaluation.context(), run, evaluation.by_id))):
            return State.SUCCESS
        return self.advance(evaluation, run, task)  # the next iteration, or the wait before it

    def _reached_maximum(self, evaluation, run, task: schema.WaitForTask, count: int) -> bool:
        limits = task.checkFrequency
        if count > limits.maxIterations:
            return True
        return (evaluation.now - run.created).total_seconds() > duration_seconds(limits.maxDuration, evaluation, run)

    def _previous_end(self, evaluation, run, task: schema.WaitForTask, iteration: int):
        ends = [child.end_date for child in (evaluation.run_of(run, task.id, run.value, iteration - 1)
                                             for task in task.tasks) if child is not None and child.end_date]
        return max(ends, default=evaluation.now)



class Dag:
    """A task starts once each task it depends on has ended (SUCCESS, WARNING or SKIPPED); after a
    failure or a kill, tasks not started never start."""

    def plan(self, task: schema.DagTask, context: dict) -> dict:
        return {}

    def advance(self, evaluation, run, task: schema.DagTask) -> str:
        entries = {entry.task.id: entry for entry in task.tasks}
        states = {task_id: State.SUCCESS for task_id, entry in entries.items() if entry.task.disabled}
        for task_id, entry in entries.items():
            if task_id not in states and evaluation.has_run(run, task_id, run.value):
                states[task_id] = evaluation.step(entry.task, run, run.value)
        waiting = [entry for task_id, entry in entries.items() if task_id not in states]
        while waiting and not evaluation.killing and not {State.FAILED, State.KILLED} & set(states.values()):
            ready = [entry for entry in waiting
                     if all(states.get(needed) in (State.SUCCESS, State.WARNING) for needed in entry.dependsOn)]
            if task.concurrent:
                ready = ready[:max(0, task.concurrent - list(states.values()).count(State.RUNNING))]
            for entry in ready:
                states[entry.task.id] = evaluation.step(entry.task, run, run.value)
                waiting.remove(entry)
            if all(states[entry.task.id] == State.RUNNING for entry in ready):
                break  # nothing new ended at once (a skipped task, a refused route): no dependent to start yet
        stopped = evaluation.killing or {State.FAILED, State.KILLED} & set(states.values())
        return combine([*states.values(), *([State.RUNNING] if waiting and not stopped else [])])


class Pause:
    """RUNNING → PAUSED at once (the execution becomes PAUSED, no worker is held); back to RUNNING
    when resumed (flows.engine.execution_resume) or once `delay` has passed; FAILED past `timeout`.
    The end of a delay or timeout is the task run's `resume_at`: a delayed message advances the
    execution then, and the reconciler does if that message is lost."""

    def plan(self, task: schema.PauseTask, context: dict) -> dict:
        return {}

    def advance(self, evaluation, run, task: schema.PauseTask) -> str:
        if evaluation.killing and run.state == State.PAUSED:
            return State.KILLED
        if not any(entry["state"] == State.PAUSED for entry in run.state_history):
            limit = task.delay or task.timeout
            seconds = duration_seconds(limit, evaluation, run) if limit else None
            evaluation.pause(run, None if seconds is None else evaluation.now + timedelta(seconds=seconds))
            if seconds is not None:
                evaluation.wake_up_in(seconds)
            return State.RUNNING
        if run.state == State.PAUSED:
            if run.resume_at is None or evaluation.now < run.resume_at:
                return State.RUNNING
            if not task.delay:
                run.error = f"the pause was not resumed within its timeout ({task.timeout})"
                evaluation.log(run, "ERROR", run.error)
                return State.FAILED
            evaluation.unpause(run)
        return evaluation.sequence(task.tasks, run, run.value) if task.tasks else State.SUCCESS


class Subflow:
    """Starts the child execution when its task run is created (stored with the evaluation); with
    `wait`, runs until the child has ended (the child's end advances this execution), then ends as
    `transmitFailed` says with `executionId`, `state` and the child's flow `outputs`. Killed, it
    kills the child it waits for."""

    def plan(self, task: schema.SubflowTask, context: dict) -> dict:
        return {}

    def advance(self, evaluation, run, task: schema.SubflowTask) -> str:
        child_id = run.outputs.get("executionId")
        if child_id is None:
            if evaluation.killing:
                return State.KILLED
            child = subflow_child(parent=evaluation.execution, run=run, task=task,
                                  context=with_taskrun(evaluation.context(), run, evaluation.by_id))
            evaluation.start_execution(child)
            evaluation.set_outputs(run, {"executionId": str(child.id)})
            return State.RUNNING if task.wait else State.SUCCESS
        if evaluation.killing:
            evaluation.kill_execution(child_id)
            return State.KILLED
        outcome = subflow_outcome(child_id, task)
        if outcome is None:
            return State.RUNNING
        state, outputs = outcome
        evaluation.set_outputs(run, outputs)
        return state


class ForEachItem:
    """Splits its items when created (the batches are stored files), then starts one subflow
    execution per batch, at most `concurrencyLimit` running at once; with `wait`, ends once every
    child has ended, with `iterations` counting their states (docs/core-tasks.md)."""

    def plan(self, task: schema.ForEachItemTask, context: dict) -> dict:
        return items_split(task, context)

    def advance(self, evaluation, run, task: schema.ForEachItemTask) -> str:
        executions = dict(run.outputs.get("executions") or {})
        states = {str(child): state for child, state in
                  Execution.objects.filter(id__in=list(executions.values())).values_list("id", "state")}
        if evaluation.killing:
            for child_id, state in states.items():
                if state not in TERMINAL_STATES:
                    evaluation.kill_execution(child_id)
            return State.KILLED
        running = sum(state not in TERMINAL_STATES for state in states.values())
        context = with_taskrun(evaluation.context(), run, evaluation.by_id)
        for index, uri in enumerate(run.outputs.get("batches", [])):
            if str(index) in executions:
                continue
            if task.wait and task.concurrencyLimit and running >= task.concurrencyLimit:
                break
            batch = {**context, "taskrun": {**context["taskrun"], "items": uri, "iteration": index}}
            child = subflow_child(parent=evaluation.execution, run=run, task=task, context=batch, batch=index)
            evaluation.start_execution(child)
            executions[str(index)] = str(child.id)
            running += 1
        if not task.wait or len(executions) < run.outputs.get("numberOfBatches", 0) or running:
            if executions != run.outputs.get("executions"):
                evaluation.set_outputs(run, {**run.outputs, "executions": executions})
            return State.SUCCESS if not task.wait else State.RUNNING
        iterations = {State.CREATED: 0, State.RUNNING: 0, **Counter(states.values())}
        evaluation.set_outputs(run, {**run.outputs, "iterations": iterations})
        failed = task.transmitFailed and {State.FAILED, State.KILLED} & set(states.values())
        return State.FAILED if failed else State.SUCCESS


HANDLERS = {
    schema.SequentialTask: Sequential(),
    schema.ParallelTask: Parallel(),
    schema.IfTask: If(),
    schema.SwitchTask: Switch(),
    schema.ForEachTask: ForEach(),
    schema.EachSequentialTask: EachSequential(),
    schema.EachParallelTask: EachParallel(),
    schema.AllowFailureTask: Sequential(),  # its allowFailure (true) turns a failure into WARNING
    schema.WaitForTask: WaitFor(),
    schema.DagTask: Dag(),
    schema.LabelsTask: Labels(),
    schema.PauseTask: Pause(),
    schema.SubflowTask: Subflow(),
    schema.ForEachItemTask: ForEachItem(),
}


def handler_for(task):
    return HANDLERS[type(task)]
