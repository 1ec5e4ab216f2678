"""Kestra's other core tasks end to end, on real executor and worker processes: the task runs each
execution made and their states, as Kestra's own tests of these flows expect them."""
import pytest

from flows.models import Execution, State, TaskRun
from tests.support import run_flow, task_runs

pytestmark = pytest.mark.django_db(transaction=True)


def kestra_waitfor(flow_id: str, *, condition: str, check_frequency: str, more: str = "", tasks: str = "") -> str:
    """The shape of Kestra's WaitFor test flows: `output_values` counts `iterationCount + 1`."""
    return f"""
id: {flow_id}
namespace: io.kestra.tests
tasks:
  - id: waitfor
    type: io.kestra.plugin.core.flow.WaitFor
    condition: "{{{{ outputs.output_values.values.count == '{condition}' }}}}"
    checkFrequency: {check_frequency}
    {more}
    tasks:{tasks}
      - id: output_values
        type: io.kestra.plugin.core.output.OutputValues
        values:
          count: "{{{{ outputs.waitfor.iterationCount + 1 }}}}"
"""


def test_waitfor_stops_at_max_iterations(engine):
    execution = run_flow(kestra_waitfor("waitfor-max-iterations", condition="10",
                                        check_frequency="{maxIterations: 3, interval: PT0.2S}",
                                        more="failOnMaxReached: true"))
    runs = task_runs(execution)
    assert execution.state == State.FAILED and runs["waitfor"].state == State.FAILED
    assert [run.outputs["values"]["count"] for run in runs["output_values"]] == ["2", "3", "4"]
    # each iteration started at least an interval after the previous one ended
    iterations = runs["output_values"]
    assert all((second.created - first.end_date).total_seconds() >= 0.2
               for first, second in zip(iterations, iterations[1:]))


def test_waitfor_ends_once_its_condition_holds(engine):
    execution = run_flow(kestra_waitfor("waitfor-multiple-tasks", condition="4", check_frequency="{interval: PT0.1S}",
                                        tasks="""
      - id: echo
        type: io.kestra.plugin.core.log.Log
        message: "looping ..." """))
    runs = task_runs(execution)
    assert execution.state == State.SUCCESS
    assert len(runs["echo"]) == 3 and runs["output_values"][-1].outputs["values"]["count"] == "4"


def test_dag_runs_in_dependency_order(engine):
    execution = run_flow("""
id: dag
namespace: io.kestra.tests
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {id: task1, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.2S}
      - task: {id: task2, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.5S}
        dependsOn: [task1]
      - task: {id: task3, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.5S}
        dependsOn: [task1]
      - task: {id: task4, type: io.kestra.plugin.core.log.Log, message: "{{ task.id }}"}
        dependsOn: [task2]
      - task: {id: task5, type: io.kestra.plugin.core.log.Log, message: "{{ task.id }}"}
        dependsOn: [task4, task3]
      - task: {id: task6, type: io.kestra.plugin.core.log.Log, message: "{{ task.id }}"}
        dependsOn: [task2, task3]
""")
    runs = task_runs(execution)
    assert execution.state == State.SUCCESS and len(runs) == 7
    depends = {"task2": ["task1"], "task3": ["task1"], "task4": ["task2"], "task5": ["task4", "task3"],
               "task6": ["task2", "task3"]}
    for task_id, needed in depends.items():
        assert all(runs[other].end_date <= runs[task_id].start_date for other in needed), task_id
    # task2 and task3 depend on the same task only: they ran at the same time
    assert runs["task2"].start_date < runs["task3"].end_date and runs["task3"].start_date < runs["task2"].end_date


