"""How many of Kestra's own core test flows upload here and run to the state Kestra's tests expect.

    .venv/bin/python tests/conformance/kestra_core_flows.py /path/to/kestra [--database-url URL]

The argument is a checkout of github.com/kestra-io/kestra (or its `core/src/test/resources/flows/valids`
directory). Nothing of Kestra's is copied into this repository: the flows are read from the
checkout, and only the expectations below are ours, read from Kestra's Java tests
(core/src/test/java, jdbc/src/test/java) for each flow: the execution's final state, the inputs the
test gives, and, where the test checks them, the number of task runs or attempts.

In scope: every flow whose every `type:` (tasks, triggers, conditions, task runners) is one this
product's schema knows, i.e. the spec's types plus those added since. Each in-scope flow is uploaded
(all of them, as Kestra's tests load them), then run on real workers (the test session's executor
and workers, tests/conftest.py), then compared. A flow that Kestra's test only starts through a
trigger is started the same way here (its source flow is run and the listener's execution awaited).

The run is tests/conformance/test_kestra_core_flows.py, skipped unless KESTRA_CHECKOUT is set; this
file holds the expectations and the report, and starts pytest (whose workers inherit the environment
of Kestra's own test run, TEST_ENVIRONMENT) when run as a script.
"""
import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

VALIDS = Path("core/src/test/resources/flows/valids")
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    """What Kestra's test expects of one flow."""

    state: str = "SUCCESS"
    inputs: dict = field(default_factory=dict)
    taskruns: int | None = None  # the number of task runs, when the test checks it
    attempts: tuple | None = None  # (task id, attempts of its task run), when the test checks it
    triggered_by: str | None = None  # started by a Flow trigger when this flow's execution ends
    second: str | None = None  # the state of a second execution started at once (concurrency)
    chain: tuple | None = None  # the states of a CREATE_NEW_EXECUTION chain, in order
    files: tuple = ()  # inputs given as uploaded files
    labels: dict = field(default_factory=dict)  # labels given when the execution is created
    resume: dict | None = None  # once PAUSED, resumed with these onResume inputs
    kv: dict = field(default_factory=dict)  # key-value pairs of the flow's namespace put before it runs


INPUTS = {  # Kestra's InputsTest.inputs, less `file` (given as an upload)
    "string": "myString", "enum": "ENUM_VALUE", "int": "42", "float": "42.42", "bool": "false",
    "instant": "2019-10-06T18:27:49Z", "date": "2019-10-06", "time": "18:27:49", "duration": "PT5M6S",
    "json": '{"a": "b"}', "uri": "https://www.google.com", "nested.string": "a string", "nested.more.int": "123",
    "nested.bool": "true", "validatedString": "A123", "validatedInt": "12", "validatedDate": "2023-01-02",
    "validatedDateTime": "2023-01-01T00:00:10Z", "validatedDuration": "PT15S", "validatedFloat": "0.42",
    "validatedTime": "11:27:49", "secret": "secret", "array": "[1, 2, 3]",
    "yaml": "some: property\nalist:\n- of\n- values",
}
RETRIED_TWICE = ("RETRIED", "RETRIED", "FAILED")
NO_EXECUTION = "none"  # a trigger that must start nothing

