"""PostgreSQL restarts while work runs.

The PostgreSQL server the suite runs on is never restarted: the test starts a cluster of its own
(initdb in a temporary directory, a free loopback port), migrates it, runs the whole stack and the
test's own queries on it, and restarts that. On the SQLite run there is no server to restart."""
import time
from contextlib import contextmanager

import environ
import pytest
from django.db import connection

from flows.models import State, TaskRun
from flows.services import worker_group_create
from tests.support import ROOT, wait_for
from tests.support.servers import PostgresCluster, RedisServer
from tests.support.stack import Stack, alive

from .harness import assert_healthy, size, sleep_then_log_flow, start_executions, wait_ended

pytestmark = pytest.mark.django_db(transaction=True)

DOWN_SECONDS = 5


@contextmanager
def queries_on(url: str):
    """The test's own ORM queries go to `url` (a database of the same engine) within the block."""
    config = environ.Env.db_url_config(url)
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update({key: config[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")})
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.fixture
def own_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("the tests run on SQLite, a file with no server to restart; this scenario runs in the "
                    "PostgreSQL run (DATABASE_URL=postgres://...)")
    cluster = PostgresCluster()
    try:
        cluster.init().start()
    except (RuntimeError, OSError) as error:
        cluster.destroy()
        pytest.fail(f"could not start a PostgreSQL cluster of the test's own: {error}")
    try:
        yield cluster
    finally:
        cluster.destroy()


def _migrate(stack: Stack) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=stack.env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_postgresql_restarted_while_work_runs(own_postgres, transactional_db, settings, tmp_path):
    settings.WORKER_HEARTBEAT_INTERVAL = 1
    url = own_postgres.create_database("faults")
    redis_server = RedisServer(tmp_path / "redis").start()
    stack = Stack(broker_url=redis_server.url, database_url=url, directory=tmp_path / "processes")
    try:
        _migrate(stack)
        with queries_on(url):
            stack.executor = stack.start_executor()
            stack.start_beat()
            worker_group_create(key="pg")
            workers = [stack.start_worker("pg", concurrency=2, label=label) for label in ("a", "b")]
            alive(stack.executor, *workers)
            ids = start_executions(stack, sleep_then_log_flow("restarted", "pg", sleep="PT2S", fallback="FAIL"),
                                   size(200, minimum=16))
            wait_for(lambda: TaskRun.objects.filter(worker_group="pg", state=State.RUNNING).count() >= 2, timeout=60,
                     message="task runs running")
            connection.close()

            own_postgres.stop(mode="fast")  # connections are closed, transactions in flight roll back
            time.sleep(DOWN_SECONDS)  # the outage itself
            own_postgres.start()

            wait_ended(stack, ids, timeout=180)
            assert_healthy(stack, ids, fifo={"pg": 8}, title=f"PostgreSQL down {DOWN_SECONDS}s and restarted")
    finally:
        stack.stop_all()
        redis_server.stop(keep_data=False)