def test_kestra_each_sequential_with_allow_failure_under_older_names(engine):
    execution = run_flow("""
id: each-sequential
namespace: io.kestra.tests
tasks:
  - id: 1_each
    type: io.kestra.core.tasks.flows.EachSequential
    value: '["value 1", "value 2", "value 3"]'
    tasks:
      - id: 1-1
        type: io.kestra.core.tasks.debugs.Return
        format: "{{task.id}} > {{taskrun.value}} > {{taskrun.startDate}}"
      - id: failed
        type: io.kestra.core.tasks.flows.AllowFailure
        tasks:
          - id: 1-2
            type: io.kestra.core.tasks.log.Log
            message: "{{ parent.taskrun.value == 'value 1' ? 'ok' : ko }}"
  - id: 2_end
    type: io.kestra.core.tasks.debugs.Echo
    format: "{{task.id}} > {{taskrun.startDate}}"
""")
    runs = task_runs(execution)
    # `ko` is undefined: 1-2 fails for every value but the first, and AllowFailure makes it a warning
    assert execution.state == State.WARNING
    assert [run.state for run in runs["1-2"]] == [State.SUCCESS, State.FAILED, State.FAILED]
    assert [run.state for run in runs["failed"]] == [State.SUCCESS, State.WARNING, State.WARNING]
    assert [run.value for run in runs["1-1"]] == ["value 1", "value 2", "value 3"]
    assert runs["2_end"].state == State.SUCCESS


def test_kestra_labels_update_task(engine):
    execution = run_flow("""
id: labels-update-task
namespace: io.kestra.tests
labels:
  flowLabelKey: flowLabelValue
  overriddenFlowLabelKey: flowValueThatWillGetOverridden
inputs:
  - {id: labelsJson, type: JSON}
  - {id: labelsMapKey, type: STRING}
  - {id: labelsMapValue, type: STRING}
  - {id: labelsListKey, type: STRING}
  - {id: labelsListValue, type: STRING}
tasks:
  - id: from-render
    type: io.kestra.plugin.core.execution.Labels
    labels: "{{ inputs.labelsJson }}"
  - id: from-map
    type: io.kestra.plugin.core.execution.Labels
    labels:
      "{{ inputs.labelsMapKey }}": "{{ inputs.labelsMapValue }}"
  - id: from-list
    type: io.kestra.plugin.core.execution.Labels
    labels:
      - key: "{{ inputs.labelsListKey }}"
        value: "{{ inputs.labelsListValue }}"
  - id: override-labels
    type: io.kestra.plugin.core.execution.Labels
    labels:
      overriddenFlowLabelKey: "{{ flow.namespace ~ '.' ~ flow.id }}"
      overriddenExecutionLabelKey: "{{ taskrun.id }}"
""", inputs={"labelsJson": '{"keyFromJson": "valueFromJson"}', "labelsMapKey": "keyFromMap",
             "labelsMapValue": "valueFromMap", "labelsListKey": "keyFromList", "labelsListValue": "valueFromList"})
    runs = task_runs(execution)
    assert execution.state == State.SUCCESS and len(runs) == 4
    assert execution.labels == {
        "flowLabelKey": "flowLabelValue", "overriddenFlowLabelKey": "io.kestra.tests.labels-update-task",
        "keyFromJson": "valueFromJson", "keyFromMap": "valueFromMap", "keyFromList": "valueFromList",
        "overriddenExecutionLabelKey": str(runs["override-labels"].id),
    }
    assert all(run.worker_id == "" for run in runs.values())  # run by the executor, on no worker


def test_kv_tasks_and_the_kv_function_on_workers(engine):
    execution = run_flow("""
id: kv-tasks
namespace: company.team
tasks:
  - id: set
    type: io.kestra.plugin.core.kv.Set
    key: "my-key"
    value: '{"field": "{{ flow.id }}"}'
    kvType: JSON
  - id: set_elsewhere
    type: io.kestra.plugin.core.kv.Set
    namespace: company
    key: counter
    value: "41"
    kvType: NUMBER
    ttl: PT1H
  - id: get
    type: io.kestra.plugin.core.kv.Get
    namespace: company
    key: counter
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('my-key').field }} {{ kv('counter', 'company') + 1 }} {{ kv('nothing') ?? 'none' }}"
  - id: delete
    type: io.kestra.plugin.core.kv.Delete
    key: my-key
  - id: delete_again
    type: io.kestra.plugin.core.kv.Delete
    key: my-key
  - id: get_missing
    type: io.kestra.plugin.core.kv.Get
    key: my-key
    errorOnMissing: true
""")
    runs = task_runs(execution)
    assert execution.state == State.FAILED
    assert runs["get"].outputs == {"value": 41}
    assert runs["read"].outputs == {"value": "kv-tasks 42 none"}
    assert runs["delete"].outputs == {"deleted": True} and runs["delete_again"].outputs == {"deleted": False}
    assert runs["get_missing"].state == State.FAILED
    assert "the key 'my-key' does not exist in the namespace 'company.team'" in runs["get_missing"].error


