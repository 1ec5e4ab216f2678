"""The engine's flowable handlers, one evaluation at a time, in process: the execution lives in the
test database and the messages it would send are recorded (tests/support/driver.py). The same
behaviours run end to end on real workers in test_executor.py."""
import pytest

from flows import dispatch, schema
from flows.engine import execution_kill
from flows.engine.flowables import HANDLERS
from flows.models import State
from flows.services import worker_heartbeat
from tests.support.driver import EngineDriver, Outcome, states_by_task

pytestmark = pytest.mark.django_db

RETURN = "io.kestra.plugin.core.debug.Return"
FLOW = "id: unit\nnamespace: company.team\n"


@pytest.fixture(autouse=True)
def default_worker():
    """A worker of the default group is alive, so task runs are published without waiting."""
    worker_heartbeat(hostname="default@unit-test", groups=["default"], pid=1, concurrency=1, running=0)


def test_every_flowable_type_of_the_schema_has_a_handler():
    flowable = {model for model in schema.Task.__origin__.__args__ if model.flowable}
    assert flowable == set(HANDLERS)


def test_sequential_creates_each_child_only_after_the_previous_one_ended():
    driver = EngineDriver()
    execution = driver.run(FLOW + f"""
tasks:
  - id: block
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - {{id: one, type: {RETURN}, format: "1"}}
      - {{id: two, type: {RETURN}, format: "2"}}
""")
    assert execution.state == State.SUCCESS
    assert states_by_task(execution) == {"block": "SUCCESS", "one": "SUCCESS", "two": "SUCCESS"}
    kinds = [message.task for message in driver.sent]
    # advance, run one, run two: `two` was sent by the evaluation that followed the end of `one`
    assert kinds == [dispatch.ADVANCE_EXECUTION, dispatch.RUN_TASKRUN, dispatch.RUN_TASKRUN]
    one, two = execution.task_runs.get(task_id="one"), execution.task_runs.get(task_id="two")
    assert one.end_date <= two.created


def test_parallel_starts_at_most_its_concurrent_limit_at_once():
    driver = EngineDriver()
    source = FLOW + f"""
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: 2
    tasks:
      - {{id: a, type: {RETURN}, format: a}}
      - {{id: b, type: {RETURN}, format: b}}
      - {{id: c, type: {RETURN}, format: c}}
"""
    execution = driver.start(source)
    driver.deliver(driver.sent[0])  # the first evaluation

    assert sorted(execution.task_runs.values_list("task_id", flat=True)) == ["a", "b", "fan"]
    assert len(driver.queues()) == 2

    driver.deliver_all()
    execution.refresh_from_db()
    assert execution.state == State.SUCCESS and len(driver.queues()) == 3


def test_if_creates_only_the_branch_its_condition_chose():
    source = FLOW + f"""
inputs:
  - {{id: go, type: BOOLEAN}}
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ inputs.go }}}}"
    then:
      - {{id: chose_then, type: {RETURN}, format: y}}
    else:
      - {{id: chose_else, type: {RETURN}, format: n}}
"""
    chose_then = EngineDriver().run(source, inputs={"go": "true"})
    chose_else = EngineDriver().run(source, inputs={"go": "false"})

    assert states_by_task(chose_then) == {"check": "SUCCESS", "chose_then": "SUCCESS"}
    assert chose_then.task_runs.get(task_id="check").outputs == {"evaluationResult": True}
    assert states_by_task(chose_else) == {"check": "SUCCESS", "chose_else": "SUCCESS"}


@pytest.mark.parametrize("value, expected", [("b", "in_b"), ("zzz", "fallback")])
def test_switch_runs_the_matching_case_or_the_defaults(value, expected):
    execution = EngineDriver().run(FLOW + f"""
inputs:
  - {{id: pick, type: STRING}}
tasks:
  - id: route
    type: io.kestra.plugin.core.flow.Switch
    value: "{{{{ inputs.pick }}}}"
    cases:
      a: [{{id: in_a, type: {RETURN}, format: a}}]
      b: [{{id: in_b, type: {RETURN}, format: b}}]
    defaults:
      - {{id: fallback, type: {RETURN}, format: d}}
""", inputs={"pick": value})
    assert states_by_task(execution) == {"route": "SUCCESS", expected: "SUCCESS"}


