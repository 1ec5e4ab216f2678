"""The scheduler tick (flows/scheduler.py), one tick at a time against the test database: what it
sends is recorded (tests/support/driver.py), polling evaluations are run in process as their group's
worker runs them. The same behaviours run with real beat, executor and workers in
tests/flows/test_triggers_end_to_end.py."""
import threading
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone as django_timezone

from flows import dispatch
from flows.models import Execution, LogLine, SchedulerTick, TriggerState
from flows.scheduler import scheduler_tick, tick_sent
from flows.scheduling import schedule_due
from flows.services import flow_upload, tenant_create, worker_group_create, worker_heartbeat
from tests.support.driver import EngineDriver
from tests.support.web import answering

pytestmark = pytest.mark.django_db

SCHEDULE = "io.kestra.plugin.core.trigger.Schedule"


def schedule_flow(flow_id: str = "every2", policy: str = "ALL", extra: str = "") -> str:
    return f"""\
id: {flow_id}
namespace: company.team
inputs:
  - id: when
    type: STRING
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.date }}}}"
triggers:
  - id: every2
    type: {SCHEDULE}
    cron: "*/2 * * * * *"
    withSeconds: true
    recoverMissedSchedules: {policy}
    inputs:
      when: "at {{{{ trigger.date }}}}"
{extra}"""


def http_flow(url: str, group: str = "gpu", fallback: str = "WAIT", condition: str = "") -> str:
    return f"""\
id: polled
namespace: company.team
variables:
  group: {group}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.code }}}}"
triggers:
  - id: poll
    type: io.kestra.plugin.core.http.Trigger
    uri: {url}
    interval: PT1S
    workerGroup:
      key: "{{{{ vars.group }}}}"
      fallback: {fallback}
{condition}"""


def state(trigger_id: str) -> TriggerState:
    return TriggerState.objects.get(trigger_id=trigger_id)


def executions(trigger_id: str) -> list[Execution]:
    return list(Execution.objects.filter(trigger__id=trigger_id).order_by("created"))


def dates(trigger_id: str) -> list[str]:
    return sorted(execution.trigger["variables"]["date"] for execution in executions(trigger_id))


def recent_tick(now):
    """Ticks have run regularly up to `now`: nothing was missed."""
    SchedulerTick.objects.update_or_create(pk=1, defaults={"last_tick": now - timedelta(seconds=1)})


# --- Schedule ---------------------------------------------------------------------------------


