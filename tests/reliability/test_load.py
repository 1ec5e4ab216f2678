"""Load: 10,000 task runs (RELIABILITY_SCALE=1; a fraction of it by default) across 3 groups of 2
workers, with mixed fallbacks, and a fourth group with no worker at all. Prints the throughput."""
import time

import pytest
from django.db.models import Max, Min

from flows.models import TaskRun
from flows.services import worker_group_create
from tests.support.stack import alive

from .harness import SCALE, assert_healthy, size, start_executions, wait_ended
from .invariants import EVIDENCE

pytestmark = pytest.mark.django_db(transaction=True)

FULL_TASK_RUNS = 10_000
ITERATIONS = 10  # each execution: 10 iterations of 3 task runs, then one on the group with no worker
PER_EXECUTION = 3 * ITERATIONS + 1

FLOW = f"""
id: load
namespace: reliability
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: {list(range(ITERATIONS))}
    concurrencyLimit: 2
    tasks:
      - id: a
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ taskrun.value }}}}"
        workerGroup: {{key: la, fallback: WAIT}}
      - id: b
        type: io.kestra.plugin.core.log.Log
        message: "{EVIDENCE}"
        workerGroup: {{key: lb, fallback: FAIL}}
      - id: c
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ outputs.a[taskrun.value].value }}}}"
        workerGroup: {{key: lc, fallback: CANCEL}}
  - id: unmanned
    type: io.kestra.plugin.core.log.Log
    message: no worker will ever run this
    allowFailure: true
    workerGroup: {{key: lz, fallback: FAIL}}
"""


@pytest.mark.timeout(300 + int(3000 * SCALE))
def test_ten_thousand_task_runs_across_three_groups_of_two_workers(stack):
    for key in ("la", "lb", "lc", "lz"):
        worker_group_create(key=key)
    workers = [stack.start_worker(group, concurrency=2, label=str(n)) for group in ("la", "lb", "lc") for n in (1, 2)]
    alive(*workers)
    executions = -(-size(FULL_TASK_RUNS, minimum=PER_EXECUTION * 8) // PER_EXECUTION)

    started = time.monotonic()
    ids = start_executions(stack, FLOW, executions)
    created_in = time.monotonic() - started
    wait_ended(stack, ids, timeout=120 + 1.0 * executions * PER_EXECUTION)
    elapsed = time.monotonic() - started

    runs = TaskRun.objects.filter(execution_id__in=ids, worker_group__in=["la", "lb", "lc", "lz"])
    span = runs.aggregate(first=Min("created"), last=Max("end_date"))
    seconds = (span["last"] - span["first"]).total_seconds()
    count = runs.count()
    print(f"\n[load] {count} task runs in {executions} executions on 3 groups of 2 workers (concurrency 2): "
          f"{seconds:.1f}s from the first task run to the last end, {count / seconds:.1f} task runs/s "
          f"({elapsed:.1f}s wall, {created_in:.1f}s to create the executions)")
    assert count == executions * PER_EXECUTION
    # FIFO slack: any of the 14 processes that advance executions (12 worker and 2 executor processes)
    # may publish a batch of up to 2 task runs to a group (2 iterations at once) while another's is
    # on its way, and the group's 4 pool processes claim concurrently.
    slack = 14 * 2 + 4
    assert_healthy(stack, ids, states={"WARNING"}, fifo={"la": slack, "lb": slack, "lc": slack}, title="load")
    assert set(runs.filter(worker_group__in=["la", "lb", "lc"]).values_list("state", flat=True)) == {"SUCCESS"}
    assert set(runs.filter(worker_group="lz").values_list("error", flat=True)) == {
        "no alive worker in worker group 'lz' (fallback FAIL)"}
