"""A distant worker, in a network namespace of the test's own, reaches Redis and PostgreSQL only over
a veth link: it serves its group; cutting the link makes it dead and the fallbacks apply; when the
link comes back it takes what waited for it, and never starts what was failed or cancelled meanwhile."""
import environ
import pytest
from django.db import connection

from flows.models import Execution, State, TaskRun
from flows.selectors import alive_workers
from flows.services import worker_group_create
from tests.support import database_url, wait_for
from tests.support.netns import NetworkLink
from tests.support.stack import alive

from .harness import assert_healthy, log_flow, sleep_then_log_flow, start_executions, wait_ended

pytestmark = pytest.mark.django_db(transaction=True)

NO_WORKER = "no alive worker in worker group 'far' (fallback FAIL)"


@pytest.fixture
def link():
    if connection.vendor != "postgresql":
        pytest.skip("the tests run on SQLite, a local file that no network link carries: a distant worker needs "
                    "a database server; this scenario runs in the PostgreSQL run (DATABASE_URL=postgres://...)")
    reason = NetworkLink.unavailable()
    if reason:
        pytest.skip(f"no network namespace for a distant worker: {reason}")
    opened = NetworkLink().open()
    yield opened
    opened.close()


def _distant_env(link: NetworkLink, redis_server) -> dict:
    """The stack's broker and database as seen from the far end of the link, through forwarders."""
    db = environ.Env.db_url_config(database_url())
    redis_far = link.forward(("127.0.0.1", redis_server.port))
    db_far = link.forward((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    auth = f"{db['USER']}:{db['PASSWORD']}@" if db["PASSWORD"] else f"{db['USER']}@"
    return {
        "CELERY_BROKER_URL": f"redis://{link.host_address}:{redis_far}/0",
        "CELERY_RESULT_BACKEND": f"redis://{link.host_address}:{redis_far}/0",
        "DATABASE_URL": f"postgres://{auth}{link.host_address}:{db_far}/{db['NAME']}?connect_timeout=3",
    }


def _ended_with(ids, state: str) -> bool:
    return Execution.objects.filter(id__in=ids, state=state).count() == len(ids)


def test_a_distant_worker_serves_its_group_until_its_link_is_cut(stack, redis_server, link):
    worker_group_create(key="far")
    distant = stack.start_worker("far", label="distant", prefix=link.prefix(), env=_distant_env(link, redis_server))
    alive(distant)
    served = start_executions(stack, log_flow("served", "far"), 2)
    wait_ended(stack, served, timeout=60)
    assert set(TaskRun.objects.filter(execution_id__in=served).values_list("worker_id", flat=True)) == {distant}

    running = start_executions(stack, sleep_then_log_flow("running", "far", sleep="PT4S", fallback="FAIL"), 1)
    wait_for(lambda: TaskRun.objects.filter(execution_id__in=running, state=State.RUNNING).exists(), timeout=60,
             message="the distant worker to run the Sleep")
    queued_fail = start_executions(stack, log_flow("queued_fail", "far", fallback="FAIL"), 2)
    queued_cancel = start_executions(stack, log_flow("queued_cancel", "far", fallback="CANCEL"), 1)
    queued_wait = start_executions(stack, log_flow("queued_wait", "far", fallback="WAIT"), 1)

    link.cut()

    wait_for(lambda: distant not in {worker.hostname for worker in alive_workers()}, timeout=30,
             message="the distant worker to count as dead")
    wait_for(lambda: _ended_with(queued_fail + running, State.FAILED) and _ended_with(queued_cancel, State.KILLED),
             timeout=60, message="the fallbacks to fail and cancel what waited for the distant worker")
    after_cut = start_executions(stack, log_flow("after_cut", "far", fallback="FAIL"), 1)
    wait_for(lambda: _ended_with(after_cut, State.FAILED), timeout=30, message="a new task run to fail at once")
    assert Execution.objects.get(id=queued_wait[0]).state == State.RUNNING  # WAIT: still waiting

    link.restore()

    alive(distant, timeout=120)
    ids = served + running + queued_fail + queued_cancel + queued_wait + after_cut
    wait_ended(stack, ids, timeout=120)
    wait_for(lambda: stack.queue_length("far") == 0, timeout=60, message="the distant worker to drain its queue")
    assert_healthy(stack, ids, states={"SUCCESS", "FAILED", "KILLED"}, title="distant worker, link cut")
    assert _ended_with(queued_wait, State.SUCCESS)
    failed = TaskRun.objects.filter(execution_id__in=queued_fail + after_cut + running)
    assert {(run.state, run.error) for run in failed} == {(State.FAILED, NO_WORKER)}
    sleep_run = TaskRun.objects.get(execution_id__in=running)
    assert (sleep_run.attempt, sleep_run.attempts[0]["workerId"]) == (2, distant)  # attempt 1 was lost with the link
    never_started = TaskRun.objects.filter(execution_id__in=queued_fail + queued_cancel + after_cut)
    assert all(State.RUNNING not in [entry["state"] for entry in run.state_history] for run in never_started)
