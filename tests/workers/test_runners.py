"""Runners in process: scripts contained (environment, user, output files, output volume, process
group), HTTP methods. The same probes run on real workers in test_runners_end_to_end.py.
docs/security-scripts.md describes what is checked here."""
import os
import resource
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.conf import settings
from pydantic import TypeAdapter

from flows.definition import parse_flow
from flows.errors import UserError
from flows.schema import Task
from workers import runners
from tests.support import stored_texts
from workers.runners import Runtime, TaskFailed, TaskStopped, run_http_request, run_script

SHELL = "io.kestra.plugin.scripts.shell.Commands"
PYTHON = "io.kestra.plugin.scripts.python.Script"
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="the worker switches user only when it runs as root")
TASKS = TypeAdapter(Task)


def task(**properties):
    return TASKS.validate_python({"id": "t", "type": SHELL, **properties})


# A task run's own scope: where its outputFiles go in the shared storage (docs/storage.md).
CONTEXT = {"flow": {"id": "f", "namespace": "company.team", "tenantId": "main"}, "execution": {"id": "e1"},
           "task": {"id": "t"}, "taskrun": {"id": "r1"}}


def runtime(*, timeout: float | None = None, killed_after: float | None = None) -> Runtime:
    started = time.monotonic()
    return Runtime(
        load_context=lambda: CONTEXT, deadline=started + timeout if timeout else None, timeout_text=f"PT{timeout}S",
        is_killed=lambda: killed_after is not None and time.monotonic() - started > killed_after,
    )


def run(properties: dict, **kwargs) -> tuple[dict, list[tuple[str, str]]]:
    rt = runtime(**kwargs)
    outputs = run_script(task(**properties), rt)
    return outputs, rt.log_lines()


def messages(logs) -> list[str]:
    return [message for _, message in logs]


def upload_faults(task_yaml: str) -> list[tuple[str, int, int]]:
    source = "id: f\nnamespace: company.team\ntasks:\n" + task_yaml
    with pytest.raises(UserError) as caught:
        parse_flow(source)
    return [(fault.message, fault.line, fault.column) for fault in caught.value.faults]


