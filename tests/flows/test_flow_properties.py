"""Flow-level properties (docs/flow-properties.md), one evaluation at a time, in process
(tests/support/driver.py): outputs, retry, concurrency, SLAs, labels, disabled, allowWarning and
the older spellings Kestra still accepts. Concurrency across real processes is in
tests/conformance/test_concurrency_processes.py."""
from datetime import timedelta

import pytest
from django.utils import timezone

from flows import dispatch, schema
from flows.engine import execution_advance, execution_create, execution_kill
from flows.engine.retry import should_retry
from flows.engine.sla import sla_overdue_enforce
from flows.errors import Conflict, UserError
from flows.models import Execution, LogLine, State, TaskRun
from flows.selectors import execution_search, tenant_get
from flows.services import flow_upload, worker_heartbeat
from tests.support.driver import EngineDriver, Outcome, states_by_task

pytestmark = pytest.mark.django_db

RETURN = "io.kestra.plugin.core.debug.Return"
FAIL = "io.kestra.plugin.core.execution.Fail"
FLOW = "id: props\nnamespace: company.team\n"


@pytest.fixture(autouse=True)
def default_worker():
    worker_heartbeat(hostname="default@unit-test", groups=["default"], pid=1, concurrency=1, running=0)


def refreshed(*executions) -> tuple:
    for execution in executions:
        execution.refresh_from_db()
    return executions


def execution_logs(execution) -> list[str]:
    return list(LogLine.objects.filter(execution=execution, task_run__isnull=True).values_list("message", flat=True))


# --- outputs ---------------------------------------------------------------------------------


def test_flow_outputs_are_rendered_typed_and_kept_on_the_execution():
    driver = EngineDriver(outcomes={"one": Outcome(outputs={"value": "first"}),
                                    "two": Outcome(outputs={"value": "42"})})
    execution = driver.run(FLOW + f"""
tasks:
  - {{id: one, type: {RETURN}, format: x}}
  - {{id: two, type: {RETURN}, format: x}}
outputs:
  - {{id: text, type: STRING, value: "{{{{ outputs.one.value }}}}"}}
  - {{id: number, type: INT, value: "{{{{ outputs.two.value }}}}"}}
  - id: both
    type: ARRAY
    value: ["{{{{ outputs.one.value }}}}", "{{{{ outputs.two.value }}}}"]
""")
    assert execution.state == State.SUCCESS
    assert execution.outputs == {"text": "first", "number": 42, "both": ["first", "42"]}


def test_an_output_that_cannot_be_rendered_fails_the_execution_with_the_reason():
    execution = EngineDriver().run(FLOW + f"""
tasks:
  - {{id: one, type: {RETURN}, format: x}}
outputs:
  - {{id: key, type: STRING, value: "{{{{ invalid }}}}"}}
""")
    assert execution.state == State.FAILED
    assert execution.outputs is None
    assert states_by_task(execution) == {"one": "SUCCESS"}
    [message] = execution_logs(execution)
    assert "outputs could not be rendered" in message and "invalid" in message


def test_an_output_of_the_wrong_type_fails_the_execution_naming_the_output():
    driver = EngineDriver(outcomes={"one": Outcome(outputs={"value": "abc"})})
    execution = driver.run(FLOW + f"""
tasks:
  - {{id: one, type: {RETURN}, format: x}}
outputs:
  - {{id: count, type: INT, value: "{{{{ outputs.one.value }}}}"}}
""")
    assert execution.state == State.FAILED
    assert "output 'count' (INT)" in execution_logs(execution)[0]


def test_outputs_need_an_id_a_known_type_and_a_value():
    with pytest.raises(UserError) as caught:
        flow_upload(source=FLOW + f"""
tasks:
  - {{id: one, type: {RETURN}, format: x}}
outputs:
  - {{id: a, type: NOPE, value: x}}
  - {{id: b, type: STRING}}
""", tenant_key="main")
    messages = " | ".join(fault.message for fault in caught.value.faults)
    assert "'type'" in messages and "missing required property 'value'" in messages


# --- allowWarning ------------------------------------------------------------------------------


def test_allow_warning_and_allow_failure_make_a_failed_task_a_success():
    execution = EngineDriver(outcomes={"fail": Outcome(state="FAILED", error="boom")}).run(FLOW + f"""
tasks:
  - {{id: fail, type: {FAIL}, allowFailure: true, allowWarning: true}}
  - {{id: after, type: {RETURN}, format: x}}
""")
    assert execution.state == State.SUCCESS
    assert states_by_task(execution) == {"fail": "SUCCESS", "after": "SUCCESS"}


