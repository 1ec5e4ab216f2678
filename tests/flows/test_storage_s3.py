"""The shared storage on an S3-compatible server (docs/storage.md): moto in server mode on a free
loopback port, reached through django-storages exactly as a real bucket would be. The same
operations as on the local filesystem: put, read, list, walk, delete, namespace files laid into a
script's working directory and its outputFiles stored."""
import socket
import subprocess
import sys

import boto3
import pytest
from django.core.files.storage import storages
from django.test import override_settings
from pydantic import TypeAdapter

from flows import storage
from flows.schema import Task
from flows.services import namespace_file_put
from tests.support import wait_for
from tests.workers.test_runners import runtime
from workers.runners import run_script

BUCKET = "flows-test"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        boto3.client("s3", endpoint_url=url, **CREDENTIALS).list_buckets()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def s3_server():
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), timeout=30, message="moto's S3 server to answer")
        boto3.client("s3", endpoint_url=url, **CREDENTIALS).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3(s3_server, settings):
    """The "flows" storage on the S3 server, as STORAGE_BACKEND=s3 configures it (project/settings.py)."""
    flows = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": BUCKET, "location": "tests", "endpoint_url": s3_server, "region_name": "us-east-1",
        "access_key": "testing", "secret_key": "testing", "default_acl": None, "file_overwrite": True,
        "querystring_auth": False,
    }}
    with override_settings(STORAGES={**settings.STORAGES, "flows": flows}):
        assert storages["flows"].__class__.__name__ == "S3Storage"
        yield boto3.client("s3", endpoint_url=s3_server, **CREDENTIALS)
    for item in boto3.resource("s3", endpoint_url=s3_server, **CREDENTIALS).Bucket(BUCKET).objects.all():
        item.delete()


def _keys(client) -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_files_are_objects_under_the_tenant_and_kestras_path(s3):
    uri = storage.put(tenant_key="main", path="company/team/_files/a/b.txt", content=b"hello")
    storage.put(tenant_key="main", path="company/team/_files/a/b.txt", content=b"replaced")
    storage.put(tenant_key="main", path="company/team/_files/top.txt", content=b"t")
    assert uri == "kestra:///company/team/_files/a/b.txt"
    assert _keys(s3) == ["tests/main/company/team/_files/a/b.txt", "tests/main/company/team/_files/top.txt"]
    assert storage.read(tenant_key="main", path="company/team/_files/a/b.txt") == b"replaced"
    listing = storage.list_directory(tenant_key="main", path="company/team/_files")
    assert [(entry.name, entry.is_directory, entry.size) for entry in listing] == [("a", True, 0), ("top.txt", False, 1)]
    assert storage.walk_files(tenant_key="main", path="company/team/_files") == ["a/b.txt", "top.txt"]
    assert storage.walk_files(tenant_key="other", path="company/team/_files") == []
    assert storage.delete_tree(tenant_key="main", path="company/team/_files/a") == 1
    assert _keys(s3) == ["tests/main/company/team/_files/top.txt"]


@pytest.mark.django_db
def test_namespace_files_and_output_files_of_a_script_go_through_the_bucket(s3):
    namespace_file_put(tenant_key="main", namespace="company.team", path="tools/double.py",
                       content=b"import sys\nprint(int(sys.argv[1]) * 2)\nopen('out.txt', 'w').write('done')\n")
    task = TypeAdapter(Task).validate_python({
        "id": "t", "type": "io.kestra.plugin.scripts.python.Commands", "namespaceFiles": {"enabled": True},
        "commands": ["python tools/double.py 21"], "outputFiles": ["out.txt"],
    })
    rt = runtime()
    outputs = run_script(task, rt)
    assert "42" in [message for _, message in rt.log_lines()]
    assert outputs["outputFiles"] == {"out.txt": "kestra:///company/team/f/executions/e1/tasks/t/r1/out.txt"}
    assert "tests/main/company/team/f/executions/e1/tasks/t/r1/out.txt" in _keys(s3)