def group_members(pgid: int) -> list[str]:
    """Processes of a group still running (zombies waiting for init do not run)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            found.append(pid)
    return found


# --- the environment and the user ----------------------------------------------------------------


def test_scripts_get_a_clean_environment_never_the_workers(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "the-secret-key")
    monkeypatch.setenv("DATABASE_URL", "postgres://flows:db-password@db/flows")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:broker-password@redis:6379/0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "cloud-secret")
    monkeypatch.setenv("TZ", "Europe/Paris")
    _, logs = run({"commands": ['echo "[$SECRET_KEY][$DATABASE_URL][$CELERY_BROKER_URL][$AWS_SECRET_ACCESS_KEY]"',
                                "env | cut -d= -f1 | sort | tr '\\n' ' '; echo", 'echo "$HOME" "$(pwd)" "$TZ" "$MINE"'],
                   "env": {"MINE": "mine"}})
    text = "\n".join(messages(logs))
    for secret in ("the-secret-key", "db-password", "broker-password", "cloud-secret"):
        assert secret not in text
    assert messages(logs)[0] == "[][][][]"
    names = set(messages(logs)[1].split())
    assert {"PATH", "HOME", "LANG", "TZ", "MINE"} <= names
    assert names <= {"PATH", "HOME", "LANG", "TZ", "MINE", "USER", "LOGNAME", "PYTHONUNBUFFERED", "PWD", "SHLVL", "_"}
    home, cwd, tz, mine = messages(logs)[2].split()
    assert home == cwd and (tz, mine) == ("Europe/Paris", "mine")


@AS_ROOT
def test_a_root_worker_runs_scripts_as_the_script_user_in_a_directory_it_owns(tmp_path):
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    outputs, logs = run({"commands": ["id -un", "echo written > mine.txt", f"touch {private}/escaped || echo refused"],
                         "outputFiles": ["*.txt"]})
    assert messages(logs)[0] == settings.SCRIPT_USER
    assert "refused" in messages(logs)
    assert stored_texts(outputs["outputFiles"]) == {"mine.txt": "written\n"}
    assert not (private / "escaped").exists()


@AS_ROOT
def test_python_scripts_run_as_the_script_user_too():
    rt = runtime()
    outputs = run_script(TASKS.validate_python({
        "id": "py", "type": PYTHON, "outputFiles": ["out.txt"],
        "script": "import os, pwd\nopen('out.txt', 'w').write(pwd.getpwuid(os.getuid()).pw_name)\n"
                  "print('::{\"outputs\": {\"ok\": true}}::')\n",
    }), rt)
    assert outputs["outputFiles"] == {"out.txt": "kestra:///company/team/f/executions/e1/tasks/t/r1/out.txt"}
    assert stored_texts(outputs["outputFiles"]) == {"out.txt": settings.SCRIPT_USER}


@AS_ROOT
def test_an_unknown_script_user_fails_the_task_run_saying_how_to_fix_it(settings):
    settings.SCRIPT_USER = "no-such-user-wgc"
    with pytest.raises(TaskFailed, match="SCRIPT_USER 'no-such-user-wgc' does not exist on this worker"):
        run({"commands": ["true"]})


# --- output files --------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern, message", [
    ("/etc/hostname", "'/etc/hostname' is absolute"),
    ("../../../etc/hostname", "'../../../etc/hostname' goes up with '..'"),
    ("logs/../../secret", "goes up with '..'"),
    ("~/.ssh/id_rsa", "is absolute"),
])
def test_output_files_outside_the_working_directory_are_refused_at_upload_with_their_line(pattern, message):
    faults = upload_faults(f"  - id: s\n    type: {SHELL}\n    commands: [x]\n    outputFiles:\n      - ok.txt\n"
                           f"      - \"{pattern}\"\n")
    assert [(line, column) for _, line, column in faults] == [(9, 9)]
    assert message in faults[0][0]


def test_output_files_outside_the_working_directory_are_refused_at_run_time_too():
    bad = task(commands=["true"]).model_copy(update={"outputFiles": ["../../../etc/hostname"]})
    with pytest.raises(TaskFailed, match="outputFiles: '../../../etc/hostname' goes up"):
        run_script(bad, runtime())


def test_output_files_never_follow_symbolic_links(tmp_path):
    secret = tmp_path / "db.sqlite3"
    secret.write_text("the database")
    os.chmod(tmp_path, 0o755)
    started = time.monotonic()
    outputs, _ = run({
        "commands": [f"ln -s {secret} db.txt", "ln -s /etc/hostname hostname.txt", "mkdir d", "ln -s / d/root",
                     "ln -s / root", "echo ok > ok.txt", "mkdir -p sub && echo deep > sub/deep.txt"],
        "outputFiles": ["*", "**/*", "db.txt", "hostname.txt", "d/root/etc/hostname", "root/etc/*"],
    })
    assert stored_texts(outputs["outputFiles"]) == {"ok.txt": "ok\n", "sub/deep.txt": "deep\n"}
    assert time.monotonic() - started < 10  # today: the walk of / grows the worker to 8 GB


def test_output_files_globs_match_like_pythons_glob():
    outputs, _ = run({
        "commands": ["mkdir -p a/b .hidden && touch top.txt a/one.csv a/b/two.csv .dot.txt .hidden/x.csv a/b/c.txt"],
        "outputFiles": ["*.txt", "**/*.csv"],
    })
    assert sorted(outputs["outputFiles"]) == ["a/b/two.csv", "a/one.csv", "top.txt"]


def test_output_files_are_capped_in_number():
    with pytest.raises(TaskFailed, match=f"more than {settings.OUTPUT_FILES_MAX_COUNT} files match"):
        run({"commands": [f"for i in $(seq {settings.OUTPUT_FILES_MAX_COUNT + 1}); do echo $i > f$i.txt; done"],
             "outputFiles": ["*.txt"]})


def test_output_files_are_capped_in_size(settings):
    settings.OUTPUT_FILES_MAX_BYTES = 1000
    with pytest.raises(TaskFailed, match="larger than 1000 bytes in all, 'big.bin' included") as failure:
        run({"commands": ["head -c 2000 /dev/zero > big.bin"], "outputFiles": ["big.bin"]})
    assert failure.value.outputs["exitCode"] == 0


def test_the_walk_for_output_files_is_bounded(monkeypatch):
    monkeypatch.setattr(runners, "OUTPUT_FILES_MAX_ENTRIES", 50)
    with pytest.raises(TaskFailed, match="more than 50 entries to look at"):
        run({"commands": ["mkdir d && cd d && touch $(seq 100)"], "outputFiles": ["**/*.txt"]})
    outputs, _ = run({"commands": ["mkdir d && cd d && touch $(seq 100) && cd .. && echo r > result.txt"],
                      "outputFiles": ["result.txt"]})  # a pattern that cannot match inside d never walks it
    assert stored_texts(outputs["outputFiles"]) == {"result.txt": "r\n"}


# --- output volume -------------------------------------------------------------------------------


def test_400000_lines_of_output_keep_a_bounded_log_with_a_clear_message():
    memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outputs, logs = run({"commands": ["seq 400000", "echo '::{\"outputs\": {\"after\": 1}}::'"]})
    assert len(logs) == settings.TASK_LOG_MAX_LINES + 1
    assert messages(logs)[:2] == ["1", "2"]
    assert logs[-1][0] == "WARN" and logs[-1][1].startswith("log truncated: 390000 more lines")
    assert "TASK_LOG_MAX_LINES" in logs[-1][1]
    assert outputs["vars"] == {"after": 1}  # outputs still read past the log cap
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory_before < 100_000  # KiB; today: 486 MB


def test_the_log_is_capped_in_bytes_and_long_lines_are_cut(settings):
    settings.TASK_LOG_MAX_BYTES = 50_000
    _, logs = run({"commands": ["head -c 100000 /dev/zero | tr '\\0' x; echo", "head -c 100000 /dev/zero | tr '\\0' y"]})
    assert sum(len(message) + 1 for message in messages(logs)[:-1]) <= 50_000
    assert "line cut at" in messages(logs)[0] or len(messages(logs)[0]) <= runners.MAX_LINE_CHARS
    assert messages(logs)[-1].startswith("log truncated:")


def test_output_that_is_not_utf8_is_logged_not_lost():
    outputs, logs = run({"commands": ["printf 'caf\\351\\n'", "echo after"]})
    assert messages(logs) == ["caf\N{REPLACEMENT CHARACTER}", "after"] and outputs["exitCode"] == 0


def test_the_outcome_is_logged_past_the_cap():
    rt = runtime()
    for index in range(settings.TASK_LOG_MAX_LINES + 5):
        rt.log("INFO", str(index))
    rt.log("ERROR", "the task failed", always=True)
    assert ("ERROR", "the task failed") in rt.log_lines()


# --- stopping: the whole process group -----------------------------------------------------------


def test_a_timed_out_script_loses_its_whole_process_group_even_what_ignores_sigterm():
    rt = runtime(timeout=1)
    started = time.monotonic()
    with pytest.raises(TaskStopped, match="timed out"):
        run_script(task(commands=["(trap '' TERM; sleep 1000) &", "echo $$", "sleep 1000"]), rt)
    pgid = int(messages(rt.log_lines())[0])
    assert group_members(pgid) == []
    assert time.monotonic() - started < 10


def test_a_killed_script_loses_its_whole_process_group():
    rt = runtime(killed_after=0.5)
    with pytest.raises(TaskStopped, match="killed"):
        run_script(task(commands=["sleep 1000 &", "echo $$", "sleep 1000"]), rt)
    assert group_members(int(messages(rt.log_lines())[0])) == []


def test_what_a_finished_script_left_running_is_ended_and_does_not_hold_the_task():
    started = time.monotonic()
    outputs, logs = run({"commands": ["sleep 1000 &", "echo $$"]})
    assert outputs["exitCode"] == 0 and time.monotonic() - started < 10
    assert group_members(int(messages(logs)[0])) == []


# --- HTTP requests -------------------------------------------------------------------------------


def test_http_methods_other_than_the_standard_ones_are_refused_at_upload_with_their_line():
    faults = upload_faults("  - id: r\n    type: io.kestra.plugin.core.http.Request\n    uri: http://127.0.0.1:6379/\n"
                           "    method: SET\n")
    assert faults == [("'method': 'SET' is not an HTTP method: use one of GET, HEAD, POST, PUT, PATCH, DELETE, "
                       "OPTIONS, TRACE", 7, 13)]


def test_a_rendered_method_is_checked_before_anything_is_sent():
    """The probe: `SET key value` sent as an HTTP request line to Redis's port ran the command."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    request = TASKS.validate_python({"id": "r", "type": "io.kestra.plugin.core.http.Request",
                                     "uri": f"http://127.0.0.1:{port}/key", "method": "{{ 'SET' }}"})
    with pytest.raises(TaskFailed, match="method 'SET' is not an HTTP method"):
        run_http_request(request, runtime())
    with pytest.raises(socket.timeout):
        listener.accept()  # nothing was sent
    listener.close()


