"""The engine's handlers of Kestra's other core tasks (WaitFor, Dag, ...), one evaluation at a time,
in process (tests/support/driver.py). The same flows run end to end in test_core_tasks.py."""
import pytest
from django.utils import timezone

from flows import dispatch
from flows.engine import execution_advance, execution_kill, execution_replay, execution_restart, execution_resume
from flows.errors import Conflict, UserError
from flows.expressions import render
from flows.models import Execution, State, TaskRun
from flows.reconciler import taskruns_reconcile
from flows.services import flow_upload, tenant_create, worker_group_create, worker_heartbeat
from tests.support.driver import EngineDriver, Outcome, states_by_task

pytestmark = pytest.mark.django_db

RETURN = "io.kestra.plugin.core.debug.Return"
OUTPUT_VALUES = "io.kestra.plugin.core.output.OutputValues"
FLOW = "id: unit\nnamespace: company.team\n"


@pytest.fixture(autouse=True)
def default_worker():
    worker_heartbeat(hostname="default@unit-test", groups=["default"], pid=1, concurrency=1, running=0)


def counting(task_id: str):
    """An outcome whose output `values.count` is 1 + how many task runs of `task_id` exist, as
    Kestra's test flows compute `{{ outputs.waitfor.iterationCount + 1 }}`."""
    def outcome(run):
        count = run.execution.task_runs.filter(task_id=task_id).count() + 1
        return Outcome(outputs={"values": {"count": str(count)}})
    return outcome


def waitfor_flow(condition: str, check: str = "interval: PT0S", extra: str = "") -> str:
    return FLOW + f"""
tasks:
  - id: waitfor
    type: io.kestra.plugin.core.flow.WaitFor
    condition: "{condition}"
    checkFrequency: {{{check}}}
    {extra}
    tasks:
      - {{id: echo, type: {RETURN}, format: looping}}
      - {{id: output_values, type: {OUTPUT_VALUES}, values: {{count: x}}}}
"""


def test_waitfor_runs_its_tasks_again_until_the_condition_holds():
    driver = EngineDriver(outcomes={"output_values": counting("output_values")})
    execution = driver.run(waitfor_flow("{{ outputs.output_values.values.count == '4' }}"))

    assert execution.state == State.SUCCESS
    assert states_by_task(execution) == {"waitfor": "SUCCESS", "echo": ["SUCCESS"] * 3,
                                         "output_values": ["SUCCESS"] * 3}
    # each iteration ran its tasks in order, after the previous iteration had ended
    runs = list(execution.task_runs.exclude(task_id="waitfor").order_by("created"))
    assert [run.task_id for run in runs] == ["echo", "output_values"] * 3
    assert all(first.end_date <= second.created for first, second in zip(runs, runs[1:]))
    assert execution.task_runs.get(task_id="waitfor").outputs == {"iterationCount": 4}


def test_waitfor_gives_each_iteration_its_count_in_the_context():
    driver = EngineDriver()
    execution = driver.run(FLOW + f"""
tasks:
  - id: waitfor
    type: io.kestra.plugin.core.flow.WaitFor
    condition: "{{{{ outputs.waitfor.iterationCount == 3 }}}}"
    checkFrequency: {{interval: PT0S}}
    tasks:
      - {{id: noop, type: {RETURN}, format: x}}
""")
    assert execution.state == State.SUCCESS
    # the condition is rendered after an iteration with the count of the next one: 2, then 3
    assert states_by_task(execution)["noop"] == ["SUCCESS", "SUCCESS"]


@pytest.mark.parametrize("fail_on_max, expected", [("true", State.FAILED), ("false", State.SUCCESS)])
def test_waitfor_stops_at_max_iterations(fail_on_max, expected):
    driver = EngineDriver(outcomes={"output_values": counting("output_values")})
    execution = driver.run(waitfor_flow("{{ outputs.output_values.values.count == '10' }}",
                                        "maxIterations: 3, interval: PT0S", f"failOnMaxReached: {fail_on_max}"))

    assert execution.state == expected
    assert states_by_task(execution)["output_values"] == ["SUCCESS"] * 3
    assert execution.task_runs.get(task_id="waitfor").state == expected


