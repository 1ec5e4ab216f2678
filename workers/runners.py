"""Runnable task types, executed on a worker of the task run's group.

A runner gets the task model and a Runtime; it renders its own properties, does the work, and
returns outputs or raises TaskFailed. Long runners poll `runtime.check()` so kills and timeouts
stop them promptly. A task run's log is capped (TASK_LOG_MAX_LINES, TASK_LOG_MAX_BYTES), whatever
the runner. Scripts are contained as docs/security-scripts.md describes: a clean environment, an
unprivileged user when the worker runs as root, their whole process group killed when they stop,
and output files read only from regular files inside their working directory.
"""
import json
import logging
import os
import pwd
import queue
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
from django.conf import settings

from flows.durations import parse_duration
from flows.errors import UserError
from flows.expressions import is_template, is_truthy, render_deep
from flows.schema import HTTP_METHODS, output_files_problem
from flows.engine import execution_resume
from flows.selectors import MISSING, execution_get, kv_value, tenant_get
from flows.services import kv_delete, kv_put

from . import workdir as storage_files  # the working directory and the shared storage (docs/storage.md)

logger = logging.getLogger(__name__)

OUTPUT_LINE = re.compile(r"^::(\{.*\})::\s*$")
MAX_LINE_CHARS = 10_000  # a longer line is kept cut, with a mark
MAX_VARS_BYTES = 1_000_000  # `::{"outputs": ...}::` lines of one task run
HTTP_BODY_MAX_BYTES = 10_000_000
OUTPUT_FILES_MAX_ENTRIES = 100_000  # directory entries looked at while matching outputFiles
OUTPUT_FILES_MAX_DEPTH = 32
KILL_GRACE_SECONDS = 3.0  # between SIGTERM and SIGKILL
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


