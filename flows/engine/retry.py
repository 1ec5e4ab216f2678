"""Retries (`retry:` on a task, an enclosing task or the flow): whether a failed attempt gets another,
and after how long. RETRY_FAILED_TASK retries the task run; CREATE_NEW_EXECUTION ends the execution
RETRIED and starts a new one (docs/flow-properties.md)."""
import random
from datetime import datetime

from ..durations import parse_duration
from ..models import Execution, TaskRun


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
    if retry is None or retry.behavior != "RETRY_FAILED_TASK" or run.attempt >= retry.max_attempts:
        return False
    if retry.maxDuration and run.created:  # as Kestra: the next attempt would start within maxDuration
        next_start = (now - run.created).total_seconds() + retry_delay(retry, run.attempt)
        return next_start <= seconds(retry.maxDuration)
    return True


def execution_retry_delay(retry, execution: Execution, now: datetime) -> float | None:
    """Seconds before the next execution of a CREATE_NEW_EXECUTION chain, or None when the chain has
    made its `maxAttempt` executions or the next would start after `maxDuration` from the first."""
    if execution.attempt >= retry.max_attempts:
        return None
    delay = retry_delay(retry, execution.attempt)
    first_created = execution.retry_of.created if execution.retry_of_id else execution.created
    if retry.maxDuration and (now - first_created).total_seconds() + delay > seconds(retry.maxDuration):
        return None
    return delay
