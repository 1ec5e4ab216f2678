"""Worker-group routing end to end: real workers, real Redis."""
import pytest

from flows.services import namespace_set, tenant_create, worker_group_create
from tests.support import run_flow, task_runs, workers_alive

pytestmark = pytest.mark.django_db(transaction=True)


def test_tasks_run_on_their_groups_workers(engine):
    execution = run_flow("""
id: routed
namespace: company.team
pluginDefaults:
  - type: io.kestra.plugin.core.output
    values: {workerGroup: {key: gpu}}
tasks:
  - id: on_gpu
    type: io.kestra.plugin.core.debug.Return
    format: trained
    workerGroup: {key: gpu}
  - id: on_default
    type: io.kestra.plugin.core.debug.Return
    format: reported
  - id: by_plugin_defaults
    type: io.kestra.plugin.core.output.OutputValues
    values: {done: true}
""")
    runs = task_runs(execution)
    assert execution.state == "SUCCESS"
    assert (runs["on_gpu"].worker_group, runs["on_gpu"].worker_id.split("@")[0]) == ("gpu", "gpu")
    assert (runs["on_default"].worker_group, runs["on_default"].worker_id.split("@")[0]) == ("", "default")
    assert (runs["by_plugin_defaults"].worker_group, runs["by_plugin_defaults"].worker_id.split("@")[0]) == ("gpu", "gpu")
    assert runs["by_plugin_defaults"].outputs == {"values": {"done": True}}


def test_dynamic_key_routes_to_the_group_named_by_the_input(engine):
    source = """
id: dynamic
namespace: company.team
inputs:
  - id: group
    type: STRING
    defaults: gpu
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.group }}"
    workerGroup: {key: "{{ inputs.group }}"}
"""
    on_gpu = task_runs(run_flow(source))["work"]
    on_default = task_runs(run_flow(source, inputs={"group": ""}))["work"]
    assert (on_gpu.worker_group, on_gpu.worker_id.split("@")[0]) == ("gpu", "gpu")
    assert (on_default.worker_group, on_default.worker_id.split("@")[0]) == ("", "default")


def test_rendered_key_naming_no_group_fails_the_task_run_with_the_reason(engine):
    execution = run_flow("""
id: unknown_group
namespace: company.team
inputs:
  - id: group
    type: STRING
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: x
    workerGroup: {key: "{{ inputs.group }}"}
""", inputs={"group": "nowhere"})
    run = task_runs(execution)["work"]
    assert execution.state == "FAILED"
    assert run.state == "FAILED" and "worker group 'nowhere' does not exist" in run.error
    assert run.logs.filter(level="ERROR", message__contains="nowhere").exists()
    assert run.worker_id == ""


def test_tenant_not_allowed_on_a_group_never_runs_there(engine):
    tenant_create(key="other")
    worker_group_create(key="mainonly", allowed_tenants=["main"])
    execution = run_flow("""
id: sneaky
namespace: company.team
inputs:
  - id: group
    type: STRING
    defaults: mainonly
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: x
    workerGroup: {key: "{{ inputs.group }}"}
""", tenant="other")
    run = task_runs(execution)["work"]
    assert run.state == "FAILED" and "does not allow tenant 'other'" in run.error


def test_namespace_and_tenant_defaults_route_and_decide_fallback(engine):
    worker_group_create(key="nsgroup")  # no worker: fallback decides
    namespace_set(tenant_key="main", name="company", worker_group_key="gpu")
    namespace_set(tenant_key="main", name="company.ops", worker_group_key="nsgroup", fallback="FAIL")
    tenant_create(key="acme", worker_group_key="gpu", fallback="CANCEL")
    task = """
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: x
"""
    inherited = run_flow("id: a\nnamespace: company.team.ml\n" + task)
    assert task_runs(inherited)["work"].worker_id.split("@")[0] == "gpu"
    failing = run_flow("id: b\nnamespace: company.ops\n" + task)
    run = task_runs(failing)["work"]
    assert failing.state == "FAILED" and run.worker_group == "nsgroup" and run.fallback == "FAIL"
    from_tenant = run_flow("id: c\nnamespace: elsewhere\n" + task, tenant="acme")
    assert task_runs(from_tenant)["work"].worker_id.split("@")[0] == "gpu"
    assert task_runs(from_tenant)["work"].fallback == "CANCEL"


def test_a_worker_consuming_gpu_and_default_serves_both_groups(engine):
    regulars = [host for host in engine.processes if host.split("@")[0] in ("default", "gpu")]
    for hostname in regulars:
        engine.stop(hostname)  # only the two-queue worker may take this flow's task runs
    both = engine.start("gpu,default", name="both", concurrency=1)
    try:
        workers_alive(both)
        execution = run_flow("""
id: two_groups
namespace: company.team
tasks:
  - id: on_gpu
    type: io.kestra.plugin.core.debug.Return
    format: a
    workerGroup: {key: gpu}
  - id: on_default
    type: io.kestra.plugin.core.debug.Return
    format: b
""")
        runs = task_runs(execution)
        assert execution.state == "SUCCESS"
        assert (runs["on_gpu"].worker_group, runs["on_default"].worker_group) == ("gpu", "")
        assert runs["on_gpu"].worker_id == both == runs["on_default"].worker_id
        from flows.models import Worker

        assert Worker.objects.get(hostname=both).groups == ["default", "gpu"]
    finally:
        engine.stop(both)
        for hostname in regulars:
            engine.start(hostname.split("@")[0])
        workers_alive(*regulars)