def _has_template(value) -> bool:
    if isinstance(value, dict):
        return any(_has_template(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_template(item) for item in value)
    return is_template(value)


@dataclass
class Runtime:
    load_context: Callable[[], dict]  # read once, when the task first needs it (most tasks render nothing)
    deadline: float | None
    timeout_text: str | None
    is_killed: Callable[[], bool]
    # Writes log lines while the task runs (docs/operations.md); None: all are written at its end.
    write_logs: Callable[[list], None] | None = None
    logs: list = field(default_factory=list)
    _written: int = 0  # how many of `logs` write_logs has stored
    _last_write: float = 0.0
    _last_kill_check: float = 0.0
    _log_bytes: int = 0
    _dropped_lines: int = 0
    _dropped_bytes: int = 0
    _context: dict | None = None
    # A WorkingDirectory's directory, shared by its tasks (workers/execution.py); None: a directory of the task's own.
    workdir: Path | None = None

    @property
    def context(self) -> dict:
        if self._context is None:
            self._context = self.load_context()
        return self._context

    def render(self, value):
        return render_deep(value, self.context) if _has_template(value) else value

    def log(self, level: str, message: str, *, always: bool = False) -> None:
        """Keep a log line, up to the task run's caps; `always` lines (the outcome) are kept past them."""
        if len(message) > MAX_LINE_CHARS:
            message = message[:MAX_LINE_CHARS] + f"… [line cut at {MAX_LINE_CHARS} characters]"
        size = len(message.encode("utf-8", errors="replace")) + 1
        if not always and (self._dropped_lines or len(self.logs) >= settings.TASK_LOG_MAX_LINES
                           or self._log_bytes + size > settings.TASK_LOG_MAX_BYTES):
            self._dropped_lines += 1
            self._dropped_bytes += size
            return
        self._log_bytes += size
        self.logs.append((level, message))
        self._write_due()

    def _write_due(self) -> None:
        """Store the lines not yet written, at most every TASK_LOG_FLUSH_SECONDS: the log of a task
        that runs is readable while it runs. A write that fails leaves them for the task run's end."""
        if self.write_logs is None or self._written >= len(self.logs):
            return
        now = time.monotonic()
        if now - self._last_write < settings.TASK_LOG_FLUSH_SECONDS:
            return
        self._last_write = now
        batch = self.logs[self._written:]
        try:
            self.write_logs(batch)
        except Exception:  # the database is away: the end of the task run writes them
            logger.warning("could not write %d log line(s) of a running task; they are kept for its end",
                           len(batch), exc_info=True)
            return
        self._written += len(batch)

    def unwritten_lines(self) -> list[tuple[str, str]]:
        """The lines kept that were not written while the task ran, for its end to write."""
        return self.log_lines()[self._written:]

    def log_lines(self) -> list[tuple[str, str]]:
        """The log lines kept, and a last line saying what was not."""
        if not self._dropped_lines:
            return self.logs
        return [*self.logs, ("WARN", (
            f"log truncated: {self._dropped_lines} more lines ({self._dropped_bytes} bytes) were not kept; a task run "
            f"keeps at most {settings.TASK_LOG_MAX_LINES} lines and {settings.TASK_LOG_MAX_BYTES} bytes of log "
            "(TASK_LOG_MAX_LINES, TASK_LOG_MAX_BYTES)"))]

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        self._write_due()
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


def run_echo(task, runtime: Runtime) -> dict:
    runtime.log(task.level, str(runtime.render(task.format)))
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


# --- KV store (docs/core-tasks.md): the worker writes the namespace's store in the database --------


def _kv_place(task, runtime: Runtime) -> tuple[str, str, str]:
    """The tenant, namespace and key a KV task names, rendered."""
    return runtime.context["flow"]["tenantId"], str(runtime.render(task.namespace)), str(runtime.render(task.key))


def _kv_typed(value, kv_type: str | None):
    """The rendered value as `kvType` says; without one, as rendered."""
    if kv_type is None:
        return value
    if kv_type in ("STRING", "DATETIME", "DATE", "DURATION"):
        return value if isinstance(value, str) else json.dumps(value)
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
    fits = {"NUMBER": isinstance(parsed, (int, float)) and not isinstance(parsed, bool),
            "BOOLEAN": isinstance(parsed, bool), "JSON": isinstance(parsed, (dict, list))}[kv_type]
    if not fits:
        raise TaskFailed(f"the value '{str(value)[:200]}' is not of kvType {kv_type}")
    return parsed


def _refused_fails(action, **arguments):
    """A call into the flows app (KV store, resume); what it refuses fails the task run with its message."""
    try:
        return action(**arguments)
    except UserError as error:
        raise TaskFailed(str(error)) from None


def _kv_missing(key: str, namespace: str) -> TaskFailed:
    return TaskFailed(f"the key '{key}' does not exist in the namespace '{namespace}'")


def run_kv_set(task, runtime: Runtime) -> dict:
    tenant, namespace, key = _kv_place(task, runtime)
    value = _kv_typed(runtime.render(task.value), task.kvType)
    _refused_fails(kv_put, tenant_key=tenant, namespace=namespace, key=key, value=value,
              ttl=str(runtime.render(task.ttl)) if task.ttl else None, overwrite=task.overwrite)
    return {}


def run_kv_get(task, runtime: Runtime) -> dict:
    tenant, namespace, key = _kv_place(task, runtime)
    value = _refused_fails(kv_value, tenant_key=tenant, namespace=namespace, key=key)
    if value is MISSING and task.errorOnMissing:
        raise _kv_missing(key, namespace)
    return {"value": None if value is MISSING else value}


def run_kv_delete(task, runtime: Runtime) -> dict:
    tenant, namespace, key = _kv_place(task, runtime)
    deleted = _refused_fails(kv_delete, tenant_key=tenant, namespace=namespace, key=key)
    if not deleted and task.errorOnMissing:
        raise _kv_missing(key, namespace)
    return {"deleted": deleted}


def run_resume(task, runtime: Runtime) -> dict:
    """Resume a paused execution of this tenant (docs/core-tasks.md); `namespace` and `flowId`, when
    given, must be the execution's."""
    def resume():
        execution = execution_get(tenant_get(runtime.context["flow"]["tenantId"]), str(runtime.render(task.executionId)))
        for name, expected, actual in (("namespace", task.namespace, execution.namespace),
                                       ("flowId", task.flowId, execution.flow_id)):
            if expected is not None and str(runtime.render(expected)) != actual:
                raise UserError(f"execution {execution.id} is not of {name} '{runtime.render(expected)}'")
        execution_resume(execution_id=execution.id, inputs=runtime.render(task.inputs))

    _refused_fails(resume)
    return {}


def run_http_request(task, runtime: Runtime) -> dict:
    method = str(runtime.render(task.method)).strip().upper()
    if method not in HTTP_METHODS:  # a rendered method too: never another protocol's command (docs/security-scripts.md)
        raise TaskFailed(f"method '{method[:40]}' is not an HTTP method: use one of {', '.join(HTTP_METHODS)}")
    uri = runtime.render(task.uri)
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
        with httpx.stream(method, uri, timeout=runtime.remaining() or 30.0, **kwargs) as response:
            content = bytearray()
            for chunk in response.iter_bytes():
                content += chunk
                if len(content) > HTTP_BODY_MAX_BYTES:
                    raise TaskFailed(f"the response of {uri} is larger than {HTTP_BODY_MAX_BYTES} bytes")
                runtime.check()
            text = content.decode(response.encoding or "utf-8", errors="replace")
    except httpx.HTTPError as error:
        raise TaskFailed(f"HTTP request to {uri} failed: {error}") from None
    outputs = {"code": response.status_code, "headers": dict(response.headers), "body": text, "uri": str(response.url)}
    if response.status_code >= 400 and not task.options.get("allowFailed"):
        raise TaskFailed(f"HTTP {response.status_code} from {outputs['uri']}", outputs)
    return outputs


# --- scripts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptUser:
    """Whom a script runs as: the worker's own user, or SCRIPT_USER when the worker is root."""

    uid: int
    gid: int
    name: str
    switch: bool  # run the script as this user (the worker is root)


def script_user() -> ScriptUser:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return ScriptUser(entry.pw_uid, entry.pw_gid, entry.pw_name, switch=False)
    name = settings.SCRIPT_USER
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise TaskFailed(f"SCRIPT_USER '{name}' does not exist on this worker: create it, or name another "
                         "unprivileged user (docs/security-scripts.md)") from None
    return ScriptUser(entry.pw_uid, entry.pw_gid, entry.pw_name, switch=entry.pw_uid != 0)


def _may(info: os.stat_result, user: ScriptUser, bit: int) -> bool:
    """Whether `user` has `bit` (1: execute or search, 4: read) on a file, by its mode bits."""
    if info.st_uid == user.uid:
        return bool(info.st_mode >> 6 & bit)
    if info.st_gid == user.gid:
        return bool(info.st_mode >> 3 & bit)
    return bool(info.st_mode & bit)


def _runnable_by(path: str, user: ScriptUser) -> bool:
    try:
        for place in {os.path.abspath(path), os.path.realpath(path)}:
            if not all(_may(os.stat(directory), user, 1) for directory in Path(place).parents):
                return False
        return _may(os.stat(path), user, 1 | 4)
    except OSError:
        return False


def _python_for(user: ScriptUser) -> str:
    """The worker's Python if the script's user can run it, else the system's."""
    candidates = [sys.executable, os.path.realpath(sys.executable), shutil.which("python3", path=SYSTEM_PATH)]
    for candidate in candidates:
        if candidate and (not user.switch or _runnable_by(candidate, user)):
            return candidate
    raise TaskFailed(f"no Python that user '{user.name}' may run: install python3 (docs/security-scripts.md)")


def script_environment(task_env: dict, *, home: Path, bin_dir: Path, user: ScriptUser) -> dict:
    """A clean environment: never the worker's own variables (its secret key, database and broker
    URLs), only PATH, HOME, LANG and TZ, then the task's `env`."""
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH') or SYSTEM_PATH}",
        "HOME": str(home),
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "TZ": os.environ.get("TZ") or "UTC",
        "USER": user.name,
        "LOGNAME": user.name,
        "PYTHONUNBUFFERED": "1",
    }
    env.update({str(key): str(value) for key, value in task_env.items()})
    return env


