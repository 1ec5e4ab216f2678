"""Task retries (`retry:` on a task): whether a failed attempt gets another, and after how long."""
import random
from datetime import datetime

from ..durations import parse_duration
from ..models import TaskRun


def seconds(text: str | None, default: float = 0.0) -> float:
    return parse_duration(text).total_seconds() if text else default


def retry_delay(retry, attempt: int) -> float:
    """Seconds to wait before attempt `attempt + 1`."""
    if retry.type == "random":
        low = seconds(retry.minInterval)
        return random.uniform(low, max(low, seconds(retry.maxInterval, low)))
    interval = seconds(retry.interval)
    if retry.type == "exponential":
        interval *= (retry.delayFactor or 2.0) ** (attempt - 1)
    if retry.maxInterval:
        interval = min(interval, seconds(retry.maxInterval))
    return interval


def should_retry(retry, run: TaskRun, now: datetime) -> bool:
    if retry is None or run.attempt >= retry.max_attempts:
        return False
    if retry.maxDuration and run.created:
        return (now - run.created).total_seconds() < seconds(retry.maxDuration)
    return True
