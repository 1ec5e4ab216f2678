"""Fixtures of the fault and load scenarios: each test gets a redis-server and an executor plus beat
of its own (tests/support/stack.py), on the test database, so it may kill any of them."""
import pytest

from tests.support import database_url
from tests.support.servers import RedisServer
from tests.support.stack import Stack, alive


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/reliability/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop(keep_data=False)


@pytest.fixture
def stack(redis_server, transactional_db, settings, tmp_path):
    """Executor and beat of the test's own on its redis-server and the test database; workers are
    started by the test. Liveness is judged with the stack's heartbeat interval."""
    settings.WORKER_HEARTBEAT_INTERVAL = 1
    deployment = Stack(broker_url=redis_server.url, database_url=database_url(), directory=tmp_path / "processes")
    try:
        deployment.executor = deployment.start_executor()
        deployment.start_beat()
        alive(deployment.executor)
        yield deployment
    finally:
        deployment.stop_all()
