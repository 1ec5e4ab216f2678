"""Benchmark: a flow of 40 sequential Return tasks on one group worker, from the API call to SUCCESS,
next to 40 raw Celery `apply_async().get()` round trips on the same Redis.

Run: .venv/bin/python bench/seq40.py [--tasks 40] [--runs 3]
It starts its own redis-server, SQLite database (or uses $DATABASE_URL), executor and worker."""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="wgc-bench-"))
    port = free_port()
    redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    os.environ["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{port}/0"
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ["WORKER_HEARTBEAT_INTERVAL"] = "1"
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")  # Django's test Client is the API caller
    processes = []
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        for queue in ("executor", "default"):
            log = open(workdir / f"{queue}.log", "w")
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", queue, "-n", f"{queue}@bench",
                 "--concurrency=1", "--loglevel=WARNING", "--without-mingle", "--without-gossip"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            ))
        from django.contrib.auth import get_user_model
        from django.test import Client

        from flows.models import Execution
        from flows.services import flow_upload, token_create
        from project.celery import app
        from flows.selectors import alive_workers

        wait_for(lambda: {"executor@bench", "default@bench"} <= {w.hostname for w in alive_workers()}, 60, "workers")
        tasks = "".join(
            f"  - id: step{i}\n    type: io.kestra.plugin.core.debug.Return\n    format: \"{i}\"\n" for i in range(args.tasks)
        )
        flow_upload(source=f"id: seq{args.tasks}\nnamespace: bench\ntasks:\n{tasks}", tenant_key="main")
        token = token_create(username="bench")
        get_user_model().objects.filter(username="bench").update(is_superuser=True)  # a member of every tenant
        client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

        ping = app.signature("workers.ping", queue="default")
        ping.apply_async().get(timeout=30)  # warm the connection and the worker

        flow_times, raw_times = [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.post(f"/api/v1/main/executions/bench/seq{args.tasks}")
            assert response.status_code == 200, response.content
            execution_id = response.json()["id"]
            execution = wait_for(
                lambda: Execution.objects.filter(id=execution_id, state__in=["SUCCESS", "FAILED", "WARNING", "KILLED"]).first(),
                300, "the execution")
            flow_times.append(time.perf_counter() - started)
            assert execution.state == "SUCCESS", execution.state

            started = time.perf_counter()
            for _ in range(args.tasks):
                ping.apply_async().get(timeout=30)
            raw_times.append(time.perf_counter() - started)

        database = "postgresql" if "postgres" in os.environ["DATABASE_URL"] else "sqlite"
        print(f"seq{args.tasks} on {database}, {args.runs} runs, one group worker (concurrency 1)")
        print(f"  flow, API call to SUCCESS : median {statistics.median(flow_times):.3f}s  "
              f"({statistics.median(flow_times) / args.tasks * 1000:.1f} ms/task)  runs: "
              + ", ".join(f"{t:.3f}" for t in flow_times))
        print(f"  raw Celery round trips    : median {statistics.median(raw_times):.3f}s  "
              f"({statistics.median(raw_times) / args.tasks * 1000:.1f} ms/task)  runs: "
              + ", ".join(f"{t:.3f}" for t in raw_times))
        print(f"  ratio flow/raw            : {statistics.median(flow_times) / statistics.median(raw_times):.2f}x")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
        redis.terminate()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
