"""Request bodies and query parameters: YAML flow sources as text, JSON objects checked by
strict pydantic models, execution inputs as form fields or JSON.

Every fault becomes a located UserError: malformed JSON → 400 with line and column, a wrong
type, a missing or an unknown property → 422 naming the property's path.
"""
import json
from typing import Literal

import pydantic
from pydantic import BaseModel, ConfigDict

from flows.errors import Fault, UserError
from flows.yaml_source import path_to_text


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class WorkerGroupDefaults(Body):
    """Default worker group of a tenant or namespace; a null or absent key means none of its own."""

    key: str | None = None
    fallback: Literal["WAIT", "FAIL", "CANCEL"] | None = None


class WithDefaults(Body):
    workerGroup: WorkerGroupDefaults | None = None

    def defaults(self) -> dict:
        """As the services take them: a PUT replaces both, and '' clears one."""
        group = self.workerGroup or WorkerGroupDefaults()
        return {"worker_group_key": group.key or "", "fallback": group.fallback or ""}


class NamespaceBody(WithDefaults):
    id: str | None = None


class TenantBody(WithDefaults):
    """A tenant is named by `id` (Kestra's word) or `key` (this project's)."""

    id: str | None = None
    key: str | None = None

    def tenant_key(self) -> str:
        if self.id is None and self.key is None:
            raise UserError("missing required property 'id'", path="id")
        if self.id is not None and self.key is not None and self.id != self.key:
            raise UserError(f"'id' ('{self.id}') and 'key' ('{self.key}') differ: send one of them", path="key")
        return self.id if self.id is not None else self.key


class WorkerGroupCreateBody(Body):
    key: str
    description: str = ""
    allowedTenants: list[str] = []


class WorkerGroupUpdateBody(Body):
    """Only the properties sent change: an omitted allowedTenants never opens a group to every tenant."""

    key: str | None = None
    description: str | None = None
    allowedTenants: list[str] | None = None


def text_body(request) -> str:
    """A flow source: the raw body as UTF-8 text, whatever the content type."""
    try:
        return request.body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"the body is not UTF-8 text (byte {error.start})", status=400) from None


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError([Fault(f"invalid JSON: {error.msg}", line=error.lineno, column=error.colno)], status=400) from None


def json_body(request, model: type[Body]):
    text = text_body(request)
    if not text.strip():
        raise UserError("a JSON object is required as the request body", status=400)
    try:
        return model.model_validate(_json(text))
    except pydantic.ValidationError as error:
        raise UserError([_fault(item) for item in error.errors()]) from None


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def inputs_body(request) -> dict:
    """Execution inputs, as Kestra takes them: form fields (multipart or urlencoded) or a JSON
    object; no body at all means no inputs. Values stay as sent: the engine types them."""
    if request.content_type in FORM_TYPES:
        if request.FILES:
            name = next(iter(request.FILES))
            raise UserError(f"file inputs are not supported: send '{name}' as a form field", path=f"inputs.{name}")
        return {key: values[-1] if len(values) == 1 else values for key, values in request.POST.lists()}
    text = text_body(request)
    if not text.strip():
        return {}
    if request.content_type not in ("application/json", "", "text/plain"):
        raise UserError(
            f"unsupported content type '{request.content_type}': send inputs as form fields or a JSON object",
            status=415,
        )
    data = _json(text)
    if not isinstance(data, dict):
        raise UserError(f"inputs must be a JSON object of input id to value, got {type(data).__name__}",
                        path="inputs")
    return data


def labels_query(request) -> dict:
    """Kestra's `?labels=key:value`, repeated; a later value of the same key wins."""
    labels = {}
    for item in request.GET.getlist("labels"):
        key, colon, value = item.partition(":")
        if not colon or not key.strip():
            raise UserError(f"label '{item}' must be written key:value", path="labels")
        labels[key.strip()] = value
    return labels


def flag_query(request, name: str) -> bool:
    text = request.GET.get(name, "")
    lowered = text.strip().lower()
    if lowered not in ("true", "false", "1", "0", ""):
        raise UserError(f"'{name}' must be true or false (got '{text}')", path=name)
    return lowered in ("true", "1")


def int_query(request, name: str, *, default: int, low: int, high: int | None = None) -> int:
    """A whole-number query parameter within [low, high]; anything else is a located 422."""
    text = request.GET.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UserError(f"'{name}' must be a whole number {bounds} (got '{text}')", path=name)
    return value


def same_as_path(value: str | None, expected: str, *, path: str) -> None:
    """A body may repeat the identifier of its URL, never contradict it."""
    if value is not None and value != expected:
        raise UserError(f"the body says '{value}' but the URL says '{expected}'", path=path)


def _fault(item: dict) -> Fault:
    path = path_to_text(item["loc"])
    name = item["loc"][-1] if item["loc"] else ""
    if item["type"] == "extra_forbidden":
        message = f"unknown property '{name}'"
    elif item["type"] == "missing":
        message = f"missing required property '{name}'"
    else:
        message = f"{item['msg']} (got {json.dumps(item['input'])})"
    return Fault(message=message, path=path)
