"""The engine's side of a WorkingDirectory (docs/core-tasks.md): refused at upload when it holds
what one worker cannot run, routed once as one unit to its resolved group, its fallback, its
`errors`, and a lost worker's block started again. In process, with recorded messages
(tests/support/driver.py); the worker's side runs end to end in tests/workers/test_working_directory.py."""
from datetime import timedelta

import pytest
from django.utils import timezone

from flows import dispatch
from flows.definition import parse_flow_cached
from flows.engine import execution_restart, taskrun_finish
from flows.engine.blocks import block_child_end, block_child_start
from flows.errors import UserError
from flows.models import Flow, State, TaskRun, WorkerGroup
from flows.reconciler import taskruns_reconcile
from flows.services import flow_upload, worker_group_create, worker_heartbeat
from flows.states import taskrun_claim
from tests.support.driver import EngineDriver, Outcome, states_by_task

pytestmark = pytest.mark.django_db

BLOCK = """
id: block
namespace: company.team
pluginDefaults:
  - type: io.kestra.plugin.core.flow.WorkingDirectory
    values: {{workerGroup: {{key: gpu, fallback: {fallback}}}}}
tasks:
  - id: wdir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: first
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["echo hi > f.txt"]
      - id: second
        type: io.kestra.plugin.core.log.Log
        message: second
    errors:
      - id: on_error
        type: io.kestra.plugin.core.log.Log
        message: "block failed"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after
"""


@pytest.fixture
def gpu():
    worker_group_create(key="gpu")
    worker_heartbeat(hostname="gpu@alive", groups=["gpu"], pid=1, concurrency=1, running=0)
    worker_heartbeat(hostname="default@alive", groups=["default"], pid=1, concurrency=1, running=0)


def test_a_block_holding_a_flowable_task_or_a_worker_group_of_its_own_is_refused_with_its_lines():
    source = """id: refused
namespace: company.team
tasks:
  - id: wdir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: log
        type: io.kestra.plugin.core.log.Log
        message: hi
        workerGroup: {key: gpu}
      - id: pause
        type: io.kestra.plugin.core.flow.Pause
        delay: PT5S
"""
    with pytest.raises(UserError) as refused:
        flow_upload(source=source, tenant_key="main")
    faults = {(fault.line, fault.message.split(":")[0]) for fault in refused.value.faults}
    assert (10, "a task inside a WorkingDirectory cannot set a workerGroup") in faults
    assert (12, "'io.kestra.plugin.core.flow.Pause' cannot run inside a WorkingDirectory") in faults
    assert not Flow.objects.exists()


def test_the_whole_block_is_one_message_to_its_resolved_group_and_the_flow_goes_on_after_it(gpu):
    driver = EngineDriver()
    execution = driver.run(BLOCK.format(fallback="WAIT"))
    assert execution.state == State.SUCCESS
    # one message for the block (to gpu, by pluginDefaults), none for its tasks, then `after` on default
    assert driver.queues() == ["gpu", "default"]
    block = execution.task_runs.get(task_id="wdir")
    assert (block.worker_group, block.state) == ("gpu", State.SUCCESS)
    assert not execution.task_runs.filter(task_id__in=["first", "second"]).exists()  # its worker creates them


def test_a_failed_block_runs_its_errors_then_fails_the_execution(gpu):
    driver = EngineDriver(outcomes={"wdir": Outcome(state=State.FAILED, error="task 'first' failed")})
    execution = driver.run(BLOCK.format(fallback="WAIT"))
    assert execution.state == State.FAILED
    assert states_by_task(execution) == {"wdir": State.FAILED, "on_error": State.SUCCESS}


def test_fallback_fail_with_no_worker_fails_the_block_and_sends_it_nowhere():
    worker_group_create(key="gpu")  # no worker heartbeats in it
    driver = EngineDriver()
    execution = driver.run(BLOCK.format(fallback="FAIL"))
    block = execution.task_runs.get(task_id="wdir")
    assert execution.state == State.FAILED and block.state == State.FAILED
    assert block.error == "no alive worker in worker group 'gpu' (fallback FAIL)"
    assert driver.queues() == ["default"]  # only its errors task, on the default group


