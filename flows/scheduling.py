"""Schedule arithmetic: the dates a Schedule trigger fires at and the variables of each firing, and
the first due date of every trigger type. Pure functions of a trigger's stored definition (its
parsed YAML as a dict) and a date; no database. The rules, for users, are in docs/triggers.md."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import croniter

from .durations import parse_duration

SCHEDULE = "io.kestra.plugin.core.trigger.Schedule"
FLOW = "io.kestra.plugin.core.trigger.Flow"
WEBHOOK = "io.kestra.plugin.core.trigger.Webhook"
EVENT_TYPES = frozenset({FLOW, WEBHOOK})  # started by an event, never by the clock


def _dates(definition: dict, start: datetime) -> croniter:
    local = start.astimezone(ZoneInfo(definition.get("timezone") or "UTC"))
    return croniter(definition["cron"], local, second_at_beginning=bool(definition.get("withSeconds")))


def _utc(date: datetime) -> datetime:
    return date.astimezone(timezone.utc)


def schedule_next(definition: dict, after: datetime) -> datetime:
    """The first date of the schedule strictly after `after`."""
    return _utc(_dates(definition, after).get_next(datetime))


def schedule_previous(definition: dict, before: datetime) -> datetime:
    """The last date of the schedule strictly before `before`."""
    return _utc(_dates(definition, before).get_prev(datetime))


def schedule_due(definition: dict, first: datetime, now: datetime, limit: int) -> tuple[list[datetime], datetime]:
    """The dates from `first` (a date of the schedule) up to `now`, at most `limit` of them, and the
    date after the last one: where the trigger is due next."""
    dates, date = [], first
    while date <= now and len(dates) < limit:
        dates.append(date)
        date = schedule_next(definition, date)
    return dates, date


def iso(date: datetime, zone: str = "UTC") -> str:
    """As Kestra writes dates: ISO-8601 in the trigger's time zone, `Z` for UTC."""
    text = date.astimezone(ZoneInfo(zone)).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def schedule_variables(definition: dict, date: datetime) -> dict:
    """`trigger.date`, `trigger.next` and `trigger.previous` of the execution started for `date`."""
    zone = definition.get("timezone") or "UTC"
    return {
        "date": iso(date, zone),
        "next": iso(schedule_next(definition, date), zone),
        "previous": iso(schedule_previous(definition, date), zone),
    }


def interval_of(definition: dict) -> timedelta:
    return parse_duration(definition["interval"])


def first_due(definition: dict, now: datetime) -> datetime | None:
    """When a trigger that starts (or starts again) now is first due, as in Kestra: a Schedule at its
    next date, a polling trigger one interval from now, a Flow or Webhook trigger never."""
    kind = definition["type"]
    if kind == SCHEDULE:
        return schedule_next(definition, now)
    if kind in EVENT_TYPES:
        return None
    return now + interval_of(definition)


def resumed_due(definition: dict, now: datetime, since: datetime | None) -> datetime | None:
    """When a trigger that was stopped (disabled, its flow disabled) and starts again is due: as a new
    trigger, except that a Schedule with `recoverMissedSchedules: LAST` runs for the last date it
    missed meanwhile (`since`: when it last fired or was created)."""
    if definition["type"] == SCHEDULE and definition.get("recoverMissedSchedules") == "LAST" and since is not None:
        previous = schedule_previous(definition, now)
        if previous > since:
            return previous
    return first_due(definition, now)
