"""A pool process killed while its worker goes on heartbeating: its task run is no longer in the
worker's running list, so the reconciler gives it a new attempt (flows/reconciler.py, _orphaned)."""
import os
import signal
import subprocess

import pytest

from flows.engine import execution_create
from flows.models import LogLine, State, TaskRun, Worker
from flows.reconciler import taskruns_reconcile
from flows.services import flow_upload
from tests.support import SLEEP_FLOW_ON_GROUP, wait_execution, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NAP = SLEEP_FLOW_ON_GROUP.format(group="gpu", duration="PT3S")


def test_a_task_run_whose_pool_process_was_killed_gets_a_new_attempt(engine):
    gpu = next(hostname for hostname in engine.processes if hostname.startswith("gpu@"))
    flow = flow_upload(source=NAP, tenant_key="main")
    execution = execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id)
    run = wait_for(lambda: TaskRun.objects.filter(execution=execution, state=State.RUNNING).first(), message="nap")
    wait_for(lambda: str(run.id) in Worker.objects.get(hostname=gpu).running_task_runs, message="the worker to list it")

    children = subprocess.run(["pgrep", "-P", str(engine.processes[gpu].pid)], capture_output=True, text=True)
    for pid in children.stdout.split():
        os.kill(int(pid), signal.SIGKILL)  # the pool processes; the worker's main process lives on

    def reattempted():
        taskruns_reconcile()
        return TaskRun.objects.filter(id=run.id, attempt=2).exists()

    wait_for(reattempted, timeout=30, interval=0.5, message="the reconciler to give it a new attempt")
    assert wait_execution(execution.id).state == State.SUCCESS
    run.refresh_from_db()
    assert (run.attempt, run.attempts[0]["workerLost"]) == (2, True)
    assert LogLine.objects.filter(task_run=run, message__startswith=f"the pool process running it on worker {gpu} "
                                                                    "died; starting attempt 2").exists()
    assert engine.processes[gpu].poll() is None
