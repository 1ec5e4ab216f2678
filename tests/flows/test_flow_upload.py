"""Flow upload and validation against the database."""
import textwrap
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from flows.errors import UserError
from flows.models import Flow, FlowRevision, WorkerGroup
from flows.selectors import tenant_get
from flows.services import flow_upload, flow_validate, tenant_create, worker_group_create

pytestmark = pytest.mark.django_db

LOG = "io.kestra.plugin.core.log.Log"


def flow_source(key: str = "gpu", flow_id: str = "train", message: str = "hi") -> str:
    # The key stands on line 7, column 12.
    return textwrap.dedent(f"""\
        id: {flow_id}
        namespace: company.team
        tasks:
          - id: hello
            type: {LOG}
            workerGroup:
              key: {key}
            message: {message}
        """)


def upload_faults(source: str, tenant_key: str = "main") -> list[tuple[str, int, int]]:
    with pytest.raises(UserError) as caught:
        flow_upload(source=source, tenant_key=tenant_key)
    return [(fault.message, fault.line, fault.column) for fault in caught.value.faults]


@pytest.fixture
def main():
    return tenant_get("main")


@pytest.fixture
def gpu(main):
    return worker_group_create(key="gpu", description="GPU boxes")


# --- literal keys must name a group that allows the tenant ------------------------------------


def test_unknown_literal_key_is_refused_naming_key_and_line(main):
    source = flow_source(key="nope")
    assert upload_faults(source) == [("worker group 'nope' does not exist", 7, 12)]
    with pytest.raises(UserError, match="line 7, column 12 .*worker group 'nope' does not exist"):
        flow_validate(source=source, tenant_key="main")
    assert not Flow.objects.exists() and not FlowRevision.objects.exists()


def test_existing_literal_key_is_accepted(gpu):
    flow = flow_upload(source=flow_source(key="gpu"), tenant_key="main")
    assert (flow.namespace, flow.flow_id, flow.revision) == ("company.team", "train", 1)


@pytest.mark.parametrize("where, source, line, column", [
    ("flow-level workerGroup", f"""\
        id: train
        namespace: company.team
        workerGroup: {{key: nope}}
        tasks:
          - id: hello
            type: {LOG}
            message: hi
        """, 3, 20),
    ("polling trigger", f"""\
        id: train
        namespace: company.team
        tasks:
          - id: hello
            type: {LOG}
            message: hi
        triggers:
          - id: poll
            type: io.kestra.plugin.core.http.Trigger
            uri: http://127.0.0.1:8080/status
            workerGroup:
              key: nope
        """, 12, 12),
    ("task nested in a flowable", f"""\
        id: train
        namespace: company.team
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.ForEach
            values: [1, 2]
            tasks:
              - id: hello
                type: {LOG}
                message: hi
                workerGroup: {{key: nope}}
        """, 11, 28),
])
def test_literal_keys_are_checked_wherever_they_stand(main, where, source, line, column):
    assert upload_faults(textwrap.dedent(source)) == [("worker group 'nope' does not exist", line, column)]
    assert not Flow.objects.exists()


def test_keys_set_by_plugin_defaults_are_checked(main):
    source = textwrap.dedent(f"""\
        id: train
        namespace: company.team
        pluginDefaults:
          - type: io.kestra.plugin.core.log
            values: {{workerGroup: {{key: nope}}}}
        tasks:
          - id: hello
            type: {LOG}
            message: hi
        """)
    (message, line, _), = upload_faults(source)
    assert message == "worker group 'nope' does not exist"
    assert line == 7  # the task that received the key
    assert not Flow.objects.exists()


def test_group_allowing_only_main_refuses_a_flow_of_another_tenant(main):
    tenant_create(key="other")
    worker_group_create(key="private", allowed_tenants=["main"])
    source = flow_source(key="private")
    assert upload_faults(source, tenant_key="other") == [("worker group 'private' does not allow tenant 'other'", 7, 12)]
    assert not Flow.objects.filter(tenant__key="other").exists()
    assert flow_upload(source=source, tenant_key="main").tenant.key == "main"


def test_group_without_allowed_tenants_is_open_to_every_tenant(gpu):
    tenant_create(key="other")
    assert flow_upload(source=flow_source(key="gpu"), tenant_key="other").tenant.key == "other"


@pytest.mark.parametrize("key", ['"{{ inputs.group }}"', '"{{ vars.group }}"', '"gpu-{{ inputs.size }}"'])
def test_expression_keys_are_accepted_at_upload(main, key):
    flow = flow_upload(source=flow_source(key=key), tenant_key="main")
    assert f"key: {key}" in flow.source
    assert not WorkerGroup.objects.exists()  # checked when rendered, not now


def test_blank_key_means_the_default_group(main):
    flow_upload(source=flow_source(key='""'), tenant_key="main")
    assert Flow.objects.count() == 1


