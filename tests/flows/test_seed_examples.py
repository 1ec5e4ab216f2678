"""The seed's documented examples, each a file of examples/, run as written on real workers; and
Kestra's expressions end to end (examples/kestra_expressions.yml, secrets on a worker).
examples/ml_on_gpu.yml (a namespace file run on gpu) is run by tests/flows/test_namespace_files.py."""
import base64
import datetime as dt

import pytest

from flows.api.schemas import Execution as ExecutionSchema
from flows.engine import execution_create
from flows.masking import MASK
from flows.selectors import alive_workers
from flows.services import flow_upload, worker_group_create
from tests.support import ROOT, task_runs, wait_execution, wait_for, workers_alive

pytestmark = pytest.mark.django_db(transaction=True)


def run_example(name: str, *, inputs: dict | None = None, timeout: float = 60):
    flow = flow_upload(source=(ROOT / "examples" / name).read_text(), tenant_key="main")
    execution = execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id,
                                 inputs=inputs or {})
    execution = wait_execution(execution.id, timeout=timeout)
    return execution, task_runs(execution)


def errors(runs: dict) -> list:
    return [(task_id, run.error) for task_id, run in runs.items() if not isinstance(run, list)]


def test_a_shell_sleep_runs_ten_seconds_as_a_process_on_a_gpu_worker(engine):
    execution, runs = run_example("gpu_shell_sleep.yml", timeout=90)
    assert execution.state == "SUCCESS", errors(runs)
    sleep = runs["sleep"]
    assert sleep.worker_group == "gpu" and sleep.worker_id.startswith("gpu@")
    assert sleep.outputs["exitCode"] == 0
    assert sleep.end_date - sleep.start_date >= dt.timedelta(seconds=10)  # it did sleep, on that worker


def test_plugin_defaults_send_every_script_to_gpu_and_nothing_else(engine):
    execution, runs = run_example("scripts_on_gpu.yml")
    assert execution.state == "SUCCESS", errors(runs)
    for task_id in ("shell", "python"):
        assert runs[task_id].worker_group == "gpu" and runs[task_id].worker_id.startswith("gpu@"), task_id
    assert runs["done"].worker_group == "" and runs["done"].worker_id.startswith("default@")
    assert [line.message for line in runs["done"].logs.all()] == ["scripts exited with 0 and 0"]


def test_a_sleep_that_must_run_on_gpu_runs_there_or_fails_at_once(engine):
    execution, runs = run_example("gpu_or_fail.yml")
    assert execution.state == "SUCCESS", errors(runs)
    assert runs["wait"].worker_id.startswith("gpu@")

    gpu = engine.ensure("gpu")
    engine.stop(gpu, kill=True)  # the fixture starts it again for the next test
    wait_for(lambda: not any("gpu" in worker.groups for worker in alive_workers()), timeout=30,
             message="the gpu worker to be seen dead")
    execution, runs = run_example("gpu_or_fail.yml")
    assert execution.state == "FAILED"
    assert runs["wait"].state == "FAILED" and "no alive worker in worker group 'gpu'" in runs["wait"].error
    assert not runs["wait"].worker_id


def test_a_return_routed_by_an_input_gives_its_task_runs_start_date(engine):
    execution, runs = run_example("group_from_input.yml")
    assert execution.state == "SUCCESS", errors(runs)
    when = runs["when"]
    assert when.worker_group == "gpu" and when.worker_id.startswith("gpu@")
    assert dt.datetime.fromisoformat(when.outputs["value"]) == when.start_date


def test_a_python_script_naming_a_container_image_runs_with_the_process_runner(engine):
    execution, runs = run_example("python_container_image.yml")
    assert execution.state == "SUCCESS", errors(runs)
    assert runs["hello"].outputs["vars"] == {"major": 3}


def test_kestras_expressions_run_unchanged_on_a_worker(engine):
    execution, runs = run_example("kestra_expressions.yml")
    assert execution.state == "SUCCESS", errors(runs)
    assert runs["facts"].outputs["value"] == "ada admin true true false HELLO ADA 2024-03-06"
    assert sorted(run.outputs["value"] for run in runs["again"]) == ["aa", "bb"]
    assert [line.message for line in runs["summary"].logs.all()] == ["a=aa, b=bb"]


SECRETS = """\
id: vault
namespace: company.team
tasks:
  - id: use
    type: io.kestra.plugin.core.log.Log
    message: "token {{ secret('DEMO_TOKEN') }} for {{ envs.team ?? 'nobody' }}"
    workerGroup: {key: vault}
  - id: keep
    type: io.kestra.plugin.core.debug.Return
    format: "{{ secret('demo_token') }}"
    workerGroup: {key: vault}
outputs:
  - id: token
    type: STRING
    value: "{{ outputs.keep.value }}"
"""


def test_secrets_are_read_on_the_worker_and_masked_in_logs_and_api_answers(engine, monkeypatch):
    token = "tok-12345-secret"
    encoded = base64.b64encode(token.encode()).decode()
    monkeypatch.setenv("SECRET_DEMO_TOKEN", encoded)  # the API process masks with its own environment
    worker_group_create(key="vault", description="workers holding the secrets")
    saved = engine.env
    engine.env = {**saved, "SECRET_DEMO_TOKEN": encoded, "ENV_TEAM": "data"}
    try:
        hostname = engine.start("vault", concurrency=1)
    finally:
        engine.env = saved
    try:
        workers_alive(hostname)
        flow = flow_upload(source=SECRETS, tenant_key="main")
        execution = wait_execution(execution_create(tenant_key="main", namespace=flow.namespace,
                                                    flow_id=flow.flow_id).id)
    finally:
        engine.stop(hostname)
    runs = task_runs(execution)
    assert execution.state == "SUCCESS", errors(runs)
    assert [line.message for line in runs["use"].logs.all()] == [f"token {MASK} for data"]
    assert runs["keep"].outputs == {"value": token} and execution.outputs == {"token": token}  # later tasks read it
    shown = ExecutionSchema.of(execution, list(execution.task_runs.all())).model_dump_json()
    assert token not in shown and MASK in shown
