"""Group workers that die or are stopped while their group has work."""
import pytest

from flows.models import State, TaskRun
from flows.services import worker_group_create
from tests.support import wait_for
from tests.support.stack import alive

from .harness import assert_healthy, size, sleep_then_log_flow, start_executions, wait_ended

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_killed_mid_task_loses_only_its_attempts_to_the_other_worker_of_its_group(stack):
    worker_group_create(key="rk")
    doomed = stack.start_worker("rk", concurrency=2, label="doomed")
    survivor = stack.start_worker("rk", concurrency=2, label="survivor")
    alive(doomed, survivor)
    ids = start_executions(stack, sleep_then_log_flow("killed", "rk", sleep="PT2S"), size(120, minimum=10))
    wait_for(lambda: TaskRun.objects.filter(worker_id=doomed, state=State.RUNNING, task_id="work").exists(),
             timeout=60, message="the doomed worker to be running a Sleep")
    running = set(TaskRun.objects.filter(worker_id=doomed, state=State.RUNNING).values_list("id", flat=True))

    stack.kill(doomed)

    wait_ended(stack, ids, timeout=120)
    assert_healthy(stack, ids, fifo={"rk": 6}, title="SIGKILL mid-task")
    lost = TaskRun.objects.filter(id__in=running)
    assert {(run.attempt, run.worker_id, run.attempts[0]["workerId"]) for run in lost} == {(2, survivor, doomed)}


def test_a_worker_stopped_by_sigterm_finishes_its_task_and_leaves_the_queue_to_the_others(stack):
    worker_group_create(key="rt")
    stopping = stack.start_worker("rt", concurrency=1, label="stopping")
    other = stack.start_worker("rt", concurrency=1, label="other")
    alive(stopping, other)
    ids = start_executions(stack, sleep_then_log_flow("stopped", "rt", sleep="PT4S"), size(80, minimum=6))
    run = wait_for(lambda: TaskRun.objects.filter(worker_id=stopping, state=State.RUNNING, task_id="work").first(),
                   timeout=60, message="the stopping worker to be running a Sleep")

    assert stack.terminate(stopping) == 0  # a warm shutdown: it waits for its task run

    wait_ended(stack, ids, timeout=120)
    assert_healthy(stack, ids, fifo={"rt": 4}, title="SIGTERM with work queued")
    run.refresh_from_db()
    assert (run.state, run.attempt, run.worker_id) == (State.SUCCESS, 1, stopping)
    assert not TaskRun.objects.filter(execution_id__in=ids, attempt__gt=1).exists()  # nothing was run again
    assert TaskRun.objects.filter(execution_id__in=ids, worker_id=other).exists()
