"""Live drain and resume of a worker group (docs/operations.md): nothing running is lost, nothing
new starts, a worker started meanwhile stays idle, and resume lets the waiting task run start."""
import pytest
from django.core.management import call_command

from flows.engine import execution_create
from flows.models import State, TaskRun, Worker
from flows.selectors import worker_group_health
from flows.services import flow_upload
from tests.support import LOG_FLOW_ON_GROUP, SLEEP_FLOW_ON_GROUP, wait_execution, wait_for, workers_alive

pytestmark = pytest.mark.django_db(transaction=True)

SLEEP_ON_GPU = SLEEP_FLOW_ON_GROUP.format(group="gpu", duration="PT5S")


def _start(source: str):
    flow = flow_upload(source=source, tenant_key="main")
    return execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id)


def _drained(hostname: str) -> bool:
    return Worker.objects.filter(hostname=hostname, drained=["gpu"]).exists()


def _beats(hostname: str, count: int) -> None:
    """Wait until `hostname` has beaten `count` more times."""
    for _ in range(count):
        last = Worker.objects.get(hostname=hostname).last_heartbeat
        wait_for(lambda: Worker.objects.get(hostname=hostname).last_heartbeat > last, message=f"{hostname} to beat")


def test_drain_while_a_sleep_runs_loses_nothing_and_resume_starts_what_waits(engine):
    gpu = next(hostname for hostname in engine.processes if hostname.startswith("gpu@"))
    sleeping = _start(SLEEP_ON_GPU)
    wait_for(lambda: TaskRun.objects.filter(execution=sleeping, state=State.RUNNING).exists(), message="the sleep")

    call_command("workergroup", "drain", "gpu")
    wait_for(lambda: _drained(gpu), message="the gpu worker to stop consuming its queue")
    waiting = _start(LOG_FLOW_ON_GROUP.format(group="gpu"))
    newcomer = engine.start("gpu", name="gpu-late", concurrency=1)
    try:
        workers_alive(newcomer)
        wait_for(lambda: _drained(newcomer), message="the new worker to start idle")

        assert wait_execution(sleeping.id).state == State.SUCCESS  # the running task finished
        _beats(newcomer, 2)
        run = TaskRun.objects.get(execution=waiting)
        assert (run.state, run.worker_id) == (State.CREATED, "")
        health = worker_group_health(["gpu"])["gpu"]
        assert (health["alive"], health["drained"], health["flagged"]) == (0, True, True)
        assert {w["hostname"]: w["drained"] for w in health["aliveWorkers"]} == {gpu: True, newcomer: True}

        call_command("workergroup", "resume", "gpu")
        assert wait_execution(waiting.id).state == State.SUCCESS
        assert TaskRun.objects.get(execution=waiting).worker_id in {gpu, newcomer}
        wait_for(lambda: not Worker.objects.filter(hostname__in=[gpu, newcomer]).exclude(drained=[]).exists(),
                 message="both workers to consume gpu again")
    finally:
        engine.stop(newcomer)


def test_draining_one_worker_leaves_the_others_taking_the_work(engine):
    gpu = next(hostname for hostname in engine.processes if hostname.startswith("gpu@"))
    other = engine.start("gpu", name="gpu-other", concurrency=1)
    try:
        workers_alive(other)
        call_command("workergroup", "drain", "gpu", "--worker", gpu)
        wait_for(lambda: _drained(gpu), message="the drained worker to stop consuming")
        assert worker_group_health(["gpu"])["gpu"]["alive"] == 1

        execution = _start(LOG_FLOW_ON_GROUP.format(group="gpu"))
        assert wait_execution(execution.id).state == State.SUCCESS
        assert TaskRun.objects.get(execution=execution).worker_id == other

        call_command("workergroup", "resume", "gpu", "--worker", gpu)
        wait_for(lambda: not _drained(gpu), message="the worker to consume gpu again")
    finally:
        engine.stop(other)
