"""New attempts for task runs whose worker was lost are bounded (LOST_WORKER_MAX_REATTEMPTS,
docs/guarantees.md): after that many, the next lost worker fails the task run with the reason. In
process, with recorded messages (tests/support/driver.py)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from flows.models import State, TaskRun
from flows.reconciler import taskruns_reconcile
from flows.services import worker_group_create, worker_heartbeat
from flows.states import taskrun_claim
from tests.support.driver import EngineDriver, Outcome

pytestmark = pytest.mark.django_db

FLOW = """
id: lossy
namespace: company.team
tasks:
  - id: train
    type: io.kestra.plugin.core.debug.Return
    format: t
    workerGroup: {key: gpu}
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: never reached
"""


@pytest.fixture
def gpu():
    worker_group_create(key="gpu")
    worker_heartbeat(hostname="gpu@alive", groups=["gpu"], pid=1, concurrency=1, running=0)


def _lose_worker(driver: EngineDriver, run, attempt: int) -> dict:
    """A worker that no longer heartbeats claimed `attempt` an hour ago; one reconciler pass."""
    claimed = taskrun_claim(taskrun_id=run.id, attempt=attempt, worker_id=f"gpu@lost{attempt}",
                            when=timezone.now() - timedelta(hours=1))
    assert claimed is not None
    with driver.recording():
        return taskruns_reconcile()


def _start(driver: EngineDriver):
    execution = driver.start(FLOW)
    driver.deliver(driver.sent[0])
    return execution, execution.task_runs.get(task_id="train")


def test_three_lost_workers_get_three_new_attempts_and_the_fourth_fails_the_task_run(gpu):
    driver = EngineDriver()
    execution, run = _start(driver)

    for attempt in (1, 2, 3):
        counts = _lose_worker(driver, run, attempt)
        run.refresh_from_db()
        assert counts["reattempted"] == 1 and (run.state, run.attempt) == (State.CREATED, attempt + 1)
        assert driver.sent[-1].args == (str(run.id), attempt + 1)
    sent_before = len(driver.sent)

    counts = _lose_worker(driver, run, 4)

    run.refresh_from_db()
    execution.refresh_from_db()
    assert counts["failed"] == 1 and counts["reattempted"] == 0
    assert (run.state, run.attempt, execution.state) == (State.FAILED, 4, State.FAILED)
    assert run.error == ("worker gpu@lost4 stopped heartbeating during attempt 4; no new attempt: the task run "
                         "already lost 3 worker(s) (LOST_WORKER_MAX_REATTEMPTS=3)")
    assert run.logs.filter(level="ERROR").get().message == run.error
    assert [(a["attempt"], a["workerId"], a.get("workerLost")) for a in run.attempts] == [
        (n, f"gpu@lost{n}", True) for n in (1, 2, 3, 4)]
    assert [m for m in driver.sent[sent_before:] if m.args[0] == str(run.id)] == []  # no attempt 5 sent
    assert not execution.task_runs.filter(task_id="after").exists()


def test_the_bound_is_a_setting(gpu, settings):
    settings.LOST_WORKER_MAX_REATTEMPTS = 0
    driver = EngineDriver()
    execution, run = _start(driver)

    counts = _lose_worker(driver, run, 1)

    run.refresh_from_db()
    assert counts["failed"] == 1 and (run.state, run.attempt) == (State.FAILED, 1)
    assert "(LOST_WORKER_MAX_REATTEMPTS=0)" in run.error


def test_failed_attempts_that_were_retries_do_not_count_toward_the_bound(gpu, settings):
    settings.LOST_WORKER_MAX_REATTEMPTS = 1
    driver = EngineDriver(outcomes={"train": Outcome(state=State.FAILED, error="boom")})
    retrying = FLOW.replace("    workerGroup: {key: gpu}\n",
                            "    workerGroup: {key: gpu}\n    retry: {type: constant, interval: PT0S, maxAttempt: 5}\n", 1)
    execution = driver.start(retrying)
    driver.deliver(driver.sent[0])
    run = execution.task_runs.get(task_id="train")
    driver.deliver(driver.sent[-1])  # attempt 1 fails and is retried: not a lost worker
    run.refresh_from_db()
    assert (run.state, run.attempt) == (State.CREATED, 2)

    counts = _lose_worker(driver, run, 2)

    run.refresh_from_db()
    assert counts["reattempted"] == 1 and (run.state, run.attempt) == (State.CREATED, 3)


def test_a_retry_waiting_for_its_interval_is_not_republished_before_it_is_due(gpu, settings, redis_url):
    """The retry's message is held by Celery for its interval, so the group's queue is empty: the
    reconciler must not take that for a lost message and start the attempt early."""
    settings.REPUBLISH_AFTER_SECONDS = 0
    driver = EngineDriver(outcomes={"train": Outcome(state=State.FAILED, error="boom")})
    retrying = FLOW.replace("    workerGroup: {key: gpu}\n",
                            "    workerGroup: {key: gpu}\n    retry: {type: constant, interval: PT1H, maxAttempt: 2}\n", 1)
    execution = driver.start(retrying)
    driver.deliver(driver.sent[0])
    run = execution.task_runs.get(task_id="train")
    failed_at = timezone.now()
    driver.deliver(driver.sent[-1])  # attempt 1 fails; attempt 2 is due in an hour
    run.refresh_from_db()
    assert (run.state, run.attempt) == (State.CREATED, 2)
    assert driver.sent[-1].countdown == 3600
    assert run.published >= failed_at + timedelta(hours=1)
    sent_before = len(driver.sent)

    with driver.recording():
        counts = taskruns_reconcile()

    assert counts["republished"] == 0 and len(driver.sent) == sent_before

    TaskRun.objects.filter(id=run.id).update(published=timezone.now() - timedelta(seconds=1))  # the hour has passed
    with driver.recording():
        counts = taskruns_reconcile()

    assert counts["republished"] == 1 and driver.sent[-1].args == (str(run.id), 2)