def test_http_responses_are_read_up_to_a_limit(monkeypatch):
    class Big(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * 5000)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Big)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(runners, "HTTP_BODY_MAX_BYTES", 1000)
    request = TASKS.validate_python({"id": "r", "type": "io.kestra.plugin.core.http.Request",
                                     "uri": f"http://127.0.0.1:{server.server_port}/", "method": "get"})
    try:
        with pytest.raises(TaskFailed, match="larger than 1000 bytes"):
            run_http_request(request, runtime())
        monkeypatch.setattr(runners, "HTTP_BODY_MAX_BYTES", 10_000)
        outputs = run_http_request(request, runtime())
        assert (outputs["code"], len(outputs["body"])) == (200, 5000)
    finally:
        server.shutdown()


def test_http_triggers_take_only_standard_methods_too():
    source = ("id: f\nnamespace: company.team\ntasks:\n  - {id: t, type: io.kestra.plugin.core.debug.Return, format: x}\n"
              "triggers:\n  - id: poll\n    type: io.kestra.plugin.core.http.Trigger\n    uri: http://127.0.0.1:6379/\n"
              "    method: SET\n")
    with pytest.raises(UserError) as caught:
        parse_flow(source)
    assert [(f.line, f.column) for f in caught.value.faults] == [(9, 13)]
    assert "'SET' is not an HTTP method" in caught.value.faults[0].message