def _script_argv(task, workdir: Path, runtime: Runtime) -> list[str]:
    kind = task.type
    lines = [str(runtime.render(line)) for line in task.beforeCommands]
    if kind.endswith("python.Script"):
        (workdir / "main.py").write_text(str(runtime.render(task.script)))
        lines.append(f"{shlex.quote(str(workdir.parent / 'bin' / 'python'))} main.py")
    elif kind.endswith("shell.Script"):
        (workdir / "script.sh").write_text(str(runtime.render(task.script)))
        lines.append("sh script.sh")
    else:
        lines.extend(str(runtime.render(line)) for line in task.commands)
    interpreter = task.interpreter or ["/bin/sh", "-c"]
    body = ("set -e\n" if task.failFast else "") + "\n".join(lines)
    return [*interpreter, body]


def _pump(stream, level: str, lines: queue.Queue) -> None:
    """Read one pipe to its end, line by line (long lines in pieces), never failing on bad UTF-8."""
    try:
        for raw in iter(lambda: stream.readline(MAX_LINE_CHARS), b""):
            lines.put((level, raw.decode("utf-8", errors="replace").rstrip("\r\n")))
    finally:
        stream.close()
        lines.put((level, None))


def _hand_over(directory: Path, user: ScriptUser) -> None:
    """The working directory and what the worker wrote in it belong to the script's user."""
    if not user.switch:
        return
    for root, directories, files in os.walk(directory):
        os.chown(root, user.uid, user.gid, follow_symlinks=False)
        for name in files:
            os.chown(os.path.join(root, name), user.uid, user.gid, follow_symlinks=False)


