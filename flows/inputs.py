"""Typed execution inputs (docs/inputs.md): every Kestra input type, its checks (`validator`,
`min`/`max`, `after`/`before`, `values`), `defaults` and `dependsOn`, with every fault of one
request reported at once and nothing stored unless every input is valid.

Values are coerced by pydantic TypeAdapters and stored as JSON: dates and times as ISO-8601 text,
SECRET values encrypted (flows/masking.py), FILE values as the `kestra:///…` URI of the file in
the shared storage (flows/storage.py). Inputs whose id holds dots are nested (`nested.string` is
`{"nested": {"string": ...}}`), as in Kestra.
"""
import ast
import json
import re
from datetime import date, datetime, time, timezone
from typing import Any

from pydantic import TypeAdapter, ValidationError

from . import masking, storage
from .durations import parse_duration
from .errors import Fault, UserError
from .expressions import ExpressionError, is_truthy, render_deep
from .storable import contains_nul

# Kestra reads these strings as false as well as pydantic's own (false, 0, no, off, f, n).
_ALSO_FALSE = {"-0", ""}
_INT, _FLOAT, _BOOL, _DATETIME = TypeAdapter(int), TypeAdapter(float), TypeAdapter(bool), TypeAdapter(datetime)
# Kestra's own e-mail rule (EmailInput): a local part, '@', a domain; the empty string passes.
EMAIL = re.compile(r"^$|^[a-zA-Z0-9_!#$%&'’*+/=?`{|}~^.-]+@[a-zA-Z0-9.-]+$")
URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:(//)?[^\s]+$")
MAX_TEXT_CHARS = 1_000_000


# --- one value of one type ------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError("expected text, got a structured value")
    text = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"longer than {MAX_TEXT_CHARS} characters")
    return text


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    try:
        return _INT.validate_python(value.strip() if isinstance(value, str) else value)
    except ValidationError:
        raise ValueError(f"'{value}' is not an integer") from None


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    try:
        return _FLOAT.validate_python(value.strip() if isinstance(value, str) else value)
    except ValidationError:
        raise ValueError(f"'{value}' is not a number") from None


def _bool(value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in _ALSO_FALSE:
        return False
    try:
        return _BOOL.validate_python(value.strip() if isinstance(value, str) else value)
    except ValidationError:
        raise ValueError(f"'{value}' is not a boolean (use true or false)") from None


def _datetime(value: Any) -> datetime:
    try:
        parsed = _DATETIME.validate_python(value.strip() if isinstance(value, str) else value)
    except ValidationError:
        raise ValueError(f"'{value}' is not an ISO-8601 date-time (for example 2042-04-02T04:20:42Z)") from None
    if parsed.tzinfo is None:
        raise ValueError(f"'{value}' has no time zone: write it in UTC, e.g. 2042-04-02T04:20:42Z")
    return parsed.astimezone(timezone.utc)


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(_text(value).strip())
    except ValueError:
        raise ValueError(f"'{value}' is not an ISO-8601 date (for example 2042-12-03)") from None


def _time(value: Any) -> time:
    try:
        parsed = time.fromisoformat(_text(value).strip())
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is not None:
        raise ValueError(f"'{value}' is not an ISO-8601 time without a zone (for example 10:15:30)")
    return parsed


def _utc_text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _structured(value: Any, kind: str) -> Any:
    if not isinstance(value, str):
        return value  # already structured: a JSON body or a YAML default
    if kind == "JSON":
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"'{_short(value)}' is not valid JSON ({error.msg} at line {error.lineno}, "
                             f"column {error.colno})") from None
        except RecursionError:
            raise ValueError(f"'{_short(value)}' is nested too deeply to read") from None
    from .yaml_source import load_located

    try:
        return load_located(value).data
    except UserError as error:
        raise ValueError(f"not valid YAML: {error.faults[0]}") from None


