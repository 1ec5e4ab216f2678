"""Helpers shared by the tests: polling with a deadline, real redis-server and Celery worker
processes, running flows end to end. Fixtures that use them are in tests/conftest.py."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
# A one-task flow whose task targets `{group}`: the upload tests fill in the key they need.
LOG_FLOW_ON_GROUP = """\
id: hello
namespace: company.team
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
    workerGroup:
      key: {group}
"""
# A one-task flow that sleeps `{duration}` on group `{group}`: drains, limits and lost workers.
SLEEP_FLOW_ON_GROUP = """\
id: nap
namespace: company.team
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: {duration}
    workerGroup: {{key: {group}}}
"""
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED"}


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis() -> tuple[subprocess.Popen, str]:
    """A redis-server of the test session's own, on a free loopback port; returns (process, url)."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: the engine is tested on a real Redis (apt-get install redis-server)")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: _ping(redis.Redis(port=port)), timeout=10, message="redis-server to answer")
    return process, f"redis://127.0.0.1:{port}/0"


def _ping(client) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


def database_url() -> str:
    """The test database as a DATABASE_URL, for worker processes to share it."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{db['NAME']}"


class Cluster:
    """Starts and stops real Celery worker processes named `<group>@<host>`, and beat processes."""

    def __init__(self, redis_url: str, database_url: str):
        self.env = {
            **os.environ,
            "CELERY_BROKER_URL": redis_url,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "WORKER_HEARTBEAT_INTERVAL": "1",
            "LOG_LEVEL": "WARNING",
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.beats: dict[str, subprocess.Popen] = {}
        self.run_id = uuid.uuid4().hex[:6]
        self.log_dir = Path(os.environ.get("TEST_WORKER_LOGS", f"/tmp/wgc-worker-logs-{self.run_id}"))
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, queues: str, *, name: str | None = None, concurrency: int = 2) -> str:
        hostname = f"{name or queues.split(',')[0]}@{self.run_id}"
        log = open(self.log_dir / f"{hostname}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", queues, "-n", hostname,
             f"--concurrency={concurrency}", "--loglevel=WARNING", "--without-mingle", "--without-gossip"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.processes[hostname] = process
        return hostname

    def start_beat(self, name: str = "beat") -> str:
        """A `celery -A project beat` of its own (schedule file and log), sending the scheduler tick
        every SCHEDULER_TICK_SECONDS. Kept apart from the workers: it has no heartbeat to wait for."""
        name = f"{name}@{self.run_id}"
        log = open(self.log_dir / f"{name}.log", "w")
        self.beats[name] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "project", "beat", "--loglevel=INFO",
             "-s", str(self.log_dir / f"{name}-schedule")],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return name

    def stop(self, hostname: str, *, kill: bool = False) -> None:
        process = self.processes.pop(hostname) if hostname in self.processes else self.beats.pop(hostname)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def ensure(self, queues: str, *, concurrency: int = 2) -> str:
        """The worker `start(queues)` names, started again if a test stopped it or it died."""
        hostname = f"{queues.split(',')[0]}@{self.run_id}"
        process = self.processes.get(hostname)
        if process is None or process.poll() is not None:
            self.processes.pop(hostname, None)
            self.start(queues, concurrency=concurrency)
        return hostname

    def stop_all(self) -> None:
        for hostname in [*self.processes, *self.beats]:
            self.stop(hostname)


def workers_alive(*hostnames: str, timeout: float = 30.0) -> None:
    from flows.selectors import alive_workers

    wait_for(lambda: set(hostnames) <= {w.hostname for w in alive_workers()}, timeout=timeout,
             message=f"workers {', '.join(hostnames)} to heartbeat")


def run_flow(source: str, *, inputs: dict | None = None, tenant: str = "main", timeout: float = 45.0):
    """Upload `source`, execute it and wait until the execution ends; returns the execution."""
    from flows.engine import execution_create
    from flows.services import flow_upload

    flow = flow_upload(source=source, tenant_key=tenant)
    execution = execution_create(tenant_key=tenant, namespace=flow.namespace, flow_id=flow.flow_id, inputs=inputs or {})
    return wait_execution(execution.id, timeout=timeout)


def wait_execution(execution_id, *, timeout: float = 45.0, states=TERMINAL):
    from flows.models import Execution

    return wait_for(
        lambda: Execution.objects.filter(id=execution_id, state__in=states).first(),
        timeout=timeout, message=f"execution {execution_id} to reach {sorted(states)}",
    )


def task_runs(execution) -> dict:
    """Task runs of an execution by task id (a list where a task ran several times, e.g. in ForEach)."""
    runs: dict = {}
    for run in execution.task_runs.order_by("created", "task_id"):
        runs.setdefault(run.task_id, []).append(run)
    return {task_id: items[0] if len(items) == 1 else items for task_id, items in runs.items()}


def stored_texts(uris: dict, *, tenant: str = "main") -> dict:
    """`outputFiles` outputs (name → kestra:/// URI) read back from the shared storage as text."""
    from flows import storage

    return {name: storage.read(tenant_key=tenant, path=uri[len(storage.SCHEME):].lstrip("/")).decode()
            for name, uri in uris.items()}
