"""Schedule arithmetic (flows/scheduling.py): due dates, Kestra's trigger variables, first dates."""
from datetime import datetime, timedelta, timezone

from flows.scheduling import first_due, resumed_due, schedule_due, schedule_next, schedule_previous, schedule_variables

UTC = timezone.utc
EVERY_TWO_SECONDS = {"type": "io.kestra.plugin.core.trigger.Schedule", "cron": "*/2 * * * * *", "withSeconds": True,
                     "timezone": "UTC"}
NIGHTLY_PARIS = {"type": "io.kestra.plugin.core.trigger.Schedule", "cron": "0 2 * * *", "withSeconds": False,
                 "timezone": "Europe/Paris"}


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_next_and_previous_are_strict_and_honour_seconds():
    assert schedule_next(EVERY_TWO_SECONDS, at(2025, 1, 1, 0, 0, 1)) == at(2025, 1, 1, 0, 0, 2)
    assert schedule_next(EVERY_TWO_SECONDS, at(2025, 1, 1, 0, 0, 2)) == at(2025, 1, 1, 0, 0, 4)
    assert schedule_previous(EVERY_TWO_SECONDS, at(2025, 1, 1, 0, 0, 2)) == at(2025, 1, 1, 0, 0, 0)


def test_the_time_zone_decides_the_dates():
    # 02:00 in Paris is 01:00 UTC in winter and 00:00 UTC in summer.
    assert schedule_next(NIGHTLY_PARIS, at(2025, 1, 10, 12)) == at(2025, 1, 11, 1)
    assert schedule_next(NIGHTLY_PARIS, at(2025, 7, 10, 12)) == at(2025, 7, 11, 0)


def test_due_dates_run_from_the_first_up_to_now_within_the_limit():
    dates, following = schedule_due(EVERY_TWO_SECONDS, at(2025, 1, 1, 0, 0, 0), at(2025, 1, 1, 0, 0, 7), limit=100)
    assert dates == [at(2025, 1, 1, 0, 0, second) for second in (0, 2, 4, 6)]
    assert following == at(2025, 1, 1, 0, 0, 8)
    dates, following = schedule_due(EVERY_TWO_SECONDS, at(2025, 1, 1, 0, 0, 0), at(2025, 1, 1, 0, 0, 7), limit=2)
    assert (dates, following) == ([at(2025, 1, 1, 0, 0, 0), at(2025, 1, 1, 0, 0, 2)], at(2025, 1, 1, 0, 0, 4))


def test_variables_are_kestras_date_next_previous_in_the_trigger_time_zone():
    assert schedule_variables(NIGHTLY_PARIS, at(2025, 1, 11, 1)) == {
        "date": "2025-01-11T02:00:00+01:00", "next": "2025-01-12T02:00:00+01:00",
        "previous": "2025-01-10T02:00:00+01:00",
    }
    assert schedule_variables(EVERY_TWO_SECONDS, at(2025, 1, 1, 0, 0, 2))["date"] == "2025-01-01T00:00:02Z"


def test_first_due_date_per_trigger_type():
    now = at(2025, 1, 1, 0, 0, 1)
    assert first_due(EVERY_TWO_SECONDS, now) == at(2025, 1, 1, 0, 0, 2)
    assert first_due({"type": "io.kestra.plugin.core.http.Trigger", "interval": "PT30S"}, now) == now + timedelta(seconds=30)
    assert first_due({"type": "io.kestra.plugin.core.trigger.Webhook"}, now) is None
    assert first_due({"type": "io.kestra.plugin.core.trigger.Flow"}, now) is None


def test_a_schedule_enabled_again_with_last_runs_for_the_last_date_it_missed():
    now = at(2025, 1, 1, 0, 0, 9)
    last = {**EVERY_TWO_SECONDS, "recoverMissedSchedules": "LAST"}
    assert resumed_due(last, now, since=at(2025, 1, 1, 0, 0, 0)) == at(2025, 1, 1, 0, 0, 8)
    assert resumed_due(last, now, since=at(2025, 1, 1, 0, 0, 8)) == at(2025, 1, 1, 0, 0, 10)  # missed none
    for policy in ("ALL", "NONE"):
        assert resumed_due({**EVERY_TWO_SECONDS, "recoverMissedSchedules": policy}, now,
                           since=at(2025, 1, 1, 0, 0, 0)) == at(2025, 1, 1, 0, 0, 10)
