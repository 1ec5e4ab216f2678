"""Text the database can store: PostgreSQL keeps no NUL character (U+0000) in `text` or `jsonb`.

Values a user submits (inputs, KV values, labels) that hold one are refused with an error naming
where; text a task produces (logs, outputs, errors) has each NUL replaced by U+FFFD, as bytes
that are not UTF-8 are, so a script printing one never makes its task run's end unstorable.
"""
from typing import Any

NUL = "\x00"
REPLACEMENT = "\ufffd"


def contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(contains_nul(key) or contains_nul(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(contains_nul(item) for item in value)
    return False


def nul_path(value: Any, path: str = "") -> str | None:
    """Where the first NUL in `value` is, as a dotted path (`a.b[2]`); None when it holds none."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if contains_nul(key):
                return inner
            found = nul_path(item, inner)
            if found is not None:
                return found
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def nul_replaced(value: Any) -> Any:
    """`value` with every NUL in its text (keys included) replaced; `value` itself when it has none."""
    if not contains_nul(value):
        return value
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT)
    if isinstance(value, dict):
        return {nul_replaced(key): nul_replaced(item) for key, item in value.items()}
    return [nul_replaced(item) for item in value]
