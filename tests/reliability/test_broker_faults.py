"""The broker goes away for 5 seconds while executions wait and run, and comes back with its data
(persistence: every queued message survives) or without it (every queued message is lost)."""
import time

import pytest

from flows.models import State, TaskRun
from flows.services import worker_group_create
from tests.support import wait_for
from tests.support.stack import alive

from .harness import assert_healthy, log_flow, size, sleep_then_log_flow, start_executions, wait_ended

pytestmark = pytest.mark.django_db(transaction=True)

OUTAGE_SECONDS = 5


@pytest.mark.parametrize("keep_data", [True, False], ids=["with-data", "without-data"])
def test_redis_stopped_for_five_seconds_and_restarted(stack, redis_server, keep_data):
    worker_group_create(key="busy")
    worker_group_create(key="idle")
    workers = [stack.start_worker("busy", label="a"), stack.start_worker("busy", label="b")]
    alive(*workers)
    running = start_executions(stack, sleep_then_log_flow("running", "busy", fallback="FAIL"), size(120, minimum=8))
    waiting = start_executions(stack, log_flow("waiting", "idle"), size(40, minimum=3))  # no worker yet: WAIT
    wait_for(lambda: TaskRun.objects.filter(worker_group="busy", state=State.RUNNING).exists()
             and TaskRun.objects.filter(worker_group="idle", state=State.CREATED).count() == len(waiting),
             timeout=60, message="task runs running in group busy and waiting in group idle")

    redis_server.stop(keep_data=keep_data)
    down_since = time.monotonic()
    during = start_executions(stack, log_flow("during", "busy", fallback="FAIL"), 2)  # accepted while the broker is away
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_since)))  # the outage itself
    redis_server.start()
    alive(stack.start_worker("idle", label="late"))

    ids = running + waiting + during
    wait_ended(stack, ids, timeout=120)
    assert_healthy(stack, ids, fifo={"busy": 4, "idle": 2},
                   title=f"Redis down {OUTAGE_SECONDS}s, {'with' if keep_data else 'without'} its data")
