"""`flow`, `tenant`, `namespace` and `token` commands: thin layers over the services."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from flows.models import Flow, FlowRevision, Namespace, Tenant
from flows.services import tenant_create, token_user, worker_group_create
from tests.support import LOG_FLOW_ON_GROUP, ROOT as PROJECT


FLOW = LOG_FLOW_ON_GROUP


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- flow validate -------------------------------------------------------------------------


@pytest.mark.django_db
def test_flow_validate_prints_ok_for_a_valid_file(tmp_path, capsys):
    worker_group_create(key="gpu")
    path = write(tmp_path, "hello.yaml", FLOW.format(group="gpu"))

    call_command("flow", "validate", path)

    assert capsys.readouterr().out.strip() == f"{path}: ok"
    assert not Flow.objects.exists()


@pytest.mark.django_db
def test_flow_validate_reports_every_fault_with_file_line_and_column(tmp_path, capsys):
    worker_group_create(key="gpu")
    good = write(tmp_path, "good.yaml", FLOW.format(group="gpu"))
    bad = write(tmp_path, "bad.yaml", FLOW.format(group="nope"))

    with pytest.raises(CommandError, match="1 of 2"):
        call_command("flow", "validate", good, bad)

    out, err = capsys.readouterr()
    assert f"{good}: ok" in out
    assert f"{bad}: line 8, column 12 (tasks[0].workerGroup.key): worker group 'nope' does not exist" in err


@pytest.mark.django_db
def test_flow_validate_of_a_missing_file_is_a_clear_error(tmp_path, capsys):
    missing = str(tmp_path / "missing.yaml")

    with pytest.raises(CommandError):
        call_command("flow", "validate", missing)

    assert f"{missing}: no such file" in capsys.readouterr().err


def test_flow_validate_exits_1_with_the_fault_on_stderr(tmp_path):
    """The real command line: exit status 1, the located error on stderr."""
    missing = str(tmp_path / "missing.yaml")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}

    result = subprocess.run(
        [sys.executable, "manage.py", "flow", "validate", missing],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 1
    assert f"{missing}: no such file" in result.stderr
    assert result.stdout == ""


# --- flow upload ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_flow_upload_stores_the_flow_and_prints_namespace_id_and_revision(tmp_path, capsys):
    worker_group_create(key="gpu")
    path = write(tmp_path, "hello.yaml", FLOW.format(group="gpu"))

    call_command("flow", "upload", path)

    flow = Flow.objects.get()
    assert (flow.tenant.key, flow.namespace, flow.flow_id, flow.revision) == ("main", "company.team", "hello", 1)
    assert flow.source == FLOW.format(group="gpu")
    assert f"{path}: company.team.hello revision 1" in capsys.readouterr().out


@pytest.mark.django_db
def test_flow_upload_of_a_changed_file_makes_a_new_revision(tmp_path, capsys):
    worker_group_create(key="gpu")
    path = write(tmp_path, "hello.yaml", FLOW.format(group="gpu"))
    call_command("flow", "upload", path)
    Path(path).write_text(FLOW.format(group="gpu").replace("message: hi", "message: bye"))

    call_command("flow", "upload", path)

    assert Flow.objects.get().revision == 2
    assert "company.team.hello revision 2" in capsys.readouterr().out


@pytest.mark.django_db
def test_flow_upload_into_another_tenant(tmp_path):
    tenant_create(key="acme")
    worker_group_create(key="gpu", allowed_tenants=["acme"])
    path = write(tmp_path, "hello.yaml", FLOW.format(group="gpu"))

    call_command("flow", "upload", path, "--tenant", "acme")

    assert Flow.objects.get().tenant.key == "acme"


@pytest.mark.django_db
def test_flow_upload_targeting_an_unknown_group_fails_with_key_and_line_and_stores_nothing(tmp_path, capsys):
    path = write(tmp_path, "hello.yaml", FLOW.format(group="nope"))

    with pytest.raises(CommandError, match="nothing was stored"):
        call_command("flow", "upload", path)

    err = capsys.readouterr().err
    assert "'nope'" in err and "line 8, column 12" in err
    assert not Flow.objects.exists() and not FlowRevision.objects.exists()


@pytest.mark.django_db
def test_flow_upload_of_a_group_that_does_not_allow_the_tenant_is_refused(tmp_path, capsys):
    tenant_create(key="acme")
    worker_group_create(key="gpu", allowed_tenants=["acme"])
    path = write(tmp_path, "hello.yaml", FLOW.format(group="gpu"))

    with pytest.raises(CommandError):
        call_command("flow", "upload", path)

    assert "worker group 'gpu' does not allow tenant 'main'" in capsys.readouterr().err
    assert not Flow.objects.exists()


@pytest.mark.django_db
def test_flow_upload_stores_none_of_the_files_when_one_is_bad(tmp_path, capsys):
    worker_group_create(key="gpu")
    first = write(tmp_path, "first.yaml", FLOW.format(group="gpu"))
    second = write(tmp_path, "second.yaml", FLOW.format(group="gpu").replace("id: hello", "id: other").replace(
        "type: io.kestra.plugin.core.log.Log", "type: io.kestra.plugin.core.log.Nope"))

    with pytest.raises(CommandError):
        call_command("flow", "upload", first, second)

    err = capsys.readouterr().err
    assert f"{second}: line 5" in err and "unknown task type 'io.kestra.plugin.core.log.Nope'" in err
    assert first not in err
    assert not Flow.objects.exists()


@pytest.mark.django_db
def test_flow_upload_of_a_missing_file_stores_nothing(tmp_path, capsys):
    worker_group_create(key="gpu")
    good = write(tmp_path, "good.yaml", FLOW.format(group="gpu"))

    with pytest.raises(CommandError):
        call_command("flow", "upload", good, str(tmp_path / "missing.yaml"))

    assert "missing.yaml: no such file" in capsys.readouterr().err
    assert not Flow.objects.exists()


@pytest.mark.django_db
def test_flow_upload_into_an_unknown_tenant_is_refused(tmp_path, capsys):
    path = write(tmp_path, "hello.yaml", FLOW.format(group="gpu"))

    with pytest.raises(CommandError):
        call_command("flow", "upload", path, "--tenant", "ghost")

    assert "tenant 'ghost' does not exist" in capsys.readouterr().err
    assert not Flow.objects.exists()


# --- tenant, namespace ---------------------------------------------------------------------


@pytest.mark.django_db
def test_tenant_create_with_defaults(capsys):
    worker_group_create(key="gpu")

    call_command("tenant", "create", "acme", "--worker-group", "gpu", "--fallback", "FAIL")

    tenant = Tenant.objects.get(key="acme")
    assert (tenant.worker_group_key, tenant.fallback) == ("gpu", "FAIL")
    assert "tenant 'acme'" in capsys.readouterr().out


@pytest.mark.django_db
def test_tenant_create_with_an_unknown_group_stores_nothing():
    with pytest.raises(CommandError, match="worker group 'nope' does not exist"):
        call_command("tenant", "create", "acme", "--worker-group", "nope")

    assert not Tenant.objects.filter(key="acme").exists()


@pytest.mark.django_db
def test_tenant_create_refuses_a_bad_fallback_and_a_duplicate():
    with pytest.raises(CommandError, match="invalid fallback 'SOMETIMES'"):
        call_command("tenant", "create", "acme", "--fallback", "SOMETIMES")
    call_command("tenant", "create", "acme")

    with pytest.raises(CommandError, match="tenant 'acme' already exists"):
        call_command("tenant", "create", "acme")


@pytest.mark.django_db
def test_tenant_update_changes_the_defaults():
    worker_group_create(key="gpu")
    tenant_create(key="acme")

    call_command("tenant", "update", "acme", "--worker-group", "gpu", "--fallback", "CANCEL")

    tenant = Tenant.objects.get(key="acme")
    assert (tenant.worker_group_key, tenant.fallback) == ("gpu", "CANCEL")


@pytest.mark.django_db
def test_namespace_set_stores_the_defaults(capsys):
    worker_group_create(key="gpu")

    call_command("namespace", "set", "company.team", "--worker-group", "gpu", "--fallback", "WAIT")

    namespace = Namespace.objects.get()
    assert (namespace.tenant.key, namespace.name, namespace.worker_group_key, namespace.fallback) == (
        "main", "company.team", "gpu", "WAIT")
    assert "namespace 'company.team'" in capsys.readouterr().out


@pytest.mark.django_db
def test_namespace_set_in_an_unknown_tenant_or_with_a_bad_name_is_refused():
    with pytest.raises(CommandError, match="tenant 'ghost' does not exist"):
        call_command("namespace", "set", "company.team", "--tenant", "ghost")
    with pytest.raises(CommandError, match="invalid namespace 'Company Team'"):
        call_command("namespace", "set", "Company Team")

    assert not Namespace.objects.exists()


# --- token -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_token_create_prints_a_token_the_api_accepts(capsys):
    call_command("token", "create", "alice")

    token = capsys.readouterr().out.strip()
    user = token_user(token)
    assert user is not None and user.username == "alice"


@pytest.mark.django_db
def test_token_create_without_a_username_is_refused():
    with pytest.raises(CommandError, match="a username is required"):
        call_command("token", "create", " ")
