"""The REST API through Django's test client: auth, flows, namespaces, tenants, OpenAPI."""
import re

import pytest
from django.test import Client

from flows.api.api import api as ninja_api
from flows.models import Flow, FlowRevision
from flows.selectors import tenant_get
from flows.services import tenant_create, token_create
from flows.services import worker_group_create
from tests.support.auth import api_client

pytestmark = pytest.mark.django_db

FLOW = """\
id: etl
namespace: company.team
tasks:
  - id: train
    type: io.kestra.plugin.core.log.Log
    message: training
    workerGroup:
      key: gpu
"""


@pytest.fixture
def api():
    """A superuser's token: these tests use instance resources too (roles: test_api_authorization.py)."""
    return api_client("alice", superuser=True, enforce_csrf_checks=True)


@pytest.fixture
def gpu():
    return worker_group_create(key="gpu", description="GPU boxes")


def upload(api, source: str, tenant: str = "main"):
    return api.post(f"/api/v1/{tenant}/flows", source, content_type="application/x-yaml")


def put_json(api, url: str, body):
    return api.put(url, body, content_type="application/json")


# --- auth, errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic YWxpY2U6c2VjcmV0", "Bearer "])
def test_requests_without_a_valid_bearer_token_are_refused_and_change_nothing(gpu, header):
    token_create(username="alice")
    client = Client(headers={"Authorization": header} if header else {})

    response = client.post("/api/v1/main/flows", FLOW, content_type="application/x-yaml")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "token" in response.json()["message"]
    assert Flow.objects.count() == 0
    assert client.get("/api/v1/tenants").status_code == 401


def test_wrong_method_is_405_json_with_allow(api):
    response = api.delete("/api/v1/tenants")

    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
    assert "DELETE" in response.json()["message"]


def test_a_wrong_method_without_a_token_is_401_not_405():
    response = Client().delete("/api/v1/tenants")

    assert response.status_code == 401
    assert "Allow" not in response


def test_unknown_api_path_is_a_json_404(api):
    response = api.get("/api/v1/main/nowhere")

    assert response.status_code == 404
    assert "/api/v1/main/nowhere" in response.json()["message"]


def test_a_post_to_an_unknown_path_or_the_api_root_is_a_json_404_too(api):
    for response in (api.post("/api/v1/main/nowhere"), api.get("/api/v1/")):
        assert response.status_code == 404
        assert response.json()["message"].startswith("no API endpoint")


def test_malformed_json_body_is_400_with_its_line_and_column(api):
    response = put_json(api, "/api/v1/main/namespaces/company", '{\n  "workerGroup": {"key": "gpu",}\n}')

    assert response.status_code == 400
    [fault] = response.json()["errors"]
    assert fault["line"] == 2 and fault["message"].startswith("invalid JSON")


# --- flows ----------------------------------------------------------------------------------


def test_upload_returns_the_flow_and_makes_a_revision_only_when_the_source_changes(api, gpu):
    first = upload(api, FLOW)

    assert first.status_code == 200
    body = first.json()
    assert (body["id"], body["namespace"], body["revision"], body["tenantId"]) == ("etl", "company.team", 1, "main")
    assert body["source"] == FLOW
    assert body["deleted"] is False and body["disabled"] is False
    assert body["tasks"][0]["workerGroup"] == {"key": "gpu"}

    assert upload(api, FLOW).json()["revision"] == 1
    assert upload(api, FLOW.replace("training", "training again")).json()["revision"] == 2
    assert FlowRevision.objects.count() == 2


def test_upload_naming_an_unknown_worker_group_is_refused_at_its_line_and_stores_nothing(api):
    response = upload(api, FLOW)

    assert response.status_code == 422
    [fault] = response.json()["errors"]
    assert "worker group 'gpu' does not exist" in fault["message"]
    assert (fault["path"], fault["line"], fault["column"]) == ("tasks[0].workerGroup.key", 8, 12)
    assert "line 8" in response.json()["message"]
    assert Flow.objects.count() == 0 and FlowRevision.objects.count() == 0


