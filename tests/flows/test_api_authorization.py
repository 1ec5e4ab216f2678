"""Roles on every endpoint of the REST API (docs/security.md): a user who is not a member of the
tenant gets 404, as if it did not exist; a member without the role gets 403; a narrowed token
never does more than it was narrowed to; instance resources are a superuser's. Every refusal
changes nothing stored."""
import json
import re

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model

from flows.api.api import api as ninja_api
from flows.engine import execution_create
from flows.models import LogLine, State, TaskRun
from flows import storage
from flows.engine.evaluation import scope_key
from flows.services import flow_upload, kv_put, namespace_file_put, tenant_create, token_create, worker_group_create
from tests.support.auth import api_client, user_with

pytestmark = pytest.mark.django_db

FLOW = """\
id: etl
namespace: company.team
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "secret: s3cr3t"
"""
NEW_FLOW = FLOW.replace("id: etl", "id: fresh")
PAUSING_FLOW = """\
id: waits
namespace: company.team
tasks:
  - id: say
    type: io.kestra.plugin.core.flow.Pause
"""
ROLES = ("viewer", "developer", "admin", "superuser")


@pytest.fixture
def world():
    """Tenants main and other, each with a flow, an execution and a log line; groups gpu (every
    tenant) and secret (other only). Returns the ids the requests name."""
    tenant_create(key="other")
    worker_group_create(key="gpu")
    worker_group_create(key="secret", allowed_tenants=["other"])
    ids = {}
    for tenant in ("main", "other"):
        flow_upload(source=FLOW, tenant_key=tenant)
        execution = execution_create(tenant_key=tenant, namespace="company.team", flow_id="etl")
        LogLine.objects.create(execution=execution, task_id="say", message="secret: s3cr3t")
        namespace_file_put(tenant_key=tenant, namespace="company.team", path="data/a.txt", content=b"secret: s3cr3t")
        kv_put(tenant_key=tenant, namespace="company.team", key="k", value="secret: s3cr3t")
        ids[tenant] = str(execution.id)
    ids["failed"] = str(_ended_at("main", "etl", "say", State.FAILED).id)
    flow_upload(source=PAUSING_FLOW, tenant_key="main")
    ids["paused"] = str(_ended_at("main", "waits", "say", State.PAUSED).id)
    return ids


def _ended_at(tenant: str, flow_id: str, task_id: str, state: str):
    """An execution of `flow_id` whose one task run stands in `state`, as does the execution."""
    execution = execution_create(tenant_key=tenant, namespace="company.team", flow_id=flow_id)
    TaskRun.objects.create(execution=execution, scope_key=scope_key(None, task_id, None), task_id=task_id,
                           task_type="io.kestra.plugin.core.log.Log", state=state)
    type(execution).objects.filter(id=execution.id).update(state=state)
    return execution


def snapshot() -> dict:
    """Every row of every table the product and its users have (when a token was last used aside)."""
    models = [*apps.get_app_config("flows").get_models(include_auto_created=True), get_user_model()]
    files = {(tenant, path): storage.read(tenant_key=tenant, path=path)
             for tenant in ("main", "other") for path in storage.walk_files(tenant_key=tenant, path="")}
    return {"stored files": files, **{
        model._meta.label: sorted(
            repr(row) for row in model.objects.values_list(
                *[f.attname for f in model._meta.concrete_fields if f.name != "last_used"])
        )
        for model in models
    }}