def test_a_block_whose_worker_is_lost_starts_again_in_its_group_and_its_running_task_fails(gpu):
    driver = EngineDriver()
    execution = driver.start(BLOCK.format(fallback="WAIT"))
    driver.deliver(driver.sent[0])
    block, child, _ = _block_running(driver, execution, worker_id="gpu@lost")
    TaskRun.objects.filter(id__in=[block.id, child.id]).update(start_date=timezone.now() - timedelta(hours=1))
    TaskRun.objects.filter(id=child.id).update(start_date=timezone.now() - timedelta(hours=1))

    with driver.recording():
        counts = taskruns_reconcile()

    block.refresh_from_db()
    child.refresh_from_db()
    assert counts["reattempted"] == 1  # the block, not its task
    assert (block.state, block.attempt, block.worker_group) == (State.CREATED, 2, "gpu")
    assert driver.sent[-1] == dispatch.taskrun_message(taskrun_id=block.id, attempt=2, queue="gpu")
    assert (child.state, child.attempt) == (State.FAILED, 1)
    assert child.error == "the WorkingDirectory 'wdir' lost its worker gpu@lost during attempt 1"


def _block_running(driver: EngineDriver, execution, *, worker_id: str = "gpu@alive"):
    """The block claimed by `worker_id`, its first task started: (block, first task's run, parsed flow)."""
    block = execution.task_runs.get(task_id="wdir")
    block = taskrun_claim(taskrun_id=block.id, attempt=1, worker_id=worker_id, when=timezone.now())
    parsed = parse_flow_cached(block.execution.flow_revision.source)
    return block, block_child_start(block=block, task=parsed.tasks_by_id["first"]), parsed


def test_restarting_a_failed_block_runs_it_again_whole_as_its_next_attempt(gpu):
    driver = EngineDriver()
    execution = driver.start(BLOCK.format(fallback="WAIT"))
    driver.deliver(driver.sent[0])
    block, child, parsed = _block_running(driver, execution)
    block_child_end(child=child, state=State.FAILED, outputs={}, error="exit 1", logs=[])
    with driver.recording():
        taskrun_finish(run=block, task=parsed.tasks_by_id["wdir"], state=State.FAILED, outputs={}, error="first failed",
                       logs=[])
    driver.deliver_all()
    execution.refresh_from_db()
    assert execution.state == State.FAILED
    sent = len(driver.sent)

    with driver.recording():
        execution_restart(execution_id=execution.id)

    block.refresh_from_db()
    child.refresh_from_db()
    assert (block.state, block.attempt) == (State.CREATED, 2)
    assert (child.state, child.attempt) == (State.FAILED, 1)  # not sent alone: the block makes its tasks again
    assert [m for m in driver.sent[sent:] if m.task == dispatch.RUN_TASKRUN] == [
        dispatch.taskrun_message(taskrun_id=block.id, attempt=2, queue="gpu")]


def test_a_block_and_the_task_it_runs_hold_one_slot_of_a_limited_group(gpu):
    WorkerGroup.objects.filter(key="gpu").update(concurrency_limit=2)
    driver = EngineDriver()
    execution = driver.start(BLOCK.format(fallback="WAIT"))
    driver.deliver(driver.sent[0])
    _block_running(driver, execution)
    other = driver.start("""
id: other
namespace: company.team
tasks:
  - id: alone
    type: io.kestra.plugin.core.debug.Return
    format: x
    workerGroup: {key: gpu}
""")
    driver.deliver(driver.sent[-1])
    alone = other.task_runs.get(task_id="alone")
    with driver.recording():
        assert taskrun_claim(taskrun_id=alone.id, attempt=1, worker_id="gpu@alive", when=timezone.now()) is not None
