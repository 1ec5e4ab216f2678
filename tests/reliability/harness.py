"""Helpers of the fault and load scenarios: sizes, flows, starting executions on a stack of the
test's own, waiting for them with a deadline, and the final checks (invariants.py)."""
import os
import time
from collections import Counter

from flows.engine import execution_create
from flows.models import TERMINAL_STATES, TaskRun
from flows.services import flow_upload
from tests.support import wait_for

from .invariants import EVIDENCE, check_fifo, check_ran_once_per_attempt, executions_ended, state_counts

# 1 runs every scenario at the size issue 7 names (10,000 task runs, a 200-execution burst); CI runs
# a fraction of it. `RELIABILITY_SCALE=1 .venv/bin/pytest -m reliability` for the full run.
SCALE = float(os.environ.get("RELIABILITY_SCALE", "0.05"))


def size(full: int, *, minimum: int) -> int:
    return max(minimum, round(full * SCALE))


def sleep_then_log_flow(flow_id: str, group: str, *, sleep: str = "PT1S", fallback: str = "WAIT") -> str:
    """A Sleep that a fault can interrupt, then the Log that proves the attempt ran once."""
    return f"""
id: {flow_id}
namespace: reliability
tasks:
  - id: work
    type: io.kestra.plugin.core.flow.Sleep
    duration: {sleep}
    workerGroup: {{key: {group}, fallback: {fallback}}}
  - id: evidence
    type: io.kestra.plugin.core.log.Log
    message: "{EVIDENCE}"
    workerGroup: {{key: {group}, fallback: {fallback}}}
"""


def log_flow(flow_id: str, group: str, *, fallback: str = "WAIT") -> str:
    return f"""
id: {flow_id}
namespace: reliability
tasks:
  - id: evidence
    type: io.kestra.plugin.core.log.Log
    message: "{EVIDENCE}"
    workerGroup: {{key: {group}, fallback: {fallback}}}
"""


def start_executions(stack, source: str, count: int, *, tenant: str = "main") -> list:
    """Upload `source` and start `count` executions on `stack`; their ids, in creation order."""
    flow = flow_upload(source=source, tenant_key=tenant)
    with stack.sending():
        return [execution_create(tenant_key=tenant, namespace=flow.namespace, flow_id=flow.flow_id).id
                for _ in range(count)]


def wait_ended(stack, execution_ids, *, timeout: float) -> float:
    """Wait until every execution has ended; returns the seconds it took."""
    started = time.monotonic()
    try:
        wait_for(lambda: executions_ended(execution_ids), timeout=timeout, interval=0.5,
                 message=f"{len(execution_ids)} executions to end")
    except AssertionError as error:
        stuck = TaskRun.objects.filter(execution_id__in=execution_ids).exclude(state__in=TERMINAL_STATES)
        lines = [f"  {run.task_id} {run.id} {run.state} attempt {run.attempt} on {run.worker_id or '-'}" for run in stuck[:10]]
        raise AssertionError("\n".join([f"{error}; states now {state_counts(execution_ids)}", *lines, stack.logs()])) from None
    return time.monotonic() - started


def assert_healthy(stack, execution_ids, *, states: set[str] = frozenset({"SUCCESS"}), fifo: dict | None = None,
                   title: str = "") -> dict:
    """Every check of invariants.py; prints what it measured. `fifo`: group key → slack."""
    counts = state_counts(execution_ids)
    faults = check_ran_once_per_attempt(execution_ids)
    unexpected = {state: n for state, n in counts.items() if state not in states}
    if unexpected:
        faults.append(f"executions ended {unexpected}, expected only {sorted(states)}")
        errors = Counter(TaskRun.objects.filter(execution_id__in=execution_ids).exclude(error="")
                         .values_list("error", flat=True))
        faults.extend(f"  {count} task run(s) with error: {error[:300]}" for error, count in errors.most_common(5))
    displacement, fifo_faults = check_fifo(execution_ids, fifo or {})
    faults.extend(fifo_faults)
    print(f"\n[{title}] executions {counts}; FIFO displacement per group {displacement}")
    assert not faults, "\n".join(faults[:30]) + f"\n{stack.logs()}"
    return counts