# (method, path as ninja registers it, the role it needs, the request: url and body). `{x}` is the
# execution of tenant main; bodies are valid, so that the role is all that stands in the way.
CASES = [
    ("GET", "/api/v1/tenants", "superuser", "/api/v1/tenants", None),
    ("POST", "/api/v1/tenants", "superuser", "/api/v1/tenants", {"id": "third"}),
    ("GET", "/api/v1/tenants/{tenant}", "viewer", "/api/v1/tenants/main", None),
    ("PUT", "/api/v1/tenants/{tenant}", "superuser", "/api/v1/tenants/main", {"workerGroup": {"key": "gpu"}}),
    ("POST", "/api/v1/instance/workergroups", "superuser", "/api/v1/instance/workergroups", {"key": "cpu"}),
    ("PUT", "/api/v1/instance/workergroups/{key}", "superuser", "/api/v1/instance/workergroups/secret",
     {"allowedTenants": []}),
    ("DELETE", "/api/v1/instance/workergroups/{key}", "superuser", "/api/v1/instance/workergroups/gpu", None),
    ("POST", "/api/v1/instance/workergroups/{key}/drain", "superuser", "/api/v1/instance/workergroups/gpu/drain", None),
    ("POST", "/api/v1/instance/workergroups/{key}/resume", "superuser", "/api/v1/instance/workergroups/gpu/resume",
     None),
    ("POST", "/api/v1/{tenant}/flows", "developer", "/api/v1/main/flows", NEW_FLOW),
    ("POST", "/api/v1/{tenant}/flows/validate", "developer", "/api/v1/main/flows/validate", NEW_FLOW),
    ("GET", "/api/v1/{tenant}/flows/{namespace}/{id}", "viewer", "/api/v1/main/flows/company.team/etl", None),
    ("PUT", "/api/v1/{tenant}/flows/{namespace}/{id}", "developer", "/api/v1/main/flows/company.team/etl",
     FLOW.replace("s3cr3t", "changed")),
    ("DELETE", "/api/v1/{tenant}/flows/{namespace}/{id}", "developer", "/api/v1/main/flows/company.team/etl", None),
    ("GET", "/api/v1/{tenant}/flows/{namespace}/{id}/revisions", "viewer",
     "/api/v1/main/flows/company.team/etl/revisions", None),
    ("GET", "/api/v1/{tenant}/namespaces/{namespace}", "viewer", "/api/v1/main/namespaces/company", None),
    ("PUT", "/api/v1/{tenant}/namespaces/{namespace}", "admin", "/api/v1/main/namespaces/company",
     {"workerGroup": {"key": "gpu", "fallback": "FAIL"}}),
    ("GET", "/api/v1/{tenant}/executions/search", "viewer", "/api/v1/main/executions/search", None),
    ("GET", "/api/v1/{tenant}/executions/{execution_id}", "viewer", "/api/v1/main/executions/{x}", None),
    ("DELETE", "/api/v1/{tenant}/executions/{execution_id}/kill", "developer", "/api/v1/main/executions/{x}/kill",
     None),
    ("GET", "/api/v1/{tenant}/executions/{execution_id}/logs", "viewer", "/api/v1/main/executions/{x}/logs", None),
    ("POST", "/api/v1/{tenant}/executions/{execution_id}/resume", "developer",
     "/api/v1/main/executions/{paused}/resume", None),
    ("POST", "/api/v1/{tenant}/executions/{execution_id}/restart", "developer",
     "/api/v1/main/executions/{failed}/restart", None),
    ("POST", "/api/v1/{tenant}/executions/{execution_id}/replay", "developer",
     "/api/v1/main/executions/{failed}/replay", None),
    ("POST", "/api/v1/{tenant}/executions/{namespace}/{id}", "developer", "/api/v1/main/executions/company.team/etl",
     None),
    ("GET", "/api/v1/{tenant}/triggers/search", "viewer", "/api/v1/main/triggers/search", None),
    ("GET", "/api/v1/{tenant}/namespaces/{namespace}/files", "viewer",
     "/api/v1/main/namespaces/company.team/files?path=data/a.txt", None),
    ("GET", "/api/v1/{tenant}/namespaces/{namespace}/files/directory", "viewer",
     "/api/v1/main/namespaces/company.team/files/directory?path=data", None),
    ("PUT", "/api/v1/{tenant}/namespaces/{namespace}/files", "developer",
     "/api/v1/main/namespaces/company.team/files?path=data/b.txt", "print('new')"),
    ("POST", "/api/v1/{tenant}/namespaces/{namespace}/files", "developer",
     "/api/v1/main/namespaces/company.team/files?path=data/c.txt", "print('new')"),
    ("DELETE", "/api/v1/{tenant}/namespaces/{namespace}/files", "developer",
     "/api/v1/main/namespaces/company.team/files?path=data/a.txt", None),
    ("GET", "/api/v1/{tenant}/namespaces/{namespace}/kv", "viewer", "/api/v1/main/namespaces/company.team/kv", None),
    ("GET", "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}", "viewer",
     "/api/v1/main/namespaces/company.team/kv/k", None),
    ("PUT", "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}", "developer",
     "/api/v1/main/namespaces/company.team/kv/new", {"a": 1}),
    ("DELETE", "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}", "developer",
     "/api/v1/main/namespaces/company.team/kv/k", None),
]
# Instance resources any authenticated user may read, as far as it concerns their tenants
# (test_worker_groups_show_a_member_only_their_tenants below).
READ_BY_ANYONE = {("GET", "/api/v1/instance/workergroups"), ("GET", "/api/v1/instance/workergroups/{key}")}