def _list(value: Any) -> list:
    """A JSON array (text or list); repeated form fields arrive as a list, a single one as text."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"'{_short(value)}' is not a JSON array ({error.msg})") from None
        except RecursionError:
            raise ValueError(f"'{_short(value)}' is nested too deeply to read") from None
        if isinstance(parsed, list):
            return parsed
    if isinstance(value, dict):
        raise ValueError("expected a list, got a mapping")
    return [value]


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _bounds(spec, value, parse, shown: str) -> None:
    """`min`/`max` (numbers, durations) or `after`/`before` (dates, times), both inclusive as in Kestra."""
    if hasattr(spec, "min"):
        low, high, words = spec.min, spec.max, ("at least", "at most")
    else:
        low, high, words = spec.after, spec.before, ("on or after", "on or before")
    if low is not None and value < parse(low):
        raise ValueError(f"{shown} must be {words[0]} {low}")
    if high is not None and value > parse(high):
        raise ValueError(f"{shown} must be {words[1]} {high}")


def _item(kind: str, value: Any) -> Any:
    """A value of a scalar type, without its input's own checks (the items of ARRAY and MULTISELECT)."""
    if kind in ("STRING", "URI", "EMAIL"):
        text = _text(value)
        if kind == "URI" and not URI.match(text):
            raise ValueError(f"'{_short(text)}' is not a URI (for example https://example.com/data.csv)")
        if kind == "EMAIL" and not EMAIL.match(text):
            raise ValueError(f"'{_short(text)}' is not an e-mail address")
        return text
    if kind == "INT":
        return _int(value)
    if kind == "FLOAT":
        return _float(value)
    if kind in ("BOOLEAN", "BOOL"):
        return _bool(value)
    if kind == "DATETIME":
        return _utc_text(_datetime(value))
    if kind == "DATE":
        return _date(value).isoformat()
    if kind == "TIME":
        return _time(value).isoformat()
    if kind == "DURATION":
        text = _text(value).strip()
        parse_duration(text)
        return text.upper()
    if kind in ("JSON", "YAML"):
        return _structured(value, kind)
    raise ValueError(f"{kind} values cannot be typed here")


def _coerce(spec, value: Any, *, files: "InputFiles | None", choices: list[str] | None) -> Any:
    """The stored value of `value` for `spec`, or ValueError with what is wrong."""
    kind = spec.type
    if kind == "FILE":
        return _file(spec, value, files)
    if kind in ("ARRAY", "MULTISELECT"):
        items = []
        for index, item in enumerate(_list(value)):
            try:
                typed = _item(spec.itemType, item)
            except ValueError as error:
                raise ValueError(f"item {index}: {error}") from None
            if kind == "MULTISELECT" and not spec.custom_allowed and str(typed) not in choices:
                raise ValueError(f"item {index}: '{typed}' is not one of {', '.join(choices)}")
            items.append(typed)
        return items
    if kind in ("SELECT", "ENUM"):
        text = _text(value)
        allowed = choices if kind == "SELECT" else spec.values
        if text not in allowed and not (kind == "SELECT" and spec.custom_allowed):
            raise ValueError(f"'{text}' is not one of {', '.join(allowed)}")
        return text
    if kind in ("STRING", "SECRET"):
        text = _text(value)
        if spec.validator is not None and not re.fullmatch(spec.validator, text):
            shown = masking.MASK if kind == "SECRET" else f"'{_short(text)}'"
            raise ValueError(f"{shown} does not match the pattern {spec.validator}")
        return masking.encrypt(text) if kind == "SECRET" else text
    typed = _item(kind, value)
    parse = {"INT": _int, "FLOAT": _float, "DURATION": parse_duration, "DATETIME": _datetime, "DATE": _date,
             "TIME": _time}.get(kind)
    if parse is not None:
        _bounds(spec, parse(typed), parse, str(typed))
    return typed


def output_typed(kind: str, value: Any) -> Any:
    """A flow output's rendered value as its declared type (docs/flow-properties.md), or ValueError.
    Rendered text that holds a list or a mapping is read back for ARRAY, MULTISELECT, JSON and YAML."""
    if kind in ("ARRAY", "MULTISELECT"):
        return _list(value)
    if kind in ("STRING", "SECRET", "SELECT", "ENUM", "FILE"):
        return value if isinstance(value, str) else json.dumps(value)
    return _item(kind, value)


def _file(spec, value: Any, files: "InputFiles | None") -> str:
    if hasattr(value, "read") and hasattr(value, "name"):  # an uploaded file
        if files is None:
            raise ValueError("a file can only be given when an execution is created")
        _check_extension(spec, value.name)
        return files.stage(spec.id, value)
    if not isinstance(value, str):
        raise ValueError("expected an uploaded file (a multipart part named after the input) or a kestra:/// URI")
    text = value.strip()
    try:
        if text.startswith(storage.NSFILE_SCHEME):
            path = storage.clean_path(text, where=f"inputs.{spec.id}")
            return files.namespace_file(path) if files else storage.uri_of(path)
        if storage.is_uri(text):
            storage.clean_path(text[len(storage.SCHEME):], where=f"inputs.{spec.id}")
            return files.existing(text) if files else text
    except UserError as error:
        raise ValueError(error.faults[0].message) from None
    raise ValueError(f"'{_short(text)}' is not a file: upload one as a multipart part named '{spec.id}', "
                     f"or give a kestra:/// URI or an nsfile:/// namespace file")


