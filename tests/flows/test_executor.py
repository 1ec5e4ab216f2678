"""Flowable tasks, errors, retry, timeout, runIf, allowFailure and kill, end to end on real workers.

Each test checks the task runs an execution made (how many, which, in which state)."""
import time

import pytest

from flows.engine import execution_create, execution_kill
from flows.models import State, TaskRun
from flows.services import flow_upload
from tests.support import run_flow, stored_texts, task_runs, wait_execution, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _states(execution) -> list[tuple]:
    return sorted((run.task_id, run.value or "", run.state) for run in execution.task_runs.all())


def test_sequential_runs_children_in_order(engine):
    execution = run_flow("""
id: seq
namespace: company.team
tasks:
  - id: block
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: one
        type: io.kestra.plugin.core.debug.Return
        format: "1"
      - id: two
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.one.value }}+1"
""")
    runs = task_runs(execution)
    assert execution.state == "SUCCESS"
    assert _states(execution) == [("block", "", "SUCCESS"), ("one", "", "SUCCESS"), ("two", "", "SUCCESS")]
    assert runs["two"].outputs == {"value": "1+1"}
    assert runs["one"].parent_id == runs["block"].id and runs["one"].end_date <= runs["two"].start_date


def test_parallel_runs_branches_at_once_within_its_limit(engine):
    execution = run_flow("""
id: par
namespace: company.team
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: 2
    tasks:
      - id: a
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT1.5S
      - id: b
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT1.5S
      - id: c
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT1.5S
""")
    runs = task_runs(execution)
    assert execution.state == "SUCCESS" and len(execution.task_runs.all()) == 4
    assert runs["a"].start_date < runs["b"].end_date and runs["b"].start_date < runs["a"].end_date  # a and b overlap
    assert runs["c"].start_date >= min(runs["a"].end_date, runs["b"].end_date)  # c waited for a free slot


def test_if_runs_only_the_chosen_branch(engine):
    source = """
id: branch
namespace: company.team
inputs:
  - id: go
    type: BOOLEAN
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.go }}"
    then:
      - id: chose_then
        type: io.kestra.plugin.core.debug.Return
        format: "yes"
    else:
      - id: chose_else
        type: io.kestra.plugin.core.debug.Return
        format: "no"
"""
    assert _states(run_flow(source, inputs={"go": "true"})) == [("check", "", "SUCCESS"), ("chose_then", "", "SUCCESS")]
    assert _states(run_flow(source, inputs={"go": "false"})) == [("check", "", "SUCCESS"), ("chose_else", "", "SUCCESS")]


def test_switch_picks_a_case_or_the_defaults(engine):
    source = """
id: switch
namespace: company.team
inputs:
  - id: kind
    type: STRING
tasks:
  - id: route
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ inputs.kind }}"
    cases:
      csv:
        - id: parse_csv
          type: io.kestra.plugin.core.debug.Return
          format: csv
      json:
        - id: parse_json
          type: io.kestra.plugin.core.debug.Return
          format: json
    defaults:
      - id: unknown
        type: io.kestra.plugin.core.execution.Fail
        errorMessage: "unsupported {{ inputs.kind }}"
"""
    json_run = run_flow(source, inputs={"kind": "json"})
    assert json_run.state == "SUCCESS"
    assert _states(json_run) == [("parse_json", "", "SUCCESS"), ("route", "", "SUCCESS")]
    assert task_runs(json_run)["route"].outputs == {"value": "json", "defaults": False}
    other = run_flow(source, inputs={"kind": "xml"})
    assert other.state == "FAILED"
    assert _states(other) == [("route", "", "FAILED"), ("unknown", "", "FAILED")]
    assert task_runs(other)["unknown"].error == "unsupported xml"


def test_foreach_runs_each_value_and_keys_outputs_by_value(engine):
    execution = run_flow("""
id: loop
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", "c"]
    concurrencyLimit: 0
    tasks:
      - id: upper
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value | upper }}"
  - id: joined
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.upper['a'].value }}{{ outputs.upper['b'].value }}{{ outputs.upper['c'].value }}"
""")
    assert execution.state == "SUCCESS"
    assert _states(execution) == [("each", "", "SUCCESS"), ("joined", "", "SUCCESS"),
                                  ("upper", "a", "SUCCESS"), ("upper", "b", "SUCCESS"), ("upper", "c", "SUCCESS")]
    assert task_runs(execution)["joined"].outputs == {"value": "ABC"}


def test_foreach_concurrency_limit_one_runs_iterations_one_after_another(engine):
    execution = run_flow("""
id: loop_serial
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2]
    tasks:
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT0.3S
""")
    first, second = sorted(task_runs(execution)["nap"], key=lambda run: run.value)
    assert execution.state == "SUCCESS" and (first.value, second.value) == ("1", "2")
    assert second.start_date >= first.end_date