def _operations():
    """(method, path) of every operation that needs a token, in the OpenAPI path notation (the
    operations as bound to the API carry their auth; the routers' own do not)."""
    for bound in ninja_api._get_bound_routers():
        prefix = bound.prefix
        for path, path_view in bound.path_operations.items():
            for operation in path_view.operations:
                if operation.auth_callbacks:
                    for method in operation.methods:
                        yield method, "/api/v1/" + re.sub(r"{\w+:", "{", prefix + path)


def test_every_endpoint_that_needs_a_token_has_its_role_checked_here():
    assert set(_operations()) == {(method, path) for method, path, *_ in CASES} | READ_BY_ANYONE


def send(client, method: str, url: str, body, ids: dict):
    url = url.replace("{x}", ids["main"]).replace("{paused}", ids["paused"]).replace("{failed}", ids["failed"])
    if isinstance(body, str):
        return client.generic(method, url, body, content_type="application/x-yaml")
    if body is not None:
        return client.generic(method, url, json.dumps(body), content_type="application/json")
    return client.generic(method, url)


def _below(role: str) -> str | None:
    return ROLES[ROLES.index(role) - 1] if ROLES.index(role) else None


def client_with(role: str, tenant: str = "main"):
    if role == "superuser":
        return api_client("root", superuser=True)
    return api_client(f"{role}-of-{tenant}", roles={tenant: role})