# Flow id → Case; a flow in scope that is not listed is expected to end SUCCESS, run with no inputs.
EXPECTED = {
    "allow-failure": Case("FAILED", inputs={"crash": "1"}, taskruns=10),
    "each-parallel-pause": Case(taskruns=7),
    "each-parallel-subflow-notfound": Case("FAILED"),
    "for-each-item": Case(inputs={"batch": 4}, files=("file",), taskruns=4),
    "for-each-item-failed": Case("FAILED", files=("file",), taskruns=3),
    "for-each-item-no-wait": Case(files=("file",), taskruns=4),
    "for-each-item-outputs": Case(files=("file",), taskruns=5),
    "retry-subflow": Case("FAILED"),
    "task-allow-failure-executable-flow": Case("WARNING", taskruns=2),
    "task-allow-failure-executable-foreachitem": Case("WARNING", files=("file",), taskruns=4),
    "task-allow-warning-executable-foreachitem": Case(files=("file",), taskruns=4),
    "flow-concurrency-cancel-pause": Case(second="CANCELLED"),
    "flow-concurrency-queue-pause": Case(second="SUCCESS"),
    "pause": Case(resume={}, taskruns=3),
    "pause-delay": Case(taskruns=3),
    "pause-delay-from-input": Case(taskruns=3),
    "pause-timeout": Case("FAILED", taskruns=1),
    "pause_no_tasks": Case(resume={}),
    "pause_on_resume": Case(resume={"asked": "restarted"}),
    "pause_on_resume_optional": Case(resume={}),
    "restart_pause_last_failed": Case("FAILED"),
    "each-sequential": Case("WARNING", taskruns=11),
    "fail-on-condition": Case("FAILED", inputs={"param": "fail"}, taskruns=2),
    "fail-on-switch": Case("FAILED", inputs={"param": "fail"}, taskruns=1),
    "kv": Case(kv={"my-key": {"field": "value"}}),  # KvFunctionTest puts it first
    "labels-update-task": Case(inputs={"labelsJson": '{"keyFromJson": "valueFromJson"}', "labelsMapKey": "keyFromMap",
                                       "labelsMapValue": "valueFromMap", "labelsListKey": "keyFromList",
                                       "labelsListValue": "valueFromList"},
                               labels={"keyFromExecution": "valueFromExecution",
                                       "overriddenExecutionLabelKey": "executionValueThatWillGetOverridden"}),
    "primitive-labels-flow": Case(inputs={"intLabel": 42, "boolLabel": True, "floatLabel": 3.14},
                                  labels={"existingLabel": "someValue"}),
    "waitfor-max-duration": Case("FAILED"),
    "waitfor-max-iterations": Case("FAILED"),
    "waitfor-multiple-tasks-failed": Case("FAILED"),
    "working-directory": Case(inputs={"failed": "false"}, taskruns=4),
    "working-directory-cache": Case(taskruns=3),
    "working-directory-each": Case(taskruns=8),
    "working-directory-inputs": Case(taskruns=2),
    "working-directory-outputs": Case(taskruns=2),
    "working-directory-taskrun": Case(taskruns=3),
    "working-directory-taskrun-nested": Case(taskruns=6),
    "disable-error": Case("FAILED"),
    "each-empty": Case(taskruns=2),
    "each-null": Case("FAILED", taskruns=1),
    "empty-variables": Case(inputs={"emptyKey": '{ "foo": "" }', "emptySubObject": '{"json":{"someEmptyObject":{}}}'},
                            taskruns=3),
    "errors": Case("FAILED", taskruns=7),
    "failed-first": Case("FAILED"),
    "flow-concurrency-cancel": Case(second="CANCELLED"),
    "flow-concurrency-fail": Case(second="FAILED"),
    "flow-concurrency-queue": Case(second="SUCCESS"),
    "flow-trigger-preconditions-flow-listen": Case(triggered_by="flow-trigger-preconditions-flow-b"),
    "flow-with-outputs-failed": Case("FAILED"),
    "flowable-with-parent-fail": Case("FAILED", taskruns=5),
    "for-each-item-subflow-failed": Case("FAILED", files=("items",)),
    "for-each-item-subflow": Case(files=("items",)),
    "for-each-item-outputs-subflow": Case(files=("items",)),
    "if": Case(inputs={"if1": "true", "if2": "false", "if3": "true"}),
    "if-condition": Case(inputs={"param": "true"}, taskruns=2),
    "if-without-else": Case(inputs={"param": "true"}, taskruns=2),
    "if-in-flowable": Case(inputs={"param": "true"}, taskruns=8),
    "input-log-secret": Case(taskruns=1),
    "inputs": Case(inputs=INPUTS, files=("file",)),
    "inputs-large": Case(inputs={"string": "myString"}),
    "inputs-small-files": Case(files=("f",)),
    "parallel": Case(taskruns=8),
    "parallel-nested": Case(taskruns=11),
    "restart-each": Case("FAILED", inputs={"failed": "FIRST"}),
    "restart_always_failed": Case("FAILED"),
    "restart_last_failed": Case("FAILED", taskruns=3),
    "restart_local_errors": Case("FAILED"),
    "restart_with_inputs": Case(inputs={"string": "myString", "int": "42", "float": "42.42",
                                        "instant": "2019-10-06T18:27:49Z"}, files=("file",)),
    "retry-expo": Case("FAILED", taskruns=1, attempts=("failed", 3)),
    "retry-and-fail": Case("FAILED", taskruns=2, attempts=("keepFailingWithRetry", 3)),
    "retry-failed": Case("FAILED", taskruns=2, attempts=("failed", 5)),
    "retry-failed-flow-attempts": Case("FAILED", attempts=("fail", 4)),
    "retry-failed-flow-duration": Case("FAILED", attempts=("fail", 3)),
    "retry-failed-task-attempts": Case("FAILED", attempts=("fail", 4)),
    "retry-failed-task-duration": Case("FAILED", attempts=("fail", 3)),
    "retry-flowable": Case("FAILED"),
    "retry-flowable-child": Case("FAILED"),
    "retry-flowable-nested-child": Case("FAILED"),
    "retry-flowable-parallel": Case("FAILED"),
    "retry-new-execution-flow-attempts": Case("FAILED", chain=RETRIED_TWICE),
    "retry-new-execution-flow-duration": Case("FAILED", chain=RETRIED_TWICE),
    "retry-new-execution-task-attempts": Case("FAILED", chain=RETRIED_TWICE),
    "retry-new-execution-task-duration": Case("FAILED", chain=RETRIED_TWICE),
    "retry-random": Case("FAILED", taskruns=1, attempts=("failed", 3)),
    "retry-success": Case("WARNING", taskruns=1, attempts=("failed", 4)),
    "retry-success-first-attempt": Case(taskruns=1, attempts=("not-retry-and-no-warning", 1)),
    "sequential": Case(taskruns=11),
    "sequential-with-global-errors": Case("FAILED", taskruns=6),
    "sequential-with-local-errors": Case("FAILED", taskruns=6),
    "sla-max-duration-fail": Case("FAILED"),
    "switch": Case(inputs={"string": "FIRST"}),
    "switch-impossible": Case("FAILED", inputs={"string": "impossible"}),
    "task-allow-failure-flowable": Case("WARNING"),
    "task-allow-failure-runnable": Case("WARNING"),
    "task-allow-warning-flowable": Case(taskruns=3),
    "task-allow-warning-runnable": Case(taskruns=2, attempts=("fail", 3)),
    "task-runif": Case("FAILED", taskruns=4),
    "task-flow": Case(inputs={"string": "OK"}, labels={"mainFlowExecutionLabel": "execFoo"}, taskruns=1),  # waitSuccess
    "task-flow-inherited-labels": Case(inputs={"string": "OK"}, taskruns=1),  # FlowCaseTest.noLabels
    "trigger-flow-listener": Case(triggered_by="trigger-flow"),
    # Kestra's Flow trigger starts nothing when its inputs cannot be rendered (trigger/Flow.java)
    "trigger-flow-listener-invalid": Case(NO_EXECUTION, triggered_by="trigger-flow"),
    "trigger-flow-listener-namespace-condition": Case(triggered_by="trigger-flow"),
    "trigger-flow-listener-no-inputs": Case(triggered_by="trigger-flow"),
    "trigger-flow-listener-with-pause": Case(triggered_by="trigger-flow-with-pause"),
    "trigger-multiplecondition-flow-c": Case("FAILED"),
    "variables-invalid": Case("FAILED", taskruns=2),
    "variables": Case(taskruns=3),
}


