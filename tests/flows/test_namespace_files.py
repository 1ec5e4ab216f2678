"""Namespace files (docs/namespace-files.md): the nsfiles command, the demo's, Kestra's
include/exclude globs, and the seed example run end to end on the gpu group."""
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from flows import storage
from flows.engine import execution_create
from flows.selectors import namespace_files_all, tenant_get
from flows.services import flow_upload, namespace_file_put
from tests.support import ROOT, stored_texts, task_runs, wait_execution


def _tree(root: Path, files: dict[str, str]) -> Path:
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    return root


def _stored(namespace: str = "company.team") -> list[str]:
    return namespace_files_all(tenant=tenant_get("main"), namespace=namespace)


@pytest.mark.django_db
def test_upload_sends_a_directory_skipping_ignored_files(tmp_path, capsys):
    _tree(tmp_path, {"main.py": "print(1)", "lib/util.py": "x = 1", ".git/HEAD": "ref", "lib/__pycache__/u.pyc": "",
                     "notes.tmp": "", ".kestraignore": "# scratch\n*.tmp\n"})
    call_command("nsfiles", "upload", "company.team", str(tmp_path))
    assert _stored() == ["lib/util.py", "main.py"]
    assert "2 file(s) uploaded to namespace company.team" in capsys.readouterr().out
    call_command("nsfiles", "upload", "company.team", str(tmp_path / "lib"), "--to", "vendor")
    capsys.readouterr()
    call_command("nsfiles", "list", "company.team")
    assert capsys.readouterr().out.split() == ["lib/util.py", "main.py", "vendor/util.py"]
    call_command("nsfiles", "delete", "company.team", "lib")
    assert _stored() == ["main.py", "vendor/util.py"]


@pytest.mark.django_db
def test_bad_input_is_a_clear_error_and_stores_nothing(tmp_path):
    _tree(tmp_path, {"a.py": "x"})
    with pytest.raises(CommandError, match="invalid namespace 'Company'"):
        call_command("nsfiles", "upload", "Company", str(tmp_path))
    with pytest.raises(CommandError, match="not a directory"):
        call_command("nsfiles", "upload", "company.team", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="not a plain relative path"):
        call_command("nsfiles", "upload", "company.team", str(tmp_path), "--to", "../up")
    with pytest.raises(CommandError, match="tenant 'nowhere' does not exist"):
        call_command("nsfiles", "upload", "company.team", str(tmp_path), "--tenant", "nowhere")
    with pytest.raises(CommandError, match="no namespace file or directory 'a.py'"):
        call_command("nsfiles", "delete", "company.team", "a.py")
    assert _stored() == []


@pytest.mark.django_db
def test_demo_uploads_every_example_flow_and_the_namespace_files_they_need(capsys):
    call_command("demo")
    out = capsys.readouterr().out
    for example in sorted((ROOT / "examples").glob("*.yml")):
        assert f"from {example.name}" in out
    assert _stored("demo.ml") == ["ml_on_gpu.py"]


@pytest.mark.parametrize("include, exclude, kept", [
    ([], [], ["a.py", "data/b.csv", "data/deep/c.csv", "test.txt"]),
    (["*.py"], [], ["a.py"]),  # a bare pattern matches at any depth: **/*.py
    (["data/**"], ["**/deep/**"], ["data/b.csv"]),
    (["**/*.csv"], [], ["data/b.csv", "data/deep/c.csv"]),
    (["test.txt", "/a.py"], [], ["a.py", "test.txt"]),
    ([], ["*.csv", "glob:/test.*"], ["a.py"]),
    (["regex:.*\\.(py|txt)"], [], ["a.py", "test.txt"]),
    (["{a,test}.*"], [], ["a.py", "test.txt"]),
])
def test_include_and_exclude_are_kestras_globs(include, exclude, kept):
    paths = ["a.py", "data/b.csv", "data/deep/c.csv", "test.txt"]
    assert [path for path in paths if storage.matches(path, include=include, exclude=exclude)] == kept


SELECTED = """\
id: selected
namespace: company.team
tasks:
  - id: ls
    type: io.kestra.plugin.scripts.shell.Commands
    namespaceFiles:
      include: ["scripts/**"]
      exclude: ["**/*.md"]
    inputFiles:
      scripts/extra.txt: written by inputFiles
    commands:
      - find . -type f | sort
"""


@pytest.mark.django_db(transaction=True)
def test_namespace_files_are_laid_in_before_input_files_on_the_groups_worker(engine):
    for path in ("scripts/run.sh", "scripts/README.md", "other/skip.sh", "scripts/extra.txt"):
        namespace_file_put(tenant_key="main", namespace="company.team", path=path, content=b"#")
    flow = flow_upload(source=SELECTED, tenant_key="main")
    execution = wait_execution(execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id).id)
    assert execution.state == "SUCCESS"
    lines = [line.message for line in task_runs(execution)["ls"].logs.order_by("id")]
    assert "./scripts/run.sh" in lines and "./scripts/extra.txt" in lines
    assert "./scripts/README.md" not in lines and "./other/skip.sh" not in lines


@pytest.mark.django_db(transaction=True)
def test_the_seed_example_runs_a_namespace_file_on_gpu_and_passes_its_output_file_on(engine):
    call_command("nsfiles", "upload", "demo.ml", str(ROOT / "examples/files/demo.ml"))
    flow = flow_upload(source=(ROOT / "examples/ml_on_gpu.yml").read_text(), tenant_key="main")
    execution = wait_execution(execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id).id,
                               timeout=90)
    runs = task_runs(execution)
    assert execution.state == "SUCCESS", [(run.task_id, run.error) for run in runs.values()]
    train, report = runs["train"], runs["report"]
    assert train.worker_group == "gpu" and train.worker_id.startswith("gpu@")
    assert train.outputs["vars"] == {"epochs": 3, "accuracy": 0.93}
    uri = train.outputs["outputFiles"]["model.json"]
    assert uri == f"kestra:///demo/ml/ml_on_gpu/executions/{execution.id}/tasks/train/{train.id}/model.json"
    model = stored_texts({"m": uri})["m"].strip()
    messages = [line.message for line in report.logs.order_by("id")]
    assert model in messages and "accuracy 0.93" in messages


FILE_AND_SECRET = """\
id: with_file
namespace: company.team
inputs:
  - id: data
    type: FILE
  - id: password
    type: SECRET
tasks:
  - id: read
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      data.csv: "{{ inputs.data }}"
    commands:
      - cat data.csv
      - echo "uri {{ inputs.data }}"
      - echo "password {{ inputs.password }}"
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "bad password {{ inputs.password }}"
    allowFailure: true
"""


@pytest.mark.django_db(transaction=True)
def test_a_file_input_reaches_the_script_and_a_secret_never_reaches_the_logs(engine):
    from django.core.files.uploadedfile import SimpleUploadedFile

    flow = flow_upload(source=FILE_AND_SECRET, tenant_key="main")
    execution = execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id, inputs={
        "data": SimpleUploadedFile("orders.csv", b"id,total\n1,10\n"), "password": "hunter2-secret"})
    execution = wait_execution(execution.id)
    runs = task_runs(execution)
    assert execution.state == "WARNING"
    lines = [line.message for line in runs["read"].logs.order_by("id")]
    assert lines[:2] == ["id,total", "1,10"]
    assert lines[2] == f"uri kestra:///company/team/with_file/executions/{execution.id}/inputs/data/orders.csv"
    assert lines[3] == "password ******"
    assert runs["fail"].error == "bad password ******"
    assert "hunter2" not in str(list(execution.logs.values_list("message", flat=True)))
