"""The executor dies in the middle of a burst of executions and is started again."""
import pytest

from flows.models import Execution, State
from flows.services import worker_group_create
from tests.support import wait_for
from tests.support.stack import alive

from .harness import assert_healthy, log_flow, size, start_executions, wait_ended

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_executor_killed_in_the_middle_of_a_burst_of_executions(stack):
    worker_group_create(key="burst")
    workers = [stack.start_worker("burst", concurrency=2, label=label) for label in ("a", "b")]
    alive(*workers)
    count = size(200, minimum=200)
    source = log_flow("burst", "burst", fallback="FAIL")
    first = start_executions(stack, source, count // 2)
    wait_for(lambda: Execution.objects.filter(id__in=first).exclude(state=State.CREATED).count() >= count // 6,
             timeout=60, message="the executor to start a part of the burst")

    stack.kill(stack.executor)
    ids = first + start_executions(stack, source, count - count // 2)
    stack.executor = stack.start_executor()

    wait_ended(stack, ids, timeout=180)
    assert_healthy(stack, ids, fifo={"burst": 6}, title=f"executor killed in a burst of {count}")
