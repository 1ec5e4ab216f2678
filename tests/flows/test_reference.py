"""The reference documentation and the flow's JSON Schema are generated from flows/schema.py
(flows/reference.py): they cover every type, and a test fails when the files drift."""
import json

import jsonschema
import pytest
from django.test import Client

from flows.reference import INPUTS, TASKS, TRIGGERS, flow_json_schema, reference_files
from flows.yaml_source import load_located
from tests.support import ROOT

DOCS = ROOT / "docs"
REGENERATE = "run `python manage.py reference` and commit docs/reference/ and docs/flow.schema.json"


def test_the_generated_files_are_those_in_docs():
    generated = reference_files()
    on_disk = {path.relative_to(DOCS).as_posix() for path in (DOCS / "reference").rglob("*.md")}
    assert on_disk == {path for path in generated if path.startswith("reference/")}, REGENERATE
    for relative, content in generated.items():
        assert (DOCS / relative).read_text(encoding="utf-8") == content, f"docs/{relative} drifted: {REGENERATE}"


def test_every_task_trigger_and_input_type_has_a_page():
    files = reference_files()
    for models, folder in ((TASKS, "tasks"), (TRIGGERS, "triggers"), (INPUTS, "inputs")):
        for model in models:
            name = model.model_fields["type"].annotation.__args__[0]
            assert f"reference/{folder}/{name}.md" in files
            assert f"({folder}/{name}.md)" in files["reference/README.md"]
    assert len(INPUTS) == 19 and len(TASKS) >= 15


@pytest.mark.parametrize("example", sorted(path.name for path in (ROOT / "examples").glob("*.yml")))
def test_the_examples_are_valid_against_the_json_schema(example):
    document = load_located((ROOT / "examples" / example).read_text()).data
    jsonschema.validate(document, flow_json_schema())


def test_the_json_schema_refuses_what_the_upload_refuses():
    bad = {"id": "f", "namespace": "company.team", "tasks": [{"id": "t", "type": "io.kestra.plugin.core.log.Log"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, flow_json_schema())  # a Log without its message


@pytest.mark.django_db
def test_the_schema_is_served_without_a_token():
    answer = Client().get("/api/v1/plugins/schemas/flow")
    assert answer.status_code == 200
    assert answer.json() == json.loads(json.dumps(flow_json_schema()))
