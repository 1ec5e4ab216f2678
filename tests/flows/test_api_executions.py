"""The executions REST API over real workers on a real Redis: create (with ?wait=true),
get with taskRunList, search, kill, logs."""
import time

import pytest
from django.test import Client

from flows import dispatch
from flows.engine import execution_create
from flows.models import Execution
from flows.services import flow_upload, tenant_create
from tests.support import wait_execution, wait_for
from tests.support.auth import api_client

pytestmark = pytest.mark.django_db(transaction=True)

ROUTED = """\
id: routed
namespace: company.team
inputs:
  - id: count
    type: INT
  - id: who
    type: STRING
    defaults: world
tasks:
  - id: train
    type: io.kestra.plugin.core.debug.Return
    format: "trained {{ inputs.count }}"
    workerGroup: {key: gpu}
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.who }}"
    level: WARN
"""

SLEEPY = """\
id: sleepy
namespace: company.team
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: never
"""

BROKEN = """\
id: broken
namespace: company.team
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: boom
"""


@pytest.fixture
def api():
    """A developer of tenant main: runs, kills and reads its executions."""
    return api_client("alice", roles={"main": "developer"})


def start(api, flow: str = "routed", *, data=None, query: str = "", **kwargs):
    return api.post(f"/api/v1/main/executions/company.team/{flow}{query}", data or {}, **kwargs)


def by_task(body: dict) -> dict:
    return {run["taskId"]: run for run in body["taskRunList"]}


# --- without workers: refusals that create nothing --------------------------------------------


def test_bad_inputs_are_422_at_the_input_and_create_nothing(api):
    flow_upload(source=ROUTED.replace("workerGroup: {key: gpu}", ""), tenant_key="main")

    response = start(api, data={"count": "abc"})

    assert response.status_code == 422
    assert [fault["path"] for fault in response.json()["errors"]] == ["inputs.count"]
    assert "'abc' is not an integer" in response.json()["message"]
    missing = start(api, data="{}", content_type="application/json")
    assert missing.status_code == 422 and missing.json()["errors"][0]["path"] == "inputs.count"
    assert Execution.objects.count() == 0


def test_unknown_flow_tenant_or_execution_is_404(api):
    assert start(api, "nowhere", data={"count": "1"}).status_code == 404
    assert api.post("/api/v1/ghost/executions/company.team/routed").status_code == 404
    assert api.get("/api/v1/main/executions/not-a-uuid").status_code == 404
    assert api.get("/api/v1/main/executions/3f1c5b9e-1111-4222-8333-444455556666/logs").status_code == 404


def test_requests_without_a_token_are_401_and_create_nothing():
    flow_upload(source=ROUTED.replace("workerGroup: {key: gpu}", ""), tenant_key="main")
    client = Client()

    assert client.post("/api/v1/main/executions/company.team/routed", {"count": "1"}).status_code == 401
    assert client.get("/api/v1/main/executions/search").status_code == 401
    assert Execution.objects.count() == 0


@pytest.mark.parametrize("query, path", [("page=0", "page"), ("size=501", "size"), ("size=x", "size"),
                                         ("state=DONE", "state")])
def test_bad_search_parameters_are_422(api, query, path):
    response = api.get(f"/api/v1/main/executions/search?{query}")

    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == path


def test_search_by_labels_keeps_executions_carrying_every_label(api):
    flow_upload(source=ROUTED.replace("workerGroup: {key: gpu}", ""), tenant_key="main")
    with dispatch.sending_to(lambda message: None):  # no broker: only the stored executions matter here
        start(api, data={"count": "1"}, query="?labels=team:data&labels=tier:gold")
        start(api, data={"count": "1"}, query="?labels=team:data")

    both = api.get("/api/v1/main/executions/search?labels=team:data&labels=tier:gold").json()
    team = api.get("/api/v1/main/executions/search?labels=team:data").json()
    bad = api.get("/api/v1/main/executions/search?labels=nocolon")

    assert both["total"] == 1 and {"key": "tier", "value": "gold"} in both["results"][0]["labels"]
    assert team["total"] == 2
    assert bad.status_code == 422


# --- with the session's executor and default/gpu workers -------------------------------------


