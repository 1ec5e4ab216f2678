"""How the engine advances an execution: it renders on what it read, outside any transaction, and
writes in a short locked transaction only if nothing it read changed meanwhile (docs/architecture.md).
In process, with the messages recorded (tests/support/driver.py)."""
import pytest
from django.db import connection, transaction
from django.utils import timezone

from flows.engine import evaluation, executions, flowables, taskrun_finish
from flows.definition import parse_flow_cached
from flows.models import State, TaskRun
from flows.services import worker_heartbeat
from flows.states import taskrun_claim
from tests.support.driver import EngineDriver, states_by_task

RETURN = "io.kestra.plugin.core.debug.Return"
FLOW = "id: unit\nnamespace: company.team\n"


@pytest.fixture(autouse=True)
def default_worker(db):
    worker_heartbeat(hostname="default@unit-test", groups=["default"], pid=1, concurrency=1, running=0)


@pytest.mark.django_db(transaction=True)
def test_expressions_are_rendered_while_no_transaction_is_open(monkeypatch, caplog):
    """A render holds no lock: on SQLite a write transaction locks the whole database, on PostgreSQL
    the execution's row lock would stall every worker of the execution."""
    open_transactions = []

    def watching(render):
        def render_watched(text, context):
            in_transaction = connection.in_atomic_block
            rendered = render(text, context)  # under the lock it raises RenderRefused instead
            open_transactions.append((text, in_transaction))
            return rendered
        return render_watched

    monkeypatch.setattr(evaluation, "render", watching(evaluation.render))
    monkeypatch.setattr(flowables, "render", watching(flowables.render))
    monkeypatch.setattr(flowables, "render_deep", watching(flowables.render_deep))
    execution = EngineDriver().run(FLOW + f"""
inputs:
  - {{id: go, type: BOOLEAN, defaults: true}}
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{{{ [1, 2] }}}}"
    concurrencyLimit: 0
    tasks:
      - id: check
        type: io.kestra.plugin.core.flow.If
        condition: "{{{{ inputs.go }}}}"
        then:
          - id: both
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - {{id: left, type: {RETURN}, format: l}}
              - id: right
                type: {RETURN}
                format: r
                runIf: "{{{{ flow.id == 'unit' }}}}"
""")
    assert execution.state == State.SUCCESS
    rendered = {text for text, _ in open_transactions}
    assert rendered == {"{{ [1, 2] }}", "{{ inputs.go }}", "{{ flow.id == 'unit' }}"}
    assert [text for text, in_transaction in open_transactions if in_transaction] == []
    assert "evaluating under its lock" not in caplog.text  # no evaluation had to fall back to the lock


@pytest.mark.django_db
def test_an_evaluation_whose_task_runs_changed_meanwhile_is_made_again(monkeypatch, caplog):
    """Two branches end at once on two workers, and each one's next task renders (so each evaluation
    is made outside the lock): the one that writes second saw the other branch running, and must
    evaluate again on what the first one wrote."""
    driver = EngineDriver()
    execution = driver.start(FLOW + f"""
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: left
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - {{id: a, type: {RETURN}, format: a}}
          - {{id: a2, type: {RETURN}, format: a2, runIf: "{{{{ outputs.a.value == 'a' }}}}"}}
      - id: right
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - {{id: b, type: {RETURN}, format: b}}
          - {{id: b2, type: {RETURN}, format: b2, runIf: "{{{{ outputs.b.value == 'b' }}}}"}}
""")
    with driver.recording():
        driver.deliver(driver.sent[0])  # the executor creates fan, left, right, a and b
    now = timezone.now()
    claimed = {run.task_id: taskrun_claim(taskrun_id=run.id, attempt=1, worker_id="default@unit-test", when=now)
               for run in TaskRun.objects.filter(execution=execution, task_id__in=["a", "b"])}
    document = parse_flow_cached(execution.flow_revision.source)
    still, checks = executions._still, []

    def b_ends_first(execution_id, **kwargs):
        checks.append(kwargs["fingerprint"])
        if len(checks) == 1:  # a's evaluation is decided; before it writes, b ends on another worker
            with driver.recording():
                taskrun_finish(run=claimed["b"], task=document.tasks_by_id["b"], state=State.SUCCESS,
                               outputs={"value": "b"}, error="", logs=[])
        return still(execution_id, **kwargs)

    monkeypatch.setattr(executions, "_still", b_ends_first)
    with driver.recording():
        taskrun_finish(run=claimed["a"], task=document.tasks_by_id["a"], state=State.SUCCESS,
                       outputs={"value": "a"}, error="", logs=[])
    assert len(checks) == 3  # a's first evaluation, b's, and a's again on what b wrote
    assert "evaluating under its lock" not in caplog.text
    driver.deliver_all()
    execution.refresh_from_db()
    assert execution.state == State.SUCCESS
    assert states_by_task(execution) == {"fan": "SUCCESS", "left": "SUCCESS", "right": "SUCCESS", "a": "SUCCESS",
                                         "a2": "SUCCESS", "b": "SUCCESS", "b2": "SUCCESS"}


@pytest.mark.django_db
def test_an_evaluation_that_renders_nothing_is_made_once_under_the_lock(monkeypatch):
    """The common step (literal properties): one transaction, no second read."""
    monkeypatch.setattr(executions, "_still", lambda *args, **kwargs: pytest.fail("evaluated outside the lock"))
    execution = EngineDriver().run(FLOW + f"tasks:\n  - {{id: one, type: {RETURN}, format: '1'}}\n"
                                          f"  - {{id: two, type: {RETURN}, format: '{{{{ outputs.one.value }}}}'}}\n")
    assert execution.state == State.SUCCESS


@pytest.mark.django_db
def test_a_task_run_ends_and_advances_in_one_transaction(monkeypatch):
    """If the evaluation's writes fail, the task run's end is rolled back with them: never an ended
    task run whose execution was not advanced."""
    driver = EngineDriver()
    execution = driver.start(FLOW + f"tasks:\n  - {{id: one, type: {RETURN}, format: '1'}}\n"
                                    f"  - {{id: two, type: {RETURN}, format: '2'}}\n")
    with driver.recording():
        driver.deliver(driver.sent[0])
    run = taskrun_claim(taskrun_id=TaskRun.objects.get(task_id="one").id, attempt=1, worker_id="w", when=timezone.now())

    def broken(self):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(executions._Advance, "save", broken)
    with pytest.raises(RuntimeError), transaction.atomic():
        taskrun_finish(run=run, task=parse_flow_cached(execution.flow_revision.source).tasks_by_id["one"],
                       state=State.SUCCESS, outputs={"value": "1"}, error="", logs=[])
    assert TaskRun.objects.get(id=run.id).state == State.RUNNING