def test_waitfor_stops_at_max_duration():
    driver = EngineDriver()
    execution = driver.run(waitfor_flow("{{ false }}", "maxDuration: PT0S, interval: PT0S", "failOnMaxReached: true"))

    assert execution.state == State.FAILED
    assert states_by_task(execution)["output_values"] == "SUCCESS"  # one iteration, then the maximum


def test_a_failed_iteration_ends_the_waitfor_failed():
    driver = EngineDriver(outcomes={"echo": Outcome(State.FAILED, error="boom")})
    execution = driver.run(waitfor_flow("{{ false }}"))

    assert execution.state == State.FAILED
    assert states_by_task(execution) == {"waitfor": "FAILED", "echo": "FAILED"}


def test_waitfor_waits_its_interval_between_iterations_without_holding_anything():
    driver = EngineDriver()
    execution = driver.start(waitfor_flow("{{ false }}", "interval: PT30S"))
    for _ in range(3):  # the first evaluation, then echo and output_values of iteration 1
        driver.deliver(driver.sent.pop(0))

    wake_up = driver.sent[-1]
    assert wake_up.task == dispatch.ADVANCE_EXECUTION and 29 < wake_up.countdown <= 30
    assert execution.task_runs.get(task_id="waitfor").outputs == {"iterationCount": 2}
    driver.deliver(driver.sent.pop())  # delivered early: nothing is created before the interval
    assert execution.task_runs.count() == 3
    assert driver.sent[-1].task == dispatch.ADVANCE_EXECUTION and driver.sent[-1].countdown > 29


def test_waitfor_condition_that_cannot_render_fails_the_task_run():
    driver = EngineDriver()
    execution = driver.run(waitfor_flow("{{ outputs.nothing.here }}"))

    waitfor = execution.task_runs.get(task_id="waitfor")
    assert execution.state == State.FAILED and waitfor.state == State.FAILED
    assert "nothing" in waitfor.error


# --- Dag -----------------------------------------------------------------------------------------

DAG = FLOW + """
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    {concurrent}
    tasks:
      - task: {{id: task1, type: io.kestra.plugin.core.log.Log, message: "{{{{ task.id }}}}"}}
      - task: {{id: task2, type: io.kestra.plugin.core.log.Log, message: "{{{{ task.id }}}}"}}
        dependsOn: [task1]
      - task: {{id: task3, type: io.kestra.plugin.core.log.Log, message: "{{{{ task.id }}}}"}}
        dependsOn: [task1]
      - task: {{id: task4, type: io.kestra.plugin.core.log.Log, message: "{{{{ task.id }}}}"}}
        dependsOn: [task2]
      - task: {{id: task5, type: io.kestra.plugin.core.log.Log, message: "{{{{ task.id }}}}"}}
        dependsOn: [task4, task3]
      - task: {{id: task6, type: io.kestra.plugin.core.log.Log, message: "{{{{ task.id }}}}"}}
        dependsOn: [task2, task3]
"""
DEPENDS = {"task2": ["task1"], "task3": ["task1"], "task4": ["task2"], "task5": ["task4", "task3"],
           "task6": ["task2", "task3"]}


def test_dag_starts_each_task_once_its_dependencies_ended_and_independent_ones_together():
    driver = EngineDriver()
    execution = driver.start(DAG.format(concurrent=""))
    driver.deliver(driver.sent[0])
    assert sorted(execution.task_runs.values_list("task_id", flat=True)) == ["dag", "task1"]
    driver.deliver(driver.sent[1])  # task1 ends: task2 and task3 are both created at once
    assert sorted(execution.task_runs.values_list("task_id", flat=True)) == ["dag", "task1", "task2", "task3"]

    driver.deliver_all()
    execution.refresh_from_db()
    runs = {run.task_id: run for run in execution.task_runs.all()}
    assert execution.state == State.SUCCESS and len(runs) == 7
    for task_id, needed in DEPENDS.items():
        assert all(runs[other].end_date <= runs[task_id].created for other in needed), task_id
    assert all(runs[task_id].parent_id == runs["dag"].id for task_id in runs if task_id != "dag")


def test_dag_starts_at_most_concurrent_tasks_at_once():
    driver = EngineDriver()
    execution = driver.start(DAG.format(concurrent="concurrent: 1"))
    driver.deliver(driver.sent[0])
    driver.deliver(driver.sent[1])  # task1 ends: task2 and task3 are ready, one at a time
    assert sorted(execution.task_runs.values_list("task_id", flat=True)) == ["dag", "task1", "task2"]
    driver.deliver_all()
    execution.refresh_from_db()
    assert execution.state == State.SUCCESS and execution.task_runs.count() == 7