def test_unknown_tenant_is_refused(gpu):
    with pytest.raises(UserError, match="tenant 'nowhere' does not exist"):
        flow_upload(source=flow_source(), tenant_key="nowhere")
    assert not Flow.objects.exists()


# --- revisions and storage ---------------------------------------------------------------------


def test_revision_increments_only_when_the_source_changes_and_history_is_kept(gpu):
    first, second = flow_source(message="one"), flow_source(message="two")
    assert flow_upload(source=first, tenant_key="main").revision == 1
    assert flow_upload(source=first, tenant_key="main").revision == 1
    assert flow_upload(source=second, tenant_key="main").revision == 2
    assert flow_upload(source=second, tenant_key="main").revision == 2
    assert flow_upload(source=first, tenant_key="main").revision == 3  # going back is a change too
    flow = Flow.objects.get()
    assert list(flow.revisions.order_by("revision").values_list("revision", "source")) == [
        (1, first), (2, second), (3, first),
    ]


def test_whitespace_and_comments_are_a_change(gpu):
    source = flow_source()
    flow_upload(source=source, tenant_key="main")
    assert flow_upload(source=source + "# reviewed\n", tenant_key="main").revision == 2


def test_source_is_stored_byte_for_byte(gpu):
    source = (
        "# Training flow — ünïcode, tabs\tin comments, CRLF endings and trailing spaces   \r\n"
        "id: train\r\n"
        "namespace: company.team   \r\n"
        "\r\n"
        "tasks:\r\n"
        "  - id: hello   # inline comment\r\n"
        f"    type: {LOG}\r\n"
        "    workerGroup: {key: gpu}\r\n"
        "    message: 'héllo {{ flow.id }}'\r\n"
        "\r\n\r\n"
    )
    flow_upload(source=source, tenant_key="main")
    flow = Flow.objects.get()
    assert flow.source == source
    assert flow.revisions.get().source == source


def test_nothing_is_stored_when_a_new_revision_is_refused(gpu):
    good = flow_source(message="one")
    flow_upload(source=good, tenant_key="main")
    for bad in (flow_source(key="nope"), flow_source(message="'{{ oops'"), good + "tasks: []\n"):
        with pytest.raises(UserError):
            flow_upload(source=bad, tenant_key="main")
    flow = Flow.objects.get()
    assert (flow.revision, flow.source) == (1, good)
    assert flow.revisions.count() == 1


def test_validate_stores_nothing(gpu):
    parsed = flow_validate(source=flow_source(), tenant_key="main")
    assert parsed.flow_id == "train"
    assert not Flow.objects.exists()


def test_document_sent_to_another_flow_path_is_refused(gpu):
    with pytest.raises(UserError, match="declares 'company.team.train' but was sent to 'company.team.other'"):
        flow_upload(source=flow_source(), tenant_key="main", namespace="company.team", flow_id="other")
    assert not Flow.objects.exists()


# --- the demo flows ------------------------------------------------------------------------------

EXAMPLES = sorted((Path(settings.BASE_DIR) / "examples").glob("*.yml"))


def test_there_are_demo_flows():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_example_validates_once_gpu_exists(gpu, path):
    flow_validate(source=path.read_text(encoding="utf-8"), tenant_key="main")


def test_demo_command_is_idempotent(capsys):
    call_command("demo")
    call_command("demo")
    assert list(WorkerGroup.objects.values_list("key", "description")) == [("gpu", "Demo GPU group")]
    assert Flow.objects.count() == len(EXAMPLES)
    assert set(Flow.objects.values_list("revision", flat=True)) == {1}
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("admin")
    assert "http://127.0.0.1:8000/admin/" in capsys.readouterr().out


# --- parsing refuses before it stores ------------------------------------------------------------


@pytest.mark.parametrize("variables", [
    "{d: 2001-13-14}",
    "{n: " + "9" * 5000 + "}",
    "{n: !!python/name:os.system }",
    "{n: " + "[" * 300 + "]" * 300 + "}",
    "&a {n: *a}",
])
def test_unreadable_documents_are_located_errors_and_nothing_is_stored(main, variables):
    source = flow_source(key="''") + f"variables: {variables}\n"
    [(message, line, column)] = upload_faults(source)
    assert line == 9 and column is not None, message
    assert not Flow.objects.exists() and not FlowRevision.objects.exists()


def test_a_flow_is_stored_only_if_it_reads_back(main, monkeypatch):
    from flows import services

    def unreadable(document):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(services, "document_json", unreadable)
    with pytest.raises(UserError, match="the flow was not stored: it cannot be shown as JSON"):
        flow_upload(source=flow_source(key="''"), tenant_key="main")
    assert not Flow.objects.exists() and not FlowRevision.objects.exists()
    monkeypatch.undo()
    flow = flow_upload(source=flow_source(key="''"), tenant_key="main")
    assert FlowRevision.objects.get(flow=flow).source == flow.source
