"""Files every process can reach (docs/storage.md): FILE inputs, script `outputFiles` and namespace
files live in Django's named storage "flows" (the local filesystem by default, any S3-compatible
store through django-storages), under Kestra's internal-storage layout.

A file is named by a `kestra:///…` URI whose path is Kestra's:

    kestra:///{namespace as path}/{flow}/executions/{execution}/inputs/{input}/{file}
    kestra:///{namespace as path}/{flow}/executions/{execution}/tasks/{task}/{taskrun}/{file}
    kestra:///{namespace as path}/_files/{path}                          (namespace files)

The tenant is not in the URI: it is the first segment of the storage name
(`{tenant}/{URI path}`), taken from whoever reads, so a URI never reaches another tenant's files.
This module only names, checks and moves bytes; who may call it is decided by its callers.
"""
import hashlib
import posixpath
import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import storages

from .errors import UserError

STORAGE_ALIAS = "flows"
SCHEME = "kestra://"
NAMESPACE_FILES_DIR = "_files"
# Namespace files named in YAML as `nsfile:///path` (Kestra's scheme for them).
NSFILE_SCHEME = "nsfile://"
MAX_PATH_CHARS = 1024
MAX_SEGMENT_CHARS = 255
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def storage():
    """The storage every process shares (settings.STORAGES["flows"])."""
    return storages[STORAGE_ALIAS]


def max_file_bytes() -> int:
    return settings.STORAGE_MAX_FILE_BYTES


# --- paths ---------------------------------------------------------------------------------------


def clean_path(path: str, *, where: str = "path", allow_root: bool = False) -> str:
    """A relative file path as users write it (`scripts/ml.py`, `/scripts/ml.py`), checked and
    normalised to `scripts/ml.py`: no `..` or `.` segment, no backslash or control character, no
    empty segment, bounded lengths. Raises a located UserError."""
    if not isinstance(path, str):
        raise UserError("a path must be a string", path=where)
    text = path.strip()
    if text.startswith(NSFILE_SCHEME):
        text = text[len(NSFILE_SCHEME):]
    stripped = text.strip("/")
    if not stripped:
        if allow_root:
            return ""
        raise UserError("the path is empty: name a file, e.g. scripts/main.py", path=where)
    if len(stripped) > MAX_PATH_CHARS:
        raise UserError(f"the path is longer than {MAX_PATH_CHARS} characters", path=where)
    if _FORBIDDEN_CHARS.search(stripped):
        raise UserError("the path contains a backslash or a control character", path=where)
    segments = stripped.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise UserError(f"'{path}' is not a plain relative path: no '..', '.' or empty segment", path=where)
        if len(segment) > MAX_SEGMENT_CHARS:
            raise UserError(f"a segment of the path is longer than {MAX_SEGMENT_CHARS} characters", path=where)
    return "/".join(segments)


def namespace_path(namespace: str) -> str:
    """`company.team` → `company/team`, as Kestra lays namespaces out."""
    return namespace.replace(".", "/")


def namespace_files_prefix(namespace: str) -> str:
    return f"{namespace_path(namespace)}/{NAMESPACE_FILES_DIR}"


def execution_prefix(*, namespace: str, flow_id: str, execution_id) -> str:
    return f"{namespace_path(namespace)}/{flow_id}/executions/{execution_id}"


def input_file_path(*, namespace: str, flow_id: str, execution_id, input_id: str, filename: str) -> str:
    name = posixpath.basename(clean_path(filename or input_id, where=f"inputs.{input_id}"))
    return f"{execution_prefix(namespace=namespace, flow_id=flow_id, execution_id=execution_id)}/inputs/{input_id}/{name}"


def task_file_path(*, namespace: str, flow_id: str, execution_id, task_id: str, taskrun_id, name: str) -> str:
    prefix = execution_prefix(namespace=namespace, flow_id=flow_id, execution_id=execution_id)
    return f"{prefix}/tasks/{task_id}/{taskrun_id}/{clean_path(name, where='outputFiles')}"


def cache_path(*, namespace: str, flow_id: str, task_id: str, value: str | None) -> str:
    """Where a WorkingDirectory's `cache` archive is kept: one per task and loop value, across
    executions (docs/core-tasks.md)."""
    scope = f"/{hashlib.sha1(value.encode()).hexdigest()[:16]}" if value is not None else ""
    return f"{namespace_path(namespace)}/{flow_id}/{task_id}/cache{scope}/cache.zip"


def uri_of(path: str) -> str:
    return f"{SCHEME}/{path}"


def is_uri(value) -> bool:
    return isinstance(value, str) and value.startswith(SCHEME)


def path_of_uri(uri: str, *, namespace: str, where: str = "uri") -> str:
    """The storage path a `kestra:///…` URI names, checked: it must lie under the reader's
    namespace (`kestra:///company/team/...` for `company.team`), as Kestra scopes storage."""
    if not is_uri(uri):
        raise UserError(f"'{uri}' is not a kestra:/// URI", path=where)
    path = clean_path(uri[len(SCHEME):], where=where)
    if not (path + "/").startswith(namespace_path(namespace) + "/"):
        raise UserError(f"'{uri}' is outside namespace '{namespace}': a flow reads only its namespace's files",
                        path=where)
    return path


def _name(tenant_key: str, path: str) -> str:
    return f"{tenant_key}/{path}" if path else tenant_key


# --- bytes -----------------------------------------------------------------------------------------