def test_a_failed_dag_task_starts_none_of_its_dependents():
    driver = EngineDriver(outcomes={"task2": Outcome(State.FAILED, error="boom")})
    execution = driver.run(DAG.format(concurrent=""))

    assert execution.state == State.FAILED
    states = states_by_task(execution)
    assert states["dag"] == "FAILED" and states["task2"] == "FAILED"
    assert "task4" not in states and "task5" not in states and "task6" not in states


def test_a_dag_task_skipped_at_once_releases_its_dependents_in_the_same_evaluation():
    execution = EngineDriver().run(FLOW + f"""
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {{id: last, type: {RETURN}, format: l}}
        dependsOn: [skipped]
      - task: {{id: skipped, type: {RETURN}, format: s, runIf: "{{{{ false }}}}"}}
""")
    assert execution.state == State.SUCCESS
    assert states_by_task(execution) == {"dag": "SUCCESS", "skipped": "SKIPPED", "last": "SUCCESS"}


# --- Labels, and the older task names Kestra still maps ----------------------------------------


def test_labels_tasks_set_the_execution_labels_on_the_executor():
    driver = EngineDriver()
    execution = driver.run(FLOW + """
labels: {flowLabelKey: flowLabelValue, overridden: fromFlow}
inputs:
  - {id: labelsJson, type: JSON}
  - {id: key, type: STRING}
tasks:
  - {id: from-render, type: io.kestra.plugin.core.execution.Labels, labels: "{{ inputs.labelsJson }}"}
  - id: from-map
    type: io.kestra.plugin.core.execution.Labels
    labels: {"{{ inputs.key }}": "{{ flow.namespace ~ '.' ~ flow.id }}"}
  - id: from-list
    type: io.kestra.core.tasks.executions.Labels
    labels: [{key: overridden, value: "{{ taskrun.id }}"}]
  - {id: after, type: io.kestra.plugin.core.debug.Return, format: "{{ labels.keyFromMap }}"}
""", inputs={"labelsJson": '{"keyFromJson": "valueFromJson", "number": 3}', "key": "keyFromMap"})

    assert execution.state == State.SUCCESS
    assert execution.labels == {
        "flowLabelKey": "flowLabelValue", "keyFromJson": "valueFromJson", "number": "3",
        "keyFromMap": "company.team.unit", "overridden": str(execution.task_runs.get(task_id="from-list").id),
    }
    # Labels tasks are never sent to a worker; only `after` is
    assert len(driver.queues()) == 1


def test_a_labels_expression_that_renders_no_map_fails_the_task_run():
    execution = EngineDriver().run(FLOW + """
tasks:
  - {id: bad, type: io.kestra.plugin.core.execution.Labels, labels: "{{ 'text' }}"}
""")
    bad = execution.task_runs.get(task_id="bad")
    assert execution.state == State.FAILED and "must render a map" in bad.error


def test_older_task_names_run_as_the_current_types():
    driver = EngineDriver()
    execution = driver.run(FLOW + """
tasks:
  - id: seq
    type: io.kestra.core.tasks.flows.Sequential
    tasks:
      - {id: ret, type: io.kestra.core.tasks.debugs.Return, format: r}
      - {id: log, type: io.kestra.core.tasks.log.Log, message: m}
      - {id: echo, type: io.kestra.core.tasks.debugs.Echo, format: e}
""")
    assert execution.state == State.SUCCESS
    types = dict(execution.task_runs.values_list("task_id", "task_type"))
    assert types == {"seq": "io.kestra.plugin.core.flow.Sequential", "ret": "io.kestra.plugin.core.debug.Return",
                     "log": "io.kestra.plugin.core.log.Log", "echo": "io.kestra.plugin.core.debug.Echo"}