def test_a_due_schedule_starts_one_execution_per_due_date_once():
    flow_upload(source=schedule_flow(), tenant_key="main")
    first = state("every2").next_date
    now = first + timedelta(seconds=4, milliseconds=500)  # three dates are due
    recent_tick(now)
    driver = EngineDriver()

    assert driver.tick(now=now)["fired"] == 3
    assert driver.tick(now=now)["fired"] == 0  # a second tick at the same moment finds nothing due

    started = executions("every2")
    assert [e.trigger["variables"]["date"] for e in started] == [
        (first + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z") for seconds in (0, 2, 4)]
    assert started[0].trigger["variables"]["next"] == started[1].trigger["variables"]["date"]
    assert started[1].trigger["variables"]["previous"] == started[0].trigger["variables"]["date"]
    assert started[0].inputs == {"when": f"at {started[0].trigger['variables']['date']}"}
    assert [m.task for m in driver.sent] == [dispatch.ADVANCE_EXECUTION] * 3
    every2 = state("every2")
    assert (every2.next_date, every2.last_date) == (first + timedelta(seconds=6), first + timedelta(seconds=4))
    assert str(every2.last_execution) == str(started[-1].id)


@pytest.mark.django_db(transaction=True)
def test_ticks_running_at_once_fire_each_due_date_once():
    flow_upload(source=schedule_flow(), tenant_key="main")
    flow_upload(source=schedule_flow("other"), tenant_key="main")
    now = max(TriggerState.objects.values_list("next_date", flat=True)) + timedelta(seconds=10, milliseconds=500)
    recent_tick(now)
    due = {state.flow.flow_id: len(schedule_due(state.definition, state.next_date, now, 100)[0])
           for state in TriggerState.objects.select_related("flow")}
    errors = []

    def tick():
        try:
            scheduler_tick(now=now)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(4)]
    # Swapped once, around all threads: `sending_to` swaps a module global, which threads would not restore.
    with dispatch.sending_to(lambda message: None):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    for flow_id in ("every2", "other"):
        fired = [e.trigger["variables"]["date"] for e in Execution.objects.filter(flow_id=flow_id)]
        assert len(fired) == len(set(fired)) == due[flow_id] >= 6, flow_id


def test_the_tick_reads_only_what_is_due():
    """Its queries do not grow with the triggers that are not due (an indexed range on next_date)."""
    def queries_of_a_tick() -> int:
        now = django_timezone.now()
        recent_tick(now)
        with CaptureQueriesContext(connection) as queries:
            scheduler_tick(now=now)
        return len(queries)

    flow_upload(source=schedule_flow().replace('"*/2 * * * * *"', '"0 0 1 1 * *"'), tenant_key="main")
    few = queries_of_a_tick()
    TriggerState.objects.bulk_create([
        TriggerState(flow=state("every2").flow, trigger_id=f"t{index}", trigger_type=SCHEDULE,
                     definition=state("every2").definition, fingerprint="x",
                     next_date=django_timezone.now() + timedelta(days=1))
        for index in range(300)
    ])
    assert queries_of_a_tick() == few


@pytest.mark.parametrize("policy, fired", [("ALL", 5), ("LAST", 1), ("NONE", 0)])
def test_after_a_scheduler_silence_recover_missed_schedules_decides(policy, fired):
    flow_upload(source=schedule_flow(policy=policy), tenant_key="main")
    first = state("every2").next_date
    now = first + timedelta(seconds=8, milliseconds=500)  # five dates missed: +0, +2, +4, +6, +8
    SchedulerTick.objects.create(pk=1, last_tick=first - timedelta(seconds=1))  # no tick since

    report = EngineDriver().tick(now=now)

    assert report["fired"] == fired and report["recovered"] == (policy != "ALL")
    expected = {"ALL": [0, 2, 4, 6, 8], "LAST": [8], "NONE": []}[policy]
    assert dates("every2") == [(first + timedelta(seconds=s)).isoformat().replace("+00:00", "Z") for s in expected]
    assert state("every2").next_date == first + timedelta(seconds=10)
    if policy != "ALL":
        assert LogLine.objects.filter(trigger_state=state("every2"),
                                      message__startswith=f"recoverMissedSchedules {policy}").exists()


def test_a_tick_run_late_by_a_busy_executor_but_sent_on_time_misses_nothing():
    """The silence is measured by when beat sent the ticks (tick_sent), not by when they ran."""
    flow_upload(source=schedule_flow(policy="NONE"), tenant_key="main")
    first = state("every2").next_date
    SchedulerTick.objects.create(pk=1, last_tick=first - timedelta(seconds=1))
    late = first + timedelta(seconds=8)  # run 9 s after the previous tick was sent, itself sent 1 s after it
    report = EngineDriver().tick(now=late, sent=first)
    assert report == {"recovered": 0, "fired": 5, "sent": 0, "skipped": 0}


def test_the_send_time_of_a_tick_is_its_expiry_less_the_tick_expiry(settings):
    settings.SCHEDULER_TICK_EXPIRES = 5.0
    assert tick_sent("2025-01-01T00:00:05+00:00") == datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert tick_sent(None) is None


def test_without_a_silence_a_late_date_still_fires_whatever_the_policy():
    flow_upload(source=schedule_flow(policy="NONE"), tenant_key="main")
    now = state("every2").next_date + timedelta(seconds=1)
    recent_tick(now)
    assert EngineDriver().tick(now=now)["fired"] == 1


def test_bad_inputs_skip_the_date_and_say_why():
    flow_upload(source=schedule_flow().replace("type: STRING", "type: INT"), tenant_key="main")
    now = state("every2").next_date + timedelta(milliseconds=500)
    recent_tick(now)
    assert EngineDriver().tick(now=now)["fired"] == 0
    every2 = state("every2")
    assert "when" in every2.last_error and every2.next_date > now  # the date is not tried again each tick
    assert every2.logs.filter(level="ERROR").count() == 1


# --- polling triggers: routed like a task, sent to a worker of their group ----------------------


@pytest.fixture
def gpu():
    return worker_group_create(key="gpu")


def alive(*groups: str, hostname: str = "gpu@unit-test"):
    worker_heartbeat(hostname=hostname, groups=list(groups), pid=1, concurrency=1, running=0)


def due_now(trigger_id: str = "poll"):
    now = state(trigger_id).next_date + timedelta(milliseconds=10)
    recent_tick(now)
    return now


def test_a_due_polling_trigger_is_sent_to_its_groups_queue_once_per_interval(gpu):
    alive("gpu")
    flow_upload(source=http_flow("http://127.0.0.1:9/"), tenant_key="main")
    now = due_now()
    driver = EngineDriver()
    assert driver.tick(now=now)["sent"] == 1
    assert driver.tick(now=now)["sent"] == 0
    (message,) = driver.sent
    poll = state("poll")
    assert (message.task, message.queue, message.args) == (dispatch.EVALUATE_TRIGGER, "gpu",
                                                          (poll.pk, str(poll.evaluation)))
    assert poll.next_date == now + timedelta(seconds=1)


def test_with_no_alive_worker_fail_skips_the_interval_and_the_state_says_why(gpu):
    flow_upload(source=http_flow("http://127.0.0.1:9/", fallback="FAIL"), tenant_key="main")
    driver = EngineDriver()
    driver.tick(now=due_now())
    driver.tick(now=due_now())
    poll = state("poll")
    assert driver.sent == [] and poll.evaluation is None
    assert poll.last_result == "skipped: no alive worker in worker group 'gpu' (fallback FAIL)"
    assert poll.logs.filter(message__contains="no alive worker in worker group 'gpu'").count() == 1  # not every interval


def test_with_no_alive_worker_wait_sends_it_to_wait_in_the_queue(gpu):
    flow_upload(source=http_flow("http://127.0.0.1:9/", fallback="WAIT"), tenant_key="main")
    driver = EngineDriver()
    driver.tick(now=due_now())
    assert [m.queue for m in driver.sent] == ["gpu"]
    assert state("poll").logs.filter(message="waiting for a worker of worker group 'gpu'").exists()
    driver.tick(now=due_now())  # still waiting: the next interval is skipped, not queued again
    assert len(driver.sent) == 1
    poll = state("poll")
    assert poll.last_result == "waiting for a worker of worker group 'gpu'" and poll.evaluation is not None
    assert poll.logs.count() == 1


@pytest.mark.parametrize("group, error", [
    ("nope", "worker group 'nope' does not exist"),
    ("closed", "worker group 'closed' does not allow tenant 'main'"),
])
def test_a_group_that_cannot_take_it_skips_the_evaluation_with_an_error(group, error):
    tenant_create(key="other")
    worker_group_create(key="closed", allowed_tenants=["other"])
    alive("nope", "closed")
    flow_upload(source=http_flow("http://127.0.0.1:9/", group=group), tenant_key="main")
    driver = EngineDriver()
    driver.tick(now=due_now())
    poll = state("poll")
    assert driver.sent == [] and poll.last_error == error
    assert poll.logs.filter(level="ERROR", message__contains=error).exists()


def test_an_evaluation_whose_worker_died_is_abandoned_and_sent_again(gpu):
    alive("gpu")
    flow_upload(source=http_flow("http://127.0.0.1:9/"), tenant_key="main")
    driver = EngineDriver()
    driver.tick(now=due_now())
    TriggerState.objects.update(lock_owner="gpu@dead", locked=django_timezone.now())
    driver.tick(now=due_now())
    assert len(driver.sent) == 2 and driver.sent[0].args[1] != driver.sent[1].args[1]
    assert state("poll").logs.filter(message__contains="worker gpu@dead stopped heartbeating").exists()


# --- polling evaluations, run as the group's worker runs them (workers/polling.py) ---------------


def test_an_http_trigger_fires_when_the_condition_holds(gpu):
    alive("gpu")
    with answering(status=503) as (url, answer):
        flow_upload(source=http_flow(url), tenant_key="main")
        driver = EngineDriver()
        driver.tick(now=due_now())
        driver.deliver_all()
        assert executions("poll") == [] and state("poll").last_result == "HTTP 503: responseCondition is false"

        answer.status = 200
        driver.tick(now=due_now())
        driver.deliver_all()

    (execution,) = executions("poll")
    variables = execution.trigger["variables"]
    assert (variables["code"], variables["body"], variables["uri"]) == (200, '{"ready": true}', url)
    assert variables["headers"]["x-answer"] == ["test"]
    assert execution.state == "SUCCESS"
    poll = state("poll")
    assert (poll.worker_id, poll.evaluation, poll.lock_owner) == ("gpu@unit-test", None, "")
    assert poll.last_result == f"HTTP 200: responseCondition is true: started execution {execution.id}"


def test_the_response_condition_sees_status_body_and_headers(gpu):
    alive("gpu")
    condition = "    responseCondition: \"{{ response.body is search('ready') and response.headers['x-answer'][0] == 'no' }}\"\n"
    with answering(status=200) as (url, answer):
        flow_upload(source=http_flow(url, condition=condition.replace("is search('ready')", "!= ''")),
                    tenant_key="main")
        driver = EngineDriver()
        driver.tick(now=due_now())
        driver.deliver_all()
    assert executions("poll") == []
    assert state("poll").last_result == "HTTP 200: responseCondition is false"


def test_an_unreachable_endpoint_fires_nothing_and_says_why(gpu):
    alive("gpu")
    flow_upload(source=http_flow("http://127.0.0.1:9/closed"), tenant_key="main")
    driver = EngineDriver()
    driver.tick(now=due_now())
    driver.deliver_all()
    poll = state("poll")
    assert executions("poll") == [] and poll.last_error.startswith("HTTP request to http://127.0.0.1:9/closed failed")
    assert poll.evaluation is None  # ended: the next interval sends a new one


def test_a_stale_or_duplicate_evaluation_message_does_nothing(gpu):
    alive("gpu")
    with answering(status=200) as (url, answer):
        flow_upload(source=http_flow(url), tenant_key="main")
        driver = EngineDriver()
        driver.tick(now=due_now())
        message = driver.sent[0]
        driver.deliver_all()
        driver.deliver(message)  # delivered again, after the evaluation ended
    assert len(executions("poll")) == 1 and answer.requests == 1


def directory_flow(directory, action: str = "NONE", extra: str = "") -> str:
    return f"""\
id: watched
namespace: company.team
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.files | length }}}}"
triggers:
  - id: files
    type: io.kestra.plugin.fs.local.Trigger
    directory: {directory}
    regExp: ".*\\\\.csv"
    interval: PT1S
    action: {action}
{extra}"""


def evaluate_files(driver: EngineDriver) -> None:
    driver.tick(now=due_now("files"))
    driver.deliver_all()


def test_a_directory_trigger_fires_once_per_new_file(tmp_path):
    alive("default", hostname="default@unit-test")
    inbox = tmp_path / "in"
    inbox.mkdir()
    flow_upload(source=directory_flow(inbox), tenant_key="main")
    driver = EngineDriver(worker_id="default@unit-test")
    (inbox / "a.csv").write_text("1,2\n")
    (inbox / "ignored.txt").write_text("not matched")
    evaluate_files(driver)
    evaluate_files(driver)  # the same files again: nothing new
    (inbox / "b.csv").write_text("3,4\n")
    evaluate_files(driver)

    fired = [[file["name"] for file in e.trigger["variables"]["files"]] for e in executions("files")]
    assert fired == [["a.csv"], ["b.csv"]]
    first = executions("files")[0].trigger["variables"]
    assert first["count"] == 1 and first["files"][0]["path"] == str(inbox / "a.csv")
    assert first["files"][0]["size"] == 4 and first["files"][0]["changeType"] == "CREATE"
    assert (inbox / "a.csv").exists()  # action NONE leaves the files


@pytest.mark.parametrize("action", ["MOVE", "DELETE"])
def test_move_and_delete_act_on_the_files_once_fired(tmp_path, action):
    alive("default", hostname="default@unit-test")
    inbox, done = tmp_path / "in", tmp_path / "done"
    inbox.mkdir()
    extra = f"    moveDirectory: {done}\n" if action == "MOVE" else ""
    flow_upload(source=directory_flow(inbox, action=action, extra=extra), tenant_key="main")
    (inbox / "a.csv").write_text("1,2\n")
    driver = EngineDriver(worker_id="default@unit-test")
    evaluate_files(driver)
    (inbox / "a.csv").write_text("5,6\n")  # a new file of the same name: it fires again
    evaluate_files(driver)

    assert len(executions("files")) == 2 and not (inbox / "a.csv").exists()
    assert (done / "a.csv").exists() == (action == "MOVE")
    if action == "MOVE":
        assert executions("files")[0].trigger["variables"]["files"][0]["movedTo"] == str(done / "a.csv")


def test_a_missing_directory_is_an_error_of_the_evaluation(tmp_path):
    alive("default", hostname="default@unit-test")
    flow_upload(source=directory_flow(tmp_path / "nowhere"), tenant_key="main")
    evaluate_files(EngineDriver(worker_id="default@unit-test"))
    assert state("files").last_error == f"directory {tmp_path / 'nowhere'} does not exist on worker default@unit-test"
