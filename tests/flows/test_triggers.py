"""Trigger definitions and trigger state (flows/schema.py, flows/triggers.py), in process: the YAML
of each trigger type, trigger states kept in step with uploads, Flow triggers and stopAfter when an
execution ends. The scheduler tick is in test_scheduler.py, the API in test_api_triggers.py."""
from datetime import timedelta

import pytest
from django.utils import timezone

from flows.definition import parse_flow
from flows.errors import UserError
from flows.models import Execution, LogLine, State, TriggerState
from flows.services import flow_delete, flow_upload, tenant_create, worker_heartbeat
from flows.triggers import trigger_state_disable, trigger_state_enable, trigger_state_unlock
from tests.support.driver import EngineDriver, Outcome

pytestmark = pytest.mark.django_db

TASKS = """\
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


def flow(triggers: str, *, flow_id: str = "triggered", namespace: str = "company.team", extra: str = "") -> str:
    return f"id: {flow_id}\nnamespace: {namespace}\n{extra}{TASKS}triggers:\n{triggers}"


def faults(source: str) -> list[tuple[str, int, int]]:
    with pytest.raises(UserError) as caught:
        parse_flow(source)
    return [(fault.message, fault.line, fault.column) for fault in caught.value.faults]


@pytest.fixture(autouse=True)
def default_worker():
    worker_heartbeat(hostname="default@unit-test", groups=["default"], pid=1, concurrency=1, running=0)


# --- the YAML of each trigger type -----------------------------------------------------------


def test_every_trigger_type_and_the_older_http_name_are_accepted():
    parsed = parse_flow(flow("""\
  - {id: nightly, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 2 * * *", recoverMissedSchedules: LAST,
     stopAfter: [FAILED]}
  - {id: poll, type: io.kestra.plugin.core.http.Trigger, uri: "http://127.0.0.1:1/", interval: PT1S}
  - {id: old_poll, type: io.kestra.plugin.fs.http.Trigger, uri: "http://127.0.0.1:1/"}
  - {id: files, type: io.kestra.plugin.fs.local.Trigger, from: /tmp/in, regExp: '.*\\.csv', action: MOVE,
     moveDirectory: /tmp/done}
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    inputs: {upstream: "{{ trigger.executionId }}"}
    conditions:
      - {type: io.kestra.plugin.core.condition.ExecutionStatusCondition, in: [SUCCESS]}
      - {type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: company.team, flowId: up}
      - {type: io.kestra.core.models.conditions.types.ExecutionNamespaceCondition, namespace: company, prefix: true}
  - {id: hook, type: io.kestra.plugin.core.trigger.Webhook, key: 4wjtkzwVGBM9yKnjm3yv8r}
