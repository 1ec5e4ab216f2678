"""Restart and replay of ended executions, with Kestra's semantics (docs/core-tasks.md).

Restart runs the same execution again from its failed task runs: each failed runnable task run gets
its next attempt on its worker group, the flowable task runs above it run again, and the `errors`
branches that ran are forgotten. Replay starts a new execution of the same revision and inputs,
either from the start or from a chosen task run: what ended before that task run is copied, the
task runs above it run again, and the engine creates the chosen one and what follows anew.
"""
import uuid

from django.db import transaction
from django.utils import timezone

from .. import dispatch
from ..definition import ParsedFlow, parse_flow_cached
from ..errors import Conflict, NotFound
from ..models import TERMINAL_STATES, WORKING_DIRECTORY_TYPE, Execution, State, TaskRun, queue_for_group
from ..schema import walk_tasks
from ..states import execution_restart as execution_mark_restarted
from ..states import taskrun_copy_running, taskruns_restart, taskruns_save
from .evaluation import scope_key
from .flowables import WAITFOR_TYPE


def _ended(execution_id, *, lock: bool) -> Execution:
    executions = Execution.objects.select_related("flow_revision", "tenant")
    execution = (executions.select_for_update(of=("self",)) if lock else executions).filter(id=execution_id).first()
    if execution is None:
        raise NotFound(f"execution '{execution_id}' does not exist")
    if execution.state not in TERMINAL_STATES:
        raise Conflict(f"execution '{execution_id}' has not ended ({execution.state}): only an ended execution "
                       "can be restarted or replayed")
    return execution


def _error_task_ids(parsed: ParsedFlow) -> set[str]:
    """Ids of every task of an `errors` branch (the flow's, or a flowable task's), and their children."""
    ids = {task.id for task in walk_tasks(parsed.document.errors)}
    for task in parsed.tasks_by_id.values():
        ids |= {child.id for child in walk_tasks(getattr(task, "errors", None) or [])}
    return ids


def _ancestors(run: TaskRun, by_id: dict) -> list[TaskRun]:
    found, node = [], run
    while node.parent_id and node.parent_id in by_id:
        node = by_id[node.parent_id]
        found.append(node)
    return found


def _block_of(run: TaskRun, by_id: dict) -> TaskRun | None:
    """The WorkingDirectory task run that holds `run`, if any: its worker made `run`."""
    parent = by_id.get(run.parent_id)
    return parent if parent is not None and parent.task_type == WORKING_DIRECTORY_TYPE else None


def execution_restart(*, execution_id) -> Execution:
    """Run an ended execution again from its failed task runs (409 when none failed)."""
    now = timezone.now()
    with transaction.atomic():
        execution = _ended(execution_id, lock=True)
        parsed = parse_flow_cached(execution.flow_revision.source)
        runs = list(execution.task_runs.all())
        by_id = {run.id: run for run in runs}
        in_errors = _error_task_ids(parsed)
        # A WorkingDirectory's tasks run again with it, whole, as its next attempt (docs/core-tasks.md).
        failed = [run for run in runs if run.state == State.FAILED and run.task_id not in in_errors
                  and _block_of(run, by_id) is None]
        failed_below = {ancestor.id for run in failed for ancestor in _ancestors(run, by_id)}
        runnable = [run for run in failed if not parsed.tasks_by_id[run.task_id].flowable]
        # A flowable that failed holding no failed task run (an expression, a WaitFor's maximum) is made anew.
        remade = [run for run in failed if parsed.tasks_by_id[run.task_id].flowable and run.id not in failed_below]
        if not runnable and not remade:
            raise Conflict(f"execution '{execution_id}' has no failed task run to restart from")
        above = {ancestor.id: ancestor for run in runnable + remade for ancestor in _ancestors(run, by_id)}
        removed = [run for run in runs if run.task_id in in_errors] + remade
        taskruns_restart(runnable=runnable, flowable=[run for run in above.values() if run not in removed],
                         removed=removed, when=now)
        execution_mark_restarted(execution=execution, when=now)
        dispatch.send([
            *(dispatch.taskrun_message(taskrun_id=run.id, attempt=run.attempt, queue=queue_for_group(run.worker_group))
              for run in runnable),
            dispatch.advance_message(execution_id=execution.id),
        ])
    return execution


def execution_replay(*, execution_id, taskrun_id=None) -> Execution:
    """A new execution of the same revision, inputs and labels: from the start, or from `taskrun_id`."""
    source = _ended(execution_id, lock=False)
    runs = list(source.task_runs.all())
    by_id = {run.id: run for run in runs}
    copies: list[TaskRun] = []
    if taskrun_id is not None:
        chosen = next((run for run in runs if str(run.id) == str(taskrun_id)), None)
        if chosen is None:
            raise NotFound(f"task run '{taskrun_id}' is not one of execution '{execution_id}'")
        copies = _replayed_runs(chosen, runs, by_id, parse_flow_cached(source.flow_revision.source))
    now = timezone.now()
    with transaction.atomic():
        execution = Execution.objects.create(
            tenant=source.tenant, flow_revision=source.flow_revision, namespace=source.namespace,
            flow_id=source.flow_id, inputs=source.inputs, labels=source.labels, trigger=source.trigger,
            state=State.CREATED, state_history=[{"state": State.CREATED, "date": now.isoformat()}],
        )
        for run in copies:
            run.execution = execution
        taskruns_save(created=copies, changed=[], logs=[])
        dispatch.send([dispatch.advance_message(execution_id=execution.id)])
    return execution


def _replayed_runs(chosen: TaskRun, runs: list[TaskRun], by_id: dict, parsed: ParsedFlow) -> list[TaskRun]:
    """Copies, for the new execution, of the task runs that ended before `chosen` (outside it and its
    errors branches), and of those above it, running again; parents before children."""
    above = _ancestors(chosen, by_id)
    if any(run.task_type == WAITFOR_TYPE for run in above):
        raise Conflict("a task run inside a WaitFor cannot be replayed from: replay from the WaitFor itself")
    if _block_of(chosen, by_id) is not None:
        raise Conflict("a task run inside a WorkingDirectory cannot be replayed from: replay from the "
                       "WorkingDirectory itself")
    in_errors = _error_task_ids(parsed)
    above_ids = {run.id for run in above}
    kept: dict = {}
    new_ids: dict = {}
    now = timezone.now()
    for run in sorted(runs, key=lambda run: len(_ancestors(run, by_id))):
        parent_kept = run.parent_id is None or run.parent_id in new_ids
        before = run.state in TERMINAL_STATES and run.created < chosen.created and run.task_id not in in_errors
        under_waitfor = run.parent_id is not None and by_id[run.parent_id].task_type == WAITFOR_TYPE
        if not parent_kept or not (run.id in above_ids or before) or under_waitfor:
            continue  # a WaitFor's children are scoped by iteration: a kept WaitFor ended, so it needs none
        block = _block_of(run, by_id)
        if block is not None and run.scope_key != scope_key(block.id, run.task_id, run.value, block.attempt):
            continue  # a task of an earlier attempt of its WorkingDirectory
        fields = {field.attname: getattr(run, field.attname) for field in TaskRun._meta.concrete_fields}
        copy = TaskRun(**fields)
        copy.id = new_ids[run.id] = uuid.uuid4()
        copy.parent_id = new_ids.get(run.parent_id)
        copy.scope_key = scope_key(copy.parent_id, run.task_id, run.value, block.attempt if block else None)
        if run.id in above_ids:
            taskrun_copy_running(copy, when=now)
        kept[run.id] = copy
    return list(kept.values())
