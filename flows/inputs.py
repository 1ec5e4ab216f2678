"""Typed execution inputs: each value coerced to its declared type, or a clear error."""
import json
from datetime import datetime
from typing import Any

from .errors import Fault, UserError
from .schema import Input

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", "-0", ""}


def _coerce(spec: Input, value: Any) -> Any:
    kind = spec.type
    if kind == "STRING":
        if isinstance(value, (dict, list)):
            raise ValueError("expected a string")
        return value if isinstance(value, str) else str(value)
    if kind == "INT":
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError(f"'{value}' is not an integer")
    if kind == "FLOAT":
        if isinstance(value, bool):
            raise ValueError("expected a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"'{value}' is not a number") from None
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"'{value}' is not a boolean (use true or false)")
    if kind == "JSON":
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(f"invalid JSON: {error}") from None
        return value
    if kind == "DATETIME":
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"'{value}' is not an ISO-8601 date-time") from None
        return parsed.isoformat()
    if kind == "SELECT":
        text = value if isinstance(value, str) else str(value)
        if text not in (spec.values or []):
            raise ValueError(f"'{text}' is not one of {', '.join(spec.values or [])}")
        return text
    raise ValueError(f"unsupported input type {kind}")


def inputs_resolve(declared: list[Input], given: dict) -> dict:
    """Apply defaults and types; every fault is reported at once, keyed by input id."""
    if not isinstance(given, dict):
        raise UserError("inputs must be a mapping of input id to value", path="inputs")
    faults: list[Fault] = []
    known = {spec.id for spec in declared}
    for key in given:
        if key not in known:
            faults.append(Fault(f"unknown input '{key}' (declared: {', '.join(sorted(known)) or 'none'})", path=f"inputs.{key}"))
    resolved: dict = {}
    for spec in declared:
        key_given = given.get(spec.id) is not None
        if key_given:
            raw = given[spec.id]
        elif spec.defaults is not None:
            raw = spec.defaults
        elif spec.required:
            faults.append(Fault(f"missing required input '{spec.id}' ({spec.type})", path=f"inputs.{spec.id}"))
            continue
        else:
            resolved[spec.id] = None
            continue
        try:
            resolved[spec.id] = _coerce(spec, raw)
        except ValueError as error:
            origin = "" if key_given else " (its default)"
            faults.append(Fault(f"input '{spec.id}'{origin} must be {spec.type}: {error}", path=f"inputs.{spec.id}"))
    if faults:
        raise UserError(faults)
    return resolved
