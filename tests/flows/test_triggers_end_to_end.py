"""Triggers end to end: real `celery beat` processes ticking the scheduler, the session's executor and
group workers (tests/conftest.py), a real Redis. Each test stops the beats it started."""
import json
import time
from datetime import datetime, timedelta

import pytest
from django.test import Client

from flows.engine import execution_create
from flows.models import Execution, LogLine, State, TriggerState
from flows.services import flow_upload
from tests.support import wait_execution, wait_for, workers_alive
from tests.support.web import answering

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def beat(engine):
    """Starts beat processes (`beat("name")`); stops those still running at the end."""
    started = []

    def start(name: str = "beat") -> str:
        started.append(engine.start_beat(name))
        return started[-1]

    yield start
    for name in started:
        if name in engine.beats:
            engine.stop(name)


def every_two_seconds(flow_id: str, policy: str = "ALL") -> str:
    return f"""\
id: {flow_id}
namespace: company.triggers
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.date }}}}"
triggers:
  - id: tick
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "*/2 * * * * *"
    withSeconds: true
    recoverMissedSchedules: {policy}
"""


def fired_dates(flow_id: str) -> list[datetime]:
    return sorted(datetime.fromisoformat(e.trigger["variables"]["date"])
                  for e in Execution.objects.filter(flow_id=flow_id, trigger__isnull=False))


def state(flow_id: str, trigger_id: str) -> TriggerState:
    return TriggerState.objects.get(flow__flow_id=flow_id, trigger_id=trigger_id)


def steps(dates: list[datetime]) -> list[float]:
    return [(later - earlier).total_seconds() for earlier, later in zip(dates, dates[1:])]


def test_two_beats_fire_each_due_date_of_a_seconds_cron_once(engine, beat):
    flow_upload(source=every_two_seconds("twice"), tenant_key="main")
    beat("beat-a")
    beat("beat-b")
    first = wait_for(lambda: fired_dates("twice"), timeout=30, message="a first execution")[0]
    wait_for(lambda: fired_dates("twice")[-1] >= first + timedelta(seconds=10), timeout=30,
             message="10 seconds of due dates")
    assert all(process.poll() is None for process in engine.beats.values())  # both beats ticked throughout

    dates = [date for date in fired_dates("twice") if date <= first + timedelta(seconds=10)]
    assert len(dates) == len(set(dates)) == 6  # none twice
    assert steps(dates) == [2.0] * 5  # none missed


def test_an_http_trigger_polls_on_its_group_and_fires_when_the_endpoint_answers(engine, beat):
    gpu = next(name for name in engine.processes if name.startswith("gpu@"))
    engine.stop(gpu)  # no gpu worker: the FAIL fallback skips every interval
    try:
        with answering(status=200) as (url, answer):
            flow_upload(source=f"""\
id: polled
namespace: company.triggers
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "answered {{{{ trigger.code }}}}"
triggers:
  - id: poll
    type: io.kestra.plugin.core.http.Trigger
    uri: {url}
    interval: PT1S
    workerGroup: {{key: gpu, fallback: FAIL}}
""", tenant_key="main")
            beat()
            wait_for(lambda: state("polled", "poll").last_result
                     == "skipped: no alive worker in worker group 'gpu' (fallback FAIL)", timeout=30,
                     message="the trigger state to say why nothing fires")
            assert answer.requests == 0 and not Execution.objects.filter(flow_id="polled").exists()

            answer.status = 503
            engine.start("gpu", concurrency=2)
            workers_alive(gpu)
            wait_for(lambda: state("polled", "poll").last_result == "HTTP 503: responseCondition is false",
                     timeout=30, message="an evaluation on the gpu worker")
            assert state("polled", "poll").worker_id == gpu
            assert not Execution.objects.filter(flow_id="polled").exists()

            answer.status = 200
            execution = wait_for(lambda: Execution.objects.filter(flow_id="polled").first(), timeout=30,
                                 message="the trigger to fire")
    finally:
        if gpu not in engine.processes:
            engine.start("gpu", concurrency=2)
    assert wait_execution(execution.id).state == State.SUCCESS
    assert execution.trigger["variables"]["code"] == 200
    assert state("polled", "poll").worker_id.startswith("gpu@")


def runs(flow_id: str) -> list[Execution]:
    return list(Execution.objects.filter(flow_id=flow_id).order_by("created"))


