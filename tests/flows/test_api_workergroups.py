"""The worker-group endpoints of the REST API: CRUD, reserved keys, health."""
import pytest
from django.utils import timezone

from flows.models import Execution, FlowRevision, State, TaskRun
from flows.selectors import tenant_get
from flows.services import flow_upload, tenant_create
from flows.services import worker_heartbeat
from tests.support.auth import api_client

pytestmark = pytest.mark.django_db

URL = "/api/v1/instance/workergroups"


@pytest.fixture
def api():
    """A superuser's token: worker groups are instance resources (docs/security.md)."""
    return api_client("alice", superuser=True, enforce_csrf_checks=True)


def post(api, body):
    return api.post(URL, body, content_type="application/json")


def test_worker_group_create_get_update_delete(api):
    tenant_get("main")  # the default tenant exists from the first migration
    tenant_create(key="other")
    created = post(api, {"key": "gpu", "description": "GPU boxes", "allowedTenants": ["main"]})

    assert created.status_code == 200
    assert created.json()["allowedTenants"] == ["main"]
    assert [g["key"] for g in api.get(URL).json()] == ["gpu"]

    updated = api.put(f"{URL}/gpu", {"description": "A100s"}, content_type="application/json")
    assert updated.json()["description"] == "A100s"
    assert updated.json()["allowedTenants"] == ["main"]  # omitted: unchanged, never opened to all
    opened = api.put(f"{URL}/gpu", {"allowedTenants": ["main", "other"]}, content_type="application/json")
    assert opened.json()["allowedTenants"] == ["main", "other"]

    assert api.delete(f"{URL}/gpu").status_code == 204
    assert api.get(f"{URL}/gpu").status_code == 404
    assert api.delete(f"{URL}/gpu").status_code == 404


@pytest.mark.parametrize("key", ["default", "executor", "scheduler"])
def test_reserved_keys_are_refused(api, key):
    response = post(api, {"key": key})

    assert response.status_code == 422
    assert f"'{key}' is reserved" in response.json()["message"]
    assert api.get(URL).json() == []


@pytest.mark.parametrize("body, status, path, words", [
    ({"key": "gpu"}, 409, "key", "already exists"),
    ({"key": "bad key"}, 422, "key", "must match"),
    ({"description": "no key"}, 422, "key", "missing required property 'key'"),
    ({"key": "cpu", "allowedTenants": "main"}, 422, "allowedTenants", "valid list"),
    ({"key": "cpu", "allowedTenants": ["nobody"]}, 422, "allowedTenants", "'nobody'"),
    ({"key": "cpu", "colour": "red"}, 422, "colour", "unknown property 'colour'"),
])
def test_bad_worker_group_bodies_say_where_and_why(api, body, status, path, words):
    post(api, {"key": "gpu"})

    response = post(api, body)

    assert response.status_code == status
    [fault] = response.json()["errors"]
    assert fault["path"] == path and words in fault["message"]
    assert [g["key"] for g in api.get(URL).json()] == ["gpu"]


def test_health_lists_alive_workers_and_queued_task_runs(api):
    post(api, {"key": "gpu"})
    worker_heartbeat(hostname="gpu@box1", groups=["gpu"], pid=42, concurrency=2, running=0)
    worker_heartbeat(hostname="cpu@box2", groups=["default"], pid=43, concurrency=2, running=0)
    flow = flow_upload(
        source="id: f\nnamespace: team\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n",
        tenant_key="main",
    )
    execution = Execution.objects.create(
        tenant=flow.tenant, flow_revision=FlowRevision.objects.get(flow=flow), namespace="team", flow_id="f",
        start_date=timezone.now(),
    )
    TaskRun.objects.create(execution=execution, scope_key="t", task_id="t", task_type="log", worker_group="gpu",
                           state=State.CREATED)

    health = api.get(f"{URL}/gpu").json()["health"]

    assert [w["hostname"] for w in health["aliveWorkers"]] == ["gpu@box1"]
    assert health["aliveWorkers"][0]["lastHeartbeat"]
    assert (health["queued"], health["running"]) == (1, 0)
    assert api.get(URL).json()[0]["health"] == health
    assert health["oldestQueuedSince"]
    assert health["flagged"] is False and health["alive"] == 1


def test_drain_and_resume_are_stored_and_shown_and_a_drained_group_has_no_alive_worker(api):
    from flows.selectors import alive_queues

    post(api, {"key": "gpu", "concurrencyLimit": 2, "initScript": "echo ready"})
    worker_heartbeat(hostname="gpu@box1", groups=["gpu"], pid=42, concurrency=2, running=0)
    worker_heartbeat(hostname="gpu@box2", groups=["gpu"], pid=43, concurrency=2, running=0)

    one = api.post(f"{URL}/gpu/drain", {"worker": "gpu@box1"}, content_type="application/json").json()
    assert one["drainedWorkers"] == ["gpu@box1"] and one["health"]["alive"] == 1 and "gpu" in alive_queues()
    group = api.post(f"{URL}/gpu/drain").json()
    assert group["health"]["drained"] and group["health"]["alive"] == 0 and "gpu" not in alive_queues()
    assert [w["drained"] for w in group["health"]["aliveWorkers"]] == [True, True]
    assert (group["concurrencyLimit"], group["initScript"]) == (2, "echo ready")

    resumed = api.post(f"{URL}/gpu/resume?worker=gpu@box1").json()  # the group itself stays drained
    assert resumed["drainedWorkers"] == [] and resumed["health"]["alive"] == 0
    resumed = api.post(f"{URL}/gpu/resume").json()
    assert not resumed["health"]["drained"] and resumed["health"]["alive"] == 2 and "gpu" in alive_queues()


def test_drain_refusals_and_limit_updates(api):
    post(api, {"key": "gpu"})
    assert api.post(f"{URL}/ghost/drain").status_code == 404
    refused = api.post(f"{URL}/gpu/resume", {"worker": "gpu@nobody"}, content_type="application/json")
    assert refused.status_code == 422 and refused.json()["errors"][0]["path"] == "worker"
    bad = api.put(f"{URL}/gpu", {"concurrencyLimit": 0}, content_type="application/json")
    assert bad.status_code == 422 and "concurrency limit" in bad.text
    assert api.put(f"{URL}/gpu", {"concurrencyLimit": 3}, content_type="application/json").json()["concurrencyLimit"] == 3
    assert api.put(f"{URL}/gpu", {"description": "x"}, content_type="application/json").json()["concurrencyLimit"] == 3
    assert api.put(f"{URL}/gpu", {"concurrencyLimit": None}, content_type="application/json").json()["concurrencyLimit"] is None
    member = api_client("bob", roles={"main": "admin"})
    assert member.post(f"{URL}/gpu/drain").status_code == 403
