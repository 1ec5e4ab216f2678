"""The messages the engine sends through Celery, addressed by task name only.

`flows` never imports the code that runs these tasks (it lives in `workers`); a message names the
task and the queue, and Celery delivers it to whichever process consumes that queue. Messages are
sent after the current transaction commits, so a worker never looks for a row that is not there.

`sending_to()` swaps the sender for a function: the engine's unit tests record what would be sent.
"""
import logging
from contextlib import contextmanager
from dataclasses import dataclass

from celery import current_app
from django.db import transaction

RUN_TASKRUN = "workers.run_taskrun"
EVALUATE_TRIGGER = "workers.evaluate_trigger"
ADVANCE_EXECUTION = "flows.execution_advance"
EXECUTOR_QUEUE = "executor"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    task: str
    args: tuple
    queue: str
    countdown: float | None = None


def taskrun_message(*, taskrun_id, attempt: int, queue: str, countdown: float | None = None) -> Message:
    return Message(RUN_TASKRUN, (str(taskrun_id), attempt), queue, countdown or None)


def trigger_evaluation_message(*, trigger_state_id: int, evaluation_id, queue: str) -> Message:
    """A polling trigger's evaluation, for a worker of its group (docs/triggers.md)."""
    return Message(EVALUATE_TRIGGER, (trigger_state_id, str(evaluation_id)), queue)


def advance_message(*, execution_id, countdown: float | None = None) -> Message:
    return Message(ADVANCE_EXECUTION, (str(execution_id),), EXECUTOR_QUEUE, countdown or None)


def send_to_broker(message: Message) -> None:
    current_app.send_task(message.task, args=list(message.args), queue=message.queue, countdown=message.countdown)


_sender = send_to_broker


def send(messages: list[Message]) -> None:
    """Send `messages` once the current transaction commits (at once outside a transaction).

    The rows they are about are committed by then: a message the broker does not take (it is
    down, or unreachable) is logged and left to the reconciler, which sends again what waits too
    long (docs/guarantees.md). Raising here would only fail a caller whose work is already stored."""
    if messages:
        messages = list(messages)
        transaction.on_commit(lambda: _send_each(messages))


def _send_each(messages: list[Message]) -> None:
    for index, message in enumerate(messages):
        try:
            _sender(message)
        except Exception:  # the broker refused one: do not wait on it for each of the others
            logger.warning("could not send %d message(s), first %s%s to queue %s; the reconciler will send "
                           "them again", len(messages) - index, message.task, message.args, message.queue, exc_info=True)
            return


# Celery's remote-control commands that stop and restart a worker consuming a queue (docs/operations.md).
CANCEL_CONSUMER = "cancel_consumer"
ADD_CONSUMER = "add_consumer"


def send_consumer_control(command: str, *, queue: str, destination: list[str]) -> None:
    """Tell the workers named in `destination` to stop (CANCEL_CONSUMER) or start again (ADD_CONSUMER)
    consuming `queue`, once the current transaction commits. Nothing waits for an answer: a worker
    that misses it applies the stored drain at its next heartbeat."""
    if destination:
        transaction.on_commit(lambda: _control(command, queue, list(destination)))


def _control(command: str, queue: str, destination: list[str]) -> None:
    try:
        getattr(current_app.control, command)(queue, destination=destination, reply=False)
    except Exception:  # the broker refused it: the workers' heartbeats apply the stored state
        logger.warning("could not send %s(%s) to %s; their next heartbeat applies it", command, queue,
                       ", ".join(destination), exc_info=True)


@contextmanager
def sending_to(sender):
    """Within the block, messages go to `sender(message)` instead of the broker."""
    global _sender
    previous, _sender = _sender, sender
    try:
        yield
    finally:
        _sender = previous