def run_script(task, runtime: Runtime) -> dict:
    user = script_user()
    patterns = list(task.outputFiles or [])
    for pattern in patterns:
        if problem := output_files_problem(pattern):
            raise TaskFailed(f"outputFiles: {problem}")
    with task_directory(runtime, user) as workdir:
        return _run_script_in(task, runtime, workdir, user, patterns)


@contextmanager
def task_directory(runtime: Runtime, user: "ScriptUser"):
    """The directory a task works in: its WorkingDirectory's, else one of its own, removed after."""
    if runtime.workdir is not None:
        yield runtime.workdir
        return
    with tempfile.TemporaryDirectory(prefix="wgc-task-", ignore_cleanup_errors=True) as directory:
        yield working_directory(Path(directory), user)


def working_directory(base: Path, user: ScriptUser) -> Path:
    """`base/work`, where scripts run, beside `base/bin`, which holds the Python they may call."""
    workdir, bin_dir = base / "work", base / "bin"
    workdir.mkdir(mode=0o700)
    bin_dir.mkdir()
    os.chmod(base, 0o711)
    python = _python_for(user)
    for name in ("python", "python3"):
        (bin_dir / name).symlink_to(python)
    return workdir


def _run_script_in(task, runtime: Runtime, workdir: Path, user: ScriptUser, patterns: list[str]) -> dict:
    bin_dir = workdir.parent / "bin"
    storage_files.lay_namespace_files(task, runtime, workdir)  # then inputFiles, which may replace them
    storage_files.lay_input_files(task, runtime, workdir)
    argv = _script_argv(task, workdir, runtime)
    env = script_environment(runtime.render(task.env), home=workdir, bin_dir=bin_dir, user=user)
    _hand_over(workdir, user)
    identity = {"user": user.uid, "group": user.gid, "extra_groups": []} if user.switch else {}
    process = subprocess.Popen(
        argv, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        start_new_session=True, umask=0o077, **identity,
    )
    try:
        outputs, wrote_stderr = _follow(process, runtime)
    finally:
        _kill_group(process)  # whatever happened, nothing it started outlives it
    if patterns:
        try:
            outputs["outputFiles"] = output_files_store(runtime, workdir, patterns, user)
        except TaskFailed as failure:
            raise TaskFailed(str(failure), outputs) from None
    if process.returncode != 0:
        raise TaskFailed(f"command failed with exit code {process.returncode}", outputs)
    if task.warningOnStdErr and wrote_stderr:
        raise TaskFailed("the command wrote to stderr (warningOnStdErr)", outputs, state="WARNING")
    return outputs


def run_local_files(task, runtime: Runtime) -> dict:
    """Kestra's LocalFiles: `inputs` laid into the task's directory, then the files `outputs` matches
    stored (`uris`)."""
    user = script_user()
    with task_directory(runtime, user) as workdir:
        storage_files.lay_files(task.inputs, runtime, workdir, where="inputs")
        _hand_over(workdir, user)  # what it wrote is the scripts' of the block, and theirs to output
        return {"uris": output_files_store(runtime, workdir, task.outputs, user) if task.outputs else {}}


def output_files_store(runtime: Runtime, workdir: Path, patterns: list[str], user: ScriptUser) -> dict:
    """The files of `workdir` that `patterns` match, stored under the task run: name → kestra:/// URI."""
    return storage_files.store_output_files(runtime, collect_files(workdir, patterns, runtime, user))


