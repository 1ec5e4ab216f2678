"""The reconciler advances executions that nothing else would advance (docs/guarantees.md): one
whose first message was lost, and one whose last task run ended without it being advanced. In
process, with recorded messages (tests/support/driver.py); the executor's queue is read from a
real Redis, where it is empty."""
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from flows.models import Execution, State, TaskRun
from flows.reconciler import taskruns_reconcile
from flows.services import worker_group_create, worker_heartbeat
from flows.states import taskrun_end_waiting
from tests.support.driver import EngineDriver

pytestmark = pytest.mark.django_db

FLOW = """
id: stalled
namespace: company.team
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: one
    workerGroup: {key: gpu}
"""


@pytest.fixture
def gpu(redis_url):
    redis.Redis.from_url(redis_url).delete("executor")  # whatever earlier tests left there: the queue is empty
    worker_group_create(key="gpu")
    worker_heartbeat(hostname="gpu@alive", groups=["gpu"], pid=1, concurrency=1, running=0)


def test_an_execution_whose_first_message_was_lost_is_started_by_the_reconciler(gpu):
    driver = EngineDriver()
    execution = driver.start(FLOW)  # its message is recorded, never delivered: lost
    Execution.objects.filter(id=execution.id).update(created=timezone.now() - timedelta(minutes=1))

    with driver.recording():
        counts = taskruns_reconcile()

    execution.refresh_from_db()
    assert counts["resumed"] == 1
    assert execution.state == State.RUNNING and execution.task_runs.get().state == State.CREATED


def test_a_recent_execution_is_left_to_its_message(gpu):
    driver = EngineDriver()
    execution = driver.start(FLOW)

    with driver.recording():
        counts = taskruns_reconcile()

    execution.refresh_from_db()
    assert counts["resumed"] == 0 and execution.state == State.CREATED


def test_an_execution_whose_last_task_run_ended_without_advancing_it_is_advanced(gpu):
    driver = EngineDriver()
    execution = driver.start(FLOW)
    driver.deliver(driver.sent[0])
    run = execution.task_runs.get()
    an_hour_ago = timezone.now() - timedelta(hours=1)
    # What a process that died between ending the task run and advancing the execution leaves behind.
    assert taskrun_end_waiting(run=run, state=State.FAILED, message="gone", when=an_hour_ago)
    Execution.objects.filter(id=execution.id).update(start_date=an_hour_ago)

    with driver.recording():
        counts = taskruns_reconcile()

    execution.refresh_from_db()
    assert counts["resumed"] == 1 and execution.state == State.FAILED
    assert TaskRun.objects.get(id=run.id).state == State.FAILED
