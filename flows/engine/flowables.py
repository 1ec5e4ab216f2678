"""One handler per flowable task type, chosen by the task's schema class.

A handler has two moments: `plan`, when its task run is created (what it decided then is stored as
the task run's outputs, so later evaluations see the same branch or the same loop values), and
`advance`, on every evaluation while it runs (it returns the state of its children, and lets the
evaluation create those whose turn has come). Errors blocks, allowFailure and ending the task run
are the evaluation's, the same for every type.
"""
import json

from .. import schema
from ..expressions import ExpressionError, is_truthy, render, render_deep


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
        return {"value": case, "defaults": case not in task.cases}

    def advance(self, evaluation, run, task: schema.SwitchTask) -> str:
        branch = task.defaults if run.outputs.get("defaults") else task.cases.get(run.outputs.get("value"), [])
        return evaluation.sequence(branch, run, run.value)


class ForEach:
    def plan(self, task: schema.ForEachTask, context: dict) -> dict:
        values = render_deep(task.values, context)
        if isinstance(values, str):
            try:
                values = json.loads(values)
            except json.JSONDecodeError:
                raise ExpressionError(f"ForEach values must be a list or a JSON array, got '{values[:200]}'") from None
        if not isinstance(values, list):
            raise ExpressionError(f"ForEach values must be a list, got {type(values).__name__}")
        return {"values": [item if isinstance(item, str) else json.dumps(item) for item in values]}

    def advance(self, evaluation, run, task: schema.ForEachTask) -> str:
        branches = [
            (evaluation.has_started_iteration(run, item), lambda item=item: evaluation.sequence(task.tasks, run, item))
            for item in run.outputs.get("values", [])
        ]
        return evaluation.concurrently(branches, task.concurrencyLimit)


HANDLERS = {
    schema.SequentialTask: Sequential(),
    schema.ParallelTask: Parallel(),
    schema.IfTask: If(),
    schema.SwitchTask: Switch(),
    schema.ForEachTask: ForEach(),
}


def handler_for(task):
    return HANDLERS[type(task)]
