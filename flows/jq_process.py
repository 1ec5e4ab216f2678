"""The `jq` filter's program runs in a helper process (docs/expressions.md#jq): jq is C code that a
thread cannot interrupt, so a program that loops or allocates forever (`[range(1e10)]`,
`def f: f; f`) is stopped by killing the helper when the render's time budget is spent. The helper
is started once per process, holds no Django state, and has its memory bounded by RLIMIT_AS.

The helper gets an empty environment, so jq's `$ENV` and `env` show none of the process's
variables (its secret key, database and broker URLs, secrets), and programs that load jq modules
from files (`import`, `include`, `module`) are refused.

Protocol: one JSON line per request, `{"program", "input"}`; one JSON line per answer,
`{"results": [...]}` or `{"error": "..."}`.
"""
import json
import os
import re
import resource
import select
import subprocess
import sys
import threading
import time

HELPER_MEMORY_BYTES = 512 * 1024 * 1024
MAX_ANSWER_CHARS = 10_000_000  # the results as JSON text
STARTUP_SECONDS = 30  # a loaded machine starts Python slowly; not part of any render's budget
# jq's module directives may only open a program (after comments)
_MODULE_DIRECTIVE = re.compile(r"\A(?:\s|#[^\n]*\n?)*(?:module|import|include)\b")


class JqError(Exception):
    pass


class JqTimeout(JqError):
    pass


def _serve() -> None:
    import jq  # only the helper loads jq

    resource.setrlimit(resource.RLIMIT_AS, (HELPER_MEMORY_BYTES, HELPER_MEMORY_BYTES))
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            results, size = [], 0
            for result in jq.compile(request["program"]).input_value(request["input"]):
                size += len(json.dumps(result))
                if size > MAX_ANSWER_CHARS:
                    raise JqError(f"its results are larger than {MAX_ANSWER_CHARS} characters")
                results.append(result)
            answer = {"results": results}
        except MemoryError:
            answer = {"error": f"it needs more than {HELPER_MEMORY_BYTES // 2**20} MB"}
        except Exception as error:  # jq's own messages: syntax errors, type errors
            answer = {"error": str(error) or type(error).__name__}
        out.write(json.dumps(answer) + "\n")
        out.flush()


class _Helper:
    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flows.jq_process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, bufsize=1, close_fds=True, env={"LANG": "C.UTF-8"},
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.owner = os.getpid()
        if self._read_line(STARTUP_SECONDS) != "ready":
            self.stop()
            raise JqError("the jq helper process did not start")

    def _read_line(self, seconds: float) -> str | None:
        ready, _, _ = select.select([self.process.stdout], [], [], max(seconds, 0))
        if not ready:
            return None
        line = self.process.stdout.readline(MAX_ANSWER_CHARS + 1000)
        return line.rstrip("\n") if line else None

    def ask(self, request: str, seconds: float) -> dict:
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + seconds
        line = self._read_line(seconds)
        if line is None:
            self.stop()
            if time.monotonic() >= deadline:
                raise JqTimeout("it ran longer than its budget")
            raise JqError(f"it needs more than {HELPER_MEMORY_BYTES // 2**20} MB or crashed jq")
        return json.loads(line)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


_lock = threading.Lock()
_helper: _Helper | None = None


def start() -> float:
    """Starts this process's helper unless it runs; returns the seconds that took."""
    global _helper
    with _lock:
        if _helper is not None and _helper.owner == os.getpid() and _helper.process.poll() is None:
            return 0.0
        started = time.monotonic()
        _helper = _Helper()  # a forked child never shares its parent's helper
        return time.monotonic() - started


def run(program: str, value, seconds: float) -> list:
    """All results of jq `program` on `value`, within `seconds` (the helper must be started)."""
    global _helper
    if _MODULE_DIRECTIVE.match(program):
        raise JqError("jq modules (import, include, module) are not available in expressions")
    request = json.dumps({"program": program, "input": value})
    with _lock:
        if _helper is None or _helper.owner != os.getpid():
            raise JqError("the jq helper process is not running")
        helper = _helper
        try:
            answer = helper.ask(request, seconds)
        except BrokenPipeError:
            _helper = None
            raise JqError("the jq helper process ended") from None
        except JqError:
            _helper = None
            raise
    if "error" in answer:
        raise JqError(answer["error"])
    return answer["results"]


if __name__ == "__main__":
    _serve()