def _check_extension(spec, filename: str) -> None:
    allowed = spec.allowedFileExtensions
    if allowed and not any(filename.lower().endswith(ext.lower()) for ext in allowed):
        raise ValueError(f"'{filename}' does not end with one of {', '.join(allowed)}")


def check_literal(spec, value: Any) -> str | None:
    """At upload: what is wrong with a literal `defaults` or `prefill`, or None."""
    choices = _static_choices(spec)
    if choices is None and spec.type in ("SELECT", "MULTISELECT"):
        return None  # values come from an expression, known only when an execution is created
    try:
        _coerce(spec, value, files=None, choices=choices)
    except ValueError as error:
        return f"{error} (the input is {spec.type})"
    return None


def _static_choices(spec) -> list[str] | None:
    if spec.type == "SELECT":
        return spec.values
    if spec.type == "MULTISELECT":
        return spec.choices
    return None


# --- FILE inputs ---------------------------------------------------------------------------------


class InputFiles:
    """The files of one execution being created: uploads are staged while the inputs are checked
    and written to the shared storage only once every input is valid (`write`); `discard` removes
    what was written if the execution is not stored after all."""

    def __init__(self, *, tenant_key: str, namespace: str, flow_id: str, execution_id):
        self.tenant_key, self.namespace, self.flow_id, self.execution_id = tenant_key, namespace, flow_id, execution_id
        self.staged: list[tuple[str, Any]] = []
        self.written: list[str] = []

    def stage(self, input_id: str, upload) -> str:
        size = getattr(upload, "size", None)
        if size is not None and size > storage.max_file_bytes():
            raise ValueError(f"the file is {size} bytes: at most {storage.max_file_bytes()} bytes "
                             f"(STORAGE_MAX_FILE_BYTES)")
        try:
            path = storage.input_file_path(namespace=self.namespace, flow_id=self.flow_id,
                                           execution_id=self.execution_id, input_id=input_id, filename=upload.name)
        except UserError as error:
            raise ValueError(error.faults[0].message) from None
        self.staged.append((path, upload))
        return storage.uri_of(path)

    def existing(self, uri: str) -> str:
        try:
            path = storage.path_of_uri(uri, namespace=self.namespace)
        except UserError as error:
            raise ValueError(error.faults[0].message) from None
        if not storage.exists(tenant_key=self.tenant_key, path=path):
            raise ValueError(f"no file at {uri}")
        return uri

    def namespace_file(self, path: str) -> str:
        stored = f"{storage.namespace_files_prefix(self.namespace)}/{path}"
        if not storage.exists(tenant_key=self.tenant_key, path=stored):
            raise ValueError(f"no namespace file '{path}' in namespace '{self.namespace}'")
        return storage.uri_of(stored)

    def write(self) -> None:
        for path, upload in self.staged:
            storage.put(tenant_key=self.tenant_key, path=path, content=upload)
            self.written.append(path)

    def discard(self) -> None:
        for path in self.written:
            storage.delete(tenant_key=self.tenant_key, path=path)
        self.written.clear()


# --- every input of one execution ----------------------------------------------------------------


def _nest(flat: dict) -> dict:
    nested: dict = {}
    for key, value in flat.items():
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def _given_value(given: dict, key: str) -> Any:
    """A value given flat (`{"nested.string": ...}`, form fields) or nested (a JSON body)."""
    if key in given:
        return given[key]
    node: Any = given
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _unknown_keys(given: dict, known: set[str], prefix: str = "") -> list[str]:
    unknown = []
    for key, value in given.items():
        full = f"{prefix}{key}"
        if full in known:
            continue
        if isinstance(value, dict) and any(name.startswith(full + ".") for name in known):
            unknown.extend(_unknown_keys(value, known, full + "."))
        else:
            unknown.append(full)
    return unknown