def _follow(process: subprocess.Popen, runtime: Runtime) -> tuple[dict, bool]:
    """Log the script's output as it comes (within the log caps) and collect its `vars` until it
    exits; then end what it left running in its process group. A kill or a timeout stops the whole
    group. Returns the outputs and whether it wrote to stderr."""
    lines: queue.Queue = queue.Queue(maxsize=1_000)  # at most 1,000 lines of MAX_LINE_CHARS wait to be read
    pumps = [threading.Thread(target=_pump, args=(process.stdout, "INFO", lines), daemon=True),
             threading.Thread(target=_pump, args=(process.stderr, "WARN", lines), daemon=True)]
    for pump in pumps:
        pump.start()
    variables: dict = {}
    vars_bytes, wrote_stderr, open_pipes, drained_by = 0, False, len(pumps), None
    try:
        while open_pipes:
            if drained_by is None:
                runtime.check()
                if process.poll() is not None:  # it exited: what it left behind goes, and with it the pipes
                    _kill_group(process)
                    drained_by = time.monotonic() + KILL_GRACE_SECONDS
            elif time.monotonic() > drained_by:  # a process that left the group holds a pipe: stop reading
                runtime.log("WARN", "the script left a process running outside its process group; its output "
                            "is not read", always=True)
                break
            try:
                level, line = lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                open_pipes -= 1
                continue
            match = OUTPUT_LINE.match(line)
            if match:
                vars_bytes += len(line)
                if vars_bytes > MAX_VARS_BYTES:
                    raise TaskFailed(f"the script emitted more than {MAX_VARS_BYTES} bytes of "
                                     '::{"outputs": ...}:: lines')
                try:
                    variables.update(json.loads(match.group(1)).get("outputs") or {})
                    continue
                except (json.JSONDecodeError, AttributeError, RecursionError):
                    pass
            wrote_stderr = wrote_stderr or level == "WARN"
            runtime.log(level, line)
    except (TaskStopped, TaskFailed):
        _kill_group(process)
        raise
    process.wait()
    return {"exitCode": process.returncode, "vars": variables}, wrote_stderr


