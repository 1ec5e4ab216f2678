"""`workergroup create|list|delete`."""
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from flows.models import Execution, State, TaskRun, Worker, WorkerGroup
from flows.services import flow_upload, tenant_create, worker_group_create, worker_heartbeat

FLOW = """\
id: hello
namespace: company.team
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


@pytest.mark.django_db
def test_create_stores_the_group_with_description_and_allowed_tenants(capsys):
    tenant_create(key="acme")
    tenant_create(key="beta")

    call_command("workergroup", "create", "gpu", "--description", "GPU boxes",
                 "--allowed-tenant", "acme", "--allowed-tenant", "beta")

    group = WorkerGroup.objects.get()
    assert (group.key, group.description) == ("gpu", "GPU boxes")
    assert sorted(group.allowed_tenants.values_list("key", flat=True)) == ["acme", "beta"]
    assert "created worker group 'gpu'" in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["default", "executor", "scheduler"])
def test_create_refuses_reserved_keys(key):
    with pytest.raises(CommandError, match=f"'{key}' is reserved"):
        call_command("workergroup", "create", key)

    assert not WorkerGroup.objects.exists()


@pytest.mark.django_db
def test_create_refuses_an_invalid_key_a_duplicate_and_an_unknown_tenant():
    with pytest.raises(CommandError, match="invalid worker group key 'gpu box'"):
        call_command("workergroup", "create", "gpu box")
    with pytest.raises(CommandError, match="'ghost'"):
        call_command("workergroup", "create", "gpu", "--allowed-tenant", "ghost")
    assert not WorkerGroup.objects.exists()

    call_command("workergroup", "create", "gpu")
    with pytest.raises(CommandError, match="worker group 'gpu' already exists"):
        call_command("workergroup", "create", "gpu")


@pytest.mark.django_db
def test_list_shows_each_group_with_alive_workers_and_task_run_counts(capsys):
    tenant_create(key="acme")
    worker_group_create(key="gpu", description="GPU boxes", allowed_tenants=["acme"])
    worker_group_create(key="onprem")
    worker_heartbeat(hostname="gpu@host1", groups=["gpu"], pid=1, concurrency=2, running=1)
    worker_heartbeat(hostname="gpu@host2", groups=["gpu", "default"], pid=2, concurrency=2, running=0)
    worker_heartbeat(hostname="gpu@dead", groups=["gpu"], pid=3, concurrency=2, running=0)
    Worker.objects.filter(hostname="gpu@dead").update(last_heartbeat=timezone.now() - timedelta(hours=1))
    flow = flow_upload(source=FLOW, tenant_key="acme")
    execution = Execution.objects.create(tenant=flow.tenant, flow_revision=flow.revisions.get(),
                                         namespace=flow.namespace, flow_id=flow.flow_id)
    for index, state in enumerate([State.CREATED, State.CREATED, State.RUNNING, State.SUCCESS]):
        TaskRun.objects.create(execution=execution, scope_key=f"s{index}", task_id="say",
                               task_type="io.kestra.plugin.core.log.Log", worker_group="gpu", state=state)

    call_command("workergroup", "list")

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["KEY", "DESCRIPTION", "ALLOWED", "TENANTS", "ALIVE", "WORKERS", "QUEUED", "BROKER",
                                "OLDEST", "RUNNING", "LIMIT", "STATUS"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"(default)", "gpu", "onprem"}
    assert "GPU boxes" in rows["gpu"] and "acme" in rows["gpu"]
    assert "2 (gpu@host1, gpu@host2)" in rows["gpu"] and "gpu@dead" not in rows["gpu"]
    queued, _broker, oldest, running, limit, status = rows["gpu"].split()[-6:]
    assert (queued, running, limit, status) == ("2", "1", "-", "ok") and oldest.endswith("s")
    assert "1 (gpu@host2)" in rows["(default)"]
    assert "(all)" in rows["onprem"] and rows["onprem"].split()[-7:-5] + rows["onprem"].split()[-4:] == ["0", "0", "-", "0", "-", "ok"]


@pytest.mark.django_db
def test_delete_removes_the_group_and_refuses_an_unknown_key(capsys):
    worker_group_create(key="gpu")

    call_command("workergroup", "delete", "gpu")

    assert not WorkerGroup.objects.exists()
    assert "deleted worker group 'gpu'" in capsys.readouterr().out
    with pytest.raises(CommandError, match="worker group 'gpu' does not exist"):
        call_command("workergroup", "delete", "gpu")


@pytest.mark.django_db
def test_set_drain_and_resume(capsys, tmp_path):
    worker_group_create(key="gpu")
    script = tmp_path / "init.sh"
    script.write_text("echo one\necho two\n")

    call_command("workergroup", "set", "gpu", "--concurrency-limit", "2", "--init-script", str(script))
    call_command("workergroup", "drain", "gpu")
    group = WorkerGroup.objects.get()
    assert (group.concurrency_limit, group.init_script, group.drained) == (2, "echo one\necho two\n", True)
    out = capsys.readouterr().out
    assert "concurrency limit 2, init script 2 line(s)" in out and "drained worker group 'gpu'" in out
    call_command("workergroup", "list")
    assert capsys.readouterr().out.splitlines()[-1].split()[-2:] == ["2", "DRAINED"]

    call_command("workergroup", "resume", "gpu")
    call_command("workergroup", "set", "gpu", "--concurrency-limit", "none")
    group.refresh_from_db()
    assert (group.concurrency_limit, group.drained) == (None, False)
    for bad, words in ((["--concurrency-limit", "two"], "whole number"), ([], "nothing to change"),
                       (["--init-script", str(tmp_path / "missing")], "No such file")):
        with pytest.raises(CommandError, match=words):
            call_command("workergroup", "set", "gpu", *bad)
    with pytest.raises(CommandError, match="worker group 'ghost' does not exist"):
        call_command("workergroup", "drain", "ghost")
