"""Runnable task types, executed on a worker of the task run's group.

A runner gets the task model and a Runtime; it renders its own properties, does the work, and
returns outputs or raises TaskFailed. Long runners poll `runtime.check()` so kills and timeouts
stop them promptly.
"""
import glob
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx

from flows.durations import parse_duration
from flows.expressions import is_truthy, render_deep

OUTPUT_LINE = re.compile(r"^::(\{.*\})::\s*$")
MAX_OUTPUT_FILE_BYTES = 1_000_000


class TaskFailed(Exception):
    def __init__(self, message: str, outputs: dict | None = None, state: str = "FAILED"):
        super().__init__(message)
        self.outputs = outputs or {}
        self.ends_in = state


class TaskStopped(Exception):
    """Killed or timed out: the runner stopped its work."""

    def __init__(self, message: str, state: str):
        super().__init__(message)
        self.ends_in = state


@dataclass
class Runtime:
    context: dict
    deadline: float | None
    timeout_text: str | None
    is_killed: Callable[[], bool]
    logs: list = field(default_factory=list)
    _last_kill_check: float = 0.0

    def render(self, value):
        return render_deep(value, self.context)

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise TaskStopped(f"timed out after {self.timeout_text}", "FAILED")
        now = time.monotonic()
        if now - self._last_kill_check >= 0.5:
            self._last_kill_check = now
            if self.is_killed():
                raise TaskStopped("killed", "KILLED")


def run_return(task, runtime: Runtime) -> dict:
    return {"value": runtime.render(task.format)}


def run_log(task, runtime: Runtime) -> dict:
    messages = task.message if isinstance(task.message, list) else [task.message]
    for message in messages:
        runtime.log(task.level, str(runtime.render(message)))
    return {}


def run_sleep(task, runtime: Runtime) -> dict:
    seconds = parse_duration(str(runtime.render(task.duration))).total_seconds()
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        runtime.check()
        time.sleep(min(0.1, left))
    return {}


def run_output_values(task, runtime: Runtime) -> dict:
    return {"values": runtime.render(task.values)}


def run_fail(task, runtime: Runtime) -> dict:
    if task.condition is not None and not is_truthy(runtime.render(task.condition)):
        return {}
    raise TaskFailed(str(runtime.render(task.errorMessage)))


def run_http_request(task, runtime: Runtime) -> dict:
    timeout = runtime.remaining() or 30.0
    kwargs = {"headers": runtime.render(task.headers)}
    body = runtime.render(task.body)
    if task.formData is not None:
        kwargs["data"] = runtime.render(task.formData)
    elif isinstance(body, (dict, list)):
        kwargs["json"] = body
    elif body is not None:
        kwargs["content"] = str(body)
    if task.contentType:
        kwargs["headers"] = {"Content-Type": runtime.render(task.contentType), **kwargs["headers"]}
    try:
        response = httpx.request(runtime.render(task.method).upper(), runtime.render(task.uri), timeout=timeout, **kwargs)
    except httpx.HTTPError as error:
        raise TaskFailed(f"HTTP request to {runtime.render(task.uri)} failed: {error}") from None
    outputs = {"code": response.status_code, "headers": dict(response.headers), "body": response.text, "uri": str(response.url)}
    if response.status_code >= 400 and not task.options.get("allowFailed"):
        raise TaskFailed(f"HTTP {response.status_code} from {outputs['uri']}", outputs)
    return outputs


# --- scripts ---------------------------------------------------------------------------------


def _script_argv(task, workdir: Path, runtime: Runtime) -> list[str]:
    kind = task.type
    lines = [str(runtime.render(line)) for line in task.beforeCommands]
    if kind.endswith("python.Script"):
        (workdir / "main.py").write_text(str(runtime.render(task.script)))
        lines.append(f"{sys.executable} main.py")
    elif kind.endswith("shell.Script"):
        (workdir / "script.sh").write_text(str(runtime.render(task.script)))
        lines.append("sh script.sh")
    else:
        lines.extend(str(runtime.render(line)) for line in task.commands)
    interpreter = task.interpreter or ["/bin/sh", "-c"]
    body = ("set -e\n" if task.failFast else "") + "\n".join(lines)
    return [*interpreter, body]


def _pump(stream, level: str, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put((level, line.rstrip("\n")))
    stream.close()


def run_script(task, runtime: Runtime) -> dict:
    with tempfile.TemporaryDirectory(prefix="wgc-task-") as directory:
        workdir = Path(directory)
        for name, content in (runtime.render(task.inputFiles) or {}).items():
            target = (workdir / name).resolve()
            if workdir.resolve() not in target.parents:
                raise TaskFailed(f"inputFiles: '{name}' points outside the working directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(str(content))
        env = {**os.environ, **{k: str(v) for k, v in runtime.render(task.env).items()}}
        env["PATH"] = f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        process = subprocess.Popen(
            _script_argv(task, workdir, runtime), cwd=workdir, env=env, text=True, bufsize=1,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        lines: queue.Queue = queue.Queue()
        pumps = [threading.Thread(target=_pump, args=(process.stdout, "INFO", lines), daemon=True),
                 threading.Thread(target=_pump, args=(process.stderr, "WARN", lines), daemon=True)]
        for pump in pumps:
            pump.start()
        variables: dict = {}
        wrote_stderr = False

        def drain():
            nonlocal wrote_stderr
            while True:
                try:
                    level, line = lines.get_nowait()
                except queue.Empty:
                    return
                match = OUTPUT_LINE.match(line)
                if match:
                    try:
                        variables.update(json.loads(match.group(1)).get("outputs") or {})
                        continue
                    except (json.JSONDecodeError, AttributeError):
                        pass
                wrote_stderr = wrote_stderr or level == "WARN"
                runtime.log(level, line)

        try:
            while process.poll() is None:
                runtime.check()
                drain()
                time.sleep(0.02)
        except TaskStopped:
            _terminate(process)
            raise
        finally:
            for pump in pumps:
                pump.join(timeout=2)
            drain()
        outputs = {"exitCode": process.returncode, "vars": variables}
        if task.outputFiles:
            outputs["outputFiles"] = _collect_output_files(workdir, task.outputFiles)
        if process.returncode != 0:
            raise TaskFailed(f"command failed with exit code {process.returncode}", outputs)
        if task.warningOnStdErr and wrote_stderr:
            raise TaskFailed("the command wrote to stderr (warningOnStdErr)", outputs, state="WARNING")
        return outputs


def _terminate(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def _collect_output_files(workdir: Path, patterns: list[str]) -> dict:
    files = {}
    for pattern in patterns:
        for path in glob.glob(str(workdir / pattern), recursive=True):
            relative = os.path.relpath(path, workdir)
            if os.path.isfile(path) and relative not in files:
                with open(path, "rb") as handle:
                    files[relative] = handle.read(MAX_OUTPUT_FILE_BYTES).decode("utf-8", errors="replace")
    return files


RUNNERS = {
    "io.kestra.plugin.core.debug.Return": run_return,
    "io.kestra.plugin.core.log.Log": run_log,
    "io.kestra.plugin.core.flow.Sleep": run_sleep,
    "io.kestra.plugin.core.output.OutputValues": run_output_values,
    "io.kestra.plugin.core.execution.Fail": run_fail,
    "io.kestra.plugin.core.http.Request": run_http_request,
    "io.kestra.plugin.scripts.shell.Commands": run_script,
    "io.kestra.plugin.scripts.shell.Script": run_script,
    "io.kestra.plugin.scripts.python.Commands": run_script,
    "io.kestra.plugin.scripts.python.Script": run_script,
}