def test_each_sequential_runs_its_tasks_per_value_one_value_at_a_time():
    driver = EngineDriver(outcomes={"1-2": Outcome(State.FAILED, error="ko")})
    execution = driver.run(FLOW + f"""
tasks:
  - id: 1_each
    type: io.kestra.plugin.core.flow.EachSequential
    value: '["value 1", "value 2", "value 3"]'
    tasks:
      - {{id: 1-1, type: {RETURN}, format: "{{{{ taskrun.value }}}}"}}
      - id: failed
        type: io.kestra.plugin.core.flow.AllowFailure
        tasks:
          - {{id: 1-2, type: io.kestra.plugin.core.log.Log, message: x}}
  - {{id: 2_end, type: {RETURN}, format: end}}
""")
    states = states_by_task(execution)
    assert execution.state == State.WARNING
    assert states["1-1"] == ["SUCCESS"] * 3 and states["failed"] == ["WARNING"] * 3 and states["2_end"] == "SUCCESS"
    runs = list(execution.task_runs.filter(task_id="1-1").order_by("created"))
    assert [run.value for run in runs] == ["value 1", "value 2", "value 3"]
    assert all(first.end_date <= second.created for first, second in zip(runs, runs[1:]))


def test_each_parallel_starts_every_task_of_every_value_at_once():
    driver = EngineDriver()
    execution = driver.start(FLOW + f"""
tasks:
  - id: 1_each
    type: io.kestra.plugin.core.flow.EachParallel
    value: ["a", "b", "c"]
    tasks:
      - {{id: 1-1, type: {RETURN}, format: "{{{{ task.id }}}}"}}
      - {{id: 1-2, type: {RETURN}, format: "{{{{ task.id }}}}"}}
  - {{id: 2_end, type: {RETURN}, format: end}}
""")
    driver.deliver(driver.sent[0])
    assert execution.task_runs.count() == 7 and len(driver.queues()) == 6
    driver.deliver_all()
    execution.refresh_from_db()
    assert execution.state == State.SUCCESS
    assert states_by_task(execution)["2_end"] == "SUCCESS"


# --- Pause and resume ----------------------------------------------------------------------------

PAUSE = FLOW + f"""
tasks:
  - id: before
    type: {RETURN}
    format: b
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    {{extra}}
  - id: after
    type: {RETURN}
    format: "{{{{ outputs.pause.onResume.reason ?? 'none' }}}}"
"""


def test_a_pause_holds_the_execution_paused_on_no_worker_until_resumed_with_inputs():
    driver = EngineDriver()
    execution = driver.run(PAUSE.format(extra="""onResume:
      - {id: approved, type: BOOLEAN}
      - {id: reason, type: STRING, defaults: fine}"""))

    pause = execution.task_runs.get(task_id="pause")
    assert execution.state == State.PAUSED and pause.state == State.PAUSED
    assert [entry["state"] for entry in pause.state_history] == ["CREATED", "RUNNING", "PAUSED"]
    assert states_by_task(execution) == {"before": "SUCCESS", "pause": "PAUSED"}  # nothing after it yet
    sent_before = len(driver.queues())

    with pytest.raises(UserError) as refused:  # a required onResume input is missing: nothing changes
        with driver.recording():
            execution_resume(execution_id=execution.id, inputs={})
    assert "approved" in refused.value.message
    execution.refresh_from_db()
    assert execution.state == State.PAUSED

    with driver.recording():
        execution_resume(execution_id=execution.id, inputs={"approved": "true"})
    driver.deliver_all()
    execution.refresh_from_db()
    pause.refresh_from_db()
    assert execution.state == State.SUCCESS
    assert pause.outputs == {"onResume": {"approved": True, "reason": "fine"}}
    assert [entry["state"] for entry in pause.state_history][-3:] == ["PAUSED", "RUNNING", "SUCCESS"]
    assert len(driver.queues()) == sent_before + 1  # `after`, and no worker ever took the pause


def test_resuming_an_execution_that_is_not_paused_is_a_conflict():
    execution = EngineDriver().run(FLOW + f"tasks:\n  - {{id: one, type: {RETURN}, format: x}}\n")
    with pytest.raises(Conflict):
        execution_resume(execution_id=execution.id)


def test_a_pause_with_a_delay_resumes_by_itself_once_the_delay_is_over():
    driver = EngineDriver()
    execution = driver.start(PAUSE.format(extra="delay: PT1H"))
    driver.deliver_all()
    pause = execution.task_runs.get(task_id="pause")
    wake_up = driver.sent[-1]
    assert pause.state == State.PAUSED and wake_up.task == dispatch.ADVANCE_EXECUTION and wake_up.countdown == 3600
    assert (pause.resume_at - pause.start_date).total_seconds() == pytest.approx(3600, abs=1)

    TaskRun.objects.filter(id=pause.id).update(resume_at=timezone.now())  # the hour has passed
    with driver.recording():
        counts = taskruns_reconcile()  # the delayed message was lost: the reconciler resumes it
    driver.deliver_all()
    execution.refresh_from_db()
    assert counts["pauses_due"] == 1
    assert execution.state == State.SUCCESS and states_by_task(execution)["after"] == "SUCCESS"


