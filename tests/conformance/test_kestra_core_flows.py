"""The measurement of tests/conformance/kestra_core_flows.py, on the session's real workers: skipped
unless KESTRA_CHECKOUT names a checkout of Kestra (run that script rather than this file)."""
import os
import time

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile

from flows.definition import _MODELS_BY_TYPE
from flows.engine import execution_create, execution_resume
from flows.errors import UserError
from flows.models import TERMINAL_STATES, Execution, State
from flows.reconciler import taskruns_reconcile
from flows.schema import Condition
from flows.services import flow_upload, kv_put

from .kestra_core_flows import EXPECTED, NO_EXECUTION, Case, plugin_types, report, valids_dir

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("KESTRA_CHECKOUT"), reason="KESTRA_CHECKOUT is not set"),
]
KNOWN_TYPES = set(_MODELS_BY_TYPE) | {"io.kestra.plugin.core.runner.Process"} | {
    name for model in Condition.__origin__.__args__ for name in model.model_fields["type"].annotation.__args__}
TIMEOUT = 120.0


def _in_scope(directory):
    for path in sorted(directory.glob("*.y*ml")):
        source = path.read_text()
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and plugin_types(data) <= KNOWN_TYPES:
            yield path.name, data.get("namespace"), data.get("id"), source


def _start(namespace: str, flow_id: str, case: Case) -> Execution:
    lines = "".join(f"value-{index}\n" for index in range(102)).encode()  # ForEachItemCaseTest's 102 lines
    inputs = {**case.inputs, **{name: SimpleUploadedFile(f"{name}.txt", lines) for name in case.files}}
    return execution_create(tenant_key="main", namespace=namespace, flow_id=flow_id, inputs=inputs,
                            labels=case.labels or None)


def _wait(done, *, timeout: float = TIMEOUT) -> None:
    """Polls `done()`, running a reconciler pass each second (MAX_DURATION SLAs, lost messages)."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        taskruns_reconcile()
        time.sleep(1.0)


def _ended(ids) -> bool:
    return not Execution.objects.filter(id__in=ids).exclude(state__in=TERMINAL_STATES).exists()


def _compare(case: Case, execution: Execution | None, row: dict, *, second: Execution | None = None) -> None:
    if execution is None:
        row["note"] = "no execution was started"
        return
    execution.refresh_from_db()
    row["outcome"] = execution.state
    faults = []
    if execution.state != case.state:
        problems = list(execution.task_runs.exclude(error="").values_list("task_id", "error")[:3])
        problems += [("execution", m) for m in execution.logs.filter(task_run__isnull=True).values_list("message", flat=True)[:2]]
        faults.append(f"state {execution.state}: {problems}")
    if case.taskruns is not None and execution.task_runs.count() != case.taskruns:
        faults.append(f"{execution.task_runs.count()} task runs, expected {case.taskruns}")
    if case.attempts is not None:
        task_id, attempts = case.attempts
        run = execution.task_runs.filter(task_id=task_id).first()
        if run is None or run.attempt != attempts:
            faults.append(f"{task_id}: attempt {run.attempt if run else None}, expected {attempts}")
    if second is not None:
        second.refresh_from_db()
        if second.state != case.second:
            faults.append(f"second execution {second.state}, expected {case.second}")
    row["passed"] = not faults
    row["note"] = "; ".join(faults)


@pytest.mark.timeout(3600)
def test_kestra_core_flows(engine, capsys):
    flows = list(_in_scope(valids_dir(os.environ["KESTRA_CHECKOUT"])))
    rows = {}
    for name, _, flow_id, source in flows:
        case = EXPECTED.get(flow_id, Case())
        rows[name] = {"file": name, "uploaded": False, "expected": case.state, "outcome": None, "passed": False,
                      "note": ""}
        try:
            flow_upload(source=source, tenant_key="main")
            rows[name]["uploaded"] = True
        except UserError as error:
            rows[name]["note"] = "upload refused: " + " | ".join(str(fault) for fault in error.faults)
    started: dict[str, tuple] = {}
    for name, namespace, flow_id, _ in flows:
        case = EXPECTED.get(flow_id, Case())
        if not rows[name]["uploaded"] or case.triggered_by:
            continue
        for key, value in case.kv.items():
            kv_put(tenant_key="main", namespace=namespace, key=key, value=value)
        try:
            first = _start(namespace, flow_id, case)
            second = _start(namespace, flow_id, case) if case.second else None
        except UserError as error:
            rows[name]["note"] = f"execution refused: {error}"
            continue
        started[name] = (first, second)
        if case.resume is not None:
            _wait(lambda: Execution.objects.get(id=first.id).state in (State.PAUSED, *TERMINAL_STATES), timeout=30)
            if Execution.objects.get(id=first.id).state == State.PAUSED:
                execution_resume(execution_id=first.id, inputs=case.resume)
        _wait(lambda: _ended([first.id] + ([second.id] if second else [])), timeout=TIMEOUT)
    for name, namespace, flow_id, _ in flows:
        case = EXPECTED.get(flow_id, Case())
        if name not in started and not (case.triggered_by and rows[name]["uploaded"]):
            continue
        if case.chain:
            chain = Execution.objects.filter(namespace=namespace, flow_id=flow_id).order_by("attempt")
            _wait(lambda: chain.count() >= len(case.chain) and _ended(chain.values_list("id", flat=True)))
            states = tuple(chain.values_list("state", flat=True))
            rows[name].update(outcome=states[-1] if states else None, passed=states == case.chain,
                              note="" if states == case.chain else f"chain {states}, expected {case.chain}")
            continue
        if case.triggered_by:
            listener = Execution.objects.filter(namespace=namespace, flow_id=flow_id).order_by("created")
            if case.state == NO_EXECUTION:
                started_any = listener.exists()
                rows[name].update(outcome=NO_EXECUTION if not started_any else listener.first().state,
                                  passed=not started_any, note="an execution was started" if started_any else "")
                continue
            _wait(lambda: listener.exists() and _ended(listener.values_list("id", flat=True)[:1]), timeout=30)
            _compare(case, listener.first(), rows[name])
            continue
        first, second = started[name]
        _compare(case, first, rows[name], second=second)
    text = report(list(rows.values()))
    with capsys.disabled():
        print("\n" + text)
    output = os.environ.get("KESTRA_REPORT")
    if output:
        with open(output, "w") as handle:
            handle.write(text + "\n")