def test_upload_with_an_invalid_document_is_located(api, gpu):
    response = upload(api, FLOW.replace("message: training", "mesage: training"))

    assert response.status_code == 422
    faults = response.json()["errors"]
    assert any(f["message"] == "unknown property 'mesage'" and f["line"] == 6 for f in faults)
    assert Flow.objects.count() == 0


def test_a_tenant_a_group_does_not_allow_cannot_upload_a_flow_targeting_it(api):
    tenant_get("main")  # the default tenant exists from the first migration
    tenant_create(key="other")
    worker_group_create(key="gpu", allowed_tenants=["main"])

    refused = upload(api, FLOW, tenant="other")

    assert refused.status_code == 422
    assert "worker group 'gpu' does not allow tenant 'other'" in refused.json()["message"]
    assert Flow.objects.count() == 0
    assert upload(api, FLOW, tenant="main").status_code == 200


def test_upload_to_an_unknown_tenant_is_404(api, gpu):
    response = upload(api, FLOW, tenant="nobody")

    assert response.status_code == 404
    assert "tenant 'nobody' does not exist" in response.json()["message"]


def test_flow_get_put_revisions_delete(api, gpu):
    upload(api, FLOW)
    url = "/api/v1/main/flows/company.team/etl"

    assert api.get(url).json()["source"] == FLOW
    changed = FLOW.replace("training", "v2")
    updated = api.put(url, changed, content_type="application/x-yaml")
    assert updated.status_code == 200 and updated.json()["revision"] == 2

    mismatch = api.put("/api/v1/main/flows/company.team/etl", changed.replace("id: etl", "id: other"),
                       content_type="application/x-yaml")
    assert mismatch.status_code == 422
    assert "company.team.other" in mismatch.json()["message"]
    assert Flow.objects.get().revision == 2

    revisions = api.get(f"{url}/revisions").json()
    assert [(r["revision"], r["source"]) for r in revisions] == [(1, FLOW), (2, changed)]

    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
    assert api.put(url, changed, content_type="application/x-yaml").status_code == 404
    assert api.delete(url).status_code == 404


def test_validate_answers_without_storing_anything(api, gpu):
    valid = api.post("/api/v1/main/flows/validate", FLOW, content_type="application/x-yaml")

    assert valid.status_code == 200
    assert valid.json() == [
        {"index": 0, "id": "etl", "namespace": "company.team", "flow": "company.team.etl", "constraints": None},
    ]
    assert Flow.objects.count() == 0

    invalid = api.post("/api/v1/main/flows/validate", FLOW.replace("key: gpu", "key: cpu"),
                       content_type="application/x-yaml")
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["line"] == 8


# --- namespaces and tenants -----------------------------------------------------------------


def test_namespace_defaults_are_inherited_by_child_namespaces(api, gpu):
    saved = put_json(api, "/api/v1/main/namespaces/company", {"workerGroup": {"key": "gpu", "fallback": "FAIL"}})
    assert saved.status_code == 200
    assert saved.json()["workerGroup"] == {"key": "gpu", "fallback": "FAIL"}

    child = api.get("/api/v1/main/namespaces/company.team").json()

    assert child["workerGroup"] is None
    assert child["effectiveWorkerGroup"] == {"key": "gpu", "fallback": "FAIL"}

    put_json(api, "/api/v1/main/namespaces/company", {})
    assert api.get("/api/v1/main/namespaces/company.team").json()["effectiveWorkerGroup"] == {
        "key": None, "fallback": "WAIT",
    }