def test_a_pause_past_its_timeout_fails():
    driver = EngineDriver()
    execution = driver.start(PAUSE.format(extra="timeout: PT5M"))
    driver.deliver_all()
    TaskRun.objects.filter(task_id="pause").update(resume_at=timezone.now())
    with driver.recording():
        execution_advance(execution_id=execution.id)
    execution.refresh_from_db()
    pause = execution.task_runs.get(task_id="pause")
    assert execution.state == State.FAILED and pause.state == State.FAILED
    assert "not resumed within its timeout (PT5M)" in pause.error


def test_killing_a_paused_execution_kills_its_pause():
    driver = EngineDriver()
    execution = driver.start(PAUSE.format(extra=""))
    driver.deliver_all()
    with driver.recording():
        execution_kill(execution_id=execution.id)
    execution.refresh_from_db()
    assert execution.state == State.KILLED
    assert execution.task_runs.get(task_id="pause").state == State.KILLED


def test_the_admin_resumes_paused_executions_of_tenants_the_user_operates(client):
    from django.urls import reverse

    from flows.services import tenant_create
    from tests.support.auth import user_with

    tenant_create(key="zeta")
    driver = EngineDriver()
    mine = driver.start(PAUSE.format(extra=""))
    theirs = driver.start(PAUSE.format(extra=""), tenant="zeta")
    driver.deliver_all()
    client.force_login(user_with("operator", staff=True, roles={"main": "developer", "zeta": "viewer"}))

    with driver.recording():
        client.post(reverse("admin:flows_execution_changelist"),
                    {"action": "resume", "_selected_action": [str(mine.id), str(theirs.id)]})
    driver.deliver_all()
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.state == State.SUCCESS and theirs.state == State.PAUSED


# --- restart and replay --------------------------------------------------------------------------

RESTARTABLE = FLOW + f"""
tasks:
  - {{id: first, type: {RETURN}, format: f}}
  - id: block
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - {{id: flaky, type: {RETURN}, format: x}}
      - {{id: after, type: {RETURN}, format: a}}
errors:
  - {{id: alert, type: {RETURN}, format: e}}
"""


def test_restart_runs_the_failed_task_run_again_at_its_next_attempt_and_goes_on():
    driver = EngineDriver(outcomes={"flaky": Outcome(State.FAILED, error="boom")})
    execution = driver.run(RESTARTABLE)
    assert execution.state == State.FAILED and states_by_task(execution)["alert"] == "SUCCESS"
    first, flaky = execution.task_runs.get(task_id="first"), execution.task_runs.get(task_id="flaky")

    driver.outcomes.clear()  # the failing task is made to pass
    with driver.recording():
        execution_restart(execution_id=execution.id)
    driver.deliver_all()
    execution.refresh_from_db()

    assert execution.state == State.SUCCESS
    assert [entry["state"] for entry in execution.state_history][-4:] == ["FAILED", "RESTARTED", "RUNNING", "SUCCESS"]
    assert states_by_task(execution) == {"first": "SUCCESS", "block": "SUCCESS", "flaky": "SUCCESS",
                                         "after": "SUCCESS"}  # the errors branch that ran is forgotten
    restarted = execution.task_runs.get(task_id="flaky")
    assert restarted.id == flaky.id and restarted.attempt == 2
    assert [attempt["state"] for attempt in restarted.attempts] == ["FAILED", "SUCCESS"]
    assert execution.task_runs.get(task_id="first").end_date == first.end_date  # what succeeded did not run again


def test_restart_refuses_executions_running_or_without_failures_and_changes_nothing():
    driver = EngineDriver()
    succeeded = driver.run(FLOW + f"tasks:\n  - {{id: one, type: {RETURN}, format: x}}\n")
    paused = driver.run(PAUSE.format(extra=""))
    for execution, fragment in ((succeeded, "no failed task run"), (paused, "has not ended")):
        with pytest.raises(Conflict, match=fragment):
            execution_restart(execution_id=execution.id)
        before = execution.state
        execution.refresh_from_db()
        assert execution.state == before


