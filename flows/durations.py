"""ISO-8601 durations as Kestra (java.time.Duration) writes them: PT30S, PT1H30M, P1DT2H, PT0.5S."""
import re
from datetime import timedelta

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"'{text}' is not an ISO-8601 duration (for example PT30S, PT5M, PT1H, P1D)")
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    return timedelta(**parts)
