"""Namespace files over the API (docs/namespace-files.md), FILE inputs sent as multipart parts and
SECRET inputs masked in answers (docs/inputs.md). Every refusal stores nothing."""
import pytest
from django.test import override_settings

from flows import storage
from flows.services import flow_upload
from tests.support import stored_texts
from tests.support.auth import api_client

pytestmark = pytest.mark.django_db
BASE = "/api/v1/main/namespaces/company.team/files"


@pytest.fixture
def developer():
    return api_client("dev", roles={"main": "developer"})


def put(client, path: str, content: bytes, **extra):
    return client.put(f"{BASE}?path={path}", content, content_type="application/octet-stream", **extra)


def test_a_file_is_stored_listed_read_and_deleted(developer):
    answer = put(developer, "scripts/ml_on_gpu.py", b"print('hi')\n")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"path": "scripts/ml_on_gpu.py", "size": 12,
                             "uri": "kestra:///company/team/_files/scripts/ml_on_gpu.py"}
    assert developer.get(f"{BASE}?path=/scripts/ml_on_gpu.py").content == b"print('hi')\n"
    root = developer.get(f"{BASE}/directory").json()
    assert [(e["fileName"], e["type"]) for e in root] == [("scripts", "Directory")]
    inside = developer.get(f"{BASE}/directory?path=scripts").json()
    assert [(e["fileName"], e["type"], e["size"]) for e in inside] == [("ml_on_gpu.py", "File", 12)]
    assert developer.delete(f"{BASE}?path=scripts").status_code == 204
    assert developer.get(f"{BASE}?path=scripts/ml_on_gpu.py").status_code == 404
    assert developer.get(f"{BASE}/directory").json() == []


def test_kestras_multipart_post_and_a_put_replace_a_file(developer):
    with open(__file__, "rb") as handle:
        answer = developer.post(f"{BASE}?path=data/me.py", {"fileContent": handle})
    assert answer.status_code == 200, answer.content
    assert put(developer, "data/me.py", b"new").status_code == 200
    assert developer.get(f"{BASE}?path=data/me.py").content == b"new"


@pytest.mark.parametrize("path, fragment", [
    ("../escape.py", "not a plain relative path"),
    ("a/../../b", "not a plain relative path"),
    ("a//b", "not a plain relative path"),
    ("a\\b", "backslash"),
    ("", "the path is empty"),
    ("x" * 300, "longer than 255 characters"),
])
def test_bad_paths_are_refused_and_store_nothing(developer, shared_storage, path, fragment):
    answer = put(developer, path, b"x")
    assert answer.status_code == 422 and fragment in answer.json()["message"]
    assert storage.walk_files(tenant_key="main", path="") == []


def test_a_namespace_that_cannot_hold_files_is_refused(developer):
    answer = developer.put("/api/v1/main/namespaces/company._files/files?path=a.txt", b"x",
                           content_type="application/octet-stream")
    assert answer.status_code == 422 and "segment starting with '_'" in answer.json()["message"]


def test_a_file_over_the_cap_is_refused_with_413(developer):
    with override_settings(STORAGE_MAX_FILE_BYTES=10):
        answer = put(developer, "big.bin", b"x" * 11)
    assert answer.status_code == 413 and "STORAGE_MAX_FILE_BYTES" in answer.json()["message"]
    assert developer.get(f"{BASE}/directory").json() == []


def test_a_viewer_reads_but_cannot_write_and_another_tenant_sees_nothing(developer):
    put(developer, "a.txt", b"x")
    viewer = api_client("ann", roles={"main": "viewer"})
    assert viewer.get(f"{BASE}?path=a.txt").content == b"x"
    assert put(viewer, "b.txt", b"y").status_code == 403
    assert viewer.delete(f"{BASE}?path=a.txt").status_code == 403
    stranger = api_client("bob")
    assert stranger.get(f"{BASE}?path=a.txt").status_code == 404
    assert developer.get(f"{BASE}/directory").json()[0]["fileName"] == "a.txt"


FILE_FLOW = """\
id: files
namespace: company.team
inputs:
  - id: data
    type: FILE
    allowedFileExtensions: [.csv]
  - id: token
    type: SECRET
  - id: n
    type: INT
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.data }}"
"""


def test_file_inputs_are_multipart_parts_stored_under_the_execution(developer, tmp_path):
    flow_upload(source=FILE_FLOW, tenant_key="main")
    data = tmp_path / "orders.csv"
    data.write_text("id,total\n1,10\n")
    with open(data, "rb") as handle:
        answer = developer.post("/api/v1/main/executions/company.team/files",
                                {"data": handle, "token": "s3cr3t-value", "n": "3"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    uri = body["inputs"]["data"]
    assert uri == f"kestra:///company/team/files/executions/{body['id']}/inputs/data/orders.csv"
    assert stored_texts({"data": uri}) == {"data": "id,total\n1,10\n"}
    assert body["inputs"]["token"] == "******" and "s3cr3t" not in answer.content.decode()


def test_kestras_older_files_part_names_the_input_by_its_filename(developer):
    flow_upload(source=FILE_FLOW.replace("    allowedFileExtensions: [.csv]\n", ""), tenant_key="main")
    from django.core.files.uploadedfile import SimpleUploadedFile

    answer = developer.post("/api/v1/main/executions/company.team/files", {
        "files": SimpleUploadedFile("data", b"raw"), "token": "t0ken", "n": "1"})
    assert answer.status_code == 200, answer.content
    assert stored_texts({"d": answer.json()["inputs"]["data"]}) == {"d": "raw"}


def test_a_bad_input_stores_no_file_and_no_execution(developer, tmp_path):
    flow_upload(source=FILE_FLOW, tenant_key="main")
    data = tmp_path / "orders.csv"
    data.write_text("x")
    with open(data, "rb") as handle:
        answer = developer.post("/api/v1/main/executions/company.team/files", {"data": handle, "n": "many"})
    assert answer.status_code == 422
    message = answer.json()["message"]
    assert "missing required input 'token'" in message and "'many' is not an integer" in message
    assert storage.walk_files(tenant_key="main", path="company") == []
    with open(data, "rb") as handle:
        answer = developer.post("/api/v1/main/executions/company.team/files",
                                {"data": handle, "n": "1", "token": "t"})
    assert answer.status_code == 200
    wrong = tmp_path / "orders.txt"
    wrong.write_text("x")
    with open(wrong, "rb") as handle:
        answer = developer.post("/api/v1/main/executions/company.team/files", {"data": handle, "n": "1", "token": "t"})
    assert answer.status_code == 422 and "does not end with one of .csv" in answer.json()["message"]


def test_a_file_input_may_name_a_namespace_file_or_a_stored_uri(developer):
    put(developer, "ref/orders.csv", b"a,b\n")
    flow_upload(source=FILE_FLOW.replace("    allowedFileExtensions: [.csv]\n",
                                         "    defaults: nsfile:///ref/orders.csv\n"), tenant_key="main")
    answer = developer.post("/api/v1/main/executions/company.team/files", {"token": "t0ken", "n": "1"},
                            content_type="application/json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["inputs"]["data"] == "kestra:///company/team/_files/ref/orders.csv"
    outside = developer.post("/api/v1/main/executions/company.team/files",
                             {"data": "kestra:///other/ns/_files/x.csv", "token": "t0ken", "n": "1"},
                             content_type="application/json")
    assert outside.status_code == 422 and "outside namespace 'company.team'" in outside.json()["message"]
