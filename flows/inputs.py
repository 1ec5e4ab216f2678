"""Typed execution inputs: each value coerced to its declared type by a pydantic TypeAdapter, or a
clear error naming the input."""
from datetime import datetime
from typing import Any

from pydantic import Json, TypeAdapter, ValidationError

from .errors import Fault, UserError
from .schema import Input

# Kestra reads these strings as false as well as pydantic's own (false, 0, no, off, f, n).
_ALSO_FALSE = {"-0", ""}
_ADAPTERS = {
    "INT": (TypeAdapter(int), "is not an integer"),
    "FLOAT": (TypeAdapter(float), "is not a number"),
    "BOOLEAN": (TypeAdapter(bool), "is not a boolean (use true or false)"),
    "DATETIME": (TypeAdapter(datetime), "is not an ISO-8601 date-time"),
    "JSON": (TypeAdapter(Json[Any]), "is not valid JSON"),
}


def _coerce(spec: Input, value: Any) -> Any:
    kind = spec.type
    if kind == "STRING":
        if isinstance(value, (dict, list)):
            raise ValueError("expected a string")
        return value if isinstance(value, str) else str(value)
    if kind == "SELECT":
        text = value if isinstance(value, str) else str(value)
        if text not in (spec.values or []):
            raise ValueError(f"'{text}' is not one of {', '.join(spec.values or [])}")
        return text
    if kind == "JSON" and not isinstance(value, str):
        return value  # already structured (a JSON body or a YAML default)
    if kind in ("INT", "FLOAT") and isinstance(value, bool):
        raise ValueError(f"expected {'an integer' if kind == 'INT' else 'a number'}, got a boolean")
    if kind == "BOOLEAN" and isinstance(value, str) and value.strip().lower() in _ALSO_FALSE:
        return False
    adapter, fault = _ADAPTERS[kind]
    try:
        coerced = adapter.validate_python(value.strip() if isinstance(value, str) and kind != "JSON" else value)
    except ValidationError:
        raise ValueError(f"'{value}' {fault}") from None
    return coerced.isoformat() if kind == "DATETIME" else coerced


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
