"""A WorkingDirectory whose worker is killed mid-block (docs/core-tasks.md, docs/guarantees.md): the
block starts again, whole, on the other worker of its group, never on a worker of another group."""
import pytest

from flows.models import State, TaskRun
from flows.services import worker_group_create
from tests.support import wait_for
from tests.support.stack import alive

from .harness import start_executions, wait_ended

pytestmark = pytest.mark.django_db(transaction=True)

BLOCK = """
id: block-on-a-lost-worker
namespace: reliability
tasks:
  - id: wdir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    workerGroup: {key: wk}
    tasks:
      - id: write
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo '{{ taskrun.id }}' > written.txt
          - echo '::{"outputs":{"id":"{{ taskrun.id }}"}}::'
      - id: work
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT3S
      - id: read
        type: io.kestra.plugin.scripts.shell.Commands
        commands:  # the file this attempt's `write` wrote
          - test "$(cat written.txt)" = '{{ outputs.write.vars.id }}'
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.read.exitCode }}"
"""


def test_a_block_whose_worker_is_killed_mid_block_runs_again_whole_on_the_other_worker_of_its_group(stack):
    worker_group_create(key="wk")
    worker_group_create(key="elsewhere")
    first = stack.start_worker("wk", label="first")
    second = stack.start_worker("wk", label="second")
    bystander = stack.start_worker("elsewhere,default", label="bystander")  # another group, and the default one
    alive(first, second, bystander)
    [execution_id] = start_executions(stack, BLOCK, 1)
    sleeping = wait_for(lambda: TaskRun.objects.filter(execution_id=execution_id, task_id="work",
                                                       state=State.RUNNING).first(),
                        timeout=60, message="a worker of wk to be in the block's Sleep")
    doomed = sleeping.worker_id
    survivor = second if doomed == first else first

    stack.kill(doomed)

    wait_ended(stack, [execution_id], timeout=90)
    runs = TaskRun.objects.filter(execution_id=execution_id)
    block = runs.get(task_id="wdir")
    assert (block.state, block.attempt, block.worker_id) == (State.SUCCESS, 2, survivor)
    assert [(attempt["workerId"], attempt.get("workerLost")) for attempt in block.attempts] == [
        (doomed, True), (survivor, None)]
    # the first attempt's tasks: `write` ended, the Sleep failed with its worker, `read` never started
    first_try = {run.task_id: run for run in runs.filter(parent=block, worker_id=doomed)}
    assert {task_id: run.state for task_id, run in first_try.items()} == {"write": State.SUCCESS, "work": State.FAILED}
    # the second attempt ran every task again, on the survivor, in a directory of its own
    second_try = {run.task_id: run for run in runs.filter(parent=block, worker_id=survivor)}
    assert {task_id: run.state for task_id, run in second_try.items()} == dict.fromkeys(
        ["write", "work", "read"], State.SUCCESS)
    assert runs.get(task_id="after").state == State.SUCCESS
    assert not runs.filter(worker_id=bystander).exclude(task_id="after").exists()  # never another group
