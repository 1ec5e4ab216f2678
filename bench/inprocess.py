"""The product's own cost per step, without Celery and without the other processes: for A/B
comparisons of two trees on a busy machine (bench/README.md, "Comparing two versions").

seq40 runs in this process through the engine, messages recorded instead of sent (as
tests/support/driver.py does): the execution is created, advanced, and each of its 40 task runs
claimed, run and ended with `taskrun_execute`, as a worker does. It prints the median wall time and
the median CPU time of this process per seq40, and per API call that creates an execution (Django's
test client). CPU time moves little with the machine's load; wall time includes the database's
round trips.

    DATABASE_URL=postgres://... python bench/inprocess.py [--runs 5] [--calls 20]

It migrates the database it is given and adds a group, a flow, a user and a heartbeat to it.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


def timed(action) -> tuple[float, float]:
    """(wall ms, CPU ms) of `action()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="seq40 executions (after one untimed)")
    parser.add_argument("--calls", type=int, default=20, help="API calls (after five untimed)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from flows import dispatch
    from flows.engine import execution_advance, execution_create
    from flows.models import Execution, WorkerGroup
    from flows.services import flow_upload, token_create, worker_group_create, worker_heartbeat
    from workers.execution import taskrun_execute

    call_command("migrate", verbosity=0)
    if not WorkerGroup.objects.filter(key="seq").exists():
        worker_group_create(key="seq")
    steps = "".join(f"  - id: step{i}\n    type: io.kestra.plugin.core.debug.Return\n    format: \"{i}\"\n"
                    for i in range(40))
    flow_upload(source=f"id: seq40\nnamespace: bench\nworkerGroup:\n  key: seq\ntasks:\n{steps}", tenant_key="main")
    if not get_user_model().objects.filter(username="inprocess").exists():
        get_user_model().objects.create_superuser("inprocess", password="inprocess")
    client = Client(SERVER_NAME="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token_create(username='inprocess')}")
    sent: list = []

    def seq40():
        execution = execution_create(tenant_key="main", namespace="bench", flow_id="seq40")
        execution_advance(execution_id=sent[-1].args[0])
        while sent[-1].task == dispatch.RUN_TASKRUN:
            message, count = sent[-1], len(sent)
            taskrun_execute(taskrun_id=message.args[0], attempt=message.args[1], worker_id="seq@inprocess")
            if len(sent) == count:
                break
        if Execution.objects.get(id=execution.id).state != "SUCCESS":
            raise SystemExit(f"execution {execution.id} did not succeed")

    def api_calls(count: int):
        for _ in range(count):
            response = client.post("/api/v1/main/executions/bench/seq40")
            if response.status_code != 200:
                raise SystemExit(f"API call: {response.status_code} {response.content[:300]}")

    with dispatch.sending_to(sent.append):
        worker_heartbeat(hostname="seq@inprocess", groups=["seq"], pid=os.getpid(), concurrency=1, running=0)
        seq40()
        runs = []
        for _ in range(args.runs):
            worker_heartbeat(hostname="seq@inprocess", groups=["seq"], pid=os.getpid(), concurrency=1, running=0)
            runs.append(timed(seq40))
        api_calls(5)
        calls = [timed(lambda: api_calls(args.calls)) for _ in range(5)]
    print(f"seq40 in process: wall {statistics.median(r[0] for r in runs):.0f} ms, "
          f"CPU {statistics.median(r[1] for r in runs):.0f} ms (medians of {args.runs})")
    print(f"API call creating an execution: wall {statistics.median(c[0] for c in calls) / args.calls:.2f} ms, "
          f"CPU {statistics.median(c[1] for c in calls) / args.calls:.2f} ms (medians of 5 x {args.calls})")


if __name__ == "__main__":
    main()
