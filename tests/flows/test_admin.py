"""The Django admin is the product's UI: flows are uploaded through the same services as API and CLI."""
from html import unescape

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from flows.models import Execution, Flow, FlowRevision, LogLine, State, TaskRun, Tenant, WorkerGroup
from flows.services import flow_upload, tenant_create, worker_group_create, worker_heartbeat
from tests.support import LOG_FLOW_ON_GROUP

FLOW = LOG_FLOW_ON_GROUP


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client


def page(response) -> str:
    return unescape(response.content.decode())


def upload(admin_client, text: str, *, tenant: str = "main", name: str = "hello.yaml"):
    return admin_client.post(reverse("admin:flows_flow_add"), {
        "tenant_key": tenant, "yaml_file": SimpleUploadedFile(name, text.encode(), "application/x-yaml"), "source": "",
    })


# --- flows ---------------------------------------------------------------------------------


def test_uploading_a_valid_yaml_file_creates_the_flow_at_revision_1(admin_client):
    worker_group_create(key="gpu")

    response = upload(admin_client, FLOW.format(group="gpu"))

    assert response.status_code == 302
    flow = Flow.objects.get()
    assert (flow.tenant.key, flow.namespace, flow.flow_id, flow.revision) == ("main", "company.team", "hello", 1)
    assert flow.source == FLOW.format(group="gpu")
    assert list(FlowRevision.objects.values_list("revision", flat=True)) == [1]


def test_pasted_source_is_uploaded_into_the_chosen_tenant(admin_client):
    tenant_create(key="acme")
    worker_group_create(key="gpu", allowed_tenants=["acme"])

    response = admin_client.post(reverse("admin:flows_flow_add"), {
        "tenant_key": "acme", "source": FLOW.format(group="gpu").replace("\n", "\r\n"),
    })

    assert response.status_code == 302
    flow = Flow.objects.get()
    assert flow.tenant.key == "acme"
    assert flow.source == FLOW.format(group="gpu")


def test_a_bad_file_shows_the_located_error_and_stores_nothing(admin_client):
    response = upload(admin_client, FLOW.format(group="nope"))

    assert response.status_code == 200
    assert "line 8, column 12 (tasks[0].workerGroup.key): worker group 'nope' does not exist" in page(response)
    assert not Flow.objects.exists() and not FlowRevision.objects.exists()


def test_schema_faults_are_listed_with_their_lines(admin_client):
    source = FLOW.format(group="gpu").replace("message: hi", "mesage: hi")

    response = upload(admin_client, source)

    text = page(response)
    assert "line 6, column 13 (tasks[0].mesage): unknown property 'mesage'" in text
    assert "line 4, column 5 (tasks[0].message): missing required property 'message'" in text
    assert not Flow.objects.exists()


def test_a_group_that_does_not_allow_the_tenant_is_refused(admin_client):
    tenant_create(key="acme")
    worker_group_create(key="gpu", allowed_tenants=["acme"])

    response = upload(admin_client, FLOW.format(group="gpu"), tenant="main")

    assert response.status_code == 200
    assert "worker group 'gpu' does not allow tenant 'main'" in page(response)
    assert not Flow.objects.exists()


def test_an_empty_form_asks_for_a_file_or_source(admin_client):
    response = admin_client.post(reverse("admin:flows_flow_add"), {"tenant_key": "main", "source": ""})

    assert response.status_code == 200
    assert "Upload a YAML file or paste the flow's YAML source." in page(response)


def test_the_change_form_uploads_a_new_revision_and_lists_revisions(admin_client):
    worker_group_create(key="gpu")
    flow = flow_upload(source=FLOW.format(group="gpu"), tenant_key="main")
    url = reverse("admin:flows_flow_change", args=[flow.pk])
    changed = FLOW.format(group="gpu").replace("message: hi", "message: bye")

    response = admin_client.post(url, {
        "source": changed,
        "revisions-TOTAL_FORMS": "1", "revisions-INITIAL_FORMS": "1",
        "revisions-MIN_NUM_FORMS": "0", "revisions-MAX_NUM_FORMS": "0",
    })

    assert response.status_code == 302, page(response)
    flow.refresh_from_db()
    assert (flow.revision, flow.source) == (2, changed)
    text = page(admin_client.get(url))
    assert "message: bye" in text and "message: hi" in text  # both revisions listed inline