def test_replay_from_a_task_run_keeps_what_ended_before_it_in_a_new_execution():
    driver = EngineDriver(outcomes={"flaky": Outcome(State.FAILED, error="boom")})
    source = driver.run(RESTARTABLE)
    driver.outcomes.clear()
    flaky = source.task_runs.get(task_id="flaky")

    with driver.recording():
        replayed = execution_replay(execution_id=source.id, taskrun_id=flaky.id)
    driver.deliver_all()
    replayed.refresh_from_db()

    assert replayed.id != source.id and replayed.state == State.SUCCESS
    assert states_by_task(replayed) == {"first": "SUCCESS", "block": "SUCCESS", "flaky": "SUCCESS",
                                        "after": "SUCCESS"}
    copied_first = replayed.task_runs.get(task_id="first")
    assert copied_first.end_date == source.task_runs.get(task_id="first").end_date  # copied, not run again
    assert replayed.task_runs.get(task_id="flaky").attempt == 1
    source.refresh_from_db()
    assert source.state == State.FAILED  # the replayed execution is untouched


def test_replay_from_the_start_runs_everything_again():
    driver = EngineDriver()
    source = driver.run(FLOW + f"inputs:\n  - {{id: x, type: STRING}}\ntasks:\n  - {{id: one, type: {RETURN}, format: x}}\n",
                        inputs={"x": "kept"})
    with driver.recording():
        replayed = execution_replay(execution_id=source.id)
    driver.deliver_all()
    replayed.refresh_from_db()
    assert replayed.state == State.SUCCESS and replayed.inputs == {"x": "kept"}
    assert replayed.task_runs.get().id != source.task_runs.get().id


# --- Subflow -------------------------------------------------------------------------------------

CHILD = """
id: child
namespace: company.team
inputs:
  - {id: who, type: STRING}
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: "hello {{ inputs.who }}"
    workerGroup: {key: "GROUP"}
outputs:
  - {id: greeting, type: STRING, value: "{{ outputs.work.value }}"}
"""
PARENT = FLOW + """
labels: {team: data}
tasks:
  - {id: before, type: io.kestra.plugin.core.debug.Return, format: b}
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: child
    inputs: {who: "{{ flow.id }}"}
    labels: {called_by: "{{ execution.id }}"}
    inheritLabels: true
    EXTRA
  - {id: after, type: io.kestra.plugin.core.debug.Return, format: "{{ outputs.call.outputs.greeting ?? 'none' }}"}
"""


def child_flow(group: str) -> str:
    return CHILD.replace("GROUP", group)


def parent_flow(extra: str = "") -> str:
    return PARENT.replace("EXTRA", extra)


def _child_of(execution):
    return Execution.objects.get(id=execution.task_runs.get(task_id="call").outputs["executionId"])


def test_a_subflow_child_runs_on_its_own_flows_group_and_the_parent_takes_its_outputs():
    worker_group_create(key="gpu")
    worker_heartbeat(hostname="gpu@unit-test", groups=["gpu"], pid=2, concurrency=1, running=0)
    driver = EngineDriver(outcomes={"work": Outcome(outputs={"value": "hello unit"})})  # the driver renders nothing
    flow_upload(source=child_flow("gpu"), tenant_key="main")
    parent = driver.run(parent_flow())

    child = _child_of(parent)
    call = parent.task_runs.get(task_id="call")
    assert parent.state == State.SUCCESS and child.state == State.SUCCESS
    assert call.outputs == {"executionId": str(child.id), "state": "SUCCESS", "outputs": {"greeting": "hello unit"}}
    assert call.worker_id == "" and call.end_date >= child.end_date  # on no worker, until the child ended
    assert child.labels == {"team": "data", "called_by": str(parent.id), "system.correlationId": str(parent.id)}
    assert child.trigger["variables"]["executionId"] == str(parent.id)
    assert driver.queues() == ["default", "gpu", "default"]  # before, the child's work, after


