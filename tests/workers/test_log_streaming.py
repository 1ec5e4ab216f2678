"""A running task's log lines reach the database while it runs (workers/runners.py, Runtime), the
logs API filters them by task run, and `execute --wait` follows an execution (docs/operations.md)."""
from io import StringIO

import pytest
from django.core.management import call_command

from flows.engine import execution_create
from flows.models import LogLine, State, TaskRun
from flows.services import flow_upload
from tests.support import wait_execution, wait_for
from tests.support.auth import api_client

pytestmark = pytest.mark.django_db(transaction=True)

TICKING = """\
id: ticking
namespace: company.team
tasks:
  - id: tick
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - for i in 1 2 3 4 5 6; do echo "tick $i"; sleep 0.5; done
    workerGroup: {key: gpu}
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: all ticked
"""


def test_a_running_scripts_lines_are_stored_while_it_runs(engine):
    flow = flow_upload(source=TICKING, tenant_key="main")
    execution = execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id)

    # The first lines are readable while the task run is still RUNNING.
    wait_for(lambda: LogLine.objects.filter(execution=execution, message="tick 2").exists(), message="tick 2")
    assert TaskRun.objects.get(execution=execution, task_id="tick").state == State.RUNNING

    assert wait_execution(execution.id).state == State.SUCCESS
    tick = TaskRun.objects.get(execution=execution, task_id="tick")
    messages = list(LogLine.objects.filter(task_run=tick).order_by("timestamp", "id").values_list("message", flat=True))
    assert [m for m in messages if m.startswith("tick")] == [f"tick {i}" for i in range(1, 7)]  # each once, in order

    api = api_client("root", superuser=True)
    url = f"/api/v1/main/executions/{execution.id}/logs"
    only_tick = api.get(f"{url}?taskRunId={tick.id}").json()
    assert {line["taskId"] for line in only_tick} == {"tick"} and len(only_tick) == len(messages)
    assert api.get(f"{url}?taskRunId={tick.id}&minLevel=ERROR").json() == []
    assert [line["message"] for line in api.get(url).json()][-1] == "all ticked"
    assert api.get(f"{url}?taskRunId=nope").status_code == 422


def test_execute_wait_prints_state_changes_and_logs_as_they_come(engine):
    flow_upload(source=TICKING, tenant_key="main")
    out = StringIO()

    call_command("execute", "company.team", "ticking", "--wait", stdout=out)

    lines = out.getvalue().splitlines()
    position = {}
    for index, line in enumerate(lines):
        words = line.split()
        if len(words) > 2 and words[1] == "tick" and words[2] in ("CREATED", "RUNNING", "SUCCESS"):
            position.setdefault(words[2], index)
        if line.endswith("tick INFO: tick 1"):
            position.setdefault("first log", index)
    assert position["RUNNING"] < position["first log"] < position["SUCCESS"], lines
    assert "on gpu by gpu@" in lines[position["RUNNING"]]
    assert any(line.endswith("done INFO: all ticked") for line in lines)
