"""NUL characters (U+0000), which PostgreSQL stores in neither text nor jsonb (flows/storable.py):
refused where a user submits them, replaced where a task produces them."""
import pytest

from flows.models import Execution, KeyValue, LogLine
from flows.services import flow_upload, worker_heartbeat
from tests.support.auth import api_client
from tests.support.driver import EngineDriver, Outcome

pytestmark = pytest.mark.django_db

FLOW = """
id: echo
namespace: company.team
inputs:
  - {id: text, type: STRING, required: false}
  - {id: doc, type: JSON, required: false}
  - {id: password, type: SECRET, required: false}
tasks:
  - {id: say, type: io.kestra.plugin.core.log.Log, message: "{{ inputs.text }}"}
"""


@pytest.fixture
def developer():
    flow_upload(source=FLOW, tenant_key="main")
    return api_client("dev", roles={"main": "developer"})


@pytest.mark.parametrize("body, path", [
    ('{"text": "a\\u0000b"}', "inputs.text"),
    ('{"doc": {"nested": ["ok", "\\u0000"]}}', "inputs.doc"),
    ('{"doc": {"\\u0000": 1}}', "inputs.doc"),
    ('{"password": "pass\\u0000word"}', "inputs.password"),
])
def test_an_input_holding_a_nul_is_refused_at_its_path_and_creates_nothing(developer, body, path):
    answer = developer.post("/api/v1/main/executions/company.team/echo", body, content_type="application/json")

    assert answer.status_code == 422, answer.content
    assert [fault["path"] for fault in answer.json()["errors"]] == [path]
    assert "NUL character" in answer.json()["message"]
    assert Execution.objects.count() == 0


@pytest.mark.parametrize("url", [
    "/api/v1/main/executions/search?labels=team:a%00b",
    "/api/v1/main/triggers/search?namespace=company%00",
    "/api/v1/main/flows/company.team/ec%00ho",
])
def test_a_path_or_query_parameter_holding_a_nul_is_a_400(developer, url):
    answer = developer.get(url)

    assert answer.status_code == 400 and "NUL character" in answer.json()["message"]


def test_a_label_holding_a_nul_creates_nothing(developer):
    answer = developer.post("/api/v1/main/executions/company.team/echo?labels=team:a%00b")

    assert answer.status_code == 400
    assert Execution.objects.count() == 0


def test_a_json_body_holding_a_nul_is_refused_at_its_path():
    admin = api_client("root", superuser=True)
    answer = admin.put("/api/v1/main/namespaces/company.team", {"workerGroup": {"key": "g\x00pu"}},
                       content_type="application/json")

    assert answer.status_code == 422, answer.content
    assert answer.json()["errors"][0]["path"] == "workerGroup.key"


def test_an_admin_form_or_filter_holding_a_nul_is_a_400(admin_client):
    assert admin_client.get("/admin/flows/execution/?namespace=a%00").status_code == 400
    assert admin_client.post("/admin/flows/workergroup/add/", {"key": "g\x00pu"}).status_code == 400


def test_a_kv_value_holding_a_nul_is_refused_and_stores_nothing(developer):
    answer = developer.put("/api/v1/main/namespaces/company.team/kv/k", '{"a": "b\\u0000"}',
                           content_type="application/json")

    assert answer.status_code == 422 and "NUL character" in answer.json()["message"]
    assert not KeyValue.objects.exists()


def test_a_task_producing_nul_characters_ends_with_them_replaced():
    worker_heartbeat(hostname="default@unit-test", groups=["default"], pid=1, concurrency=1, running=0)
    produced = Outcome(state="FAILED", outputs={"out\x00": ["x\x00y", {"k": "\x00"}]}, error="bad\x00byte")
    driver = EngineDriver(outcomes={"say": produced})

    execution = driver.run(FLOW, inputs={"text": "hello"})

    run = execution.task_runs.get(task_id="say")
    assert run.state == "FAILED"
    assert run.outputs == {"out\ufffd": ["x\ufffdy", {"k": "\ufffd"}]}
    assert run.error == "bad\ufffdbyte"
    LogLine.objects.create(execution=execution, task_run=run, message="printed \x00 by a script")
    assert LogLine.objects.filter(message="printed \ufffd by a script").exists()
