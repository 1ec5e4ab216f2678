"""The admin's Execute page (inputs typed, FILE inputs uploaded, SECRET inputs masked) and the
namespace Files page (docs/inputs.md, docs/namespace-files.md)."""
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from flows import storage
from flows.models import Execution
from flows.selectors import namespace_files_all, tenant_get
from flows.services import flow_upload, membership_set, namespace_file_put
from tests.support import stored_texts

pytestmark = pytest.mark.django_db

FLOW = """\
id: typed
namespace: company.team
inputs:
  - id: data
    type: FILE
  - id: count
    type: INT
    displayName: How many
    defaults: 2
  - id: password
    type: SECRET
  - id: mode
    type: SELECT
    values: [fast, slow]
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""
FILES = reverse("admin:flows_namespace_files")


def login(client, username: str, *, role: str | None = None, superuser: bool = False):
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True, is_superuser=superuser)
    if role:
        membership_set(username=username, tenant_key="main", role=role)
    client.force_login(user)
    return client


def page(response) -> str:
    return unescape(response.content.decode())


def test_the_execute_page_types_inputs_uploads_files_and_masks_secrets(client):
    flow = flow_upload(source=FLOW, tenant_key="main")
    login(client, "dev", role="developer")
    url = reverse("admin:flows_flow_execute", args=[flow.pk])
    form = page(client.get(url))
    assert "How many" in form and 'type="file"' in form and 'type="password"' in form

    answer = client.post(url, {"input__data": SimpleUploadedFile("orders.csv", b"a,b\n"),
                               "input__password": "hunter2-pw", "input__mode": "slow"})
    execution = Execution.objects.get()
    assert answer.status_code == 302 and answer["Location"] == reverse("admin:flows_execution_change",
                                                                       args=[execution.pk])
    assert execution.inputs["count"] == 2 and execution.inputs["mode"] == "slow"
    assert stored_texts({"d": execution.inputs["data"]}) == {"d": "a,b\n"}
    shown = page(client.get(reverse("admin:flows_execution_change", args=[execution.pk])))
    assert "******" in shown and "hunter2" not in shown


def test_bad_inputs_are_shown_on_their_fields_and_nothing_is_stored(client):
    flow = flow_upload(source=FLOW, tenant_key="main")
    login(client, "dev", role="developer")
    answer = client.post(reverse("admin:flows_flow_execute", args=[flow.pk]),
                         {"input__count": "many", "input__mode": "fast",
                          "input__data": SimpleUploadedFile("x.csv", b"x")})
    shown = page(answer)
    assert answer.status_code == 200
    assert "&#x27;many&#x27; is not an integer" in answer.content.decode() or "'many' is not an integer" in shown
    assert "missing required input 'password'" in shown
    assert not Execution.objects.exists() and storage.walk_files(tenant_key="main", path="") == []


def test_a_viewer_cannot_execute(client):
    flow = flow_upload(source=FLOW, tenant_key="main")
    login(client, "ann", role="viewer")
    answer = client.post(reverse("admin:flows_flow_execute", args=[flow.pk]), {"input__mode": "fast"})
    assert answer.status_code == 302 and not Execution.objects.exists()


def test_the_files_page_lists_uploads_downloads_and_deletes(client):
    namespace_file_put(tenant_key="main", namespace="company.team", path="scripts/run.py", content=b"print(1)")
    login(client, "dev", role="developer")
    listing = page(client.get(f"{FILES}?tenant=main&namespace=company.team"))
    assert "scripts/" in listing and "Upload" in listing
    inside = page(client.get(f"{FILES}?tenant=main&namespace=company.team&path=scripts"))
    assert "run.py" in inside
    download = client.get(f"{FILES}?tenant=main&namespace=company.team&download=scripts/run.py")
    assert download.content == b"print(1)"
    client.post(FILES, {"tenant": "main", "namespace": "company.team", "path": "",
                        "file": SimpleUploadedFile("model.py", b"m"), "directory": "lib"})
    client.post(FILES, {"tenant": "main", "namespace": "company.team", "path": "", "action": "delete",
                        "target": "scripts"})
    assert namespace_files_all(tenant=tenant_get("main"), namespace="company.team") == ["lib/model.py"]


def test_a_viewer_reads_files_but_cannot_change_them(client):
    namespace_file_put(tenant_key="main", namespace="company.team", path="a.txt", content=b"x")
    login(client, "ann", role="viewer")
    listing = page(client.get(f"{FILES}?tenant=main&namespace=company.team"))
    assert "a.txt" in listing and "Upload" not in listing
    client.post(FILES, {"tenant": "main", "namespace": "company.team", "action": "delete", "target": "a.txt"})
    client.post(FILES, {"tenant": "main", "namespace": "company.team", "file": SimpleUploadedFile("b.txt", b"y")})
    assert namespace_files_all(tenant=tenant_get("main"), namespace="company.team") == ["a.txt"]


def test_another_tenants_files_are_not_found(client):
    from flows.services import tenant_create

    tenant_create(key="other")
    namespace_file_put(tenant_key="other", namespace="company.team", path="secret.txt", content=b"s3cr3t")
    login(client, "dev", role="developer")
    shown = page(client.get(f"{FILES}?tenant=other&namespace=company.team&download=secret.txt"))
    assert "s3cr3t" not in shown and "tenant 'other' does not exist" in shown