# The environment of Kestra's test task (its build.gradle and application-test.yml), in this product's
# names: SECRET_<NAME> base64-encoded as in Kestra, ENV_<NAME> for what Kestra reads from KESTRA_<NAME>,
# KESTRA_GLOBALS for `kestra.variables.globals` (docs/configuration.md).
TEST_ENVIRONMENT = {
    "SECRET_MY_SECRET": base64.b64encode(b'{"secretKey":"secretValue"}').decode(),
    "SECRET_NEW_LINE": "cGFzc3dvcmR2ZXJ5dmVyeXZleXJsb25ncGFzc3dvcmR2ZXJ5dmVyeXZleXJsb25ncGFzc3dvcmR2\n"
                       "ZXJ5dmVyeXZleXJsb25ncGFzc3dvcmR2ZXJ5dmVyeXZleXJsb25ncGFzc3dvcmR2ZXJ5dmVyeXZl\neXJsb25n",
    "SECRET_WEBHOOK_KEY": base64.b64encode(b"secretKey").decode(),
    "SECRET_PASSWORD": "cGFzc3dvcmQ=",
    "ENV_TEST1": "true",
    "ENV_TEST2": "Pass by env",
    "KESTRA_GLOBALS": json.dumps({"string": "string", "int": 1, "bool": True, "nested": {"int": 2}}),
}


def valids_dir(checkout: str) -> Path:
    path = Path(checkout)
    return path if (path / "minimal.yaml").exists() else path / VALIDS


def plugin_types(node) -> set[str]:
    """Every `type:` of the document that names a Kestra plugin (not input or output types)."""
    found = set()
    if isinstance(node, dict):
        kind = node.get("type")
        if isinstance(kind, str) and kind.startswith("io.kestra"):
            found.add(kind)
        for value in node.values():
            found |= plugin_types(value)
    elif isinstance(node, list):
        for value in node:
            found |= plugin_types(value)
    return found


def report(results: list[dict]) -> str:
    """The table and the totals; `results` has one row per in-scope flow."""
    uploaded = [r for r in results if r["uploaded"]]
    ran = [r for r in results if r["outcome"] is not None]
    passed = [r for r in results if r["passed"]]
    lines = [f"{'flow':48} {'upload':7} {'expected':10} {'got':10} note"]
    for r in sorted(results, key=lambda r: (r["passed"], r["file"])):
        lines.append(f"{r['file']:48} {'yes' if r['uploaded'] else 'NO':7} {r['expected']:10} "
                     f"{r['outcome'] or '-':10} {'' if r['passed'] else r['note'][:300]}")
    total = len(results)
    lines.append("")
    lines.append(f"in scope: {total}; uploaded: {len(uploaded)} ({100 * len(uploaded) / total:.0f}%); "
                 f"ran: {len(ran)}; as Kestra's tests expect: {len(passed)} ({100 * len(passed) / total:.0f}%)")
    return "\n".join(lines)


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", help="a checkout of kestra-io/kestra, or its flows/valids directory")
    parser.add_argument("--database-url", help="DATABASE_URL for the run (default: SQLite)")
    args = parser.parse_args()
    env = {**os.environ, **TEST_ENVIRONMENT, "KESTRA_CHECKOUT": str(Path(args.checkout).resolve())}
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    command = [sys.executable, "-m", "pytest", "-q", "-s",
               str(ROOT / "tests/conformance/test_kestra_core_flows.py")]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
