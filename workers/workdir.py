"""A script task's working directory and the shared storage (docs/storage.md): what is laid in
before the script runs (namespace files, then `inputFiles`, some of them read from storage), and
where its `outputFiles` go after it ran (storage, named by `kestra:///…` URIs in the outputs).

Which output files are taken is runners.py's rule (regular files of the working directory, within
their caps); this module only stores what that selection returns. Everything here uses the
task run's own tenant, namespace and execution, read from its expression context."""
import io
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from flows import storage
from flows.durations import parse_duration
from flows.errors import UserError

from . import runners  # runners.py calls in here; its names are read when a task runs

# Namespace files laid into one working directory, at most (their sizes are capped at upload).
MAX_NAMESPACE_FILES = 10_000


def _scope(runtime: "runners.Runtime") -> dict:
    context = runtime.context
    try:
        return {"tenant_key": context["flow"]["tenantId"], "namespace": context["flow"]["namespace"],
                "flow_id": context["flow"]["id"], "execution_id": context["execution"]["id"],
                "task_id": context["task"]["id"], "taskrun_id": context["taskrun"]["id"]}
    except (KeyError, TypeError):
        raise runners.TaskFailed("files need the task run's flow and execution, which this context lacks") from None


def _target(workdir: Path, name: str, where: str) -> Path:
    try:
        relative = storage.clean_path(str(name), where=where)
    except UserError as error:
        raise runners.TaskFailed(f"{where}: {error.faults[0].message}") from None
    target = workdir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def lay_namespace_files(task, runtime: "runners.Runtime", workdir: Path) -> list[str]:
    """The namespace's files that `namespaceFiles` selects, copied from storage into the working
    directory under their own paths; returns those paths."""
    settings = task.namespaceFiles
    if settings is None or not settings.enabled:
        return []
    scope = _scope(runtime)
    prefix = storage.namespace_files_prefix(scope["namespace"])
    include = [str(runtime.render(pattern)) for pattern in settings.include]
    exclude = [str(runtime.render(pattern)) for pattern in settings.exclude]
    paths = [path for path in storage.walk_files(tenant_key=scope["tenant_key"], path=prefix)
             if storage.matches(path, include=include, exclude=exclude)]
    if len(paths) > MAX_NAMESPACE_FILES:
        raise runners.TaskFailed(f"namespaceFiles: {len(paths)} files match, at most {MAX_NAMESPACE_FILES}: "
                         "narrow them with include or exclude")
    for path in paths:
        runtime.check()
        target = _target(workdir, path, "namespaceFiles")
        with storage.open_file(tenant_key=scope["tenant_key"], path=f"{prefix}/{path}") as source:
            with open(target, "wb") as handle:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    handle.write(chunk)
    if paths:
        runtime.log("INFO", f"namespaceFiles: {len(paths)} file(s) of namespace '{scope['namespace']}' laid in")
    return paths


def lay_input_files(task, runtime: "runners.Runtime", workdir: Path) -> None:
    """`inputFiles`: name → content; a content that is a `kestra:///…` URI (an input file, an
    earlier task's output file, a namespace file) is copied from storage, any other is written as text."""
    lay_files(task.inputFiles, runtime, workdir, where="inputFiles")


def lay_files(files, runtime: "runners.Runtime", workdir: Path, *, where: str) -> None:
    """Files named by a property (`where`: `inputFiles`, LocalFiles' `inputs`), as lay_input_files says."""
    files = runtime.render(files) or {}
    if not isinstance(files, dict):
        raise runners.TaskFailed(f"{where} must render a mapping of file name to content")
    scope = None
    for name, content in files.items():
        target = _target(workdir, name, where)
        text = content.strip() if isinstance(content, str) else content
        if storage.is_uri(text):
            scope = scope or _scope(runtime)
            try:
                path = storage.path_of_uri(text, namespace=scope["namespace"], where=f"{where}.{name}")
                target.write_bytes(storage.read(tenant_key=scope["tenant_key"], path=path, where=f"{where}.{name}"))
            except UserError as error:
                raise runners.TaskFailed(f"{where}: '{name}': {error.faults[0].message}") from None
        else:
            target.write_text("" if content is None else str(content))


def store_output_files(runtime: "runners.Runtime", selected: dict) -> dict:
    """The selected output files (relative path → content) written to storage under the task run:
    relative path → `kestra:///…/tasks/{task}/{taskrun}/{path}`."""
    if not selected:
        return {}
    scope = _scope(runtime)
    uris = {}
    for relative, content in selected.items():
        data = content if isinstance(content, bytes) else str(content).encode()
        path = storage.task_file_path(namespace=scope["namespace"], flow_id=scope["flow_id"],
                                      execution_id=scope["execution_id"], task_id=scope["task_id"],
                                      taskrun_id=scope["taskrun_id"], name=relative)
        try:
            uris[relative] = storage.put(tenant_key=scope["tenant_key"], path=path, content=data,
                                         where=f"outputFiles.{relative}")
        except UserError as error:
            raise runners.TaskFailed(f"outputFiles: '{relative}': {error.faults[0].message}") from None
    return uris


# --- a WorkingDirectory's cache (docs/core-tasks.md) ----------------------------------------------


def _cache_path(task, runtime: "runners.Runtime") -> tuple[str, str]:
    scope = _scope(runtime)
    return scope["tenant_key"], storage.cache_path(namespace=scope["namespace"], flow_id=scope["flow_id"],
                                                   task_id=scope["task_id"], value=runtime.context["taskrun"]["value"])


def cache_restore(task, runtime: "runners.Runtime", workdir: Path) -> float | None:
    """The block's kept files laid into its directory, unless there are none or they are older than
    `cache.ttl`; returns when (time.time()), or None."""
    tenant_key, path = _cache_path(task, runtime)
    if not storage.exists(tenant_key=tenant_key, path=path):
        return None
    with zipfile.ZipFile(io.BytesIO(storage.read(tenant_key=tenant_key, path=path))) as archive:
        made = datetime.fromisoformat(archive.comment.decode())
        ttl = parse_duration(str(runtime.render(task.cache.ttl))) if task.cache.ttl else None
        if ttl is not None and made + ttl < datetime.now(timezone.utc):
            runtime.log("INFO", f"cache: the kept files are older than {task.cache.ttl}: not used")
            return None
        names = [info.filename for info in archive.infolist() if not info.is_dir()]
        for name in names:
            _target(workdir, name, "cache").write_bytes(archive.read(name))
    runtime.log("INFO", f"cache: {len(names)} file(s) kept from an earlier execution laid in")
    return time.time()


def cache_store(task, runtime: "runners.Runtime", workdir: Path, selected: dict, restored_at: float | None) -> None:
    """Keep the files `cache.patterns` selected (relative path → content) for the next executions,
    unless they are the kept ones, unchanged."""
    changed = restored_at is None or any((workdir / name).stat().st_mtime > restored_at for name in selected)
    if not selected or not changed:
        return
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.comment = datetime.now(timezone.utc).isoformat().encode()
        for name, content in selected.items():
            archive.writestr(name, content)
    tenant_key, path = _cache_path(task, runtime)
    try:
        storage.put(tenant_key=tenant_key, path=path, content=buffer.getvalue(), where="cache")
    except UserError as error:
        raise runners.TaskFailed(f"cache: {error.faults[0].message}") from None
    runtime.log("INFO", f"cache: {len(selected)} file(s) kept for the next executions")