def test_create_with_wait_answers_the_ended_execution_with_each_task_runs_group_and_worker(engine, api):
    flow_upload(source=ROUTED, tenant_key="main")

    response = start(api, data={"count": "3"}, query="?wait=true&labels=team:ml&labels=env:test")

    assert response.status_code == 200
    body = response.json()
    assert body["state"]["current"] == "SUCCESS" and body["state"]["endDate"]
    assert body["inputs"] == {"count": 3, "who": "world"}
    assert {"key": "team", "value": "ml"} in body["labels"] and {"key": "env", "value": "test"} in body["labels"]
    assert [run["taskId"] for run in body["taskRunList"]] == ["train", "greet"]
    train, greet = by_task(body)["train"], by_task(body)["greet"]
    assert train["workerGroup"] == {"key": "gpu", "fallback": "WAIT"}
    assert train["workerId"].startswith("gpu@") and train["outputs"] == {"value": "trained 3"}
    assert greet["workerGroup"]["key"] is None and greet["workerId"].startswith("default@")
    assert [(a["attempt"], a["workerId"], a["state"]["current"]) for a in train["attempts"]] == [
        (1, train["workerId"], "SUCCESS"),
    ]
    assert [h["state"] for h in train["state"]["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]


def test_inputs_as_a_json_body_and_get_shows_the_execution(engine, api):
    flow_upload(source=ROUTED, tenant_key="main")

    created = start(api, data={"count": 7, "who": "json"}, content_type="application/json")

    assert created.status_code == 200 and created.json()["state"]["current"] in ("CREATED", "RUNNING")
    execution_id = created.json()["id"]
    wait_execution(execution_id)
    body = api.get(f"/api/v1/main/executions/{execution_id}").json()
    assert (body["id"], body["flowId"], body["flowRevision"], body["tenantId"]) == (execution_id, "routed", 1, "main")
    assert body["state"]["current"] == "SUCCESS" and body["trigger"] is None
    assert by_task(body)["train"]["outputs"] == {"value": "trained 7"}


def test_an_execution_of_another_tenant_is_404(engine, api):
    tenant_create(key="other")
    flow_upload(source=ROUTED, tenant_key="main")
    execution_id = start(api, data={"count": "1"}).json()["id"]
    wait_execution(execution_id)

    assert api.get(f"/api/v1/other/executions/{execution_id}").status_code == 404
    assert api.get(f"/api/v1/other/executions/{execution_id}/logs").status_code == 404
    assert api.delete(f"/api/v1/other/executions/{execution_id}/kill").status_code == 404
    assert api.get(f"/api/v1/main/executions/{execution_id}").status_code == 200


def test_kill_stops_a_sleeping_execution(engine, api):
    flow_upload(source=SLEEPY, tenant_key="main")
    execution_id = start(api, "sleepy").json()["id"]
    wait_for(lambda: Execution.objects.get(id=execution_id).task_runs.filter(task_id="nap", state="RUNNING").exists(),
             message="the sleep to start")
    started = time.monotonic()

    response = api.delete(f"/api/v1/main/executions/{execution_id}/kill")

    assert response.status_code == 202
    assert response.json()["state"]["current"] in ("KILLING", "KILLED")
    execution = wait_execution(execution_id, timeout=20)
    assert execution.state == "KILLED" and time.monotonic() - started < 20
    runs = by_task(api.get(f"/api/v1/main/executions/{execution_id}").json())
    assert runs["nap"]["state"]["current"] == "KILLED" and "after" not in runs
    assert api.delete(f"/api/v1/main/executions/{execution_id}/kill").status_code == 409


def test_logs_hold_the_log_tasks_message_and_filter_by_level(engine, api):
    flow_upload(source=ROUTED, tenant_key="main")
    body = start(api, data={"count": "1", "who": "logs"}, query="?wait=true").json()
    url = f"/api/v1/main/executions/{body['id']}/logs"

    logs = api.get(url).json()

    greet = by_task(body)["greet"]
    assert {"level": "WARN", "message": "hello logs", "taskRunId": greet["id"], "taskId": "greet"}.items() <= next(
        line for line in logs if line["message"] == "hello logs").items()
    assert all(line["level"] == "ERROR" for line in api.get(f"{url}?minLevel=ERROR").json())
    assert "hello logs" in [line["message"] for line in api.get(f"{url}?minLevel=warn").json()]
    assert api.get(f"{url}?minLevel=LOUD").status_code == 422


def test_search_filters_newest_first_and_paginates(engine, api):
    flow_upload(source=ROUTED, tenant_key="main")
    flow_upload(source=BROKEN, tenant_key="main")
    flow_upload(source=ROUTED.replace("id: routed", "id: other").replace("company.team", "company.ops"),
                tenant_key="main")
    routed = [start(api, data={"count": str(n)}, query="?wait=true").json()["id"] for n in range(3)]
    failed = start(api, "broken", query="?wait=true").json()
    scheduled = execution_create(tenant_key="main", namespace="company.ops", flow_id="other", inputs={"count": 1},
                                 trigger={"id": "nightly", "type": "io.kestra.plugin.core.trigger.Schedule",
                                          "variables": {"date": "2025-01-01T02:00:00+00:00"}})
    wait_execution(scheduled.id)

    everything = api.get("/api/v1/main/executions/search").json()
    assert everything["total"] == 5
    assert [item["id"] for item in everything["results"]] == [str(scheduled.id), failed["id"], *reversed(routed)]
    page_two = api.get("/api/v1/main/executions/search?namespace=company.team&flowId=routed&size=2&page=2").json()
    assert page_two == {"results": page_two["results"], "total": 3}
    assert [item["id"] for item in page_two["results"]] == [routed[0]]
    assert api.get("/api/v1/main/executions/search?namespace=company").json()["total"] == 5
    assert api.get("/api/v1/main/executions/search?namespace=company.team").json()["total"] == 4
    by_state = api.get("/api/v1/main/executions/search?state=FAILED").json()
    assert failed["state"]["current"] == "FAILED" and [item["id"] for item in by_state["results"]] == [failed["id"]]
    [ops] = api.get("/api/v1/main/executions/search?namespace=company.ops").json()["results"]
    assert ops["trigger"]["id"] == "nightly" and ops["trigger"]["variables"] == {"date": "2025-01-01T02:00:00+00:00"}
    assert api.get("/api/v1/main/executions/search?page=9").json() == {"results": [], "total": 5}
