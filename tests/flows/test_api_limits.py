"""What the API refuses cleanly instead of failing (docs/api.md): bodies over the limit (413), pages
beyond the bound (422), log lines a page at a time, keys with a trailing newline, and the JSON
error body for everything else that goes wrong (500), whatever DEBUG says."""
import json
import logging

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from flows.api.urls import bad_request, server_error
from flows.definition import parse_flow
from flows.engine import execution_create
from flows.errors import UserError
from flows.models import Execution, Flow, LogLine, Namespace, Tenant, WorkerGroup
from flows.services import flow_upload, namespace_set, tenant_create, worker_group_create
from tests.support.auth import api_client

pytestmark = pytest.mark.django_db

FLOW = """\
id: etl
namespace: company.team
inputs:
  - id: note
    type: STRING
    required: false
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


@pytest.fixture
def api():
    return api_client("root", superuser=True)


def assert_error_body(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json; charset=utf-8"
    body = json.loads(response.content)
    assert set(body) == {"message", "errors"} and body["errors"]
    return body


# --- bodies over the limit --------------------------------------------------------------------


def test_a_10_mb_yaml_upload_is_413_with_the_error_body_and_stores_nothing(api):
    source = FLOW + "# " + "x" * (10 * 1024 * 1024) + "\n"

    body = assert_error_body(api.post("/api/v1/main/flows", source, content_type="application/x-yaml"), 413)

    assert f"at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes" in body["message"]
    assert not Flow.objects.exists()


def test_a_3_mb_json_body_is_413(api):
    body = {"workerGroup": {"key": None}, "id": "x" * (3 * 1024 * 1024)}

    response = api.put("/api/v1/main/namespaces/company", body, content_type="application/json")

    assert_error_body(response, 413)
    assert not Namespace.objects.exists()


@pytest.mark.parametrize("content_type", ["multipart/form-data", "application/x-www-form-urlencoded"])
def test_execution_inputs_over_the_limit_are_413_and_start_nothing(api, content_type):
    flow_upload(source=FLOW, tenant_key="main")
    if content_type.startswith("multipart"):
        response = api.post("/api/v1/main/executions/company.team/etl", {"note": "x" * (3 * 1024 * 1024)})
    else:
        fields = "&".join(f"f{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
        response = api.post("/api/v1/main/executions/company.team/etl", fields, content_type=content_type)

    assert_error_body(response, 413)
    assert not Execution.objects.exists()


# --- pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["page=1000000000000000000", "page=100001", "page=0", "page=-1",
                                   "page=1e3", "size=0", "size=501"])
def test_search_pages_are_bounded(api, query):
    body = assert_error_body(api.get(f"/api/v1/main/executions/search?{query}"), 422)

    assert body["errors"][0]["path"] == query.split("=")[0]


@pytest.fixture
def logged():
    flow_upload(source=FLOW, tenant_key="main")
    execution = execution_create(tenant_key="main", namespace="company.team", flow_id="etl")
    LogLine.objects.bulk_create([
        LogLine(execution=execution, task_id="say", level="WARN" if n % 2 else "INFO", message=f"line {n}")
        for n in range(2500)
    ])
    return f"/api/v1/main/executions/{execution.id}/logs"


def test_logs_answer_the_first_1000_lines_and_say_where_the_next_page_is(api, logged):
    first = api.get(logged)

    assert first.status_code == 200
    assert [line["message"] for line in first.json()] == [f"line {n}" for n in range(1000)]
    assert first["X-Total-Count"] == "2500"
    assert first["Link"] == f'<{logged}?page=2>; rel="next"'
    last = api.get(f"{logged}?page=3")
    assert [line["message"] for line in last.json()] == [f"line {n}" for n in range(2000, 2500)]
    assert "Link" not in last


def test_logs_pages_keep_the_level_filter(api, logged):
    page = api.get(f"{logged}?minLevel=WARN&size=100&page=2")

    assert [line["message"] for line in page.json()] == [f"line {n}" for n in range(201, 401, 2)]
    assert page["X-Total-Count"] == "1250"
    assert page["Link"] == f'<{logged}?minLevel=WARN&size=100&page=3>; rel="next"'


@pytest.mark.parametrize("query", ["size=10001", "size=0", "page=0", "page=1000000000000000000"])
def test_logs_pages_are_bounded(api, logged, query):
    assert_error_body(api.get(f"{logged}?{query}"), 422)


# --- keys match as whole strings --------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda: tenant_create(key="main\n"),
    lambda: worker_group_create(key="gpu\n"),
    lambda: namespace_set(tenant_key="main", name="company\n"),
])
def test_services_refuse_keys_with_a_trailing_newline(call):
    with pytest.raises(UserError, match="invalid"):
        call()

    assert not Tenant.objects.exclude(key="main").exists()
    assert not WorkerGroup.objects.exists() and not Namespace.objects.exists()


@pytest.mark.parametrize("field, path", [
    ('id: "etl\\n"', "id"),
    ('namespace: "company.team\\n"', "namespace"),
    ('  - id: "say\\n"', "tasks[0].id"),
    ('  - id: "note\\n"', "inputs[0].id"),
])
def test_flow_documents_refuse_ids_with_a_trailing_newline(field, path):
    original = {"id": "id: etl", "namespace": "namespace: company.team", "tasks[0].id": "  - id: say",
                "inputs[0].id": "  - id: note"}[path]

    with pytest.raises(UserError) as refused:
        parse_flow(FLOW.replace(original, field))

    assert [fault.path for fault in refused.value.faults] == [path]


def test_the_api_refuses_keys_with_a_trailing_newline(api):
    tenant = api.post("/api/v1/tenants", {"id": "main\n"}, content_type="application/json")
    group = api.post("/api/v1/instance/workergroups", {"key": "gpu\n"}, content_type="application/json")
    namespace = api.put("/api/v1/main/namespaces/company%0A", {}, content_type="application/json")

    for response in (tenant, group, namespace):
        assert_error_body(response, 422)
    assert not WorkerGroup.objects.exists() and not Namespace.objects.exists()
    assert list(Tenant.objects.values_list("key", flat=True)) == ["main"]


def test_the_cli_and_the_model_refuse_keys_with_a_trailing_newline():
    with pytest.raises(CommandError, match="invalid tenant key"):
        call_command("tenant", "create", "main\n")
    with pytest.raises(Exception, match="key"):
        WorkerGroup(key="gpu\n").full_clean()


# --- nothing but the error body -----------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_is_a_json_500_without_internals_and_is_logged(api, monkeypatch, caplog, debug):
    def broken(*args, **kwargs):
        raise RuntimeError(f"boom: {settings.CELERY_BROKER_URL}")

    monkeypatch.setattr("flows.selectors.execution_search", broken)
    monkeypatch.setattr(settings, "DEBUG", debug)

    with caplog.at_level(logging.ERROR, logger="flows.api.api"):
        response = api.get("/api/v1/main/executions/search")

    body = assert_error_body(response, 500)
    assert body["message"] == "internal error: the server logged it"
    assert "boom" not in response.content.decode() and "Traceback" not in response.content.decode()
    assert "boom" in caplog.text and "/api/v1/main/executions/search" in caplog.text


def test_a_bad_host_under_the_api_gets_the_error_body_not_an_html_page(api):
    response = api.get("/api/v1/tenants", HTTP_HOST="evil.example")

    assert "ALLOWED_HOSTS" in assert_error_body(response, 400)["message"]


def test_djangos_400_and_500_pages_are_the_error_body_under_the_api_only():
    factory = RequestFactory()

    assert_error_body(server_error(factory.get("/api/v1/tenants")), 500)
    assert_error_body(bad_request(factory.get("/api/v1/tenants"), None), 400)
    assert server_error(factory.get("/admin/"))["Content-Type"].startswith("text/html")
