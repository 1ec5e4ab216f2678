"""Polling triggers, evaluated on a worker of their group (docs/triggers.md).

`trigger_evaluate` claims the evaluation the scheduler sent, runs the trigger type's poller, and
hands the outcome to flows.triggers, which starts the executions. A poller looks at the world (an
HTTP endpoint, a directory on this worker's disk) and says what fired; what it must do to the world
afterwards (move or delete the files it fired for) runs only once the executions exist.
"""
import logging
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from pathlib import Path
from typing import Callable

import httpx
from django.utils import timezone

from flows.context import trigger_context
from flows.definition import parse_flow_cached
from flows.expressions import ExpressionError, is_truthy, render, render_deep
from flows.durations import parse_duration
from flows.triggers import trigger_evaluation_claim, trigger_evaluation_end, trigger_model

logger = logging.getLogger(__name__)

MAX_BODY_CHARS = 1_000_000  # of an HTTP answer, kept in trigger.body
HTTP_TIMEOUT_RANGE = (5.0, 30.0)  # an HTTP trigger waits its interval for an answer, within these bounds


@dataclass
class Outcome:
    fired: list = field(default_factory=list)  # the variables of each execution to start
    result: str = ""
    error: str = ""
    memory: dict = field(default_factory=dict)
    after: Callable[[], None] | None = None  # once the executions exist


class PollFailed(Exception):
    """The poller could not look: the evaluation ends with this error, nothing fires."""


def trigger_evaluate(*, trigger_state_id: int, evaluation_id: str, worker_id: str) -> None:
    state = trigger_evaluation_claim(state_id=trigger_state_id, evaluation_id=evaluation_id, worker_id=worker_id,
                                     when=timezone.now())
    if state is None:  # stale or duplicate message: the evaluation was ended, abandoned or replaced
        return
    trigger = trigger_model(state)
    document = parse_flow_cached(state.flow.source).document
    context = trigger_context(flow=state.flow, document=document)
    try:
        outcome = POLLERS[trigger.type](trigger, context, state.memory or {}, worker_id)
    except (PollFailed, ExpressionError) as error:
        outcome = Outcome(result="evaluation failed", error=str(error), memory=state.memory or {})
    except Exception as error:  # a trigger's fault must end its evaluation, never the worker
        logger.exception("trigger %s: evaluation failed", trigger_state_id)
        outcome = Outcome(result="evaluation failed", error=f"{type(error).__name__}: {error}",
                          memory=state.memory or {})
    ended = trigger_evaluation_end(state=state, worker_id=worker_id, fired=outcome.fired, memory=outcome.memory,
                                   result=outcome.result, error=outcome.error, when=timezone.now())
    if ended and outcome.after is not None:
        outcome.after()


# --- HTTP ---------------------------------------------------------------------------------------


def _http_timeout(trigger) -> float:
    low, high = HTTP_TIMEOUT_RANGE
    return min(high, max(low, parse_duration(trigger.interval).total_seconds()))


def poll_http(trigger, context: dict, memory: dict, worker_id: str) -> Outcome:
    """Fires when `responseCondition` (over `response.statusCode`, `.body`, `.headers`) holds."""
    uri = str(render(trigger.uri, context))
    method = str(render(trigger.method, context)).upper()
    kwargs = {"headers": render_deep(trigger.headers, context)}
    body = render_deep(trigger.body, context)
    if isinstance(body, (dict, list)):
        kwargs["json"] = body
    elif body is not None:
        kwargs["content"] = str(body)
    if trigger.contentType:
        kwargs["headers"] = {"Content-Type": str(render(trigger.contentType, context)), **kwargs["headers"]}
    try:
        with httpx.stream(method, uri, timeout=_http_timeout(trigger), **kwargs) as response:
            text = _read_text(response)
    except httpx.HTTPError as error:
        raise PollFailed(f"HTTP request to {uri} failed: {error}") from None
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        headers.setdefault(name, []).append(value)
    answer = {"statusCode": response.status_code, "body": text, "headers": headers}
    condition = render(trigger.responseCondition, {**context, "response": answer})
    if not is_truthy(condition):
        return Outcome(result=f"HTTP {response.status_code}: responseCondition is false", memory=memory)
    variables = {"uri": uri, "code": response.status_code, "body": text, "headers": headers}
    return Outcome(fired=[variables], result=f"HTTP {response.status_code}: responseCondition is true", memory=memory)


def _read_text(response: httpx.Response) -> str:
    chunks, size = [], 0
    for chunk in response.iter_text():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_CHARS:
            break
    return "".join(chunks)[:MAX_BODY_CHARS]


# --- files on this worker's disk ---------------------------------------------------------------


def _identity(path: Path) -> str:
    """A file as the trigger remembers it: its path, inode and modification time, so the same file
    never fires twice, and a file written anew (even under the same name, after MOVE or DELETE) does."""
    stat = path.stat()
    return f"{path}|{stat.st_ino}|{stat.st_mtime_ns}"


def _files(root: Path, recursive: bool) -> list[Path]:
    candidates = root.rglob("*") if recursive else root.iterdir()
    return sorted(path for path in candidates if path.is_file())


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=dt_timezone.utc).isoformat().replace("+00:00", "Z")


def poll_directory(trigger, context: dict, memory: dict, worker_id: str) -> Outcome:
    """Fires once for the files that appeared since the last evaluation (at most `maxFiles`), listed
    in `trigger.files`. A file fires once: the files each worker fired for are remembered (by
    `_identity`) while they stay in the directory. MOVE and DELETE act on them once the execution exists."""
    root = Path(str(render(trigger.watched, context)))
    pattern = re.compile(str(render(trigger.regExp, context))) if trigger.regExp else None
    if not root.is_dir():
        raise PollFailed(f"directory {root} does not exist on worker {worker_id}")
    present = {_identity(path): path for path in _files(root, trigger.recursive)
               if pattern is None or pattern.fullmatch(str(path))}
    seen_by_worker = dict(memory.get("seen") or {})
    seen = set(seen_by_worker.get(worker_id) or [])
    new_keys = [key for key in present if key not in seen][: trigger.maxFiles]
    new = [present[key] for key in new_keys]
    seen_by_worker[worker_id] = sorted((seen & set(present)) | set(new_keys))
    memory = {**memory, "seen": seen_by_worker}
    if not new:
        return Outcome(result=f"no new file in {root}", memory=memory)
    target = Path(str(render(trigger.moveDirectory, context))) if trigger.action == "MOVE" else None
    files = []
    for path in new:
        stat = path.stat()
        entry = {"name": path.name, "path": str(path), "size": stat.st_size, "updatedDate": _iso(stat.st_mtime),
                 "changeType": "CREATE"}
        if target is not None:
            entry["movedTo"] = str(target / path.name)
        files.append(entry)

    def act() -> None:
        for path in new:
            try:
                if trigger.action == "DELETE":
                    path.unlink(missing_ok=True)
                elif target is not None:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(path), str(target / path.name))
            except OSError:
                logger.exception("trigger action %s on %s failed", trigger.action, path)

    names = ", ".join(path.name for path in new)
    return Outcome(fired=[{"files": files, "count": len(files)}], result=f"{len(new)} new file(s): {names}",
                   memory=memory, after=act if trigger.action != "NONE" else None)


POLLERS = {
    "io.kestra.plugin.core.http.Trigger": poll_http,
    "io.kestra.plugin.fs.http.Trigger": poll_http,
    "io.kestra.plugin.fs.local.Trigger": poll_directory,
}
