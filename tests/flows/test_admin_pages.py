"""The admin's drawn pages (docs/admin.md): an execution's task runs, timeline and logs; a flow's task
tree with resolved groups; a worker group's load from recorded samples; the list filters."""
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from flows import admin_pages, masking
from flows.models import Execution, LogLine, State, TaskRun, WorkerGroupSample
from flows.services import (
    flow_upload, namespace_set, tenant_create, tenant_update, worker_group_create, worker_group_samples_record,
    worker_heartbeat,
)
from tests.flows.test_admin_authorization import FLOW
from tests.support.auth import user_with

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE_TASK = "say<script>alert('x')</script>&"
HOSTILE_WORKER = 'gpu@"><img src=x onerror=alert(1)>'


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def svgs(response) -> list[ET.Element]:
    """Every SVG the product draws on a page (not the admin's icons), parsed as XML: a malformed one
    fails the test."""
    html = response.content.decode()
    return [ET.fromstring(match) for match in re.findall(r'<svg xmlns="http://www.w3.org/2000/svg" class="drawing".*?</svg>', html,
                                                          flags=re.S)]


def texts(svg: ET.Element) -> list[str]:
    return ["".join(text.itertext()) for text in svg.iter(f"{SVG}text")]


def execution_of(flow_id: str = "etl", namespace: str = "company.team", tenant: str = "main", **fields) -> Execution:
    flow = flow_upload(source=FLOW.format(id=flow_id, namespace=namespace), tenant_key=tenant)
    return Execution.objects.create(tenant=flow.tenant, flow_revision=flow.revisions.get(), namespace=namespace,
                                    flow_id=flow_id, **fields)


def run_of(execution, task_id: str, *, group: str = "", worker: str = "", state: str = State.SUCCESS,
           started: float | None = 0.0, seconds: float = 1.0, attempt: int = 1) -> TaskRun:
    origin = execution.start_date
    start = origin + timedelta(seconds=started) if started is not None else None
    return TaskRun.objects.create(
        execution=execution, scope_key=f"{task_id}-{TaskRun.objects.count()}", task_id=task_id, task_type="t",
        worker_group=group, worker_id=worker, state=state, attempt=attempt, start_date=start,
        end_date=start + timedelta(seconds=seconds) if start and state != State.RUNNING else None,
    )


def execution_page(client, execution):
    return client.get(reverse("admin:flows_execution_change", args=[execution.pk]))


# --- the execution page ----------------------------------------------------------------------