"""))
    nightly, poll, old_poll, files, after, hook = parsed.document.triggers
    assert (nightly.recoverMissedSchedules, nightly.stopAfter) == ("LAST", ["FAILED"])
    assert (poll.interval, old_poll.interval, old_poll.responseCondition) == ("PT1S", "PT60S",
                                                                              "{{ response.statusCode < 400 }}")
    assert (files.watched, files.action, files.maxFiles) == ("/tmp/in", "MOVE", 25)
    assert [condition.type.rsplit(".", 1)[-1] for condition in after.conditions] == [
        "ExecutionStatusCondition", "ExecutionFlow", "ExecutionNamespaceCondition"]
    assert after.states == ["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED"]
    assert hook.key == "4wjtkzwVGBM9yKnjm3yv8r"


@pytest.mark.parametrize("trigger, message, line, column", [
    ("  - {id: t, type: io.kestra.plugin.core.http.Trigger, uri: x, interval: PT0S}",
     "'interval': 'PT0S' is not a positive duration", 8, 73),
    ("  - id: t\n    type: io.kestra.plugin.core.trigger.Flow\n    conditions:\n"
     "      - {type: io.kestra.plugin.core.condition.Nope}",
     "unknown condition type 'io.kestra.plugin.core.condition.Nope'", 11, 16),
    ("  - {id: t, type: io.kestra.plugin.core.trigger.Webhook, key: 'a/b'}",
     "'key': the webhook key may not contain '/' nor start or end with a blank", 8, 63),
    ("  - {id: t, type: io.kestra.plugin.fs.local.Trigger, directory: /in, action: MOVE}",
     "action MOVE needs a moveDirectory", 8, 5),
    ("  - {id: t, type: io.kestra.plugin.fs.local.Trigger, directory: /in, regExp: '(unclosed'}",
     "'regExp': invalid regular expression '(unclosed': missing ), unterminated subpattern at position 0", 8, 78),
    ("  - {id: t, type: io.kestra.plugin.core.trigger.Schedule, cron: '* * * * *', recoverMissedSchedules: SOME}",
     "'recoverMissedSchedules': Input should be 'ALL', 'LAST' or 'NONE'", 8, 102),
])
def test_bad_trigger_properties_are_refused_where_they_stand(trigger, message, line, column):
    assert faults(flow(trigger + "\n")) == [(message, line, column)]


# --- trigger state kept in step with uploads --------------------------------------------------

NIGHTLY = "  - {id: nightly, type: io.kestra.plugin.core.trigger.Schedule, cron: '0 2 * * *'}\n"
HOOK = "  - {id: hook, type: io.kestra.plugin.core.trigger.Webhook, key: a-long-secret-key}\n"


def state(trigger_id: str = "nightly") -> TriggerState:
    return TriggerState.objects.get(trigger_id=trigger_id)


def test_an_upload_makes_one_state_per_trigger_due_as_kestra_says():
    before = timezone.now()
    flow_upload(source=flow(NIGHTLY + HOOK), tenant_key="main")
    nightly, hook = state("nightly"), state("hook")
    assert nightly.next_date > before and nightly.next_date.minute == 0 and nightly.next_date.hour == 2
    assert hook.next_date is None  # a webhook is never due by the clock
    assert (nightly.trigger_type, nightly.definition["cron"]) == ("io.kestra.plugin.core.trigger.Schedule", "0 2 * * *")


def test_reupload_keeps_unchanged_triggers_and_resets_changed_ones():
    flow_upload(source=flow(NIGHTLY + HOOK), tenant_key="main")
    fired = timezone.now() - timedelta(days=1)
    TriggerState.objects.update(last_date=fired, last_result="fired", worker_id="gpu@x")

    # A new revision whose Webhook changed and whose Schedule only got a description.
    flow_upload(source=flow(NIGHTLY.replace("cron:", "description: nightly run, cron:")
                            + HOOK.replace("a-long-secret-key", "another-secret-key")), tenant_key="main")

    nightly, hook = state("nightly"), state("hook")
    assert (nightly.last_date, nightly.last_result) == (fired, "fired")
    assert nightly.definition["description"] == "nightly run"
    assert (hook.last_date, hook.last_result, hook.definition["key"]) == (None, "", "another-secret-key")
    assert hook.logs.filter(message__contains="changed").exists()


def test_a_removed_trigger_and_a_deleted_flow_lose_their_state():
    flow_upload(source=flow(NIGHTLY + HOOK), tenant_key="main")
    flow_upload(source=flow(NIGHTLY), tenant_key="main")
    assert list(TriggerState.objects.values_list("trigger_id", flat=True)) == ["nightly"]
    flow_delete(tenant_key="main", namespace="company.team", flow_id="triggered")
    assert not TriggerState.objects.exists()


def test_disabling_a_flow_stops_its_triggers_and_enabling_starts_them_again():
    flow_upload(source=flow(NIGHTLY), tenant_key="main")
    flow_upload(source=flow(NIGHTLY, extra="disabled: true\n"), tenant_key="main")
    assert state().next_date is None
    flow_upload(source=flow(NIGHTLY), tenant_key="main")
    assert state().next_date > timezone.now()


def test_a_trigger_disabled_in_the_yaml_has_no_due_date():
    flow_upload(source=flow(NIGHTLY.replace("cron:", "disabled: true, cron:")), tenant_key="main")
    assert state().next_date is None


def test_disable_enable_and_unlock_by_hand():
    flow_upload(source=flow(NIGHTLY), tenant_key="main")
    disabled = trigger_state_disable(state_id=state().pk)
    assert (disabled.disabled, disabled.next_date) == (True, None)
    flow_upload(source=flow(NIGHTLY), tenant_key="main")  # an upload does not undo it
    assert state().next_date is None
    enabled = trigger_state_enable(state_id=state().pk)
    assert not enabled.disabled and enabled.next_date > timezone.now()
    TriggerState.objects.update(evaluation="6a2f41a0-1111-4b5b-9c39-000000000001", lock_owner="gpu@gone")
    unlocked = trigger_state_unlock(state_id=state().pk)
    assert (unlocked.evaluation, unlocked.lock_owner) == (None, "")
    assert [line.message.split(" ")[0] for line in state().logs.order_by("id")] == ["disabled", "enabled", "unlocked"]


# --- Flow triggers and stopAfter: when an execution ends ----------------------------------------

UPSTREAM = """\
id: up
namespace: company.team
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: done
"""


def downstream(conditions: str, *, flow_id: str = "down", states: str = "") -> str:
    return f"""\
id: {flow_id}
namespace: company.other
inputs:
  - id: upstream
    type: STRING
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "after {{{{ trigger.flowId }}}}"
triggers:
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      upstream: "{{{{ trigger.executionId }}}} {{{{ trigger.state }}}}"
{states}    conditions:
{conditions}"""


SUCCESS_OF_UP = """\
      - {type: io.kestra.plugin.core.condition.ExecutionStatusCondition, in: [SUCCESS]}
      - {type: io.kestra.plugin.core.condition.ExecutionFlowCondition, namespace: company.team, flowId: up}