def test_a_pause_resumed_through_the_api_with_inputs(engine):
    from flows.engine import execution_create
    from flows.services import flow_upload
    from tests.support import wait_execution
    from tests.support.auth import api_client

    flow_upload(tenant_key="main", source="""
id: pause-on-resume
namespace: io.kestra.tests
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: asked
        type: STRING
        defaults: "MISSING"
      - id: approved
        type: BOOLEAN
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.pause.onResume.asked }} {{ outputs.pause.onResume.approved }}"
""")
    execution = execution_create(tenant_key="main", namespace="io.kestra.tests", flow_id="pause-on-resume")
    execution = wait_execution(execution.id, states={State.PAUSED})
    assert execution.task_runs.get(task_id="pause").worker_id == ""  # paused on no worker

    client = api_client("dev", roles={"main": "developer"})
    url = f"/api/v1/main/executions/{execution.id}/resume"
    refused = client.post(url, {"asked": "yes"})  # `approved` is required
    assert refused.status_code == 422 and "approved" in refused.json()["message"]
    assert client.post(url, {"asked": "yes", "approved": "true"}).status_code == 204
    assert client.post(url, {"approved": "true"}).status_code == 409  # not paused any more

    execution = wait_execution(execution.id)
    runs = task_runs(execution)
    assert execution.state == State.SUCCESS
    assert runs["pause"].outputs == {"onResume": {"asked": "yes", "approved": True}}
    assert runs["last"].outputs == {"value": "yes true"}


def test_the_resume_task_resumes_a_paused_execution_from_a_worker(engine):
    execution = run_flow("""
id: pause-and-resume
namespace: company.team
tasks:
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: pause
        type: io.kestra.plugin.core.flow.Pause
        onResume:
          - {id: by, type: STRING}
      - id: resume
        type: io.kestra.plugin.core.execution.Resume
        namespace: company.team
        inputs:
          by: "{{ task.id }}"
""")
    runs = task_runs(execution)
    assert execution.state == State.SUCCESS
    assert runs["pause"].outputs == {"onResume": {"by": "resume"}} and runs["resume"].worker_id


def test_a_restart_through_the_api_succeeds_once_the_failing_task_is_made_to_pass(engine):
    from flows.services import kv_put
    from tests.support import wait_execution
    from tests.support.auth import api_client

    execution = run_flow("""
id: restartable
namespace: company.team
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: "{{ execution.id }}"
  - id: gate
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ kv('gate_open') is null }}"
    errorMessage: the gate is closed
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('gate_open') }}"
""")
    assert execution.state == State.FAILED and task_runs(execution)["gate"].state == State.FAILED
    client = api_client("dev", roles={"main": "developer"})
    kv_put(tenant_key="main", namespace="company.team", key="gate_open", value="yes")

    answer = client.post(f"/api/v1/main/executions/{execution.id}/restart")
    assert answer.status_code == 200 and answer.json()["state"]["current"] == "RUNNING"
    execution = wait_execution(execution.id)
    runs = task_runs(execution)
    assert execution.state == State.SUCCESS
    assert runs["gate"].attempt == 2 and [a["state"] for a in runs["gate"].attempts] == ["FAILED", "SUCCESS"]
    assert runs["last"].outputs == {"value": "yes"}
    assert client.post(f"/api/v1/main/executions/{execution.id}/restart").status_code == 409  # nothing failed

    replay = client.post(f"/api/v1/main/executions/{execution.id}/replay?taskRunId={runs['last'].id}")
    assert replay.status_code == 200
    replayed = wait_execution(replay.json()["id"])
    assert replayed.state == State.SUCCESS and task_runs(replayed)["first"].outputs == runs["first"].outputs