def test_the_change_form_refuses_a_document_of_another_flow(admin_client):
    flow = flow_upload(source=FLOW.format(group=""), tenant_key="main")

    response = admin_client.post(reverse("admin:flows_flow_change", args=[flow.pk]), {
        "source": FLOW.format(group="").replace("id: hello", "id: other"),
        "revisions-TOTAL_FORMS": "1", "revisions-INITIAL_FORMS": "1",
    })

    assert response.status_code == 200
    assert "the document declares 'company.team.other'" in page(response)
    assert Flow.objects.get().revision == 1


# --- worker groups, tenants, namespaces -----------------------------------------------------


def test_worker_group_changelist_shows_live_health(admin_client):
    worker_group_create(key="gpu", description="GPU boxes")
    worker_heartbeat(hostname="gpu@host1", groups=["gpu"], pid=1, concurrency=2, running=0)
    flow = flow_upload(source=FLOW.format(group="gpu"), tenant_key="main")
    execution = Execution.objects.create(tenant=flow.tenant, flow_revision=flow.revisions.get(),
                                         namespace=flow.namespace, flow_id=flow.flow_id)
    TaskRun.objects.create(execution=execution, scope_key="a", task_id="say", task_type="t", worker_group="gpu")

    response = admin_client.get(reverse("admin:flows_workergroup_changelist"))

    text = page(response)
    assert "health (live)" in text.lower()
    assert "1 alive</strong>: gpu@host1" in text
    assert "1 queued (oldest " in text and "s), 0 running" in text
    assert "(default) worker group" in text and "0 alive" in text


def test_worker_group_add_goes_through_the_service(admin_client):
    acme = tenant_create(key="acme")
    url = reverse("admin:flows_workergroup_add")

    refused = admin_client.post(url, {"key": "default", "description": ""})
    created = admin_client.post(url, {"key": "gpu", "description": "GPU", "allowed_tenants": [acme.pk]})

    assert refused.status_code == 200
    assert "'default' is reserved and cannot be a worker group key" in page(refused)
    assert created.status_code == 302
    group = WorkerGroup.objects.get()
    assert group.key == "gpu" and list(group.allowed_tenants.all()) == [acme]


def test_tenant_add_with_a_group_that_does_not_allow_it_is_refused(admin_client):
    tenant_create(key="acme")
    worker_group_create(key="gpu", allowed_tenants=["acme"])
    worker_group_create(key="cpu")
    url = reverse("admin:flows_tenant_add")

    refused = admin_client.post(url, {"key": "beta", "worker_group_key": "gpu", "fallback": ""})
    created = admin_client.post(url, {"key": "beta", "worker_group_key": "cpu", "fallback": "FAIL"})

    assert "worker group 'gpu' does not allow tenant 'beta'" in page(refused)
    assert created.status_code == 302
    assert Tenant.objects.filter(key="beta", worker_group_key="cpu", fallback="FAIL").count() == 1


def test_namespace_add_sets_defaults(admin_client):
    worker_group_create(key="gpu")

    response = admin_client.post(reverse("admin:flows_namespace_add"), {
        "tenant_key": "main", "name": "company.team", "worker_group_key": "gpu", "fallback": "",
    })

    assert response.status_code == 302
    assert Tenant.objects.get(key="main").namespaces.get().worker_group_key == "gpu"


# --- read-only views ------------------------------------------------------------------------------


