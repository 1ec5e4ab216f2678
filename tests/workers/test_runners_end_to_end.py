"""The probes of scripts contained, on real workers (the Celery workers of tests/conftest.py), as an
attacker would try them from a flow. In process, the same rules are tested in test_runners.py."""
import os
import time
import uuid

import pytest
from django.conf import settings

from flows.engine import execution_create, execution_kill
from flows.models import State, TaskRun
from flows.services import flow_upload
from tests.support import run_flow, stored_texts, task_runs, wait_execution, wait_for
from tests.workers.test_runners import group_members

pytestmark = pytest.mark.django_db(transaction=True)


def script_flow(flow_id: str, commands: list[str], extra: str = "") -> str:
    lines = "".join(f"      - {command!r}\n" for command in commands)
    return (f"id: {flow_id}\nnamespace: company.team\ntasks:\n  - id: script\n"
            f"    type: io.kestra.plugin.scripts.shell.Commands\n    commands:\n{lines}{extra}")


def logs_of(run) -> list[str]:
    return list(run.logs.order_by("id").values_list("message", flat=True))


def test_a_script_sees_none_of_the_workers_settings(engine):
    execution = run_flow(script_flow("env_probe", ['echo "[$SECRET_KEY][$DATABASE_URL][$CELERY_BROKER_URL]"', "id -un"]))
    run = task_runs(execution)["script"]
    assert execution.state == State.SUCCESS
    lines = logs_of(run)
    assert lines[0] == "[][][]"
    assert engine.env["CELERY_BROKER_URL"] not in "\n".join(lines)
    if os.geteuid() == 0:
        assert lines[1] == settings.SCRIPT_USER


def test_output_files_of_everything_after_linking_the_root_stay_in_the_working_directory(engine):
    started = time.monotonic()
    execution = run_flow(script_flow("root_link", ["mkdir d", "ln -s / d/root", "ln -s /etc/hostname h.txt",
                                                   "echo ok > ok.txt"], '    outputFiles: ["**/*"]\n'), timeout=60)
    run = task_runs(execution)["script"]
    assert execution.state == State.SUCCESS
    assert stored_texts(run.outputs["outputFiles"]) == {"ok.txt": "ok\n"}
    assert time.monotonic() - started < 30  # today: the worker grows to 8 GB and ignores the kill


def test_400000_lines_of_output_leave_a_bounded_log(engine):
    execution = run_flow(script_flow("chatty", ["seq 400000"]), timeout=90)
    run = task_runs(execution)["script"]
    assert execution.state == State.SUCCESS
    assert run.logs.count() == settings.TASK_LOG_MAX_LINES + 1
    assert run.logs.order_by("-id").first().message.startswith("log truncated: 390000 more lines")


def test_a_killed_script_task_takes_its_whole_process_group_with_it(engine):
    pid_file = f"/tmp/wgc-e2e-{uuid.uuid4().hex}"
    flow = flow_upload(source=script_flow("killed_script", [f"echo $$ > {pid_file}", "(trap '' TERM; sleep 1000) &",
                                                            "sleep 1000"]), tenant_key="main")
    execution = execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id)
    wait_for(lambda: os.path.exists(pid_file) and open(pid_file).read().strip(), message="the script to start")
    pgid = int(open(pid_file).read())
    try:
        assert group_members(pgid)
        execution_kill(execution_id=execution.id)
        killed = wait_execution(execution.id, timeout=30)
        assert killed.state == State.KILLED
        assert TaskRun.objects.get(execution=execution, task_id="script").state == State.KILLED
        wait_for(lambda: group_members(pgid) == [], timeout=15, message="the script's process group to end")
    finally:
        os.remove(pid_file)
