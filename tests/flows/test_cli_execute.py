"""`python manage.py execute NAMESPACE FLOW_ID [--input k=v] [--wait]` with real workers."""
import io
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from flows.models import Execution
from flows.services import flow_upload
from tests.support import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

ROUTED = """\
id: routed
namespace: company.team
inputs:
  - id: count
    type: INT
tasks:
  - id: train
    type: io.kestra.plugin.core.debug.Return
    format: "trained {{ inputs.count }}"
    workerGroup: {key: gpu}
  - id: report
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.train.value }}"
"""

BROKEN = """\
id: broken
namespace: company.team
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "boom"
"""


def execute(*args) -> tuple[str, str, CommandError | None]:
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        call_command("execute", *args, stdout=stdout, stderr=stderr)
    except CommandError as error:
        return stdout.getvalue(), stderr.getvalue(), error
    return stdout.getvalue(), stderr.getvalue(), None


def row(stdout: str, task_id: str) -> list[str]:
    return next(line.split() for line in stdout.splitlines() if line.split()[:1] == [task_id])


def test_wait_prints_each_task_runs_group_and_worker_and_succeeds(engine):
    flow_upload(source=ROUTED, tenant_key="main")

    stdout, _, error = execute("company.team", "routed", "--input", "count=4", "--wait")

    assert error is None, stdout
    execution = Execution.objects.get()
    assert execution.state == "SUCCESS" and execution.inputs == {"count": 4}
    assert stdout.splitlines()[0].startswith(f"execution {execution.id} of company.team.routed revision 1")
    task, value, state, group, worker, attempts = row(stdout, "train")
    assert (state, group, worker.split("@")[0], attempts) == ("SUCCESS", "gpu", "gpu", "1")
    assert row(stdout, "report")[2:5] == ["SUCCESS", "default", execution.task_runs.get(task_id="report").worker_id]
    assert stdout.splitlines()[-1].startswith(f"execution {execution.id}: SUCCESS in ")


def test_a_failing_flow_exits_1_with_the_task_runs_error(engine):
    flow_upload(source=BROKEN, tenant_key="main")

    stdout, _, error = execute("company.team", "broken", "--wait")

    assert error is not None and error.returncode == 1 and "ended FAILED" in str(error)
    assert row(stdout, "fail")[2] == "FAILED"
    assert "fail: boom" in stdout


def test_exit_status_and_stderr_of_the_real_command(engine):
    flow_upload(source=BROKEN, tenant_key="main")
    flow_upload(source=ROUTED, tenant_key="main")

    def run(*args):
        return subprocess.run([sys.executable, "manage.py", "execute", *args], cwd=ROOT, env=engine.env,
                              capture_output=True, text=True, timeout=120)

    ok = run("company.team", "routed", "--input", "count=2", "--wait")
    failed = run("company.team", "broken", "--wait")

    assert ok.returncode == 0, ok.stderr
    assert "gpu@" in ok.stdout
    assert failed.returncode == 1 and "ended FAILED" in failed.stderr


@pytest.mark.parametrize("args, words", [
    (["--input", "count"], "must be written NAME=VALUE"),
    (["--input", "=4"], "must be written NAME=VALUE"),
    (["--input", "count=abc"], "inputs.count"),
    ([], "missing required input 'count'"),
    (["--input", "count=1", "--input", "extra=1"], "unknown input 'extra'"),
])
def test_bad_inputs_exit_1_and_create_nothing(args, words):
    flow_upload(source=ROUTED.replace("workerGroup: {key: gpu}", ""), tenant_key="main")

    _, _, error = execute("company.team", "routed", *args, "--wait")

    assert error is not None and error.returncode == 1 and words in str(error)
    assert Execution.objects.count() == 0


def test_an_unknown_flow_exits_1():
    _, _, error = execute("company.team", "nowhere")

    assert error is not None and "flow 'company.team.nowhere' does not exist" in str(error)