@pytest.mark.parametrize("transmit_failed, expected", [("true", State.FAILED), ("false", State.SUCCESS)])
def test_a_failed_child_fails_the_subflow_task_run_only_with_transmit_failed(transmit_failed, expected):
    driver = EngineDriver(outcomes={"work": Outcome(State.FAILED, error="boom")})
    flow_upload(source=child_flow(""), tenant_key="main")
    parent = driver.run(parent_flow(f"transmitFailed: {transmit_failed}"))
    assert _child_of(parent).state == State.FAILED
    assert parent.task_runs.get(task_id="call").state == expected and parent.state == expected


def test_a_subflow_that_does_not_wait_ends_at_once():
    driver = EngineDriver()
    flow_upload(source=child_flow(""), tenant_key="main")
    parent = driver.start(parent_flow("wait: false"))
    for _ in range(3):  # the parent's first evaluation, `before`, then the child is started
        driver.deliver(driver.sent.pop(0))
    call = parent.task_runs.get(task_id="call")
    assert call.state == State.SUCCESS and _child_of(parent).state == State.CREATED


def test_killing_a_parent_kills_the_child_it_waits_for():
    driver = EngineDriver()
    flow_upload(source=child_flow(""), tenant_key="main")
    parent = driver.start(parent_flow())
    for _ in range(3):  # the parent's first evaluation, `before`, the child's first evaluation
        driver.deliver(driver.sent.pop(0))
    child = _child_of(parent)
    assert child.task_runs.get().state == State.CREATED  # its `work` waits for a worker
    with driver.recording():
        execution_kill(execution_id=parent.id)
    driver.deliver_all()
    parent.refresh_from_db()
    child.refresh_from_db()
    assert parent.state == State.KILLED and child.state == State.KILLED


def test_a_child_that_cannot_start_fails_the_task_run_with_the_reason():
    execution = EngineDriver().run(parent_flow())  # no flow `child` was uploaded
    call = execution.task_runs.get(task_id="call")
    assert execution.state == State.FAILED and "subflow company.team.child cannot start" in call.error


def test_a_child_never_reaches_a_group_that_does_not_allow_its_tenant():
    tenant_create(key="other")
    worker_group_create(key="secret", allowed_tenants=["other"])
    driver = EngineDriver()
    flow_upload(source=child_flow("{{ 'secret' }}"), tenant_key="main")
    parent = driver.run(parent_flow())
    child = _child_of(parent)
    assert child.state == State.FAILED and "secret" in child.task_runs.get(task_id="work").error
    assert parent.state == State.FAILED and "secret" not in driver.queues()


# --- ForEachItem ---------------------------------------------------------------------------------

ITEMS_CHILD = """
id: per-batch
namespace: company.team
inputs:
  - {id: items, type: STRING}
tasks:
  - {id: per-item, type: io.kestra.plugin.core.log.Log, message: "{{ inputs.items }}"}
"""
FOR_EACH_ITEM = FLOW + """
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ 'kestra:///company/team/_files/items.txt' }}"
    batch: BATCH
    namespace: company.team
    flowId: per-batch
    concurrencyLimit: 2
    inputs: {items: "{{ taskrun.items }}"}
"""