def test_allow_warning_on_a_flowable_counts_its_failed_child_as_success():
    execution = EngineDriver(outcomes={"fail": Outcome(state="FAILED", error="boom")}).run(FLOW + f"""
tasks:
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    allowFailure: true
    allowWarning: true
    tasks:
      - {{id: fail, type: {FAIL}}}
      - {{id: skipped, type: {RETURN}, format: x}}
  - {{id: after, type: {RETURN}, format: x}}
""")
    assert execution.state == State.SUCCESS
    assert states_by_task(execution) == {"seq": "SUCCESS", "fail": "FAILED", "after": "SUCCESS"}


# --- retry ---------------------------------------------------------------------------------------


def test_a_flow_retry_retries_tasks_that_have_no_retry_of_their_own():
    driver = EngineDriver(outcomes={"fail": Outcome(state="FAILED", error="boom")})
    execution = driver.run(FLOW + f"""
retry: {{behavior: RETRY_FAILED_TASK, type: constant, maxAttempt: 4, interval: PT1S}}
tasks:
  - {{id: fail, type: {FAIL}}}
  - id: own
    type: {FAIL}
    allowFailure: true
    retry: {{type: constant, maxAttempt: 2, interval: PT0S}}
""")
    assert execution.state == State.FAILED
    assert execution.task_runs.get(task_id="fail").attempt == 4


@pytest.mark.parametrize("warning_on_retry, state", [(True, State.WARNING), (False, State.SUCCESS)])
def test_warning_on_retry_makes_a_success_after_retries_a_warning(warning_on_retry, state):
    driver = EngineDriver(outcomes={"flaky": Outcome(state="FAILED", error="boom")})
    execution = driver.start(FLOW + f"""
tasks:
  - id: flaky
    type: {RETURN}
    format: x
    retry: {{type: constant, maxAttempt: 3, interval: PT0S, warningOnRetry: {str(warning_on_retry).lower()}}}
""")
    driver.deliver(driver.sent[0])
    driver.deliver(driver.sent[1])  # the first attempt fails
    driver.outcomes["flaky"] = Outcome()
    driver.deliver_all()
    execution.refresh_from_db()
    assert execution.state == state
    assert execution.task_runs.get().attempt == 2


def test_an_enclosing_task_retry_comes_before_the_flow_retry():
    driver = EngineDriver(outcomes={"fail": Outcome(state="FAILED", error="boom")})
    execution = driver.run(FLOW + f"""
retry: {{type: constant, maxAttempt: 5, interval: PT0S}}
tasks:
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    retry: {{type: constant, maxAttempt: 2, interval: PT0S}}
    tasks:
      - {{id: fail, type: {FAIL}}}
""")
    assert execution.task_runs.get(task_id="fail").attempt == 2


@pytest.mark.parametrize("elapsed, retried", [(3.9, True), (4.1, False)])
def test_a_retry_with_only_max_duration_stops_when_the_next_attempt_would_start_after_it(elapsed, retried):
    retry = schema.Retry(type="constant", maxDuration="PT6S", interval="PT2S")
    now = timezone.now()
    run = TaskRun(attempt=3, created=now - timedelta(seconds=elapsed))
    assert should_retry(retry, run, now) is retried  # 3.9 s + 2 s is within 6 s; 4.1 s + 2 s is not


def test_create_new_execution_ends_each_failed_attempt_retried_and_starts_the_next():
    driver = EngineDriver(outcomes={"fail": Outcome(state="FAILED", error="boom")})
    first = driver.run(FLOW + f"""
labels: {{team: data}}
retry: {{behavior: CREATE_NEW_EXECUTION, type: constant, maxAttempt: 3, interval: PT1S}}
tasks:
  - {{id: fail, type: {FAIL}}}
""")
    chain = list(Execution.objects.order_by("attempt"))
    assert [(e.attempt, e.state) for e in chain] == [(1, "RETRIED"), (2, "RETRIED"), (3, "FAILED")]
    assert all(e.retry_of_id == first.id for e in chain[1:]) and all(e.labels == {"team": "data"} for e in chain)
    starts = [m.countdown for m in driver.sent if m.task == dispatch.ADVANCE_EXECUTION]
    assert starts == [None, 1.0, 1.0]
    assert all(run.attempt == 1 for run in chain[0].task_runs.all())


# --- concurrency ----------------------------------------------------------------------------------

SLOW = FLOW + """
concurrency: {{limit: 1, behavior: {behavior}}}
tasks:
  - {{id: work, type: io.kestra.plugin.core.flow.Sleep, duration: PT1S}}
"""


