"""Prometheus /metrics (flows/metrics.py): figures read from the database at scrape time, so what
workers did in other processes is counted; METRICS_TOKEN guards it."""
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from flows.models import Execution, FlowRevision, State, TaskRun
from flows.services import flow_upload, worker_group_create, worker_heartbeat
from tests.support import LOG_FLOW_ON_GROUP, run_flow


def scrape(client, **headers) -> dict:
    """{(sample name, labels as a sorted tuple): value} of one scrape."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.mark.django_db(transaction=True)
def test_metrics_after_a_run_count_it_by_group_and_state(engine, client):
    before = scrape(client)
    ended_key = ("workergroups_task_runs_ended_total", (("group", "gpu"), ("state", "SUCCESS")))
    latency_key = ("workergroups_dispatch_latency_seconds_count", (("group", "gpu"),))

    assert run_flow(LOG_FLOW_ON_GROUP.format(group="gpu")).state == State.SUCCESS

    after = scrape(client)
    assert after[ended_key] == before.get(ended_key, 0) + 1
    assert after[latency_key] == before.get(latency_key, 0) + 1
    assert after[("workergroups_dispatch_latency_seconds_bucket", (("group", "gpu"), ("le", "+Inf")))] == 1
    assert after[("workergroups_alive_workers", (("group", "gpu"),))] == 1
    assert after[("workergroups_task_runs_waiting", (("group", "gpu"),))] == 0
    assert after[("workergroups_broker_queue_length", (("group", "gpu"),))] == 0


@pytest.mark.django_db
def test_gauges_buckets_and_counters_from_stored_task_runs(client):
    worker_group_create(key="gpu")
    worker_heartbeat(hostname="gpu@box", groups=["gpu"], pid=1, concurrency=1, running=1)
    flow = flow_upload(source=LOG_FLOW_ON_GROUP.format(group="gpu"), tenant_key="main")
    execution = Execution.objects.create(tenant=flow.tenant, flow_revision=FlowRevision.objects.get(flow=flow),
                                         namespace=flow.namespace, flow_id=flow.flow_id)
    now = timezone.now()
    for index, (state, waited) in enumerate([(State.SUCCESS, 0.2), (State.FAILED, 3.0), (State.RUNNING, 40.0),
                                             (State.CREATED, None)]):
        run = TaskRun.objects.create(execution=execution, scope_key=f"s{index}", task_id="say", task_type="log",
                                     worker_group="gpu", state=state, published=now)
        TaskRun.objects.filter(id=run.id).update(
            created=now - timedelta(seconds=60), published=now - timedelta(seconds=60),
            start_date=now - timedelta(seconds=60) + timedelta(seconds=waited) if waited is not None else None)

    metrics = scrape(client)

    gpu = (("group", "gpu"),)
    assert metrics[("workergroups_alive_workers", gpu)] == 1
    assert (metrics[("workergroups_task_runs_waiting", gpu)], metrics[("workergroups_task_runs_running", gpu)]) == (1, 1)
    assert metrics[("workergroups_oldest_waiting_seconds", gpu)] >= 60
    assert metrics[("workergroups_flagged", gpu)] == 0
    assert metrics[("workergroups_task_runs_ended_total", (("group", "gpu"), ("state", "FAILED")))] == 1
    assert metrics[("workergroups_task_runs_ended_total", (("group", "gpu"), ("state", "SUCCESS")))] == 1
    bucket = lambda le: metrics[("workergroups_dispatch_latency_seconds_bucket", (("group", "gpu"), ("le", le)))]
    assert (bucket("0.25"), bucket("2.5"), bucket("5"), bucket("30"), bucket("60"), bucket("+Inf")) == (1, 1, 2, 2, 3, 3)
    assert metrics[("workergroups_dispatch_latency_seconds_sum", gpu)] == pytest.approx(43.2, abs=0.01)


@pytest.mark.django_db
def test_metrics_token_requires_the_bearer(client, settings):
    settings.METRICS_TOKEN = "s3cret"

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
