"""One health selector per group (flows/selectors.py, worker_group_health), shown the same by the
admin, the API and `workergroup list` (docs/operations.md)."""
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from flows.engine import execution_create
from flows.models import WorkerGroup
from flows.selectors import worker_group_health
from flows.services import flow_upload
from tests.support import LOG_FLOW_ON_GROUP, wait_for
from tests.support.auth import api_client

pytestmark = pytest.mark.django_db(transaction=True)


def _cli_row(key: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("workergroup", "list", stdout=out)
    return next(line for line in out.getvalue().splitlines() if line.split()[0] == key)


def test_killing_the_only_gpu_worker_turns_alive_to_zero_and_waiting_work_flags_the_group(engine, settings):
    gpu_worker = next(hostname for hostname in engine.processes if hostname.startswith("gpu@"))
    api = api_client("root", superuser=True)
    admin = Client()
    admin.force_login(get_user_model().objects.get(username="root"))
    health = api.get("/api/v1/instance/workergroups/gpu").json()["health"]
    assert health["alive"] == 1 and health["aliveWorkers"][0]["hostname"] == gpu_worker
    assert health["aliveWorkers"][0]["groups"] == ["gpu"] and health["aliveWorkers"][0]["pid"] > 0
    assert health["brokerQueueLength"] == 0

    engine.stop(gpu_worker, kill=True)
    # Three heartbeat intervals after its last beat, it is dead everywhere.
    wait_for(lambda: worker_group_health(["gpu"])["gpu"]["alive"] == 0,
             timeout=3 * settings.WORKER_HEARTBEAT_INTERVAL + 5, message="gpu to have no alive worker")
    assert api.get("/api/v1/instance/workergroups/gpu").json()["health"]["aliveWorkers"] == []
    assert _cli_row("gpu").split()[-7:-5] == ["0", "0"]  # alive workers, queued
    assert "FLAGGED" not in _cli_row("gpu")

    flow = flow_upload(source=LOG_FLOW_ON_GROUP.format(group="gpu"), tenant_key="main")
    execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id)
    wait_for(lambda: worker_group_health(["gpu"])["gpu"]["brokerQueueLength"] == 1,
             message="the task run's message to wait in the gpu queue")

    health = api.get("/api/v1/instance/workergroups/gpu").json()["health"]
    assert (health["alive"], health["queued"], health["flagged"]) == (0, 1, True)
    assert health["oldestQueuedSince"]
    assert _cli_row("gpu").split()[-1] == "FLAGGED"
    listing = unescape(admin.get(reverse("admin:flows_workergroup_changelist")).content.decode())
    assert "0 alive" in listing and "FLAGGED" in listing
    group_id = WorkerGroup.objects.get(key="gpu").pk
    detail = unescape(admin.get(reverse("admin:flows_workergroup_change", args=[group_id])).content.decode())
    assert "0 alive" in detail and "1 queued" in detail and "FLAGGED" in detail
