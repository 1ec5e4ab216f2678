"""Flower (the Procfile's `flower` process) lists each group's workers as `<group>@<host>` with the
queues they consume, read through its API with credentials (README, "Flower")."""
import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.support import ROOT, _free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _workers(url: str, **auth) -> dict | None:
    try:
        response = httpx.get(f"{url}/api/workers", params={"refresh": "1"}, timeout=10, **auth)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def test_flower_lists_the_gpu_worker_and_its_queue(engine):
    gpu = next(hostname for hostname in engine.processes if hostname.startswith("gpu@"))
    port = _free_port()
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "project", "flower", f"--port={port}", "--address=127.0.0.1",
         f"--broker={engine.env['CELERY_BROKER_URL']}", "--basic-auth=ops:secret"],
        cwd=ROOT, env=engine.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        workers = wait_for(lambda: (found := _workers(url, auth=("ops", "secret"))) and gpu in found and found,
                           timeout=60, interval=0.5, message="Flower to list the gpu worker")
        assert [queue["name"] for queue in workers[gpu]["active_queues"]] == ["gpu"]
        assert httpx.get(f"{url}/api/workers", timeout=10).status_code == 401  # no credentials, no answer
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(timeout=20)