def test_flow_errors_run_after_a_failure_and_the_execution_still_fails(engine):
    execution = run_flow("""
id: with_errors
namespace: company.team
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: boom
  - id: never
    type: io.kestra.plugin.core.debug.Return
    format: x
errors:
  - id: alert
    type: io.kestra.plugin.core.log.Log
    message: "failed: {{ execution.id }}"
""")
    assert execution.state == "FAILED"
    assert _states(execution) == [("alert", "", "SUCCESS"), ("boom", "", "FAILED")]


def test_flowable_errors_branch_runs_inside_the_flowable(engine):
    execution = run_flow("""
id: nested_errors
namespace: company.team
tasks:
  - id: block
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: boom
        type: io.kestra.plugin.core.execution.Fail
    errors:
      - id: local_alert
        type: io.kestra.plugin.core.log.Log
        message: caught
""")
    runs = task_runs(execution)
    assert execution.state == "FAILED"
    assert _states(execution) == [("block", "", "FAILED"), ("boom", "", "FAILED"), ("local_alert", "", "SUCCESS")]
    assert runs["local_alert"].parent_id == runs["block"].id


def test_allow_failure_continues_and_ends_warning(engine):
    execution = run_flow("""
id: tolerant
namespace: company.team
tasks:
  - id: flaky
    type: io.kestra.plugin.scripts.shell.Commands
    allowFailure: true
    commands: ["exit 3"]
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: ran
""")
    runs = task_runs(execution)
    assert execution.state == "WARNING"
    assert (runs["flaky"].state, runs["flaky"].outputs["exitCode"], runs["after"].state) == ("WARNING", 3, "SUCCESS")


def test_run_if_false_skips_the_task(engine):
    execution = run_flow("""
id: conditional
namespace: company.team
inputs:
  - id: enabled
    type: STRING
    defaults: "0"
tasks:
  - id: maybe
    type: io.kestra.plugin.core.debug.Return
    format: x
    runIf: "{{ inputs.enabled }}"
  - id: always
    type: io.kestra.plugin.core.debug.Return
    format: y
""")
    runs = task_runs(execution)
    assert execution.state == "SUCCESS"
    assert (runs["maybe"].state, runs["maybe"].worker_id, runs["always"].state) == ("SKIPPED", "", "SUCCESS")


def test_retry_makes_new_attempts_on_the_same_group(engine):
    execution = run_flow("""
id: retried
namespace: company.team
tasks:
  - id: third_time_lucky
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ taskrun.attemptsCount < 2 }}"
    workerGroup: {key: gpu}
    retry:
      type: exponential
      interval: PT0.1S
      maxInterval: PT0.5S
      maxAttempt: 5
""")
    run = task_runs(execution)["third_time_lucky"]
    assert execution.state == "SUCCESS"
    assert run.attempt == 3 and [a["state"] for a in run.attempts] == ["FAILED", "FAILED", "SUCCESS"]
    assert all(a["workerId"].startswith("gpu@") for a in run.attempts)
    assert [h["state"] for h in run.state_history].count("RETRYING") == 2


def test_retry_gives_up_after_max_attempts(engine):
    execution = run_flow("""
id: retried_out
namespace: company.team
tasks:
  - id: always_fails
    type: io.kestra.plugin.core.execution.Fail
    retry: {type: constant, interval: PT0.1S, maxAttempt: 2}
""")
    run = task_runs(execution)["always_fails"]
    assert (execution.state, run.state, run.attempt, len(run.attempts)) == ("FAILED", "FAILED", 2, 2)


def test_timeout_stops_a_long_task(engine):
    started = time.monotonic()
    execution = run_flow("""
id: slow
namespace: company.team
tasks:
  - id: nap
    type: io.kestra.plugin.scripts.shell.Commands
    timeout: PT1S
    commands: ["sleep 30"]
""")
    run = task_runs(execution)["nap"]
    assert execution.state == "FAILED" and run.state == "FAILED"
    assert "timed out after PT1S" in run.error and time.monotonic() - started < 20


def test_kill_stops_running_task_runs_and_starts_nothing_new(engine):
    flow = flow_upload(source="""
id: long
namespace: company.team
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: never
""", tenant_key="main")
    execution = execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id)
    wait_for(lambda: TaskRun.objects.filter(execution=execution, task_id="nap", state=State.RUNNING).exists(),
             message="the sleep to start")
    execution_kill(execution_id=execution.id)
    killed = wait_execution(execution.id, timeout=15)
    assert killed.state == "KILLED"
    assert _states(killed) == [("nap", "", "KILLED")]
    assert [h["state"] for h in killed.state_history][-2:] == ["KILLING", "KILLED"]


