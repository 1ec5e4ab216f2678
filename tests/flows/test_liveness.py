"""Which workers count as alive (flows.selectors.alive_workers, docs/guarantees.md): a heartbeat
younger than 3 intervals, and, right after a database outage, when no worker has been beating
without a break for 3 intervals, an older one too (up to OUTAGE_GRACE)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from flows.models import Worker
from flows.selectors import OUTAGE_GRACE, alive_workers
from flows.services import worker_heartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def interval(settings):
    settings.WORKER_HEARTBEAT_INTERVAL = 5


def _worker(hostname: str, *, beat_ago: float, beating_for: float) -> None:
    """A worker whose last heartbeat was `beat_ago` seconds ago, after beating without a break for `beating_for`."""
    worker_heartbeat(hostname=hostname, groups=["gpu"], pid=1, concurrency=1, running=0, resumed=True)
    now = timezone.now()
    Worker.objects.filter(hostname=hostname).update(
        last_heartbeat=now - timedelta(seconds=beat_ago), first_seen=now - timedelta(seconds=beat_ago + beating_for))


def _alive() -> set[str]:
    return {worker.hostname for worker in alive_workers()}


def test_a_worker_silent_for_three_intervals_is_dead_while_another_beats_steadily():
    _worker("gpu@steady", beat_ago=1, beating_for=60)
    _worker("gpu@silent", beat_ago=16, beating_for=60)

    assert _alive() == {"gpu@steady"}


def test_after_a_database_outage_every_old_heartbeat_still_counts_until_beats_are_steady_again():
    _worker("gpu@back", beat_ago=1, beating_for=2)  # beating again since the database came back 3 s ago
    _worker("gpu@not-yet", beat_ago=40, beating_for=60)  # its first beat since has not landed yet

    assert _alive() == {"gpu@back", "gpu@not-yet"}

    Worker.objects.filter(hostname="gpu@back").update(first_seen=timezone.now() - timedelta(seconds=16))
    assert _alive() == {"gpu@back"}  # 3 intervals of steady beats: a worker still silent is dead


def test_the_grace_is_bounded():
    _worker("gpu@gone", beat_ago=OUTAGE_GRACE.total_seconds() + 16, beating_for=60)

    assert _alive() == set()


def test_a_beat_after_a_break_restarts_first_seen_and_a_regular_beat_keeps_it():
    _worker("gpu@w", beat_ago=1, beating_for=60)
    before = Worker.objects.get(hostname="gpu@w").first_seen

    worker_heartbeat(hostname="gpu@w", groups=["gpu"], pid=1, concurrency=1, running=0)
    assert Worker.objects.get(hostname="gpu@w").first_seen == before
    worker_heartbeat(hostname="gpu@w", groups=["gpu"], pid=1, concurrency=1, running=0, resumed=True)
    assert Worker.objects.get(hostname="gpu@w").first_seen > before