def test_for_each_item_starts_one_child_per_batch_within_its_concurrency_limit():
    from flows import storage

    storage.put(tenant_key="main", path="company/team/_files/items.txt",
                content=b"".join(f"row {n}\n".encode() for n in range(10)))
    flow_upload(source=ITEMS_CHILD, tenant_key="main")
    driver = EngineDriver()
    parent = driver.start(FOR_EACH_ITEM.replace("BATCH", "{rows: 3}"))
    driver.deliver(driver.sent[0])
    each = parent.task_runs.get(task_id="each")
    assert each.outputs["numberOfBatches"] == 4 and len(each.outputs["executions"]) == 2  # two at once

    driver.deliver_all()
    parent.refresh_from_db()
    each.refresh_from_db()
    children = Execution.objects.filter(flow_id="per-batch").order_by("created")
    assert parent.state == State.SUCCESS and children.count() == 4
    assert each.outputs["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 4}
    batches = [storage.read(tenant_key="main", path=child.inputs["items"][len("kestra:///"):]) for child in children]
    assert batches == [b"row 0\nrow 1\nrow 2\n", b"row 3\nrow 4\nrow 5\n", b"row 6\nrow 7\nrow 8\n", b"row 9\n"]


@pytest.mark.parametrize("batch, sizes", [("{partitions: 3}", [4, 3, 3]), ("{bytes: 12B}", [2, 2, 2, 2, 2])])
def test_for_each_item_splits_by_partitions_or_bytes(batch, sizes):
    from flows import storage

    storage.put(tenant_key="main", path="company/team/_files/items.txt",
                content=b"".join(f"row {n}\n".encode() for n in range(10)))
    flow_upload(source=ITEMS_CHILD, tenant_key="main")
    parent = EngineDriver().run(FOR_EACH_ITEM.replace("BATCH", batch))
    children = Execution.objects.filter(flow_id="per-batch").order_by("created")
    lines = [storage.read(tenant_key="main", path=child.inputs["items"][len("kestra:///"):]).count(b"\n")
             for child in children]
    assert parent.state == State.SUCCESS and lines == sizes


def test_for_each_item_over_a_missing_file_fails_naming_it():
    flow_upload(source=ITEMS_CHILD, tenant_key="main")
    parent = EngineDriver().run(FOR_EACH_ITEM.replace("BATCH", "{rows: 3}"))
    assert parent.state == State.FAILED and "items.txt" in parent.task_runs.get(task_id="each").error


def test_a_subflows_own_outputs_render_in_the_childs_context():
    driver = EngineDriver(outcomes={"work": Outcome(outputs={"value": "from child"})})
    flow_upload(source=child_flow(""), tenant_key="main")
    parent = driver.run(parent_flow('outputs: {extracted: "{{ outputs.work.value }} ({{ flow.id }})"}'))
    call = parent.task_runs.get(task_id="call")
    assert parent.state == State.SUCCESS and call.outputs["outputs"] == {"extracted": "from child (child)"}


@pytest.mark.parametrize("loop", ["ForEach\n    values", "EachSequential\n    value"])
def test_a_loop_whose_values_hold_a_null_fails_without_running_an_iteration(loop):
    driver = EngineDriver()
    execution = driver.run(FLOW + f"""
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.{loop}: '[1, null, {{"key": "k"}}]'
    tasks:
      - {{id: item, type: {RETURN}, format: "{{{{ taskrun.value }}}}"}}
  - {{id: after, type: {RETURN}, format: x}}
""")
    assert execution.state == State.FAILED
    assert states_by_task(execution) == {"each": "FAILED"}  # as Kestra's each-null: one task run
    assert "1 null item" in execution.task_runs.get(task_id="each").error


def test_error_logs_gives_the_error_lines_of_the_execution_only():
    driver = EngineDriver(outcomes={"fails": Outcome(state="FAILED", error="disk full"),
                                    "other": Outcome(state="FAILED", error="elsewhere")})
    failing = FLOW + f"tasks:\n  - {{id: fails, type: {RETURN}, format: x}}\n"
    execution = driver.run(failing)
    driver.run(failing.replace("fails", "other"))  # another execution's error is not this one's
    assert execution.state == State.FAILED

    # as a worker renders an `errors` task: once the failed task run's lines are stored
    context = {"flow": {"tenantId": "main"}, "execution": {"id": str(execution.id)}}
    lines = render("{% for log in errorLogs() %}{{ log.taskId }}: {{ log.message }};{% endfor %}", context)
    assert lines == "fails: disk full;"
    assert render("{{ errorLogs() | length }}", {**context, "flow": {"tenantId": "other"}}) == "0"


def test_every_execution_of_a_subflow_chain_knows_the_id_of_its_root_as_labels_system_correlation_id():
    def calling(flow_id, callee):
        return f"id: {flow_id}\nnamespace: company.team\ntasks:\n" + (
            f"  - {{id: call, type: io.kestra.plugin.core.flow.Subflow, namespace: company.team, flowId: {callee}}}\n"
            if callee else "") + (
            "  - {id: tag, type: io.kestra.plugin.core.execution.Labels, labels: {root: '{{ labels.system.correlationId }}'}}\n")
    driver = EngineDriver()
    flow_upload(source=calling("leaf", None), tenant_key="main")
    flow_upload(source=calling("middle", "leaf"), tenant_key="main")
    root = driver.run(calling("root", "middle"))
    middle = _child_of(root)
    leaf = _child_of(middle)

    assert root.state == middle.state == leaf.state == State.SUCCESS
    assert root.labels == {"root": str(root.id)}  # a root is its own correlation id
    for execution in (middle, leaf):
        assert execution.labels == {"system.correlationId": str(root.id), "root": str(root.id)}
