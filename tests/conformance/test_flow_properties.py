"""Flow properties end to end on real workers (docs/flow-properties.md), with our own flows: the
task-run counts, states and outputs Kestra documents for each."""
import threading
import time

import pytest
from django.db import connection

from flows.engine import execution_create
from flows.models import TERMINAL_STATES, Execution, State
from flows.reconciler import taskruns_reconcile
from flows.services import flow_upload
from tests.support import run_flow, wait_for
from tests.support.auth import api_client

pytestmark = pytest.mark.django_db(transaction=True)


def _all_ended(flow_id: str, count: int) -> bool:
    executions = Execution.objects.filter(flow_id=flow_id)
    return executions.count() == count and not executions.exclude(state__in=TERMINAL_STATES).exists()


def _most_at_once(executions) -> int:
    """The most executions whose RUNNING spans overlapped."""
    edges = sorted([(e.start_date, 1) for e in executions] + [(e.end_date, -1) for e in executions],
                   key=lambda edge: (edge[0], edge[1]))
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


@pytest.mark.parametrize("limit, count", [(1, 4), (2, 5)])
def test_concurrency_queue_holds_across_processes(engine, limit, count):
    """Executions created at once from several threads; the executor's two processes and the
    workers that end task runs start them: never more than `limit` run at once, all end SUCCESS."""
    flow_upload(source=f"""
id: limited
namespace: company.team
concurrency: {{limit: {limit}, behavior: QUEUE}}
tasks:
  - {{id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.5S}}
  - {{id: done, type: io.kestra.plugin.core.debug.Return, format: ok}}
""", tenant_key="main")

    def create():
        execution_create(tenant_key="main", namespace="company.team", flow_id="limited")
        connection.close()

    threads = [threading.Thread(target=create) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(lambda: _all_ended("limited", count), timeout=90, message="every execution to end")
    executions = list(Execution.objects.filter(flow_id="limited"))
    assert {e.state for e in executions} == {State.SUCCESS}
    assert all(e.task_runs.count() == 2 for e in executions)
    assert _most_at_once(executions) == limit
    assert any("QUEUED" in [h["state"] for h in e.state_history] for e in executions)


@pytest.mark.parametrize("behavior, state", [("CANCEL", State.CANCELLED), ("FAIL", State.FAILED)])
def test_concurrency_cancel_and_fail_refuse_the_execution_over_the_limit(engine, behavior, state):
    flow_upload(source=f"""
id: refusing
namespace: company.team
concurrency: {{limit: 1, behavior: {behavior}}}
tasks:
  - {{id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT2S}}
""", tenant_key="main")
    first = execution_create(tenant_key="main", namespace="company.team", flow_id="refusing")
    wait_for(lambda: Execution.objects.get(id=first.id).state == State.RUNNING, timeout=30, message="first running")
    second = execution_create(tenant_key="main", namespace="company.team", flow_id="refusing")
    wait_for(lambda: _all_ended("refusing", 2), timeout=30, message="both to end")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (State.SUCCESS, state)
    assert second.task_runs.count() == 0


def test_flow_outputs_in_the_api_execution(engine):
    execution = run_flow("""
id: with-outputs
namespace: company.team
tasks:
  - {id: values, type: io.kestra.plugin.core.output.OutputValues, values: {one: 1rstValue, two: 2ndValue}}
outputs:
  - {id: first, type: STRING, value: "{{ outputs['values']['values'].one }}"}
  - id: both
    type: ARRAY
    value: ["{{ outputs['values']['values'].one }}", "{{ outputs['values']['values'].two }}"]
""")
    assert execution.state == State.SUCCESS
    answer = api_client("reader", roles={"main": "viewer"}).get(f"/api/v1/main/executions/{execution.id}").json()
    assert answer["outputs"] == {"first": "1rstValue", "both": ["1rstValue", "2ndValue"]}


def test_flow_retry_on_real_workers_counts_attempts_as_kestra(engine):
    execution = run_flow("""
id: retry-failed-flow
namespace: company.team
retry: {behavior: RETRY_FAILED_TASK, type: constant, maxAttempt: 4, interval: PT0.2S}
tasks:
  - {id: fail, type: io.kestra.plugin.core.execution.Fail}
""", timeout=60)
    assert execution.state == State.FAILED
    run = execution.task_runs.get()
    assert run.attempt == 4 and [a["state"] for a in run.attempts] == ["FAILED"] * 4


def test_create_new_execution_chains_retried_executions(engine):
    flow_upload(source="""
id: retry-new-execution
namespace: company.team
retry: {behavior: CREATE_NEW_EXECUTION, type: constant, maxAttempt: 3, interval: PT0.5S}
tasks:
  - {id: fail, type: io.kestra.plugin.core.execution.Fail}
""", tenant_key="main")
    execution_create(tenant_key="main", namespace="company.team", flow_id="retry-new-execution")
    wait_for(lambda: _all_ended("retry-new-execution", 3), timeout=60, message="three executions")
    chain = Execution.objects.filter(flow_id="retry-new-execution").order_by("attempt")
    assert list(chain.values_list("state", flat=True)) == ["RETRIED", "RETRIED", "FAILED"]
    assert [e.task_runs.count() for e in chain] == [1, 1, 1]


def test_max_duration_sla_fails_a_running_execution(engine):
    flow_upload(source="""
id: sla-max-duration
namespace: company.team
sla:
  - {id: maxDuration, type: MAX_DURATION, behavior: FAIL, duration: PT0.5S}
tasks:
  - {id: sleep, type: io.kestra.plugin.core.flow.Sleep, duration: PT3S}
""", tenant_key="main")
    execution = execution_create(tenant_key="main", namespace="company.team", flow_id="sla-max-duration")
    deadline = time.monotonic() + 30
    while Execution.objects.get(id=execution.id).state not in TERMINAL_STATES and time.monotonic() < deadline:
        taskruns_reconcile()  # what the scheduler's reconcile task runs every RECONCILE_SECONDS
        time.sleep(0.2)
    execution.refresh_from_db()
    assert execution.state == State.FAILED
    assert (execution.end_date - execution.created).total_seconds() < 3


def test_allow_warning_task_ends_success(engine):
    execution = run_flow("""
id: allow-warning
namespace: company.team
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    allowFailure: true
    allowWarning: true
    retry: {type: constant, interval: PT0.1S, maxAttempt: 3}
  - {id: log, type: io.kestra.plugin.core.log.Log, message: allowed}
""", timeout=60)
    assert execution.state == State.SUCCESS
    assert execution.task_runs.count() == 2
    assert execution.task_runs.get(task_id="fail").attempt == 3
