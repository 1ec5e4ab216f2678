"""The fallback policy (docs/fallback.md): the decision itself, then as the engine applies it when a
task run is created and as the reconciler applies it again while the task run waits. In process,
with recorded messages (tests/support/driver.py); test_fallback.py runs it on real workers."""
from datetime import timedelta

import pytest
from django.utils import timezone

from flows.fallback import PUBLISH, WAIT, fallback_decide
from flows.models import State, TaskRun, Worker
from flows.reconciler import taskruns_reconcile
from flows.services import worker_group_create, worker_heartbeat
from flows.states import taskrun_claim
from tests.support.driver import EngineDriver

pytestmark = pytest.mark.django_db


def _decide(**overrides):
    given = {"group_key": "gpu", "fallback": "WAIT", "max_wait_seconds": None, "problem": None, "alive": False,
             "waited_seconds": 0.0, **overrides}
    return fallback_decide(**given)


@pytest.mark.parametrize("given, action, words", [
    ({"alive": True}, PUBLISH, ""),
    ({"alive": True, "problem": "worker group 'gpu' does not allow tenant 'acme'"}, State.FAILED, "does not allow"),
    ({"fallback": "WAIT"}, WAIT, "waiting for a worker of worker group 'gpu'"),
    ({"fallback": "WAIT", "max_wait_seconds": 60, "waited_seconds": 59}, WAIT, "(at most 60s)"),
    ({"fallback": "WAIT", "max_wait_seconds": 60, "waited_seconds": 61}, State.FAILED, "waited more than 60s"),
    ({"fallback": "FAIL"}, State.FAILED, "no alive worker in worker group 'gpu' (fallback FAIL)"),
    ({"fallback": "CANCEL"}, State.CANCELLED, "task run cancelled (fallback CANCEL)"),
    ({"fallback": "FAIL", "group_key": ""}, State.FAILED, "worker group 'default'"),
])
def test_the_decision(given, action, words):
    decision = _decide(**given)
    assert decision.action == action
    assert words in decision.message


def _flow(fallback: str, max_wait: str = "") -> str:
    wait = f", maxWait: {max_wait}" if max_wait else ""
    return f"""
id: fb
namespace: company.team
tasks:
  - id: train
    type: io.kestra.plugin.core.debug.Return
    format: t
    workerGroup: {{key: gpu, fallback: {fallback}{wait}}}
"""


@pytest.fixture
def gpu():
    return worker_group_create(key="gpu")


def _gpu_worker(*, age_seconds: float = 0.0):
    worker_heartbeat(hostname="gpu@unit-test", groups=["gpu"], pid=1, concurrency=1, running=0)
    if age_seconds:
        Worker.objects.filter(hostname="gpu@unit-test").update(
            last_heartbeat=timezone.now() - timedelta(seconds=age_seconds))


def _start(driver: EngineDriver, source: str):
    execution = driver.start(source)
    driver.deliver(driver.sent[0])  # the evaluation that creates and routes the task run
    execution.refresh_from_db()
    return execution, execution.task_runs.get(task_id="train")


def test_engine_fail_ends_task_run_and_execution_and_sends_nothing_to_the_group(gpu):
    driver = EngineDriver()
    execution, run = _start(driver, _flow("FAIL"))

    assert (execution.state, run.state) == (State.FAILED, State.FAILED)
    assert run.error == "no alive worker in worker group 'gpu' (fallback FAIL)"
    assert driver.queues() == []


def test_engine_cancel_kills_the_execution_without_an_error(gpu):
    driver = EngineDriver()
    execution, run = _start(driver, _flow("CANCEL"))

    assert (execution.state, run.state, run.error) == (State.KILLED, State.CANCELLED, "")
    assert driver.queues() == []


def test_engine_wait_publishes_to_the_group_and_says_what_it_waits_for(gpu):
    driver = EngineDriver()
    execution, run = _start(driver, _flow("WAIT", "PT10M"))

    assert (execution.state, run.state, run.max_wait_seconds) == (State.RUNNING, State.CREATED, 600)
    assert driver.queues() == ["gpu"]
    assert run.logs.get().message == "waiting for a worker of worker group 'gpu' (at most 600s)"


def test_engine_publishes_to_a_group_with_an_alive_worker_without_waiting(gpu):
    _gpu_worker()
    driver = EngineDriver()
    _, run = _start(driver, _flow("FAIL"))

    assert run.state == State.CREATED and driver.queues() == ["gpu"]
    assert not run.logs.exists()


def test_reconciler_applies_fail_once_the_groups_workers_have_died(gpu):
    _gpu_worker()
    driver = EngineDriver()
    execution, run = _start(driver, _flow("FAIL"))
    _gpu_worker(age_seconds=3600)  # its heartbeats stopped

    with driver.recording():
        counts = taskruns_reconcile()

    run.refresh_from_db()
    execution.refresh_from_db()
    assert counts["failed"] == 1
    assert (run.state, execution.state) == (State.FAILED, State.FAILED)
    # The worker that comes back later finds the task run ended: it never starts.
    assert taskrun_claim(taskrun_id=run.id, attempt=run.attempt, worker_id="gpu@back", when=timezone.now()) is None


def test_reconciler_cancel_kills_the_execution(gpu):
    _gpu_worker()
    driver = EngineDriver()
    execution, run = _start(driver, _flow("CANCEL"))
    _gpu_worker(age_seconds=3600)

    with driver.recording():
        taskruns_reconcile()

    run.refresh_from_db()
    execution.refresh_from_db()
    assert (run.state, execution.state) == (State.CANCELLED, State.KILLED)


def test_reconciler_fails_a_task_run_that_waited_past_max_wait(gpu):
    driver = EngineDriver()
    execution, run = _start(driver, _flow("WAIT", "PT1S"))
    TaskRun.objects.filter(id=run.id).update(published=timezone.now() - timedelta(seconds=5))

    with driver.recording():
        taskruns_reconcile()

    run.refresh_from_db()
    execution.refresh_from_db()
    assert (run.state, execution.state) == (State.FAILED, State.FAILED)
    assert run.error == "waited more than 1s (workerGroup.maxWait) for a worker of worker group 'gpu'"


def test_reconciler_leaves_a_waiting_task_run_alone_within_max_wait(gpu):
    driver = EngineDriver()
    _, run = _start(driver, _flow("WAIT", "PT10M"))

    with driver.recording():
        counts = taskruns_reconcile()

    run.refresh_from_db()
    assert run.state == State.CREATED and not any(counts.values())


def test_reconciler_gives_a_task_run_of_a_lost_worker_a_new_attempt(gpu):
    _gpu_worker()
    driver = EngineDriver()
    _, run = _start(driver, _flow("WAIT"))
    claimed = taskrun_claim(taskrun_id=run.id, attempt=1, worker_id="gpu@lost",
                            when=timezone.now() - timedelta(seconds=3600))
    assert claimed is not None

    with driver.recording():
        counts = taskruns_reconcile()

    run.refresh_from_db()
    assert counts["reattempted"] == 1
    assert (run.state, run.attempt, run.worker_id) == (State.CREATED, 2, "")
    assert run.attempts[0]["workerId"] == "gpu@lost"
    assert driver.sent[-1].args == (str(run.id), 2) and driver.sent[-1].queue == "gpu"
