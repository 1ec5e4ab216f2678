"""ISO-8601 durations as Kestra writes them (PT30S, PT1H30M, P1DT2H, PT0.5S), parsed by pydantic."""
from datetime import timedelta

from pydantic import TypeAdapter, ValidationError

_TIMEDELTA = TypeAdapter(timedelta)


def parse_duration(text: str) -> timedelta:
    # pydantic also takes "00:00:30", bare numbers and negative durations; Kestra takes none of them.
    candidate = text.strip().upper() if isinstance(text, str) else ""
    if candidate.startswith("P"):
        try:
            return _TIMEDELTA.validate_python(candidate)
        except ValidationError:
            pass
    raise ValueError(f"'{text}' is not an ISO-8601 duration (for example PT30S, PT5M, PT1H, P1D)")
