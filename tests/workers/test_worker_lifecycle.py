"""Workers as processes: the `worker` command, heartbeats, FIFO, lost messages and lost workers."""
import os
import signal
import socket
import subprocess
import sys

import pytest
import redis

from flows.engine import execution_create
from flows.models import State, TaskRun, Worker
from flows.reconciler import taskruns_reconcile
from flows.services import flow_upload, worker_group_create
from tests.support import ROOT, task_runs, wait_execution, wait_for, workers_alive

pytestmark = pytest.mark.django_db(transaction=True)


def _start(source: str):
    flow = flow_upload(source=source, tenant_key="main")
    return execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id)


def test_worker_command_joins_the_group_named_by_flag_or_environment(engine):
    worker_group_create(key="cmdgroup")
    env = {**engine.env, "WORKER_GROUP": "cmdgroup"}
    process = subprocess.Popen([sys.executable, "manage.py", "worker", "--concurrency", "1", "--loglevel", "WARNING"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        hostname = f"cmdgroup@{socket.gethostname()}"
        workers_alive(hostname)
        worker = Worker.objects.get(hostname=hostname)
        assert (worker.groups, worker.concurrency, worker.pid > 0) == (["cmdgroup"], 1, True)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    assert not Worker.objects.filter(hostname=hostname).exists()  # a clean stop is seen at once


def test_worker_command_refuses_an_unknown_group(engine):
    result = subprocess.run([sys.executable, "manage.py", "worker", "--worker-group", "ghost"], cwd=ROOT, env=engine.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "worker group 'ghost' does not exist" in result.stderr


def test_heartbeat_reports_running_task_runs_and_the_group_takes_them_in_fifo_order(engine):
    worker_group_create(key="fifo")
    execution = _start("""
id: fifo
namespace: company.team
tasks:
  - id: all
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
""" + "".join(f"""      - id: nap{i}
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT1.5S
        workerGroup: {{key: fifo}}
""" for i in range(4)))
    wait_for(lambda: TaskRun.objects.filter(execution=execution, worker_group="fifo").count() == 4, message="4 task runs")
    hostname = engine.start("fifo", concurrency=1)
    try:
        wait_for(lambda: Worker.objects.filter(hostname=hostname, running=1).exists(), message="a heartbeat with 1 running")
        finished = wait_execution(execution.id, timeout=60)
    finally:
        engine.stop(hostname)
    runs = [run for run in finished.task_runs.filter(worker_group="fifo")]
    created_order = [run.task_id for run in sorted(runs, key=lambda run: run.created)]
    started_order = [run.task_id for run in sorted(runs, key=lambda run: run.start_date)]
    assert finished.state == "SUCCESS" and started_order == created_order == ["nap0", "nap1", "nap2", "nap3"]


def test_a_lost_message_is_published_again(engine, settings):
    settings.REPUBLISH_AFTER_SECONDS = 1
    worker_group_create(key="lossy")
    execution = _start("""
id: lossy
namespace: company.team
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: survived
    workerGroup: {key: lossy}
""")
    wait_for(lambda: TaskRun.objects.filter(execution=execution, task_id="work").exists(), message="the task run")
    broker = redis.Redis.from_url(engine.env["CELERY_BROKER_URL"])
    wait_for(lambda: broker.llen("lossy") == 1, message="the message in the lossy queue")
    broker.delete("lossy")  # what a broker restart without persistence does
    hostname = engine.start("lossy", concurrency=1)
    try:
        workers_alive(hostname)

        def done():
            taskruns_reconcile()
            return TaskRun.objects.filter(execution=execution, task_id="work", state=State.SUCCESS).first()

        run = wait_for(done, timeout=30, interval=0.5, message="the reconciler to publish the lost task run again")
        assert run.worker_id == hostname and run.attempt == 1
    finally:
        engine.stop(hostname)


def test_a_task_run_of_a_killed_worker_gets_a_new_attempt_on_another_worker(engine):
    worker_group_create(key="crashy")
    doomed = engine.start("crashy", name="doomed", concurrency=1)
    workers_alive(doomed)
    execution = _start("""
id: crashy
namespace: company.team
tasks:
  - id: work
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT2S
    workerGroup: {key: crashy}
""")
    wait_for(lambda: TaskRun.objects.filter(execution=execution, state=State.RUNNING, worker_id=doomed).exists(),
             message="the doomed worker to start the task run")
    engine.stop(doomed, kill=True)
    survivor = engine.start("crashy", name="survivor", concurrency=1)
    try:
        workers_alive(survivor)

        def done():
            taskruns_reconcile()
            return wait_execution(execution.id, timeout=0.3) if TaskRun.objects.filter(
                execution=execution, state=State.SUCCESS).exists() else None

        finished = wait_for(done, timeout=60, interval=0.5, message="a new attempt to succeed")
    finally:
        engine.stop(survivor)
    run = task_runs(finished)["work"]
    assert finished.state == "SUCCESS"
    assert run.attempt == 2 and run.worker_id == survivor
    assert [(a["attempt"], a["workerId"]) for a in run.attempts] == [(1, doomed), (2, survivor)]
