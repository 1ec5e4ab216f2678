"""Fallback when a group has no alive worker, with real workers on a real Redis."""
import time

import pytest
import redis
from django.utils import timezone

from flows.engine import execution_create
from flows.models import State, TaskRun, Worker
from flows.reconciler import taskruns_reconcile
from flows.services import flow_upload, worker_group_create
from tests.support import run_flow, task_runs, wait_execution, wait_for, workers_alive

pytestmark = pytest.mark.django_db(transaction=True)


def _flow(group: str, fallback: str, extra: str = "", task: str = "io.kestra.plugin.core.debug.Return\n    format: done") -> str:
    return f"""
id: fb_{group}
namespace: company.team
tasks:
  - id: work
    type: {task}
    workerGroup:
      key: {group}
      fallback: {fallback}{extra}
"""


def _start(source: str):
    flow = flow_upload(source=source, tenant_key="main")
    return execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id)


def test_fail_ends_failed_at_once(engine):
    worker_group_create(key="empty")
    started = time.monotonic()
    execution = run_flow(_flow("empty", "FAIL"), timeout=10)
    run = task_runs(execution)["work"]
    assert execution.state == "FAILED" and time.monotonic() - started < 10
    assert run.state == "FAILED" and "no alive worker in worker group 'empty'" in run.error


def test_cancel_ends_killed_without_error(engine):
    worker_group_create(key="empty")
    execution = run_flow(_flow("empty", "CANCEL"), timeout=10)
    run = task_runs(execution)["work"]
    assert (execution.state, run.state, run.error) == ("KILLED", "CANCELLED", "")


def test_wait_stays_created_until_a_worker_of_the_group_starts(engine):
    worker_group_create(key="late")
    execution = _start(_flow("late", "WAIT"))
    run = wait_for(lambda: TaskRun.objects.filter(execution=execution, task_id="work").first(), message="task run")
    waiting_log = wait_for(lambda: run.logs.filter(message__contains="waiting for a worker of worker group 'late'").first(),
                           message="the waiting log line")
    assert waiting_log.level == "WARN"
    taskruns_reconcile()  # a pass with no worker keeps WAIT waiting
    broker = redis.Redis.from_url(engine.env["CELERY_BROKER_URL"])
    assert broker.llen("late") == 1  # published to the group's own queue, where no other worker looks
    run.refresh_from_db()
    assert run.state == State.CREATED and run.worker_id == ""
    hostname = engine.start("late", concurrency=1)
    try:
        finished = wait_execution(execution.id, timeout=60)
        assert finished.state == "SUCCESS"
        assert task_runs(finished)["work"].worker_id == hostname
    finally:
        engine.stop(hostname)


def test_max_wait_fails_the_task_run_naming_group_and_wait(engine):
    worker_group_create(key="never")
    execution = _start(_flow("never", "WAIT", "\n      maxWait: PT3S"))
    started = time.monotonic()

    def ended():
        taskruns_reconcile()
        return wait_execution(execution.id, timeout=0.5, states={"FAILED"}) if _ended(execution) else None

    finished = wait_for(ended, timeout=20, interval=0.3, message="maxWait to fail the task run")
    elapsed = time.monotonic() - started
    run = task_runs(finished)["work"]
    assert 2.5 <= elapsed < 10
    assert "'never'" in run.error and "maxWait" in run.error and "3s" in run.error


def _ended(execution) -> bool:
    execution.refresh_from_db()
    return execution.state == "FAILED"


def test_group_whose_workers_died_makes_fail_take_effect_and_a_returning_worker_starts_nothing(engine):
    worker_group_create(key="flaky")
    hostname = engine.start("flaky", concurrency=1)
    workers_alive(hostname)
    execution = _start("""
id: flaky
namespace: company.team
tasks:
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: first
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT30S
        workerGroup: {key: flaky, fallback: FAIL}
      - id: second
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT30S
        workerGroup: {key: flaky, fallback: FAIL}
""")
    wait_for(lambda: TaskRun.objects.filter(execution=execution, state=State.RUNNING, worker_group="flaky").exists(),
             message="one sleep to start on the flaky worker")
    engine.stop(hostname, kill=True)

    def failed():
        taskruns_reconcile()
        return TaskRun.objects.filter(execution=execution, worker_group="flaky", state=State.FAILED).count() == 2

    wait_for(failed, timeout=30, interval=0.5, message="FAIL to take effect once the group's workers died")
    finished = wait_execution(execution.id, timeout=10)
    assert finished.state == "FAILED"
    states_before = {run.id: (run.state, run.attempt) for run in finished.task_runs.all()}
    comeback = engine.start("flaky", name="comeback", concurrency=1)
    try:
        workers_alive(comeback)
        broker = redis.Redis.from_url(engine.env["CELERY_BROKER_URL"])
        wait_for(lambda: broker.llen("flaky") == 0, message="the returning worker to consume what was queued")
        drained = timezone.now()
        wait_for(lambda: Worker.objects.filter(hostname=comeback, running=0, last_heartbeat__gt=drained).exists(),
                 message="a heartbeat showing it has finished with them")
        assert {run.id: (run.state, run.attempt) for run in finished.task_runs.all()} == states_before
        assert not TaskRun.objects.filter(execution=execution, worker_id=comeback).exists()
    finally:
        engine.stop(comeback)
