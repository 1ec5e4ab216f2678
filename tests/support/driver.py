"""An in-process driver for the engine's unit tests: no Redis, no worker processes.

The engine is real (executions, task runs and logs go to the test database); only the last step,
sending a message to the broker, is replaced through `flows.dispatch.sending_to` by a list that
records what would have been sent. The driver then plays both roles a message reaches: it
advances the execution for an executor message, and for a task-run message it claims the task run
and ends it as a worker would, with the outcome the test chose for that task. A trigger evaluation
is run as its group's worker runs it (workers/polling.py), and `tick()` is one scheduler tick.
"""
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.test import TestCase
from django.utils import timezone

from flows import dispatch
from flows.definition import parse_flow_cached
from flows.engine import execution_advance, execution_create, taskrun_finish
from flows.models import Execution
from flows.services import flow_upload
from flows.scheduler import scheduler_tick
from flows.states import taskrun_claim
from workers.polling import trigger_evaluate


@dataclass
class Outcome:
    state: str = "SUCCESS"
    outputs: dict = field(default_factory=dict)
    error: str = ""


@dataclass
class EngineDriver:
    """`outcomes` maps a task id to how its task runs end (default: SUCCESS with no outputs), or to a
    function of the claimed task run that returns its Outcome."""

    outcomes: dict = field(default_factory=dict)
    sent: list = field(default_factory=list)
    worker_id: str = "gpu@unit-test"

    def start(self, source: str, *, inputs: dict | None = None, tenant: str = "main") -> Execution:
        """Upload `source` and create an execution; its first message is recorded, not delivered."""
        flow = flow_upload(source=source, tenant_key=tenant)
        with self.recording():
            return execution_create(tenant_key=tenant, namespace=flow.namespace, flow_id=flow.flow_id,
                                    inputs=inputs or {})

    def run(self, source: str, *, inputs: dict | None = None, tenant: str = "main") -> Execution:
        """Start `source` and deliver every message until none is left; the execution, refreshed."""
        execution = self.start(source, inputs=inputs, tenant=tenant)
        self.deliver_all()
        execution.refresh_from_db()
        return execution

    def deliver_all(self, *, max_messages: int = 500) -> None:
        delivered = 0
        while delivered < len(self.sent):
            if delivered >= max_messages:
                raise AssertionError(f"more than {max_messages} messages: the engine loops")
            self.deliver(self.sent[delivered])
            delivered += 1

    def deliver(self, message: dispatch.Message) -> None:
        with self.recording():
            if message.task == dispatch.ADVANCE_EXECUTION:
                execution_advance(execution_id=message.args[0])
            elif message.task == dispatch.RUN_TASKRUN:
                self._work(*message.args)
            elif message.task == dispatch.EVALUATE_TRIGGER:
                trigger_evaluate(trigger_state_id=message.args[0], evaluation_id=message.args[1],
                                 worker_id=self.worker_id)
            else:
                raise AssertionError(f"unexpected message {message}")

    def _work(self, taskrun_id: str, attempt: int) -> None:
        run = taskrun_claim(taskrun_id=taskrun_id, attempt=attempt, worker_id=self.worker_id, when=timezone.now())
        if run is None:
            return
        outcome = self.outcomes.get(run.task_id, Outcome())
        if callable(outcome):
            outcome = outcome(run)
        task = parse_flow_cached(run.execution.flow_revision.source).tasks_by_id[run.task_id]
        taskrun_finish(run=run, task=task, state=outcome.state, outputs=outcome.outputs, error=outcome.error,
                       logs=[("ERROR", outcome.error)] if outcome.error else [])

    def tick(self, *, now=None, sent=None) -> dict:
        """One scheduler tick (sent by beat at `sent`, default `now`); what it sends is recorded."""
        with self.recording():
            return scheduler_tick(now=now, sent=sent)

    @contextmanager
    def recording(self):
        """Send to the recorder; run on-commit callbacks at the end of the block, as a commit would
        (the test's own transaction never commits)."""
        with dispatch.sending_to(self.sent.append), TestCase.captureOnCommitCallbacks(execute=True):
            yield

    def queues(self, task: str = dispatch.RUN_TASKRUN) -> list[str]:
        """The queue of every message of `task` sent so far, in order."""
        return [message.queue for message in self.sent if message.task == task]


def states_by_task(execution: Execution) -> dict:
    """{task id: state}, or {task id: [states in value order]} for a task that ran more than once."""
    found: dict = {}
    for run in execution.task_runs.order_by("created", "value"):
        found.setdefault(run.task_id, []).append(run.state)
    return {task_id: states[0] if len(states) == 1 else states for task_id, states in found.items()}