"""


def started_by(trigger_id: str):
    return Execution.objects.filter(trigger__id=trigger_id).order_by("created")


def test_a_flow_trigger_starts_its_flow_once_per_matching_execution_with_the_trigger_variables():
    flow_upload(source=downstream(SUCCESS_OF_UP), tenant_key="main")
    driver = EngineDriver()
    first = driver.run(UPSTREAM)
    second = driver.run(UPSTREAM)

    downstream_runs = list(started_by("after"))
    assert [run.inputs["upstream"] for run in downstream_runs] == [f"{first.id} SUCCESS", f"{second.id} SUCCESS"]
    variables = downstream_runs[0].trigger["variables"]
    assert (variables["namespace"], variables["flowId"], variables["flowRevision"]) == ("company.team", "up", 1)
    assert all(run.state == State.SUCCESS for run in downstream_runs)  # delivered by the driver too
    assert state("after").last_execution == downstream_runs[-1].id


def test_a_flow_trigger_renders_its_inputs_with_the_outputs_of_the_execution_that_ended():
    """Kestra's trigger-flow-listener: `from-parent: '{{ outputs.only.value }}'`."""
    flow_upload(source=downstream(SUCCESS_OF_UP).replace("{{ trigger.executionId }} {{ trigger.state }}",
                                                         "{{ outputs.work.value }}"), tenant_key="main")
    EngineDriver(outcomes={"work": Outcome(outputs={"value": "done"})}).run(UPSTREAM)
    assert [run.inputs["upstream"] for run in started_by("after")] == ["done"]


def test_a_flow_trigger_starts_only_when_all_its_conditions_hold():
    of_up = "      - {type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: company.team, flowId: up}\n"
    for flow_id, conditions in {
        "on_success": SUCCESS_OF_UP,
        "not_failed": "      - {type: io.kestra.plugin.core.condition.ExecutionStatus, notIn: [FAILED]}\n" + of_up,
        "prefix": "      - {type: io.kestra.plugin.core.condition.ExecutionNamespace, namespace: company.te, "
                  "comparison: PREFIX}\n",
        "suffix": "      - {type: io.kestra.plugin.core.condition.ExecutionNamespace, namespace: .team, "
                  "comparison: SUFFIX}\n",
        "equals": "      - {type: io.kestra.plugin.core.condition.ExecutionNamespace, namespace: company}\n",
    }.items():
        flow_upload(source=downstream(conditions, flow_id=flow_id), tenant_key="main")
    failing = EngineDriver(outcomes={"work": Outcome(state=State.FAILED, error="boom")}).run(UPSTREAM)
    assert failing.state == State.FAILED
    assert sorted(run.flow_id for run in started_by("after")) == ["prefix", "suffix"]


def test_a_flow_trigger_only_listens_to_its_states_and_never_to_its_own_flow():
    flow_upload(source=downstream("      - {type: io.kestra.plugin.core.condition.ExecutionNamespace, "
                                  "namespace: company, prefix: true}\n", states="    states: [FAILED]\n"),
                tenant_key="main")
    EngineDriver().run(UPSTREAM)  # SUCCESS: not a state it listens to
    assert not started_by("after").exists()
    EngineDriver(outcomes={"hello": Outcome(state=State.FAILED, error="x")}).run(
        downstream("      - {type: io.kestra.plugin.core.condition.ExecutionNamespace, namespace: company, "
                   "prefix: true}\n", states="    states: [FAILED]\n"), inputs={"upstream": "by hand"})
    assert not started_by("after").exists()  # its own failed execution does not start it again


def test_a_flow_trigger_of_a_disabled_flow_or_another_tenant_starts_nothing():
    flow_upload(source=downstream(SUCCESS_OF_UP).replace("namespace: company.other\n",
                                                         "namespace: company.other\ndisabled: true\n"),
                tenant_key="main")
    tenant_create(key="other")
    flow_upload(source=downstream(SUCCESS_OF_UP, flow_id="elsewhere"), tenant_key="other")
    EngineDriver().run(UPSTREAM)
    assert not started_by("after").exists()


def test_bad_inputs_start_nothing_and_say_why_in_the_trigger_state():
    flow_upload(source=downstream(SUCCESS_OF_UP).replace("type: STRING", "type: INT"), tenant_key="main")
    up = EngineDriver().run(UPSTREAM)
    assert up.state == State.SUCCESS  # the upstream execution is not hurt
    after = state("after")
    assert not started_by("after").exists()
    assert "upstream" in after.last_error and after.logs.filter(level="ERROR").exists()


def test_stop_after_disables_the_trigger_whose_execution_ended_in_a_listed_state():
    source = flow("  - {id: nightly, type: io.kestra.plugin.core.trigger.Schedule, cron: '* * * * *', "
                  "stopAfter: [FAILED]}\n")
    flow_upload(source=source, tenant_key="main")
    driver = EngineDriver(outcomes={"hello": Outcome(state=State.FAILED, error="boom")})
    driver.tick(now=state().next_date + timedelta(seconds=1))
    driver.deliver_all()
    assert started_by("nightly").get().state == State.FAILED
    nightly = state()
    assert (nightly.disabled, nightly.next_date) == (True, None)
    assert LogLine.objects.filter(trigger_state=nightly, message__startswith="disabled by stopAfter").exists()