def _start_two(behavior: str):
    """Two executions of a flow limited to one: the first runs (its task run sent, not run yet)."""
    driver = EngineDriver()
    first = driver.start(SLOW.format(behavior=behavior))
    driver.deliver(driver.sent[0])
    with driver.recording():
        second = execution_create(tenant_key="main", namespace="company.team", flow_id="props")
    driver.deliver(driver.sent[-1])
    first.refresh_from_db()
    second.refresh_from_db()
    return driver, first, second


def test_concurrency_queue_holds_the_second_execution_queued_until_the_first_ends():
    driver, first, second = _start_two("QUEUE")
    assert (first.state, second.state) == (State.RUNNING, State.QUEUED)
    assert second.task_runs.count() == 0
    driver.deliver_all()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (State.SUCCESS, State.SUCCESS)
    assert [h["state"] for h in second.state_history][:3] == ["CREATED", "QUEUED", "RUNNING"]
    assert second.start_date >= first.end_date


def test_queued_executions_start_in_the_order_they_were_created():
    driver, first, second = _start_two("QUEUE")
    with driver.recording():
        third = execution_create(tenant_key="main", namespace="company.team", flow_id="props")
    driver.deliver(driver.sent[-1])
    third.refresh_from_db()
    assert third.state == State.QUEUED
    # the third one's message comes again (the reconciler): it stays behind the second one
    with driver.recording():
        execution_advance(execution_id=third.id)
    assert refreshed(third)[0].state == State.QUEUED
    driver.deliver_all()
    refreshed(second, third)
    assert second.start_date < third.start_date and third.state == State.SUCCESS


def test_concurrency_cancel_and_fail_end_the_execution_over_the_limit():
    _, first, cancelled = _start_two("CANCEL")
    assert (first.state, cancelled.state) == (State.RUNNING, State.CANCELLED)
    Execution.objects.all().delete()
    _, first, failed = _start_two("FAIL")
    assert (first.state, failed.state) == (State.RUNNING, State.FAILED)
    assert "concurrency limit of 1 reached" in execution_logs(failed)[0]


def test_a_queued_execution_can_be_killed():
    driver, first, second = _start_two("QUEUE")
    with driver.recording():
        execution_kill(execution_id=second.id)
    driver.deliver_all()
    assert [e.state for e in refreshed(first, second)] == [State.SUCCESS, State.KILLED]


# --- SLA ------------------------------------------------------------------------------------------

ASSERTION = FLOW + f"""
inputs:
  - {{id: string, type: SELECT, values: [PASS, CANCEL, LABEL], defaults: PASS}}
sla:
  - {{id: condition, type: EXECUTION_ASSERTION, behavior: CANCEL, assert: "{{{{ inputs.string != 'CANCEL' }}}}"}}
  - id: condition
    type: EXECUTION_ASSERTION
    behavior: NONE
    assert: "{{{{ inputs.string != 'LABEL' }}}}"
    labels: {{sla: violated}}
tasks:
  - {{id: return, type: {RETURN}, format: "true"}}
"""


@pytest.mark.parametrize("value, state, labels", [
    ("PASS", State.SUCCESS, {}), ("CANCEL", State.CANCELLED, {}), ("LABEL", State.SUCCESS, {"sla": "violated"}),
])
def test_execution_assertion_sla(value, state, labels):
    execution = EngineDriver().run(ASSERTION, inputs={"string": value})
    assert execution.state == state
    assert execution.labels == labels


def test_max_duration_sla_fails_an_execution_that_runs_too_long_once():
    driver = EngineDriver()
    execution = driver.start(FLOW + """
sla:
  - {id: maxDuration, type: MAX_DURATION, behavior: FAIL, duration: PT0.5S, labels: [{key: sla, value: late}]}
tasks:
  - {id: sleep, type: io.kestra.plugin.core.flow.Sleep, duration: PT2S}
""")
    driver.deliver(driver.sent[0])
    assert sla_overdue_enforce(now=timezone.now()) == 0
    later = timezone.now() + timedelta(seconds=1)
    assert sla_overdue_enforce(now=later) == 1
    assert sla_overdue_enforce(now=later) == 0
    execution.refresh_from_db()
    assert execution.state == State.FAILED and execution.labels == {"sla": "late"}
    assert states_by_task(execution) == {"sleep": "FAILED"}
    assert "SLA 'maxDuration' violated" in execution_logs(execution)[0]
    driver.deliver_all()  # the worker's late result changes nothing
    execution.refresh_from_db()
    assert execution.state == State.FAILED


