"""Routing reads remembered for ROUTING_CACHE_SECONDS (flows/recent.py): only on the side the
rules allow for, and never past a worker's liveness."""
from datetime import timedelta

import pytest
from django.utils import timezone

from flows.models import Tenant, Worker, WorkerGroup
from flows.recent import namespace_defaults_recent, queue_alive_recent, worker_group_problem_recent
from flows.services import namespace_set, tenant_create, worker_group_create, worker_heartbeat
from tests.support import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def remembering(settings):
    settings.ROUTING_CACHE_SECONDS = 60
    settings.WORKER_HEARTBEAT_INTERVAL = 5
    return settings


def _beat(hostname: str, *, age_seconds: float = 0.0, groups=("gpu",)) -> None:
    """A worker beating for an hour, its last heartbeat `age_seconds` ago."""
    worker_heartbeat(hostname=hostname, groups=list(groups), pid=1, concurrency=1, running=0, resumed=True)
    Worker.objects.filter(hostname=hostname).update(
        first_seen=timezone.now() - timedelta(hours=1), last_heartbeat=timezone.now() - timedelta(seconds=age_seconds))



def test_an_alive_group_is_remembered_and_a_group_without_workers_is_read_again(remembering):
    assert queue_alive_recent("gpu") is False
    _beat("gpu@one")
    assert queue_alive_recent("gpu") is True  # not remembered as dead: a new worker counts at once

    Worker.objects.all().delete()

    assert queue_alive_recent("gpu") is True  # remembered


def test_a_remembered_worker_stops_counting_when_its_heartbeat_is_too_old(remembering):
    _beat("cpu@steady", groups=["cpu"])  # the database takes heartbeats: no outage grace
    _beat("gpu@old", age_seconds=3 * 5 - 0.5)  # alive for another half second by the rule
    assert queue_alive_recent("gpu") is True

    # long before ROUTING_CACHE_SECONDS
    wait_for(lambda: queue_alive_recent("gpu") is False, timeout=10, message="the drained group read again")


def test_a_group_that_allows_the_tenant_is_remembered_and_a_refusal_is_read_again(remembering):
    tenant = Tenant.objects.get(key="main")
    other = tenant_create(key="other")
    assert worker_group_problem_recent("gpu", tenant) == "worker group 'gpu' does not exist"
    worker_group_create(key="gpu", allowed_tenants=["main"])
    assert worker_group_problem_recent("gpu", tenant) is None  # the refusal was not remembered
    assert worker_group_problem_recent("gpu", other) == "worker group 'gpu' does not allow tenant 'other'"

    WorkerGroup.objects.filter(key="gpu").delete()

    assert worker_group_problem_recent("gpu", tenant) is None  # remembered
    assert worker_group_problem_recent("gpu", other) == "worker group 'gpu' does not exist"


def test_namespace_defaults_are_remembered_for_a_while_then_read_again(remembering):
    remembering.ROUTING_CACHE_SECONDS = 2
    tenant = Tenant.objects.get(key="main")
    worker_group_create(key="gpu")
    worker_group_create(key="cpu")
    namespace_set(tenant_key="main", name="company", worker_group_key="gpu", fallback="FAIL")
    assert namespace_defaults_recent(tenant, "company.team") == ("gpu", "FAIL")

    namespace_set(tenant_key="main", name="company.team", worker_group_key="cpu")

    assert namespace_defaults_recent(tenant, "company.team") == ("gpu", "FAIL")  # remembered
    wait_for(lambda: namespace_defaults_recent(tenant, "company.team") == ("cpu", "FAIL"), timeout=10,
             message="the changed defaults read again")


def test_a_drained_group_has_no_alive_worker_and_is_read_again(remembering):
    worker_group_create(key="gpu")
    _beat("gpu@one")
    WorkerGroup.objects.filter(key="gpu").update(drained=True)
    assert queue_alive_recent("gpu") is False

    WorkerGroup.objects.filter(key="gpu").update(drained=False)

    assert queue_alive_recent("gpu") is True