def test_script_outputs_vars_logs_and_env(engine):
    execution = run_flow("""
id: scripts
namespace: company.team
tasks:
  - id: py
    type: io.kestra.plugin.scripts.python.Script
    taskRunner: {type: io.kestra.plugin.core.runner.Process}
    containerImage: python:3.11-slim
    env: {GREETING: "{{ flow.id }}"}
    outputFiles: ["*.txt"]
    script: |
      import os, sys
      print("hello from", os.environ["GREETING"])
      print("careful", file=sys.stderr)
      open("result.txt", "w").write("42")
      print('::{"outputs": {"answer": 42}}::')
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    beforeCommands: ["export N=7"]
    commands: ['echo "::{\\"outputs\\": {\\"n\\": $N}}::"']
  - id: use
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.py.vars.answer + outputs.sh.vars.n }}"
""")
    runs = task_runs(execution)
    assert execution.state == "SUCCESS"
    assert runs["py"].outputs["vars"] == {"answer": 42}
    assert stored_texts(runs["py"].outputs["outputFiles"]) == {"result.txt": "42"}
    assert runs["use"].outputs == {"value": "49"}
    logs = {(line.level, line.message) for line in runs["py"].logs.all()}
    assert ("INFO", "hello from scripts") in logs and ("WARN", "careful") in logs


def test_render_error_fails_the_task_run_naming_the_expression(engine):
    execution = run_flow("""
id: bad_expression
namespace: company.team
tasks:
  - id: oops
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.missing.value }}"
""")
    run = task_runs(execution)["oops"]
    assert execution.state == "FAILED"
    assert "{{ outputs.missing.value }}" in run.error and "missing" in run.error


def test_outputs_inside_a_loop_are_keyed_by_value_through_nested_flowables(engine):
    execution = run_flow("""
id: nested_loop
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["x", "y"]
    tasks:
      - id: block
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: first
            type: io.kestra.plugin.core.debug.Return
            format: "{{ taskrun.value }}1"
          - id: second
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.first[taskrun.value].value }}2-{{ parent.taskrun.value }}"
  - id: total
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.second['x'].value }} {{ outputs.second['y'].value }}"
""")
    assert execution.state == "SUCCESS"
    assert len(execution.task_runs.all()) == 8
    assert task_runs(execution)["total"].outputs == {"value": "x12-x y12-y"}


@pytest.fixture
def http_server():
    """A local HTTP server: GET /ok answers 200, POST /echo returns the JSON it got, the rest 404."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, code: int, body: str):
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Seen", self.headers.get("X-Token", ""))
            self.end_headers()
            self.wfile.write(body.encode())

        def do_GET(self):
            self._answer(200, '{"status": "up"}') if self.path == "/ok" else self._answer(404, "{}")

        def do_POST(self):
            received = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._answer(200, json.dumps({"echo": received}))

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_request_outputs_code_headers_and_body(engine, http_server):
    execution = run_flow(f"""
id: http
namespace: company.team
tasks:
  - id: status
    type: io.kestra.plugin.core.http.Request
    uri: {http_server}/ok
    headers: {{X-Token: "{{{{ flow.id }}}}"}}
  - id: post
    type: io.kestra.plugin.core.http.Request
    uri: {http_server}/echo
    method: POST
    body: {{n: 1}}
  - id: missing
    type: io.kestra.plugin.core.http.Request
    uri: {http_server}/nope
""")
    runs = task_runs(execution)
    assert execution.state == "FAILED"
    assert (runs["status"].outputs["code"], runs["status"].outputs["body"]) == (200, '{"status": "up"}')
    assert runs["status"].outputs["headers"]["x-seen"] == "http"
    assert runs["post"].outputs["body"] == '{"echo": {"n": 1}}'
    assert runs["missing"].state == "FAILED" and "HTTP 404" in runs["missing"].error


def test_the_expression_context_holds_flow_execution_task_and_labels(engine):
    execution = run_flow("""
id: context
namespace: company.team
labels: {team: data}
variables: {greeting: hello}
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{ vars.greeting }} {{ flow.namespace }}.{{ flow.id }} r{{ flow.revision }} {{ flow.tenantId }} {{ task.id }} {{ taskrun.attemptsCount }} {{ labels.team }} {{ execution.id }}"
""")
    assert task_runs(execution)["show"].outputs["value"] == f"hello company.team.context r1 main show 0 data {execution.id}"


def test_an_expression_over_its_budget_fails_its_task_run_at_once(engine):
    """The probes: `('%04000000000d' % 1)|length` ended SUCCESS after 4 s with the worker at 3.9 GB;
    `((9**999)**999)**22` in an If held the execution's lock while other tenants' uploads stalled."""
    started = time.monotonic()
    execution = run_flow("""
id: over_budget
namespace: company.team
tasks:
  - id: format
    type: io.kestra.plugin.core.debug.Return
    timeout: PT1S
    format: "{{ ('%04000000000d' % 1)|length }}"
    allowFailure: true
  - id: power
    type: io.kestra.plugin.core.flow.If
    condition: "{{ (((9**999)**999)**22) > 1 }}"
    then:
      - id: never
        type: io.kestra.plugin.core.debug.Return
        format: never
""")
    runs = task_runs(execution)
    assert execution.state == State.FAILED and time.monotonic() - started < 20
    assert runs["format"].state == State.WARNING
    assert "format width 4000000000 is larger than" in runs["format"].error
    assert "('%04000000000d' % 1)|length" in runs["format"].error
    assert runs["power"].state == State.FAILED and "never" not in runs
    assert "the result of ** would have more than" in runs["power"].error
