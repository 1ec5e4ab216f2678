"""Kestra's core filters, functions and tests (docs/expressions.md), with Kestra's argument names
and null behaviour. The sandbox (flows/expressions.py) bounds each one's input and output size;
the ones that need the render's budget or context (jq, render, currentEachOutput) live there.
"""
import base64
import binascii
import datetime as dt
import hashlib
import json
import random
import uuid
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from collections.abc import Mapping
from urllib.parse import quote_plus, unquote_plus

import yaml
from jinja2 import Undefined
from jinja2.filters import do_urlencode

from . import java_dates


class FunctionError(ValueError):
    """A filter or function given an argument it cannot use; the message says which."""


# --- tests --------------------------------------------------------------------------------------


def is_empty(value) -> bool:
    """Pebble's `empty`: undefined, null, blank text, an empty list or map."""
    if value is None or isinstance(value, Undefined):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict, set)):
        return not value
    return False


def is_json(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def is_null(value) -> bool:
    return value is None


# --- filters ------------------------------------------------------------------------------------


def default(value, default_value="", boolean=False):
    """Pebble's `default`: the default when the value is undefined, null or empty (`boolean` is
    Jinja's argument, accepted and implied)."""
    return default_value if is_empty(value) else value


def keys(value):
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise FunctionError(f"keys needs a map, got {type(value).__name__}")
    return list(value)


def values(value):
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise FunctionError(f"values needs a map, got {type(value).__name__}")
    return list(value.values())


def split(value, delimiter, limit=None):
    """Pebble's `split`: `limit` is the most parts (Java's String.split), `delimiter` is literal."""
    if value is None:
        return None
    if not isinstance(delimiter, str) or not delimiter:
        raise FunctionError("split needs a non-empty delimiter")
    text = str(value)
    if limit is not None and int(limit) > 0:
        return text.split(delimiter, int(limit) - 1)
    parts = text.split(delimiter)
    if limit is None or int(limit) == 0:
        while parts and parts[-1] == "":
            parts.pop()  # Java drops trailing empty strings
    return parts


def number(value, type=None):  # noqa: A002 (Kestra's argument name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FunctionError(f"number can only be applied to a string, got {type_name(value)}")
    text = value.strip()
    try:
        if type in ("INT", "LONG", "BIGINTEGER"):
            return int(text, 0) if text.lower().startswith(("0x", "-0x")) else int(text)
        if type in ("FLOAT", "DOUBLE"):
            return float(text)
        if type == "BIGDECIMAL":
            return float(Decimal(text))
        if type not in (None, ""):
            raise FunctionError(f"number's type is one of INT, LONG, FLOAT, DOUBLE, BIGDECIMAL, BIGINTEGER, "
                                f"not '{str(type)[:40]}'")
        try:
            return int(text)
        except ValueError:
            return float(Decimal(text))
    except (ValueError, InvalidOperation):
        raise FunctionError(f"'{text[:80]}' is not a number") from None


def type_name(value) -> str:
    return type(value).__name__


def slugify(value):
    if value is None:
        return None
    text = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def base64encode(value):
    if value is None:
        return None
    return base64.b64encode(str(value).encode()).decode()


def base64decode(value):
    if value is None:
        return None
    try:
        return base64.b64decode(str(value), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise FunctionError(f"'{str(value)[:80]}' is not base64-encoded text") from None


def url_encode(value):
    """Java's URLEncoder (spaces as `+`), as Pebble; a map or list becomes a query string, as Jinja."""
    if isinstance(value, (dict, list, tuple)):
        return do_urlencode(value)
    return quote_plus(str(value), safe="*")


def url_decode(value):
    return None if value is None else unquote_plus(str(value))


def to_yaml(value):
    if value is None:
        return "null"
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False)


def from_yaml(text):
    if not isinstance(text, str):
        raise FunctionError("yaml() takes a string")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise FunctionError(f"invalid YAML: {str(error)[:200]}") from None


def from_json(text):
    if text is None:
        return None
    if not isinstance(text, str):
        raise FunctionError("fromJson() takes a string")
    try:
        return json.loads(text)
    except ValueError as error:
        raise FunctionError(f"invalid JSON: {error}") from None


def _jsonable(value):
    return dict(value) if isinstance(value, Mapping) else str(value)


def to_json(value) -> str:
    return json.dumps(value, default=_jsonable)


def length(value) -> int:
    """Pebble's `length`: null has none."""
    return 0 if value is None else len(value)


def _text(value, name: str) -> str:
    if not isinstance(value, str):
        raise FunctionError(f"{name} needs a string argument")
    return value


def starts_with(value, prefix):
    return str(value).startswith(_text(prefix, "startsWith"))


def ends_with(value, suffix):
    return str(value).endswith(_text(suffix, "endsWith"))


def substring_before(value, separator):
    return None if value is None else str(value).partition(_text(separator, "substringBefore"))[0]


def substring_after(value, separator):
    """As Apache Commons: empty when the separator is not there."""
    if value is None:
        return None
    before, found, after = str(value).partition(_text(separator, "substringAfter"))
    return after if found else ""


def substring_before_last(value, separator):
    if value is None:
        return None
    before, found, _ = str(value).rpartition(_text(separator, "substringBeforeLast"))
    return before if found else str(value)


def substring_after_last(value, separator):
    if value is None:
        return None
    _, found, after = str(value).rpartition(_text(separator, "substringAfterLast"))
    return after if found else ""


def flatten(value):
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise FunctionError("flatten can only be applied to a list")
    return [item for element in value for item in (element if isinstance(element, (list, tuple)) else [element])]


def chunk(value, size):
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise FunctionError("chunk can only be applied to a list")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise FunctionError("chunk's size is a positive integer")
    return [list(value[index:index + size]) for index in range(0, len(value), size)]


def merge(value, other):
    """Pebble's `merge`: two maps into one (the right one wins), or two lists end to end."""
    if isinstance(value, Mapping) and isinstance(other, Mapping):
        return {**value, **other}
    if isinstance(value, (list, tuple)) and isinstance(other, (list, tuple)):
        return [*value, *other]
    raise FunctionError("merge takes two maps or two lists")


def _extreme(name: str, pick):
    def extreme(*values):
        """Pebble's `max(a, b, ...)` and `min(a, b, ...)` functions."""
        if not values:
            raise FunctionError(f"{name}() needs at least one value")
        try:
            return pick(values)
        except TypeError:
            raise FunctionError(f"{name}() cannot compare {', '.join(type_name(v) for v in values)}") from None

    return extreme


def _digest(algorithm: str):
    def digest(value):
        return None if value is None else hashlib.new(algorithm, str(value).encode()).hexdigest()

    return digest


def random_int(lower, upper):
    if not all(isinstance(bound, int) and not isinstance(bound, bool) for bound in (lower, upper)):
        raise FunctionError("randomInt takes two integers, lower and upper")
    if upper < lower:
        raise FunctionError("randomInt: upper is less than lower")
    return random.randrange(lower, upper) if upper > lower else lower


# --- dates --------------------------------------------------------------------------------------


def _date_arguments(format, timeZone, timezone, existingFormat):  # noqa: A002,N803 (Kestra's names)
    return format or "iso", java_dates.zone(timeZone if timeZone is not None else timezone), existingFormat


def date(value, format=None, timeZone=None, existingFormat=None, locale=None, timezone=None):  # noqa: A002,N803
    """Kestra's `date(format, timeZone=, existingFormat=)`; `timezone=` is accepted as well."""
    if value is None:
        return None
    pattern, tz, existing = _date_arguments(format, timeZone, timezone, existingFormat)
    return java_dates.format_date(java_dates.to_datetime(value, tz, existing), pattern)


def date_add(value, amount, unit, format=None, timeZone=None, existingFormat=None, locale=None,  # noqa: A002,N803
             timezone=None):
    if value is None:
        return None
    pattern, tz, existing = _date_arguments(format, timeZone, timezone, existingFormat)
    return java_dates.format_date(java_dates.add(java_dates.to_datetime(value, tz, existing), amount, unit), pattern)


def timestamp(value, timeZone=None, existingFormat=None, timezone=None):  # noqa: N803
    """Epoch seconds of a date."""
    if value is None:
        return None
    _, tz, existing = _date_arguments(None, timeZone, timezone, existingFormat)
    return int(java_dates.to_datetime(value, tz, existing).timestamp())


def now(format=None, timeZone=None, locale=None, timezone=None):  # noqa: A002,N803
    pattern, tz, _ = _date_arguments(format, timeZone, timezone, None)
    return java_dates.format_date(dt.datetime.now(tz), pattern)


FILTERS = {
    "default": default, "d": default, "keys": keys, "values": values, "split": split, "number": number,
    "slugify": slugify, "base64encode": base64encode, "base64decode": base64decode, "urlencode": url_encode,
    "urldecode": url_decode, "yaml": to_yaml, "toYaml": to_yaml, "json": to_json, "toJson": to_json,
    "jsonEncode": to_json, "fromJson": from_json, "jsonDecode": from_json, "date": date, "dateAdd": date_add,
    "length": length, "count": length, "startsWith": starts_with, "endsWith": ends_with,
    "substringBefore": substring_before, "substringAfter": substring_after,
    "substringBeforeLast": substring_before_last, "substringAfterLast": substring_after_last, "flatten": flatten,
    "chunk": chunk, "md5": _digest("md5"), "sha1": _digest("sha1"), "sha256": _digest("sha256"),
    "sha512": _digest("sha512"), "timestamp": timestamp, "merge": merge,
}
FUNCTIONS = {"now": now, "json": from_json, "fromJson": from_json, "toJson": to_json, "yaml": from_yaml,
             "uuid": lambda: str(uuid.uuid4()), "randomInt": random_int, "max": _extreme("max", max),
             "min": _extreme("min", min)}
TESTS = {"empty": is_empty, "json": is_json, "null": is_null, "map": lambda value: isinstance(value, dict)}