def test_execution_page_lists_task_runs_with_group_and_worker(admin_client):
    flow = flow_upload(source=FLOW.format(group=""), tenant_key="main")
    execution = Execution.objects.create(tenant=flow.tenant, flow_revision=flow.revisions.get(),
                                         namespace=flow.namespace, flow_id=flow.flow_id, state=State.RUNNING)
    TaskRun.objects.create(execution=execution, scope_key="a", task_id="say", task_type="t", worker_group="",
                           worker_id="celery@box", state=State.RUNNING)
    LogLine.objects.create(execution=execution, task_id="say", level="ERROR", message="boom")

    detail = page(admin_client.get(reverse("admin:flows_execution_change", args=[execution.pk])))
    logs = page(admin_client.get(reverse("admin:flows_logline_changelist") + f"?execution__id__exact={execution.pk}"))
    by_level = admin_client.get(reverse("admin:flows_logline_changelist") + "?level=INFO")

    assert "celery@box" in detail and "(default)" in detail and "1 log lines" in detail
    assert "boom" in logs
    assert by_level.status_code == 200 and "boom" not in page(by_level)


def test_execution_page_shows_the_flow_outputs(admin_client):
    flow = flow_upload(source=FLOW.format(group=""), tenant_key="main")
    execution = Execution.objects.create(tenant=flow.tenant, flow_revision=flow.revisions.get(), state=State.SUCCESS,
                                         namespace=flow.namespace, flow_id=flow.flow_id, outputs={"key": "value-42"})

    detail = page(admin_client.get(reverse("admin:flows_execution_change", args=[execution.pk])))

    assert "value-42" in detail


def test_worker_changelist_shows_alive_workers(admin_client):
    worker_heartbeat(hostname="gpu@host1", groups=["gpu", "default"], pid=42, concurrency=4, running=1)

    text = page(admin_client.get(reverse("admin:flows_worker_changelist")))

    assert "gpu@host1" in text and "default, gpu" in text and 'alt="True"' in text


def test_every_admin_page_renders(admin_client):
    """Changelists, add forms and change/view pages of every registered model, with one row each."""
    tenant_create(key="acme")
    worker_group_create(key="gpu", allowed_tenants=["acme"])
    worker_heartbeat(hostname="gpu@host1", groups=["gpu"], pid=1, concurrency=1, running=0)
    flow = flow_upload(source=FLOW.format(group="gpu"), tenant_key="acme")
    execution = Execution.objects.create(tenant=flow.tenant, flow_revision=flow.revisions.get(),
                                         namespace=flow.namespace, flow_id=flow.flow_id)
    TaskRun.objects.create(execution=execution, scope_key="a", task_id="say", task_type="t", worker_group="gpu")
    LogLine.objects.create(execution=execution, task_id="say", message="hello")
    call_command("namespace", "set", "company", "--tenant", "acme")
    call_command("token", "create", "alice")

    for model in admin.site._registry:
        meta = model._meta
        changelist = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert changelist.status_code == 200, meta.label
        add = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add"))
        assert add.status_code in (200, 403), meta.label
        for pk in model.objects.values_list("pk", flat=True):
            change = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk]))
            assert change.status_code == 200, meta.label


def test_deleting_a_flow_in_the_admin_keeps_its_history(admin_client):
    flow = flow_upload(source=FLOW.format(group=""), tenant_key="main")

    response = admin_client.post(reverse("admin:flows_flow_delete", args=[flow.pk]), {"post": "yes"})

    assert response.status_code == 302
    flow.refresh_from_db()
    assert flow.deleted and flow.revisions.count() == 1


def test_worker_group_drain_and_resume_actions_and_the_limit_field(admin_client):
    group = worker_group_create(key="gpu")
    url = reverse("admin:flows_workergroup_changelist")

    admin_client.post(url, {"action": "drain", "_selected_action": [group.pk]})
    group.refresh_from_db()
    assert group.drained and "DRAINED" in page(admin_client.get(url))
    admin_client.post(url, {"action": "resume", "_selected_action": [group.pk]})
    group.refresh_from_db()
    assert not group.drained

    change = reverse("admin:flows_workergroup_change", args=[group.pk])
    refused = admin_client.post(change, {"description": "", "concurrency_limit": "0", "init_script": ""})
    assert refused.status_code == 200 and "at least 1" in page(refused)
    admin_client.post(change, {"description": "", "concurrency_limit": "2", "init_script": "echo hi"})
    group.refresh_from_db()
    assert (group.concurrency_limit, group.init_script) == (2, "echo hi")