@pytest.mark.parametrize("body, path, words", [
    ({"workerGroup": {"key": "nope"}}, "workerGroup.key", "worker group 'nope' does not exist"),
    ({"workerGroup": {"key": "gpu", "fallback": "LATER"}}, "workerGroup.fallback", "'WAIT', 'FAIL' or 'CANCEL'"),
    ({"workerGroup": {"key": 3}}, "workerGroup.key", "valid string"),
    ({"workergroup": {"key": "gpu"}}, "workergroup", "unknown property 'workergroup'"),
    ({"id": "company.other"}, "id", "company.other"),
    (["gpu"], "", "valid dictionary"),
])
def test_bad_namespace_bodies_say_where_and_why(api, gpu, body, path, words):
    response = put_json(api, "/api/v1/main/namespaces/company", body)

    assert response.status_code == 422
    [fault] = response.json()["errors"]
    assert fault["path"] == path and words in fault["message"]
    assert api.get("/api/v1/main/namespaces/company").json()["workerGroup"] is None


def test_tenants_create_list_get_update(api, gpu):
    created = api.post("/api/v1/tenants", {"id": "other", "workerGroup": {"key": "gpu"}}, content_type="application/json")

    assert created.status_code == 200
    assert created.json()["workerGroup"] == {"key": "gpu", "fallback": None}
    assert "other" in [t["id"] for t in api.get("/api/v1/tenants").json()]
    assert api.post("/api/v1/tenants", {"key": "other"}, content_type="application/json").status_code == 409

    updated = put_json(api, "/api/v1/tenants/other", {"workerGroup": {"fallback": "CANCEL"}})
    assert updated.json()["workerGroup"] == {"key": None, "fallback": "CANCEL"}
    assert api.get("/api/v1/tenants/other").json() == updated.json()

    assert api.get("/api/v1/tenants/nobody").status_code == 404
    assert put_json(api, "/api/v1/tenants/other", {"id": "main"}).status_code == 422


def test_tenant_default_shows_in_namespace_effective_defaults(api, gpu):
    put_json(api, "/api/v1/tenants/main", {"workerGroup": {"key": "gpu", "fallback": "FAIL"}})

    assert api.get("/api/v1/main/namespaces/company.team").json()["effectiveWorkerGroup"] == {
        "key": "gpu", "fallback": "FAIL",
    }


# --- OpenAPI --------------------------------------------------------------------------------


def _operations():
    """(path, methods) of every operation registered on the API, in the document's path notation
    (`{uuid:execution_id}` → `{execution_id}`). ninja keeps its routers in `_routers` only."""
    for prefix, router in ninja_api._routers:
        for path, path_view in router.path_operations.items():
            methods = {method for operation in path_view.operations for method in operation.methods}
            yield "/api/v1/" + re.sub(r"{\w+:", "{", prefix + path), methods


def test_openapi_is_served_without_auth_and_documents_every_operation():
    response = Client().get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    operations = dict(_operations())
    assert "/api/v1/{tenant}/flows" in operations and "/api/v1/{tenant}/executions/search" in operations
    for path, methods in operations.items():
        assert path in document["paths"], path
        assert {m.upper() for m in document["paths"][path]} == methods, path
        for method, operation in document["paths"][path].items():
            responses = operation["responses"]
            assert any(code.startswith("2") for code in responses), (path, method)
            for code, answer in responses.items():
                if code != "204":
                    content = answer["content"]
                    assert content.get("application/json", content.get("application/octet-stream"))["schema"], (
                        path, method, code)  # namespace files are answered as their bytes
            if operation.get("security"):  # every one but the webhook, whose key is its credential
                assert responses["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
            else:  # the webhook, whose key is its credential, and the flow's JSON Schema (docs/api.md)
                assert path in ("/api/v1/{tenant}/executions/webhook/{namespace}/{id}/{key}",
                                "/api/v1/plugins/schemas/flow"), path
            if method in ("post", "put"):
                assert operation["requestBody"]["content"], (path, method)
    yaml_upload = document["paths"]["/api/v1/{tenant}/flows"]["post"]["requestBody"]
    assert "application/x-yaml" in yaml_upload["content"]
    assert {"message", "errors"} <= set(document["components"]["schemas"]["Error"]["properties"])


def test_interactive_docs_point_at_the_openapi_document():
    response = Client().get("/api/v1/docs")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "/api/v1/openapi.json" in response.content.decode()
