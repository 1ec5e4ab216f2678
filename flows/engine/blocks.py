"""The tasks of a WorkingDirectory block (docs/core-tasks.md): the worker that claimed the block's
task run creates and ends each of its children here, one after another. The executor only routes
the block (one task run, one message, like any runnable task) and runs its `errors` once it has
ended; it never creates the children itself."""
import uuid

from django.utils import timezone

from .. import masking
from ..models import State, TaskRun
from ..states import taskrun_child_create, taskrun_end
from .evaluation import scope_key


def block_child_start(*, block: TaskRun, task, skipped: bool = False) -> TaskRun | None:
    """A task run for `task` inside `block` (RUNNING on the block's worker, or SKIPPED by its runIf),
    or None when the block is no longer this worker's at this attempt (lost, killed, ended). Each
    attempt of the block has children of its own: a block started again runs all its tasks again."""
    now = timezone.now()
    child = TaskRun(
        id=uuid.uuid4(), execution=block.execution, parent=block,
        scope_key=scope_key(block.id, task.id, block.value, block.attempt), task_id=task.id, task_type=task.kind,
        value=block.value, worker_group=block.worker_group, fallback=block.fallback, worker_id=block.worker_id,
        created=now, published=block.published,
    )
    return child if taskrun_child_create(block=block, child=child, skipped=skipped, when=now) else None


def block_child_end(*, child: TaskRun, state: str, outputs: dict, error: str, logs: list[tuple[str, str]]) -> bool:
    """The worker ended `child` (RUNNING): its outcome and log lines, SECRET inputs masked."""
    secrets = masking.secret_values(child.execution.inputs)
    if secrets:
        logs = [(level, masking.mask_text(message, secrets)) for level, message in logs]
        error = masking.mask_text(error, secrets)
    return taskrun_end(run=child, state=state, outputs=outputs, error=error, logs=logs, when=timezone.now())


def block_state(states: list[str]) -> str:
    """A block's state from its children's, in order: the first that did not succeed stops it."""
    for state in states:
        if state in (State.FAILED, State.KILLED):
            return state
    return State.WARNING if State.WARNING in states else State.SUCCESS