def test_a_directory_trigger_fires_once_per_file_dropped(engine, beat, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    flow_upload(source=f"""\
id: watched
namespace: company.triggers
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.files[0].name }}}}"
triggers:
  - id: files
    type: io.kestra.plugin.fs.local.Trigger
    directory: {inbox}
    interval: PT1S
""", tenant_key="main")
    beat()

    (inbox / "first.csv").write_text("1\n")
    wait_for(lambda: len(runs("watched")) == 1, timeout=30, message="the first file to fire")
    seen = state("watched", "files").evaluated
    wait_for(lambda: state("watched", "files").evaluated > seen + timedelta(seconds=1.5), timeout=30,
             message="two more evaluations")
    (inbox / "second.csv").write_text("2\n")
    wait_for(lambda: len(runs("watched")) == 2, timeout=30, message="the second file to fire")
    seen = state("watched", "files").evaluated
    wait_for(lambda: state("watched", "files").evaluated > seen + timedelta(seconds=1.5), timeout=30,
             message="two more evaluations")

    assert [[f["name"] for f in run.trigger["variables"]["files"]] for run in runs("watched")] == [["first.csv"],
                                                                                      ["second.csv"]]
    assert state("watched", "files").worker_id.startswith("default@")


def recovery_of(flow_id: str) -> tuple[datetime, datetime]:
    """(first date missed, next date due) from the trigger's last recoverMissedSchedules log line."""
    line = LogLine.objects.filter(trigger_state=state(flow_id, "tick"),
                                  message__startswith="recoverMissedSchedules").latest("id")
    missed_from = line.message.split("missed the dates from ")[1].split(";")[0]
    return datetime.fromisoformat(missed_from), datetime.fromisoformat(line.message.rsplit("next due ", 1)[1])


def test_a_scheduler_restarted_after_10s_honours_recover_missed_schedules(engine, beat):
    for policy in ("ALL", "LAST", "NONE"):
        flow_upload(source=every_two_seconds(f"rec_{policy.lower()}", policy), tenant_key="main")
    first_beat = beat()
    wait_for(lambda: all(fired_dates(f"rec_{p}") for p in ("all", "last", "none")), timeout=30,
             message="an execution of each flow")
    engine.stop(first_beat)
    time.sleep(10)  # the scheduler's downtime this scenario is about
    stopped = {p: fired_dates(f"rec_{p}")[-1] for p in ("all", "last", "none")}  # a tick sent before the stop ran
    beat("beat-again")
    wait_for(lambda: all(fired_dates(f"rec_{p}")[-1] >= stopped[p] + timedelta(seconds=16)
                         for p in ("all", "last", "none")), timeout=40, message="executions after the restart")

    every = fired_dates("rec_all")
    assert steps(every) == [2.0] * (len(every) - 1)  # ALL: every date missed ran

    missed_from, last_missed = recovery_of("rec_last")
    assert missed_from == stopped["last"] + timedelta(seconds=2)
    assert last_missed - missed_from >= timedelta(seconds=8)  # at least four dates were skipped
    dates = fired_dates("rec_last")
    assert [d for d in dates if missed_from <= d <= last_missed] == [last_missed]  # LAST: only the last ran
    assert steps([d for d in dates if d >= last_missed]) == [2.0] * (len([d for d in dates if d >= last_missed]) - 1)

    missed_from, next_due = recovery_of("rec_none")
    assert missed_from == stopped["none"] + timedelta(seconds=2)
    dates = fired_dates("rec_none")
    assert [d for d in dates if missed_from <= d < next_due] == []  # NONE: none of them ran
    assert next_due in dates and next_due - missed_from >= timedelta(seconds=10)


PRODUCER = """\
id: producer
namespace: company.triggers
tasks:
  - id: make
    type: io.kestra.plugin.core.debug.Return
    format: made
"""
CONSUMER = """\
id: consumer
namespace: company.downstream
inputs:
  - id: upstream
    type: STRING
tasks:
  - id: use
    type: io.kestra.plugin.core.log.Log
    message: "after {{ inputs.upstream }}"
triggers:
  - id: after_producer
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      upstream: "{{ trigger.executionId }}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatusCondition
        in: [SUCCESS]
      - type: io.kestra.plugin.core.condition.ExecutionFlowCondition
        namespace: company.triggers
        flowId: producer
"""
HOOKED = """\
id: hooked
namespace: company.triggers
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.body.event }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: a-long-and-secret-webhook-key
"""


def test_flow_triggers_and_webhooks_start_one_execution_each(engine):
    flow_upload(source=PRODUCER, tenant_key="main")
    flow_upload(source=CONSUMER, tenant_key="main")
    flow_upload(source=HOOKED, tenant_key="main")

    producers = [execution_create(tenant_key="main", namespace="company.triggers", flow_id="producer")
                 for _ in range(2)]
    for producer in producers:
        assert wait_execution(producer.id).state == State.SUCCESS
    consumers = wait_for(lambda: list(Execution.objects.filter(flow_id="consumer")) if
                         Execution.objects.filter(flow_id="consumer").count() == 2 else None,
                         timeout=30, message="one consumer execution per producer execution")
    assert sorted(run.inputs["upstream"] for run in consumers) == sorted(str(p.id) for p in producers)
    assert all(wait_execution(run.id).state == State.SUCCESS for run in consumers)

    wrong = Client().post("/api/v1/main/executions/webhook/company.triggers/hooked/not-the-key",
                          json.dumps({"event": "push"}), content_type="application/json")
    right = Client().post("/api/v1/main/executions/webhook/company.triggers/hooked/a-long-and-secret-webhook-key",
                          json.dumps({"event": "push"}), content_type="application/json")
    assert (wrong.status_code, right.status_code) == (404, 200)
    hooked = Execution.objects.get(flow_id="hooked")
    assert str(hooked.id) == right.json()["id"]
    assert wait_execution(hooked.id).state == State.SUCCESS
    assert hooked.logs.filter(message="push").exists()
    assert Execution.objects.filter(flow_id="consumer").count() == 2  # it listens to the producer only
