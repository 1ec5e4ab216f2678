"""Expressions: `{{ ... }}` Jinja rendered in one immutable sandbox, undefined names are errors."""
import json
import operator
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RENDERED_CHARS = 1_000_000
MAX_SEQUENCE_REPEAT = 100_000
MAX_POWER_EXPONENT = 1_000


class ExpressionError(Exception):
    """An expression that does not compile or render; the message names the expression."""


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator_name, left, right):
        if operator_name == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_POWER_EXPONENT:
                raise jinja2.exceptions.SecurityError("exponent too large")
            return operator.pow(left, right)
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, (str, list, tuple)) and isinstance(count, int):
                if len(sequence) * count > MAX_SEQUENCE_REPEAT:
                    raise jinja2.exceptions.SecurityError("repeated sequence too long")
        return operator.mul(left, right)


def _to_json(value: Any) -> str:
    return json.dumps(value, default=str)


def _from_json(value: str) -> Any:
    return json.loads(value)


ENVIRONMENT = _BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
ENVIRONMENT.filters.update(json=_to_json, toJson=_to_json, jsonEncode=_to_json, fromJson=_from_json, jsonDecode=_from_json)
ENVIRONMENT.globals.update(fromJson=_from_json, toJson=_to_json)


def is_template(text: Any) -> bool:
    return isinstance(text, str) and ("{{" in text or "{%" in text)


@lru_cache(maxsize=4096)
def _compile(text: str) -> jinja2.Template:
    return ENVIRONMENT.from_string(text)


def check_syntax(text: str) -> None:
    try:
        _compile(text)
    except jinja2.TemplateSyntaxError as error:
        raise ExpressionError(f"template syntax error in '{_short(text)}': {error.message} (template line {error.lineno})") from None


def render(text: Any, context: dict) -> Any:
    """Render a string template; non-strings are returned unchanged."""
    if not is_template(text):
        return text
    try:
        rendered = _compile(text).render(context)
    except jinja2.TemplateSyntaxError as error:
        raise ExpressionError(f"template syntax error in '{_short(text)}': {error.message}") from None
    except Exception as error:  # every render failure becomes a located user error
        raise ExpressionError(f"cannot render '{_short(text)}': {error}") from None
    if len(rendered) > MAX_RENDERED_CHARS:
        raise ExpressionError(f"rendering '{_short(text)}' produced more than {MAX_RENDERED_CHARS} characters")
    return rendered


def render_deep(value: Any, context: dict) -> Any:
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {key: render_deep(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_deep(item, context) for item in value]
    return value


def is_truthy(value: Any) -> bool:
    """Kestra's truthiness: false, "false", 0, "0", "-0" and "" are false."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() not in {"", "false", "0", "-0", "none", "null"}
    return bool(value)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
