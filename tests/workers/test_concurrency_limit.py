"""A worker group's concurrency limit (flows/capacity.py, docs/operations.md): at most N task runs
RUNNING across the whole group, the rest start in FIFO order as slots free."""
import pytest
from django.core.management import call_command
from django.utils import timezone

from flows import dispatch
from flows.engine import execution_create
from flows.models import Execution, FlowRevision, State, TaskRun
from flows.services import flow_upload, worker_group_create, worker_group_update
from flows.states import taskrun_claim, taskrun_end
from tests.support import SLEEP_FLOW_ON_GROUP, wait_execution, wait_for, workers_alive

NAP_ON_GPU = SLEEP_FLOW_ON_GROUP.format(group="gpu", duration="PT1S")


@pytest.mark.django_db(transaction=True)
def test_with_a_limit_of_one_two_executions_run_one_after_the_other_in_order(engine):
    other = engine.start("gpu", name="gpu-second", concurrency=2)
    try:
        workers_alive(other)
        call_command("workergroup", "set", "gpu", "--concurrency-limit", "1")
        flow = flow_upload(source=NAP_ON_GPU, tenant_key="main")
        executions = []
        # Each is started once the one before runs or waits for a slot: the queue's order is known.
        for in_place in ({"state": State.RUNNING}, {"slot_wait_since__isnull": False}, {"slot_wait_since__isnull": False}):
            execution = execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id)
            wait_for(lambda: TaskRun.objects.filter(execution=execution, **in_place).exists(),
                     message=f"the task run to be {in_place}")
            executions.append(execution)
        first, second, third = executions
        for execution in (first, second, third):
            assert wait_execution(execution.id).state == State.SUCCESS
        runs = [TaskRun.objects.get(execution=execution) for execution in (first, second, third)]
        assert runs[0].end_date <= runs[1].start_date and runs[1].end_date <= runs[2].start_date
        assert all(run.slot_wait_since is None for run in runs)
    finally:
        engine.stop(other)


def _waiting_runs(count: int) -> list[TaskRun]:
    flow = flow_upload(source=NAP_ON_GPU, tenant_key="main")
    execution = Execution.objects.create(tenant=flow.tenant, flow_revision=FlowRevision.objects.get(flow=flow),
                                         namespace=flow.namespace, flow_id=flow.flow_id)
    return [TaskRun.objects.create(execution=execution, scope_key=f"s{index}", task_id="nap",
                                   task_type="io.kestra.plugin.core.flow.Sleep", worker_group="gpu")
            for index in range(count)]


@pytest.mark.django_db(transaction=True)
def test_a_refused_claim_waits_for_a_slot_and_the_end_of_a_run_hands_it_on_in_order():
    worker_group_create(key="gpu", concurrency_limit=1)
    first, second, third = _waiting_runs(3)
    sent = []
    with dispatch.sending_to(sent.append):
        now = timezone.now()
        assert taskrun_claim(taskrun_id=first.id, attempt=1, worker_id="gpu@a", when=now) is not None
        assert taskrun_claim(taskrun_id=third.id, attempt=1, worker_id="gpu@b", when=now) is None
        assert taskrun_claim(taskrun_id=second.id, attempt=1, worker_id="gpu@b", when=timezone.now()) is None
        assert sent == []  # no free slot: nothing is sent, nobody polls

        first.refresh_from_db()
        taskrun_end(run=first, state=State.SUCCESS, outputs={}, error="", logs=[], when=timezone.now())
        assert [message.args[0] for message in sent] == [str(third.id)]  # the oldest waiter, one slot

        # A task run that never waited may not pass a waiter, even with a free slot.
        assert taskrun_claim(taskrun_id=second.id, attempt=1, worker_id="gpu@a", when=timezone.now()) is None
        assert taskrun_claim(taskrun_id=third.id, attempt=1, worker_id="gpu@a", when=timezone.now()) is not None
        assert TaskRun.objects.get(id=second.id).slot_wait_since is not None

        sent.clear()
        worker_group_update(key="gpu", concurrency_limit=None)  # no limit: every waiter is sent now
        assert [message.args[0] for message in sent] == [str(second.id)]
    assert taskrun_claim(taskrun_id=second.id, attempt=1, worker_id="gpu@a", when=timezone.now()) is not None


@pytest.mark.django_db
def test_a_bad_limit_is_refused_and_changes_nothing():
    from flows.errors import UserError

    worker_group_create(key="gpu", concurrency_limit=2)
    for bad in (0, -1, "3", True):
        with pytest.raises(UserError, match="concurrency limit"):
            worker_group_update(key="gpu", concurrency_limit=bad)
    assert worker_group_update(key="gpu").concurrency_limit == 2