def _kill_group(process: subprocess.Popen) -> None:
    """SIGTERM to the script's whole process group, SIGKILL to what is left after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):  # gone (its id may even be another user's group now)
            break
        while _group_alive(process) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _group_alive(process):
            break
    process.poll()


def _group_alive(process: subprocess.Popen) -> bool:
    """Whether a process of the script's group still runs: ended ones waiting to be reaped (by us for
    the script itself, by init for what it left) do not count."""
    process.poll()
    try:
        os.killpg(process.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == process.pid and fields[0] not in (b"Z", b"X"):
            return True
    return False


# --- output files ----------------------------------------------------------------------------


def _part_regex(part: str) -> str:
    """One path component of a glob: `*` and `?` never cross a `/`, nor match a leading dot."""
    out, index = [], 0
    while index < len(part):
        char = part[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := part.find("]", index + 2)) != -1:
            body = part[index + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    hidden = "" if part.startswith(".") else "(?!\\.)"
    return hidden + "".join(out)


class _Glob:
    """A glob of outputFiles, matched on paths relative to the working directory (`**` is any number
    of directories, as in Python's glob with recursive=True, hidden ones aside)."""

    def __init__(self, pattern: str):
        self.parts = [part for part in pattern.split("/") if part not in ("", ".")]
        regex, last = "", len(self.parts) - 1
        for index, part in enumerate(self.parts):
            if part == "**":
                regex += "(?:(?!\\.)[^/]+/)*" if index < last else "(?:(?!\\.)[^/]+(?:/|$))*"
            else:
                regex += _part_regex(part) + ("/" if index < last else "")
        self.regex = re.compile(regex + "\\Z")
        self.part_regexes = [None if part == "**" else re.compile(_part_regex(part) + "\\Z") for part in self.parts]

    def matches(self, relative: str) -> bool:
        return bool(self.regex.match(relative))

    def may_match_below(self, directory_parts: list[str]) -> bool:
        """Whether a file under this directory could match (so the walk need not enter others)."""
        for index, name in enumerate(directory_parts):
            if index < len(self.parts) and self.part_regexes[index] is None:  # `**`: any directory but hidden ones
                return not any(part.startswith(".") for part in directory_parts[index:])
            if index >= len(self.parts) - 1 or not self.part_regexes[index].match(name):
                return False
        return True


def collect_files(workdir: Path, patterns: list[str], runtime: Runtime, user: ScriptUser) -> dict:
    """Regular files of the working directory that match a pattern, read without following any
    symbolic link (every directory is opened relative to its parent, O_NOFOLLOW), within the caps
    OUTPUT_FILES_MAX_COUNT and OUTPUT_FILES_MAX_BYTES."""
    globs = [_Glob(pattern) for pattern in patterns]
    found: dict[str, bytes] = {}
    budget = {"entries": 0, "bytes": 0}
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC

    def walk(directory_fd: int, parts: list[str]) -> None:
        if len(parts) > OUTPUT_FILES_MAX_DEPTH:
            raise TaskFailed(f"outputFiles: directories nested more than {OUTPUT_FILES_MAX_DEPTH} deep in the working "
                             "directory")
        with os.scandir(directory_fd) as listing:
            entries = []
            for entry in listing:
                budget["entries"] += 1
                if budget["entries"] > OUTPUT_FILES_MAX_ENTRIES:
                    raise TaskFailed(f"outputFiles: more than {OUTPUT_FILES_MAX_ENTRIES} entries to look at in the "
                                     "working directory; use narrower patterns")
                if not budget["entries"] % 1000:
                    runtime.check()
                entries.append((entry.name, entry.is_dir(follow_symlinks=False), entry.is_file(follow_symlinks=False)))
        for name, is_dir, is_file in sorted(entries):
            relative = "/".join([*parts, name])
            if is_file and any(glob.matches(relative) for glob in globs):
                read(directory_fd, name, relative)
            elif is_dir and any(glob.may_match_below([*parts, name]) for glob in globs):
                try:
                    child = os.open(name, flags | os.O_DIRECTORY, dir_fd=directory_fd)
                except OSError:  # replaced by a link or removed meanwhile: not followed
                    continue
                try:
                    walk(child, [*parts, name])
                finally:
                    os.close(child)

    def read(directory_fd: int, name: str, relative: str) -> None:
        try:
            handle = os.open(name, flags | os.O_NONBLOCK, dir_fd=directory_fd)
        except OSError:
            return
        with os.fdopen(handle, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                return
            if user.switch and info.st_uid != user.uid:  # a hard link to a file the script could not write
                runtime.log("WARN", f"outputFiles: '{relative}' skipped: it does not belong to user '{user.name}'",
                            always=True)
                return
            if len(found) >= settings.OUTPUT_FILES_MAX_COUNT:
                raise TaskFailed(f"outputFiles: more than {settings.OUTPUT_FILES_MAX_COUNT} files match "
                                 "(OUTPUT_FILES_MAX_COUNT)")
            left = settings.OUTPUT_FILES_MAX_BYTES - budget["bytes"]
            content = file.read(left + 1)
            if len(content) > left:
                raise TaskFailed(f"outputFiles: the files that match are larger than {settings.OUTPUT_FILES_MAX_BYTES} "
                                 f"bytes in all, '{relative}' included (OUTPUT_FILES_MAX_BYTES)")
            budget["bytes"] += len(content)
            found[relative] = content

    root = os.open(workdir, flags | os.O_DIRECTORY)
    try:
        walk(root, [])
    finally:
        os.close(root)
    return found


RUNNERS = {
    "io.kestra.plugin.core.debug.Return": run_return,
    "io.kestra.plugin.core.log.Log": run_log,
    "io.kestra.plugin.core.debug.Echo": run_echo,
    "io.kestra.plugin.core.flow.Sleep": run_sleep,
    "io.kestra.plugin.core.output.OutputValues": run_output_values,
    "io.kestra.plugin.core.execution.Fail": run_fail,
    "io.kestra.plugin.core.http.Request": run_http_request,
    "io.kestra.plugin.core.kv.Set": run_kv_set,
    "io.kestra.plugin.core.kv.Get": run_kv_get,
    "io.kestra.plugin.core.kv.Delete": run_kv_delete,
    "io.kestra.plugin.core.execution.Resume": run_resume,
    "io.kestra.plugin.core.storage.LocalFiles": run_local_files,
    "io.kestra.plugin.scripts.shell.Commands": run_script,
    "io.kestra.plugin.scripts.shell.Script": run_script,
    "io.kestra.plugin.scripts.python.Commands": run_script,
    "io.kestra.plugin.scripts.python.Script": run_script,
}