def test_max_duration_sla_none_only_labels_the_execution():
    driver = EngineDriver()
    execution = driver.start(FLOW + """
sla:
  - {id: slow, type: MAX_DURATION, behavior: NONE, duration: PT1S, labels: {sla: late}}
tasks:
  - {id: sleep, type: io.kestra.plugin.core.flow.Sleep, duration: PT2S}
""")
    driver.deliver(driver.sent[0])
    later = timezone.now() + timedelta(seconds=2)
    assert sla_overdue_enforce(now=later) == 1
    assert sla_overdue_enforce(now=later) == 0
    driver.deliver_all()
    execution.refresh_from_db()
    assert execution.state == State.SUCCESS and execution.labels == {"sla": "late"}


# --- variables ------------------------------------------------------------------------------------


def test_variables_are_given_as_written_and_render_renders_them_recursively():
    """Kestra's variables.yaml: `{{ render(vars.third) }}` is `1 > 2 > 3`; `{{ vars.second }}` is the text."""
    from flows.context import execution_context
    from flows.definition import parse_flow_cached
    from flows.expressions import render

    execution = EngineDriver().start(FLOW + f"""
variables:
  first: "1"
  second: "{{{{ vars.first }}}} > 2"
  third: "{{{{ vars.second }}}} > 3"
tasks:
  - {{id: one, type: {RETURN}, format: "{{{{ render(vars.third) }}}}"}}
""")
    document = parse_flow_cached(execution.flow_revision.source).document
    context = execution_context(execution=execution, document=document, runs=[], runs_by_id={})
    assert render("{{ render(vars.third) }}", context) == "1 > 2 > 3"
    assert render("{{ vars.second }}", context) == "{{ vars.first }} > 2"


# --- labels, disabled, older spellings --------------------------------------------------------------


def test_labels_in_both_forms_merge_with_those_given_at_creation_and_can_be_searched():
    for labels in ("{team: data, tier: gold}", "[{key: team, value: data}, {key: tier, value: gold}]"):
        flow_upload(source=FLOW + f"labels: {labels}\ntasks:\n  - {{id: one, type: {RETURN}, format: x}}\n",
                    tenant_key="main")
        execution = execution_create(tenant_key="main", namespace="company.team", flow_id="props",
                                     labels={"tier": "silver", "run": "1"})
        assert execution.labels == {"team": "data", "tier": "silver", "run": "1"}
    tenant = tenant_get("main")
    found, total = execution_search(tenant=tenant, labels={"tier": "silver", "team": "data"})
    assert total == 2
    assert execution_search(tenant=tenant, labels={"tier": "gold"})[1] == 0


def test_a_disabled_flow_refuses_executions():
    flow_upload(source=FLOW + f"disabled: true\ntasks:\n  - {{id: one, type: {RETURN}, format: x}}\n", tenant_key="main")
    with pytest.raises(Conflict, match="disabled"):
        execution_create(tenant_key="main", namespace="company.team", flow_id="props")
    assert Execution.objects.count() == 0


def test_a_literal_default_worker_group_key_is_the_default_group_as_a_rendered_one():
    driver = EngineDriver()
    driver.run(FLOW + f"""
inputs:
  - {{id: group, type: STRING, defaults: default}}
tasks:
  - {{id: literal, type: {RETURN}, format: x, workerGroup: {{key: default}}}}
  - {{id: rendered, type: {RETURN}, format: x, workerGroup: {{key: "{{{{ inputs.group }}}}"}}}}
""")
    assert driver.queues() == ["default", "default"]
    assert set(Execution.objects.get().task_runs.values_list("worker_group", flat=True)) == {""}


def test_task_defaults_is_the_older_name_of_plugin_defaults():
    driver = EngineDriver()
    driver.run(FLOW + f"""
taskDefaults:
  - {{type: {RETURN}, values: {{workerGroup: {{key: default}}}}}}
tasks:
  - {{id: one, type: {RETURN}, format: x}}
""")
    assert driver.queues() == ["default"]


@pytest.mark.parametrize("value, state, states", [
    ("NO", State.SUCCESS, {"switch": "SUCCESS", "nope": "SUCCESS", "log": "SUCCESS"}),
    ("x", State.FAILED, {"switch": "FAILED"}),  # no case, no defaults: nothing to run fails it, as in Kestra
])
def test_switch_defaults_null_is_no_defaults_and_log_to_file_is_accepted(value, state, states):
    execution = EngineDriver().run(FLOW + f"""
tasks:
  - id: switch
    type: io.kestra.plugin.core.flow.Switch
    value: "{{{{ '{value}' }}}}"
    cases:
      "NO": [{{id: nope, type: {RETURN}, format: x}}]
    defaults: null
  - {{id: log, type: io.kestra.plugin.core.log.Log, message: hi, logToFile: true}}
""")
    assert execution.state == state
    assert states_by_task(execution) == states
    if state == State.FAILED:
        assert "no case matches 'x'" in execution.task_runs.get(task_id="switch").error
