"""A deployment of a test's own: executor, beat and group workers as real `celery` processes on a
broker and a database the test chose, so the test may SIGKILL, SIGTERM or cut off any of them
without touching the session's workers (tests/conftest.py `cluster`).

The test process publishes to the stack's broker through the product's own seam,
`flows.dispatch.sending_to`, so `execution_create` and friends called in the test reach this
stack's executor and workers.
"""
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from celery import Celery

from . import ROOT, wait_for

# Fast enough for tests, the production meaning unchanged: alive = a heartbeat within 3 intervals.
FAST_SETTINGS = {
    "WORKER_HEARTBEAT_INTERVAL": "1",
    "SCHEDULER_TICK_SECONDS": "1",
    "RECONCILE_SECONDS": "1",
    "REPUBLISH_AFTER_SECONDS": "3",
}


class Stack:
    def __init__(self, *, broker_url: str, database_url: str, directory: Path, **settings: str):
        self.run_id = uuid.uuid4().hex[:6]
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "CELERY_BROKER_URL": broker_url,
            "CELERY_RESULT_BACKEND": broker_url,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **FAST_SETTINGS,
            **settings,
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.app = Celery(f"stack-{self.run_id}", broker=broker_url, set_as_current=False)
        self.app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_timeout=3,
                             broker_connection_retry_on_startup=True)
        self._count = 0

    # --- processes ---------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], *, prefix: list[str] = (), env: dict | None = None) -> str:
        log = open(self.directory / f"{name}.log", "a")
        self.processes[name] = subprocess.Popen(
            [*prefix, sys.executable, "-m", "celery", "-A", "project", *argv],
            cwd=ROOT, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return name

    def start_worker(self, queues: str, *, concurrency: int = 1, label: str = "", prefix: list[str] = (),
                     env: dict | None = None) -> str:
        """A worker of the groups `queues` named `<first group>@<run>-<label>`; returns its hostname.
        `prefix` goes before the command (`ip netns exec NS`), `env` overrides the stack's settings."""
        self._count += 1
        hostname = f"{queues.split(',')[0]}@{self.run_id}-{label or self._count}"
        return self._spawn(hostname, [
            "worker", "-Q", queues, "-n", hostname, f"--concurrency={concurrency}", "--loglevel=INFO",
            "--without-mingle", "--without-gossip",
        ], prefix=prefix, env=env)

    def start_executor(self, *, concurrency: int = 2) -> str:
        return self.start_worker("executor", concurrency=concurrency)

    def start_beat(self) -> str:
        name = f"beat@{self.run_id}"
        return self._spawn(name, ["beat", "--loglevel=INFO", "-s", str(self.directory / "beat-schedule"),
                                  f"--pidfile={self.directory / 'beat.pid'}"])

    def kill(self, name: str) -> None:
        """SIGKILL the process and every process it started (its pool), as a lost machine would."""
        process = self.processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def terminate(self, name: str, *, timeout: float = 60.0) -> int:
        """SIGTERM to the main process only, as `kill PID` or a container stop does; wait for it to exit."""
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"{name} did not stop within {timeout}s of SIGTERM")

    def stop_all(self) -> None:
        for name, process in list(self.processes.items()):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, process in list(self.processes.items()):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            if process.poll() is None or _group_alive(process.pid):
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        self.processes.clear()
        self.app.close()

    def log(self, name: str, *, lines: int = 40) -> str:
        path = self.directory / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def logs(self, *, lines: int = 30) -> str:
        """The end of every process's log, for a failure message."""
        return "\n".join(f"--- {path.stem}\n{self.log(path.stem, lines=lines)}"
                         for path in sorted(self.directory.glob("*.log")))

    # --- publishing --------------------------------------------------------------------------------

    def publish(self, message) -> None:
        self.app.send_task(message.task, args=list(message.args), queue=message.queue, countdown=message.countdown)

    @contextmanager
    def sending(self):
        """Messages the product sends from the test process go to this stack's broker."""
        from flows import dispatch

        with dispatch.sending_to(self.publish):
            yield self

    def queue_length(self, queue: str) -> int:
        with self.app.connection_for_read() as connection:
            return connection.default_channel.client.llen(queue)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def alive(*hostnames: str, timeout: float = 60.0) -> None:
    from flows.selectors import alive_workers

    wait_for(lambda: set(hostnames) <= {w.hostname for w in alive_workers()}, timeout=timeout, interval=0.2,
             message=f"{', '.join(hostnames)} to heartbeat")