def put(*, tenant_key: str, path: str, content, where: str = "file") -> str:
    """Store `content` (bytes or a Django File) at `path`, replacing what was there; returns its
    URI. Content over STORAGE_MAX_FILE_BYTES is refused before anything is written."""
    size = len(content) if isinstance(content, (bytes, bytearray)) else content.size
    if size is not None and size > max_file_bytes():
        raise UserError(f"the file is {size} bytes: at most {max_file_bytes()} bytes (STORAGE_MAX_FILE_BYTES)",
                        path=where)
    body = ContentFile(bytes(content)) if isinstance(content, (bytes, bytearray)) else content
    if isinstance(body, File) and hasattr(body, "seek"):
        body.seek(0)
    storage().save(_name(tenant_key, path), body)
    return uri_of(path)


def exists(*, tenant_key: str, path: str) -> bool:
    return storage().exists(_name(tenant_key, path))


def read(*, tenant_key: str, path: str, where: str = "file") -> bytes:
    name = _name(tenant_key, path)
    if not storage().exists(name):
        raise UserError(f"no file at kestra:///{path}", path=where)
    with storage().open(name, "rb") as handle:
        return handle.read()


def size(*, tenant_key: str, path: str) -> int:
    return storage().size(_name(tenant_key, path))


def open_file(*, tenant_key: str, path: str):
    return storage().open(_name(tenant_key, path), "rb")


def delete(*, tenant_key: str, path: str) -> None:
    storage().delete(_name(tenant_key, path))


@dataclass(frozen=True)
class Entry:
    """A file or directory of a listing (Kestra's FileAttributes)."""

    name: str
    is_directory: bool
    size: int
    modified: datetime | None


def list_directory(*, tenant_key: str, path: str) -> list[Entry]:
    """Directories, then files, each sorted by name; an absent directory lists nothing."""
    store, name = storage(), _name(tenant_key, path)
    try:
        directories, files = store.listdir(name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    entries = [Entry(directory, True, 0, None) for directory in sorted(directories)]
    for file in sorted(files):
        full = f"{name}/{file}"
        try:
            modified = store.get_modified_time(full)
        except (NotImplementedError, OSError):
            modified = None
        entries.append(Entry(file, False, store.size(full), modified))
    return entries


def walk_files(*, tenant_key: str, path: str) -> list[str]:
    """Every file under `path`, as paths relative to it (`a/b.py`), sorted."""
    found: list[str] = []

    def visit(relative: str):
        base = f"{path}/{relative}" if relative else path
        try:
            directories, files = storage().listdir(_name(tenant_key, base))
        except (FileNotFoundError, NotADirectoryError):
            return
        found.extend(f"{relative}/{file}" if relative else file for file in files)
        for directory in directories:
            visit(f"{relative}/{directory}" if relative else directory)

    visit("")
    return sorted(found)


def delete_tree(*, tenant_key: str, path: str) -> int:
    """Delete a file, or a directory and everything under it; returns how many files went."""
    if exists(tenant_key=tenant_key, path=path) and not walk_files(tenant_key=tenant_key, path=path):
        try:
            storage().delete(_name(tenant_key, path))  # a file (or an empty local directory)
            return 1
        except OSError:
            return 0
    files = walk_files(tenant_key=tenant_key, path=path)
    for file in files:
        storage().delete(_name(tenant_key, f"{path}/{file}"))
    _prune_directories(tenant_key, path)
    return len(files)


def _prune_directories(tenant_key: str, path: str) -> None:
    """Local storage keeps empty directories; S3 has none. Remove the empty ones under `path`."""
    try:
        directories, _ = storage().listdir(_name(tenant_key, path))
    except (FileNotFoundError, NotADirectoryError):
        return
    for directory in directories:
        _prune_directories(tenant_key, f"{path}/{directory}")
    try:
        storage().delete(_name(tenant_key, path))
    except OSError:
        pass


# --- Kestra's include/exclude globs --------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern:
    """Java's glob syntax, as Kestra matches namespace files: `*` stays within a segment, `**`
    crosses segments, `?` one character, `{a,b}` alternatives, `[...]` classes. Patterns are
    matched against `/dir/file.py`; one that starts neither with `/` nor with `**` matches at any
    depth (`test.txt` is `**/test.txt`, as in Kestra; `*.py` is `**/*.py`, where Kestra would match
    nothing); `regex:` and `glob:` prefixes are honoured."""
    if pattern.startswith("regex:"):
        return re.compile(pattern[len("regex:"):])
    if pattern.startswith("glob:"):
        pattern = pattern[len("glob:"):]
    elif not pattern.startswith(("/", "**")):
        pattern = "**/" + pattern
    out, index, in_group = [], 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            if pattern.startswith("**", index):
                out.append(".*")
                index += 2
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "{":
            out.append("(?:")
            in_group = True
        elif char == "}" and in_group:
            out.append(")")
            in_group = False
        elif char == "," and in_group:
            out.append("|")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1:end].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out))


def glob_check(pattern: str) -> None:
    """Raises ValueError for a pattern that cannot be compiled."""
    try:
        _glob_regex(pattern)
    except re.error as error:
        raise ValueError(f"invalid pattern '{pattern}': {error}") from None


def matches(path: str, *, include: list[str], exclude: list[str]) -> bool:
    """Kestra's rule: kept when some include matches (or there is none) and no exclude does."""
    absolute = "/" + path
    if include and not any(_glob_regex(p).fullmatch(absolute) for p in include):
        return False
    return not any(_glob_regex(p).fullmatch(absolute) for p in exclude)