def test_a_subflow_child_runs_on_another_group_than_its_parent(engine):
    from flows.services import flow_upload

    flow_upload(tenant_key="main", source="""
id: child-on-gpu
namespace: company.team
inputs:
  - {id: n, type: INT}
tasks:
  - id: train
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.n * 2 }}"
    workerGroup: {key: gpu}
outputs:
  - {id: doubled, type: INT, value: "{{ outputs.train.value }}"}
""")
    parent = run_flow("""
id: parent
namespace: company.team
tasks:
  - id: prepare
    type: io.kestra.plugin.core.debug.Return
    format: "21"
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: child-on-gpu
    inputs: {n: "{{ outputs.prepare.value }}"}
  - id: report
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.call.outputs.doubled }}"
""")
    runs = task_runs(parent)
    child = task_runs(Execution.objects.get(id=runs["call"].outputs["executionId"]))
    assert parent.state == State.SUCCESS and runs["report"].outputs == {"value": "42"}
    assert runs["prepare"].worker_id.startswith("default@") and child["train"].worker_id.startswith("gpu@")
    assert runs["call"].worker_id == ""


def test_killing_a_parent_while_it_waits_kills_its_child(engine):
    from flows.engine import execution_create, execution_kill
    from flows.services import flow_upload
    from tests.support import wait_execution, wait_for

    flow_upload(tenant_key="main", source="""
id: slow-child
namespace: company.team
tasks:
  - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT30S}
""")
    flow_upload(tenant_key="main", source="""
id: waiting-parent
namespace: company.team
tasks:
  - {id: call, type: io.kestra.plugin.core.flow.Subflow, namespace: company.team, flowId: slow-child}
""")
    parent = execution_create(tenant_key="main", namespace="company.team", flow_id="waiting-parent")
    nap = wait_for(lambda: TaskRun.objects.filter(task_id="nap", state=State.RUNNING).first(), timeout=30,
                   message="the child's task to run")
    execution_kill(execution_id=parent.id)

    parent = wait_execution(parent.id, timeout=30)
    child = wait_execution(nap.execution_id, timeout=30)
    assert parent.state == State.KILLED and child.state == State.KILLED
    assert TaskRun.objects.get(id=nap.id).state == State.KILLED


def test_for_each_item_over_a_1000_row_file_in_batches_of_100(engine):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from flows import storage
    from flows.services import flow_upload

    flow_upload(tenant_key="main", source="""
id: for-each-item-subflow
namespace: io.kestra.tests
inputs:
  - {id: items, type: STRING}
tasks:
  - id: per-item
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.items }}"
""")
    rows = SimpleUploadedFile("rows.csv", b"".join(f"row {n}\n".encode() for n in range(1000)))
    execution = run_flow("""
id: for-each-item
namespace: io.kestra.tests
inputs:
  - {id: file, type: FILE}
  - {id: batch, type: INT}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    batch:
      rows: "{{ inputs.batch }}"
    namespace: io.kestra.tests
    flowId: for-each-item-subflow
    wait: true
    transmitFailed: true
    concurrencyLimit: 4
    inputs:
      items: "{{ taskrun.items }}"
""", inputs={"file": rows, "batch": "100"}, timeout=120)
    each = task_runs(execution)["each"]
    children = Execution.objects.filter(flow_id="for-each-item-subflow")
    assert execution.state == State.SUCCESS
    assert each.outputs["numberOfBatches"] == 10 and each.outputs["iterations"]["SUCCESS"] == 10
    assert children.count() == 10 and all(child.state == State.SUCCESS for child in children)
    read = [storage.read(tenant_key="main", path=child.inputs["items"][len("kestra:///"):]) for child in children]
    assert sorted(line for batch in read for line in batch.splitlines()) == sorted(f"row {n}".encode() for n in range(1000))
    assert all(batch.count(b"\n") == 100 for batch in read)
