"""A worker group's init script (workers/init_script.py): run once by each worker at start, before
it takes work, its output in the worker's log; a failing script stops the worker, saying why."""
import os
import signal
import subprocess
import sys

import pytest

from flows.models import State, Worker
from flows.services import worker_group_create
from tests.support import LOG_FLOW_ON_GROUP, ROOT, run_flow, workers_alive

pytestmark = pytest.mark.django_db(transaction=True)


def _worker(engine, group: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", group, "-n", f"{group}@{engine.run_id}",
         "--concurrency=1", "--loglevel=INFO", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=engine.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def test_the_init_script_runs_before_the_worker_takes_work_and_logs_its_output(engine, tmp_path):
    marker = tmp_path / "prepared"
    worker_group_create(key="prepared", init_script=f'echo "preparing $WORKER_GROUP"\ntouch {marker}\n')
    process = _worker(engine, "prepared")
    try:
        workers_alive(f"prepared@{engine.run_id}")
        assert marker.exists()  # it ran before the first heartbeat made the worker alive
        assert run_flow(LOG_FLOW_ON_GROUP.format(group="prepared")).state == State.SUCCESS
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert "init script of worker group 'prepared': preparing prepared" in output
    assert output.count("running the init script of worker group 'prepared'") == 1


def test_a_failing_init_script_stops_the_worker_with_a_clear_message(engine):
    worker_group_create(key="broken", init_script='echo "no driver found" >&2\nexit 3\n')
    process = _worker(engine, "broken")
    output = process.communicate(timeout=60)[0]

    assert process.returncode != 0
    assert "init script of worker group 'broken': no driver found" in output
    assert "the init script of worker group 'broken' failed (exit status 3)" in output
    assert not Worker.objects.filter(hostname=f"broken@{engine.run_id}").exists()  # never alive, never took work