def test_foreach_runs_one_iteration_at_a_time_and_gives_each_its_value():
    driver = EngineDriver()
    execution = driver.run(FLOW + f"""
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.ForEach
    values: ["x", "y", 3]
    concurrencyLimit: 1
    tasks:
      - {{id: child, type: {RETURN}, format: "{{{{ taskrun.value }}}}"}}
""")
    children = list(execution.task_runs.filter(task_id="child").order_by("created"))
    assert execution.state == State.SUCCESS
    assert [run.value for run in children] == ["x", "y", "3"]
    assert all(first.end_date <= second.created for first, second in zip(children, children[1:]))
    assert execution.task_runs.get(task_id="loop").outputs == {"values": ["x", "y", "3"]}


def test_a_failed_task_runs_the_errors_tasks_and_fails_the_execution():
    driver = EngineDriver(outcomes={"work": Outcome(State.FAILED, error="boom")})
    execution = driver.run(FLOW + f"""
tasks:
  - {{id: work, type: {RETURN}, format: w}}
  - {{id: never, type: {RETURN}, format: n}}
errors:
  - {{id: alert, type: {RETURN}, format: a}}
""")
    assert execution.state == State.FAILED
    assert states_by_task(execution) == {"work": "FAILED", "alert": "SUCCESS"}


def test_allow_failure_ends_warning_and_the_flow_goes_on():
    driver = EngineDriver(outcomes={"work": Outcome(State.FAILED, error="boom")})
    execution = driver.run(FLOW + f"""
tasks:
  - {{id: work, type: {RETURN}, format: w, allowFailure: true}}
  - {{id: next, type: {RETURN}, format: n}}
""")
    assert execution.state == State.WARNING
    assert states_by_task(execution) == {"work": "WARNING", "next": "SUCCESS"}


def test_run_if_false_skips_the_task_without_sending_it():
    driver = EngineDriver()
    execution = driver.run(FLOW + f"""
tasks:
  - {{id: skipped, type: {RETURN}, format: s, runIf: "{{{{ 1 == 2 }}}}"}}
  - {{id: ran, type: {RETURN}, format: r}}
""")
    assert execution.state == State.SUCCESS
    assert states_by_task(execution) == {"skipped": "SKIPPED", "ran": "SUCCESS"}
    assert len(driver.queues()) == 1


def test_a_retried_task_is_sent_again_with_its_delay_until_its_attempts_run_out():
    driver = EngineDriver(outcomes={"flaky": Outcome(State.FAILED, error="nope")})
    execution = driver.run(FLOW + f"""
tasks:
  - id: flaky
    type: {RETURN}
    format: f
    retry: {{type: constant, maxAttempt: 3, interval: PT2S}}
""")
    run = execution.task_runs.get()
    runs_sent = [message for message in driver.sent if message.task == dispatch.RUN_TASKRUN]
    assert execution.state == State.FAILED and run.attempt == 3
    assert [message.args[1] for message in runs_sent] == [1, 2, 3]
    assert [message.countdown for message in runs_sent] == [None, 2.0, 2.0]
    assert [attempt["state"] for attempt in run.attempts] == ["FAILED", "FAILED", "FAILED"]


def test_killing_an_execution_kills_the_task_runs_that_wait_and_starts_nothing_new():
    driver = EngineDriver()
    execution = driver.start(FLOW + f"""
tasks:
  - {{id: first, type: {RETURN}, format: f}}
  - {{id: second, type: {RETURN}, format: s}}
""")
    driver.deliver(driver.sent[0])  # `first` is created and sent, not yet run

    with driver.recording():
        execution_kill(execution_id=execution.id)
    driver.deliver_all()  # a worker receiving `first` now finds it KILLED and does nothing

    execution.refresh_from_db()
    assert execution.state == State.KILLED
    assert states_by_task(execution) == {"first": "KILLED"}