def test_the_execution_page_tables_and_draws_each_task_run_with_group_worker_and_state(admin_client):
    start = timezone.now() - timedelta(seconds=30)
    execution = execution_of(state=State.RUNNING, start_date=start)
    run_of(execution, "extract", group="gpu", worker="gpu@box1", started=0, seconds=4, attempt=2)
    run_of(execution, "load", worker="celery@box2", state=State.FAILED, started=5, seconds=2)
    run_of(execution, "train", group="gpu", worker="gpu@box1", state=State.RUNNING, started=8)

    response = execution_page(admin_client, execution)

    assert response.status_code == 200
    rows = re.findall(r'<tr class="task-run" data-state="(\w+)">(.*?)</tr>', response.content.decode(), re.S)
    cells = [[unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
             for _, row in rows]
    assert [row[:5] for row in cells] == [
        ["extract", "gpu", "gpu@box1", "SUCCESS", "2"],
        ["load", "(default)", "celery@box2", "FAILED", "1"],
        ["train", "gpu", "gpu@box1", "RUNNING", "1"],
    ]
    assert cells[0][6] == "4.0 s" and cells[1][6] == "2.0 s"
    (timeline,) = svgs(response)
    bars = [group for group in timeline.iter(f"{SVG}g") if group.get("class") == "bar"]
    assert [bar.get("data-state") for bar in bars] == ["SUCCESS", "FAILED", "RUNNING"]
    assert {"extract", "gpu · gpu@box1", "load", "(default) · celery@box2"} <= set(texts(timeline))
    # x = time from the execution's start: later task runs start further right.
    lefts = [float(bar.find(f"{SVG}rect").get("x")) for bar in bars]
    assert lefts == sorted(lefts) and lefts[0] < lefts[1] < lefts[2]
    assert bars[1].find(f"{SVG}rect").get("fill") == "#e53935"


def test_hostile_task_ids_and_worker_names_are_escaped_in_the_table_and_the_svg(admin_client):
    execution = execution_of(state=State.RUNNING, start_date=timezone.now())
    run_of(execution, HOSTILE_TASK, worker=HOSTILE_WORKER)
    LogLine.objects.create(execution=execution, task_id=HOSTILE_TASK, message="<b>bold</b>")

    response = execution_page(admin_client, execution)

    html = response.content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>bold</b>" not in html
    (timeline,) = svgs(response)
    assert HOSTILE_TASK in texts(timeline) and f"(default) · {HOSTILE_WORKER}" in texts(timeline)


def test_logs_are_listed_with_level_time_and_task_and_secrets_masked(admin_client):
    execution = execution_of(state=State.SUCCESS, start_date=timezone.now(),
                             inputs={"password": masking.encrypt("hunter22")})
    run_of(execution, "login")
    LogLine.objects.create(execution=execution, task_id="login", level="WARN", message="logging in with hunter22")

    html = unescape(execution_page(admin_client, execution).content.decode())

    line = re.search(r'<tr class="log-line">(.*?)</tr>', html, re.S).group(1)
    assert "WARN" in line and "login" in line and "logging in with ******" in line
    assert "hunter22" not in html


def test_a_long_execution_shows_some_of_its_runs_and_logs_in_the_same_number_of_queries(admin_client, monkeypatch):
    monkeypatch.setattr(admin_pages, "SHOWN_TASK_RUNS", 5)
    monkeypatch.setattr(admin_pages, "SHOWN_LOG_LINES", 4)
    execution = execution_of(state=State.SUCCESS, start_date=timezone.now())
    run_of(execution, "first", worker="w@1")
    LogLine.objects.create(execution=execution, task_id="first", message="line")
    with CaptureQueriesContext(connection) as small:
        execution_page(admin_client, execution)
    for index in range(11):
        run_of(execution, f"task{index}", worker=f"w@{index}", started=index)
        LogLine.objects.create(execution=execution, task_id=f"task{index}", message=f"line {index}")

    with CaptureQueriesContext(connection) as large:
        response = execution_page(admin_client, execution)

    text = unescape(response.content.decode())
    assert "Showing the first 5 of 12 task runs." in text and "Showing the first 4 of 12 log lines." in text
    assert text.count('class="task-run"') == 5 and text.count('class="log-line"') == 4
    assert len(large) <= len(small) + 1  # the two counts once the page is full, nothing per row


# --- the flow page -----------------------------------------------------------------------------

TREE_FLOW = """\
id: tree
namespace: company.team
pluginDefaults:
  - type: io.kestra.plugin.core.debug.Return
    values:
      workerGroup:
        key: cpu
tasks:
  - id: steps
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: own
        type: io.kestra.plugin.core.log.Log
        message: hi
        workerGroup:
          key: gpu
      - id: defaulted
        type: io.kestra.plugin.core.debug.Return
        format: x
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: computed
        type: io.kestra.plugin.core.log.Log
        message: hi
        workerGroup:
          key: "{{ inputs.where ~ '<x>&' }}"
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{ true }}"
    then:
      - id: when_true
        type: io.kestra.plugin.core.log.Log
        message: "yes"
    else:
      - id: when_false
        type: io.kestra.plugin.core.log.Log
        message: "no"
  - id: pick
    type: io.kestra.plugin.core.flow.Switch
    value: a
    cases:
      a:
        - id: case_a
          type: io.kestra.plugin.core.log.Log
          message: a
    defaults:
      - id: other
        type: io.kestra.plugin.core.log.Log
        message: other
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2]
    tasks:
      - id: item
        type: io.kestra.plugin.core.log.Log
        message: "{{ taskrun.value }}"
errors:
  - id: alert
    type: io.kestra.plugin.core.log.Log
    message: failed
"""


def flow_tree(client, flow) -> list[str]:
    response = client.get(reverse("admin:flows_flow_change", args=[flow.pk]))
    assert response.status_code == 200
    (tree,) = svgs(response)
    return texts(tree)


def test_the_flow_page_draws_the_task_tree_with_each_runnables_resolved_group(admin_client):
    for key in ("gpu", "cpu", "ns_group"):
        worker_group_create(key=key)
    namespace_set(tenant_key="main", name="company", worker_group_key="ns_group")
    flow = flow_upload(source=TREE_FLOW, tenant_key="main")

    rows = flow_tree(admin_client, flow)

    assert rows == [
        "steps Sequential",
        "own Log → gpu (task)",
        "defaulted Return → cpu (pluginDefaults)",
        "fan Parallel",
        "computed Log → {{ inputs.where ~ '<x>&' }} (task)",  # escaped, or the SVG would not parse
        "check If",
        "then", "when_true Log → ns_group (namespace)",
        "else", "when_false Log → ns_group (namespace)",
        "pick Switch",
        "case a", "case_a Log → ns_group (namespace)",
        "defaults", "other Log → ns_group (namespace)",
        "each ForEach",
        "item Log → ns_group (namespace)",
        "errors", "alert Log → ns_group (namespace)",
    ]


@pytest.mark.parametrize("where, expected", [
    ("flow", "say Log → gpu (flow)"), ("tenant", "say Log → gpu (tenant)"), ("", "say Log → (default) (default)"),
])
def test_a_task_without_its_own_group_shows_the_rule_that_routes_it(admin_client, where, expected):
    worker_group_create(key="gpu")
    source = FLOW.format(id="plain", namespace="company.team")
    if where == "flow":
        source += "workerGroup:\n  key: gpu\n"
    if where == "tenant":
        tenant_update(key="main", worker_group_key="gpu")

    assert flow_tree(admin_client, flow_upload(source=source, tenant_key="main")) == [expected]


def test_polling_triggers_show_their_group_and_the_others_none(admin_client):
    worker_group_create(key="gpu")
    source = FLOW.format(id="watched", namespace="company.team") + """\
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
  - id: poll_api
    type: io.kestra.plugin.core.http.Trigger
    uri: http://127.0.0.1:9/ready
    workerGroup:
      key: gpu
"""

    rows = flow_tree(admin_client, flow_upload(source=source, tenant_key="main"))

    assert rows == ["say Log → (default) (default)", "triggers", "nightly Schedule", "poll_api Trigger → gpu (trigger)"]


# --- the worker-group page and its samples ----------------------------------------------------


def test_samples_are_recorded_at_most_once_a_minute_and_kept_a_day():
    worker_group_create(key="gpu")
    worker_heartbeat(hostname="gpu@box", groups=["gpu"], pid=1, concurrency=1, running=0)
    execution = execution_of(state=State.RUNNING, start_date=timezone.now())
    run_of(execution, "waits", group="gpu", state=State.CREATED, started=None)
    now = timezone.now()
    WorkerGroupSample.objects.create(group_key="gpu", at=now - timedelta(hours=25), waiting=9, running=9, alive=9)

    written = worker_group_samples_record(now=now)
    again = worker_group_samples_record(now=now + timedelta(seconds=30))
    later = worker_group_samples_record(now=now + timedelta(seconds=61))

    assert (written, again, later) == (2, 0, 2)  # the default group and gpu
    gpu = WorkerGroupSample.objects.filter(group_key="gpu").order_by("at")
    assert [(s.waiting, s.running, s.alive) for s in gpu] == [(1, 0, 1), (1, 0, 1)]
    assert not WorkerGroupSample.objects.filter(at__lt=now - timedelta(hours=24)).exists()


def test_the_reconcile_task_records_samples():
    from flows.tasks import reconcile

    reconcile()

    assert WorkerGroupSample.objects.filter(group_key="").count() == 1


def test_the_worker_group_page_draws_the_last_hour_of_samples(admin_client):
    group = worker_group_create(key="gpu")
    now = timezone.now()
    for minutes, waiting, running in ((90, 50, 50), (40, 3, 1), (20, 5, 2), (1, 0, 2)):
        WorkerGroupSample.objects.create(group_key="gpu", at=now - timedelta(minutes=minutes), waiting=waiting,
                                         running=running, alive=1)

    response = admin_client.get(reverse("admin:flows_workergroup_change", args=[group.pk]))

    (chart,) = svgs(response)
    lines = {line.get("data-series"): line.get("points").split() for line in chart.iter(f"{SVG}polyline")}
    assert set(lines) == {"waiting", "running", "alive workers"}
    assert all(len(points) == 3 for points in lines.values())  # the sample 90 minutes old is not drawn
    waiting_x = [float(point.split(",")[0]) for point in lines["waiting"]]
    assert waiting_x == sorted(waiting_x)
    scale = [int(text) for text in texts(chart) if text.isdigit()]
    assert scale[0] == 0 and scale[-1] >= 5 and "now" in texts(chart)


def test_a_member_sees_no_load_chart_counting_other_tenants(client):
    group = worker_group_create(key="gpu")
    WorkerGroupSample.objects.create(group_key="gpu", at=timezone.now(), waiting=3, running=1, alive=1)
    client.force_login(user_with("viewer", staff=True, roles={"main": "viewer"}))

    response = client.get(reverse("admin:flows_workergroup_change", args=[group.pk]))

    assert response.status_code == 200 and svgs(response) == []


# --- list filters ------------------------------------------------------------------------------


def listed(client, model: str, query: str) -> str:
    response = client.get(reverse(f"admin:flows_{model}_changelist") + query)
    assert response.status_code == 200
    return unescape(response.content.decode())


@pytest.fixture
def executions():
    worker_group_create(key="gpu")
    tenant_create(key="zeta")
    made = {
        "etl_gpu": execution_of("etl", "company.team", state=State.SUCCESS, start_date=timezone.now()),
        "report_default": execution_of("report", "sales", state=State.FAILED, start_date=timezone.now()),
        "zeta_gpu": execution_of("hidden_flow", "hidden.ns", tenant="zeta", state=State.SUCCESS,
                                 start_date=timezone.now()),
    }
    run_of(made["etl_gpu"], "train_task", group="gpu", worker="gpu@box")
    run_of(made["report_default"], "mail_task", state=State.FAILED)
    run_of(made["zeta_gpu"], "zeta_task", group="gpu", worker="gpu@zeta")
    return made


@pytest.mark.parametrize("query, shown", [
    ("?state__exact=FAILED", {"report_default"}),
    ("?namespace__exact=company.team", {"etl_gpu"}),
    ("?flow_id__exact=report", {"report_default"}),
    ("?group=gpu", {"etl_gpu", "zeta_gpu"}),
    ("?group=default", {"report_default"}),
])
def test_executions_filter_by_state_namespace_flow_and_group(admin_client, executions, query, shown):
    text = listed(admin_client, "execution", query)

    assert {name for name, execution in executions.items() if str(execution.pk) in text} == shown


@pytest.mark.parametrize("query, shown", [
    ("?state__exact=FAILED", {"mail_task"}),
    ("?group=gpu", {"train_task", "zeta_task"}),
    ("?group=default&state__exact=FAILED", {"mail_task"}),
    ("?group=gpu&state__exact=FAILED", set()),
])
def test_task_runs_filter_by_state_and_group(admin_client, executions, query, shown):
    text = listed(admin_client, "taskrun", query)

    assert {task for task in ("train_task", "mail_task", "zeta_task") if task in text} == shown


def test_flows_filter_by_namespace(admin_client, executions):
    text = listed(admin_client, "flow", "?namespace__exact=sales")

    assert "report" in text and "hidden_flow" not in text and ">etl<" not in text


def test_a_member_filtering_by_group_sees_only_their_tenants_runs(client, executions):
    client.force_login(user_with("viewer", staff=True, roles={"main": "viewer"}))

    runs = listed(client, "taskrun", "?group=gpu")
    found = listed(client, "execution", "?group=gpu")
    zeta_run = TaskRun.objects.get(task_id="zeta_task")

    assert "train_task" in runs and "zeta_task" not in runs and "gpu@zeta" not in runs
    assert str(executions["etl_gpu"].pk) in found and str(executions["zeta_gpu"].pk) not in found
    assert client.get(reverse("admin:flows_taskrun_change", args=[zeta_run.pk])).status_code == 302
    assert client.get(reverse("admin:flows_execution_change", args=[executions["zeta_gpu"].pk])).status_code == 302


def test_a_working_directory_is_drawn_with_its_group_and_its_tasks_on_the_blocks_worker(admin_client):
    worker_group_create(key="gpu")
    flow = flow_upload(tenant_key="main", source="""id: block
namespace: company.team
tasks:
  - id: wdir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    workerGroup: {key: gpu}
    tasks:
      - id: write
        type: io.kestra.plugin.core.log.Log
        message: hi
    errors:
      - id: alert
        type: io.kestra.plugin.core.log.Log
        message: failed
""")
    assert flow_tree(admin_client, flow) == [
        "wdir WorkingDirectory → gpu (task)", "write Log → the block's worker",
        "errors", "alert Log → (default) (default)"]
