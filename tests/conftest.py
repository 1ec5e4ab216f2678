"""Fixtures: a real redis-server and real `celery -A project worker` processes that use the test
database, so engine tests exercise the product exactly as it runs. Helpers are in tests/support."""
import pytest
from django.conf import settings

from tests.support import Cluster, database_url, start_redis, workers_alive


@pytest.fixture(scope="session", autouse=True)
def shared_storage(tmp_path_factory):
    """The "flows" storage (docs/storage.md) in a directory of the session's own, for this process
    and for the worker processes it starts (which read STORAGE_LOCAL_DIR from the environment)."""
    import os

    from django.test import override_settings

    directory = str(tmp_path_factory.mktemp("storage"))
    os.environ["STORAGE_BACKEND"], os.environ["STORAGE_LOCAL_DIR"] = "local", directory
    flows = {"BACKEND": "django.core.files.storage.FileSystemStorage",
             "OPTIONS": {"location": directory, "allow_overwrite": True, "base_url": None}}
    with override_settings(STORAGES={**settings.STORAGES, "flows": flows}):
        yield directory


@pytest.fixture(autouse=True)
def empty_storage(shared_storage):
    """Each test starts with no stored files, as it starts with no rows."""
    import shutil
    from pathlib import Path

    yield
    for child in Path(shared_storage).iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()


# The session's own workers: the executor and one worker each for the default and `gpu` groups.
SESSION_QUEUES = ("executor", "default", "gpu")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The fault scenarios run last (after pytest-django's own ordering): they stop and restart
    databases, brokers and networks, and nothing that runs after them should depend on how they
    left the machine."""
    items.sort(key=lambda item: "tests/reliability/" in str(item.path).replace("\\", "/"))


@pytest.fixture(scope="session")
def redis_url():
    try:
        process, url = start_redis()
    except RuntimeError as error:
        pytest.fail(str(error))
    from project.celery import app

    app.conf.broker_url = url
    app.conf.result_backend = url
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def cluster(django_db_setup, django_db_blocker, redis_url):
    settings.WORKER_HEARTBEAT_INTERVAL = 1
    engine = Cluster(redis_url, database_url())
    for queues in SESSION_QUEUES:
        engine.start(queues, concurrency=2)
    yield engine
    engine.stop_all()


@pytest.fixture(autouse=True)
def migrated_rows(request):
    """Transactional tests empty every table after each test, rows that data migrations made
    included: before each one, put tenant `main` (flows/migrations/0002_default_tenant.py) back.
    (`serialized_rollback` would too, but it clashes with content types on PostgreSQL.)"""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        return
    request.getfixturevalue("transactional_db")
    from flows.models import Tenant
    from flows.selectors import DEFAULT_TENANT

    Tenant.objects.get_or_create(key=DEFAULT_TENANT)


@pytest.fixture(autouse=True)
def routing_read_afresh(settings):
    """In the test process, routing reads are not remembered from one step to the next
    (flows/recent.py): unit tests age heartbeats and change groups by hand, where a real process
    would see its memory expire within ROUTING_CACHE_SECONDS. The session's executor and workers
    remember as in production; tests/flows/test_recent.py tests the memory itself."""
    from flows.recent import forget

    settings.ROUTING_CACHE_SECONDS = 0
    forget()


@pytest.fixture
def engine(cluster, transactional_db):
    """The session's executor and `default`/`gpu` workers, alive, with group `gpu` created."""
    from flows.services import worker_group_create

    worker_group_create(key="gpu", description="test gpu group")
    session_workers = [cluster.ensure(queues) for queues in SESSION_QUEUES]
    workers_alive(*cluster.processes, *session_workers)
    return cluster