def inputs_resolve(declared: list, given: dict, *, files: InputFiles | None = None,
                   context: dict | None = None) -> dict:
    """Apply dependsOn, defaults and types; every fault is reported at once, keyed by input id.
    `context` (flow, vars...) is what expressions in `defaults`, `dependsOn.condition` and
    `expression` render against, with the inputs resolved before them as `inputs`."""
    if not isinstance(given, dict):
        raise UserError("inputs must be a mapping of input id to value", path="inputs")
    faults: list[Fault] = []
    by_id = {spec.id: spec for spec in declared}
    for key in _unknown_keys(given, set(by_id)):
        faults.append(Fault(f"unknown input '{key}' (declared: {', '.join(sorted(by_id)) or 'none'})",
                            path=f"inputs.{key}"))
    stored: dict = {}  # id → stored value, in declaration order
    plain: dict = {}  # id → value as expressions see it (secrets in clear)
    enabled: dict[str, bool] = {}

    def expression_context() -> dict:
        return {**(context or {}), "inputs": _nest(plain)}

    def resolve(spec, chain: tuple = ()) -> bool:
        """Resolves `spec` (and what it depends on first); false when it is disabled or faulty."""
        if spec.id in enabled:
            return enabled[spec.id]
        where = f"inputs.{spec.id}"
        if spec.id in chain:
            faults.append(Fault(f"input '{spec.id}' depends on itself through {' → '.join(chain)}", path=where))
            enabled[spec.id] = False
            return False
        enabled[spec.id] = False
        depends = spec.dependsOn
        if depends is not None:
            for name in depends.inputs:
                if name not in by_id:
                    faults.append(Fault(f"input '{spec.id}' depends on '{name}', which is not declared", path=where))
                    return False
                if not resolve(by_id[name], chain + (spec.id,)):
                    return False
            if depends.condition is not None:
                try:
                    if not is_truthy(render_deep(depends.condition, expression_context())):
                        return False
                except ExpressionError as error:
                    faults.append(Fault(f"input '{spec.id}': invalid dependsOn condition: {error}", path=where))
                    return False
        value = _given_value(given, spec.id)
        origin = ""
        if value is None and spec.defaults is not None:
            origin = " (its default)"
            try:
                value = render_deep(spec.defaults, expression_context())
            except ExpressionError as error:
                faults.append(Fault(f"input '{spec.id}': cannot render its default: {error}", path=where))
                return False
        if value is None:
            if spec.required:
                faults.append(Fault(f"missing required input '{spec.id}' ({spec.type})", path=where))
                return False
            stored[spec.id] = plain[spec.id] = None
            enabled[spec.id] = True
            return True
        try:
            choices = _choices(spec, expression_context())
            typed = _coerce(spec, value, files=files, choices=choices)
        except (ValueError, ExpressionError) as error:
            faults.append(Fault(f"input '{spec.id}'{origin} must be {spec.type}: {error}", path=where))
            return False
        clear = masking.decrypt(typed) if spec.type == "SECRET" else typed
        if contains_nul(clear):
            faults.append(Fault(f"input '{spec.id}' holds a NUL character (\\u0000), which cannot be stored",
                                path=where))
            return False
        stored[spec.id] = typed
        plain[spec.id] = clear
        enabled[spec.id] = True
        return True

    for spec in declared:
        resolve(spec)
    if faults:
        raise UserError(faults)
    return _nest({spec.id: stored[spec.id] for spec in declared if spec.id in stored})


def _choices(spec, context: dict) -> list[str] | None:
    if spec.type not in ("SELECT", "MULTISELECT"):
        return None
    static = _static_choices(spec)
    if static is not None:
        return static
    rendered = render_deep(spec.expression, context)
    values = rendered
    if isinstance(rendered, str):
        try:
            values = json.loads(rendered)
        except json.JSONDecodeError:
            try:
                values = ast.literal_eval(rendered)
            except (ValueError, SyntaxError):
                values = None
    if not isinstance(values, list):
        raise ValueError(f"its expression must render a list of values, got '{_short(str(rendered))}'")
    return [str(item) for item in values if item is not None]


def _walk(stored: dict, key: str):
    node = stored
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    return node, parts[-1]


def inputs_for_context(stored: dict, declared: list) -> dict:
    """The execution's inputs as expressions see them: SECRET inputs decrypted."""
    secrets = [spec.id for spec in declared if spec.type == "SECRET"]
    if not secrets:
        return stored
    revealed = json.loads(json.dumps(stored))
    for key in secrets:
        node, last = _walk(revealed, key)
        if isinstance(node, dict) and masking.is_encrypted(node.get(last)):
            node[last] = masking.decrypt(node[last])
    return revealed


def inputs_context(flow, document) -> dict:
    """What expressions in input declarations see besides the inputs before them: the flow and its
    variables (no execution exists yet)."""
    return {
        "flow": {"id": document.id, "namespace": document.namespace, "revision": flow.revision,
                 "tenantId": flow.tenant.key},
        "vars": document.variables,
        "variables": document.variables,
        "labels": document.label_map,
    }