@pytest.mark.parametrize("method, _, role, url, body", CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_a_user_of_another_tenant_gets_404_or_403_and_nothing_changes(world, method, _, role, url, body):
    """An admin of tenant `other` is nobody in `main`: its resources do not exist for them;
    instance resources are refused (403) whatever they name."""
    client = client_with("admin", tenant="other")
    before = snapshot()

    response = send(client, method, url, body, world)

    expected = 403 if role == "superuser" else 404
    assert response.status_code == expected, response.content
    assert response.json()["errors"]
    assert "s3cr3t" not in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize("method, _, role, url, body", [c for c in CASES if c[2] != "viewer"],
                         ids=[f"{c[0]} {c[1]}" for c in CASES if c[2] != "viewer"])
def test_a_member_with_a_smaller_role_gets_403_and_nothing_changes(world, method, _, role, url, body):
    client = client_with(_below(role))
    before = snapshot()

    response = send(client, method, url, body, world)

    assert response.status_code == 403, response.content
    assert "needs" in response.json()["message"]
    assert snapshot() == before


@pytest.mark.parametrize("method, _, role, url, body", CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_the_role_it_needs_is_enough(world, method, _, role, url, body):
    """The other side of the two tests above: with the role the request goes through."""
    response = send(client_with(role), method, url, body, world)

    assert response.status_code in (200, 202, 204), response.content


def test_an_unknown_tenant_and_a_tenant_of_others_answer_alike():
    tenant_create(key="other")
    client = client_with("admin", tenant="other")

    hidden = client.get("/api/v1/main/flows/company.team/etl")
    missing = client.get("/api/v1/nowhere/flows/company.team/etl")

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["message"] == "tenant 'main' does not exist"
    assert missing.json()["message"] == "tenant 'nowhere' does not exist"


# --- tokens --------------------------------------------------------------------------------


def _token_client(username: str, **narrowing):
    from django.test import Client

    return Client(headers={"Authorization": f"Bearer {token_create(username=username, **narrowing)}"})


def test_a_token_narrowed_to_a_role_does_no_more(world):
    user_with("dev", roles={"main": "developer"})
    read_only = _token_client("dev", role="viewer")
    before = snapshot()

    assert read_only.get("/api/v1/main/flows/company.team/etl").status_code == 200
    refused = read_only.post("/api/v1/main/flows", NEW_FLOW, content_type="application/x-yaml")
    killed = read_only.delete(f"/api/v1/main/executions/{world['main']}/kill")

    assert refused.status_code == killed.status_code == 403
    assert "narrowed to the viewer role" in refused.json()["message"]
    assert snapshot() == before
    full = _token_client("dev")
    assert full.post("/api/v1/main/flows", NEW_FLOW, content_type="application/x-yaml").status_code == 200


def test_a_token_narrowed_to_a_tenant_sees_no_other(world):
    user_with("dev", roles={"main": "developer", "other": "developer"})
    only_other = _token_client("dev", tenant_keys=["other"])

    assert only_other.get("/api/v1/other/flows/company.team/etl").status_code == 200
    assert only_other.get("/api/v1/main/flows/company.team/etl").status_code == 404
    assert only_other.post("/api/v1/main/executions/company.team/etl").status_code == 404


def test_a_narrowed_token_of_a_superuser_is_no_superuser(world):
    user_with("root", superuser=True)
    narrowed = _token_client("root", tenant_keys=["main"], role="admin")
    before = snapshot()

    response = narrowed.put("/api/v1/instance/workergroups/secret", {"allowedTenants": []},
                            content_type="application/json")

    assert response.status_code == 403
    assert "narrowed token never acts as a superuser" in response.json()["message"]
    assert narrowed.get("/api/v1/other/flows/company.team/etl").status_code == 404
    assert narrowed.put("/api/v1/main/namespaces/company", {}, content_type="application/json").status_code == 200
    assert snapshot()["flows.WorkerGroup_allowed_tenants"] == before["flows.WorkerGroup_allowed_tenants"]


def test_a_token_loses_what_its_user_loses(world):
    """Roles are read on every request: a token never keeps a role its user no longer has."""
    from flows.services import membership_remove, membership_set

    user_with("dev", roles={"main": "developer"})
    client = _token_client("dev", tenant_keys=["main"], role="developer")
    membership_set(username="dev", tenant_key="main", role="viewer")

    assert client.post("/api/v1/main/executions/company.team/etl").status_code == 403
    membership_remove(username="dev", tenant_key="main")
    assert client.get("/api/v1/main/flows/company.team/etl").status_code == 404


def test_a_token_of_a_deactivated_user_is_refused(world):
    user = user_with("dev", roles={"main": "developer"})
    client = _token_client("dev")
    user.is_active = False
    user.save()

    assert client.get("/api/v1/main/flows/company.team/etl").status_code == 401


# --- worker groups: read by members, as far as their tenants go -----------------------------


def test_worker_groups_show_a_member_only_their_tenants(world):
    from flows.models import Execution, State, TaskRun

    from flows.services import worker_heartbeat

    worker_group_create(key="shared", allowed_tenants=["main", "other"])
    worker_heartbeat(hostname="shared@box", groups=["shared", "secret"], pid=7, concurrency=1, running=0)
    for tenant in ("main", "other"):
        execution = Execution.objects.get(id=world[tenant])
        TaskRun.objects.create(execution=execution, scope_key="say", task_id="say", task_type="log",
                               worker_group="shared", state=State.CREATED)
    client = client_with("viewer")

    listed = {group["key"]: group for group in client.get("/api/v1/instance/workergroups").json()}

    assert sorted(listed) == ["gpu", "shared"]  # not `secret`, which only tenant other may use
    assert listed["shared"]["allowedTenants"] == ["main"]  # other's name is not shown
    assert listed["shared"]["health"]["queued"] == 1  # other's task run is not counted
    assert listed["shared"]["health"]["brokerQueueLength"] is None  # all tenants' messages
    assert listed["shared"]["health"]["aliveWorkers"][0]["groups"] == ["shared"]  # not the restricted `secret`
    assert client.get("/api/v1/instance/workergroups/secret").status_code == 404
    assert client.get("/api/v1/instance/workergroups/shared").json() == listed["shared"]
    root = client_with("superuser").get("/api/v1/instance/workergroups/shared").json()
    assert root["allowedTenants"] == ["main", "other"] and root["health"]["queued"] == 2
    assert root["health"]["aliveWorkers"][0]["groups"] == ["secret", "shared"]


def test_a_user_without_any_role_sees_no_worker_group(world):
    client = api_client("nobody")

    assert client.get("/api/v1/instance/workergroups").json() == []
    assert client.get("/api/v1/instance/workergroups/gpu").status_code == 404
