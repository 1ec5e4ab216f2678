"""The benchmarks on one database. bench/run.py runs this once per database; bench/README.md says
what each figure measures.

It migrates, sets up a superuser's API token, the worker groups and the flows through the services,
starts gunicorn, the executor and the group workers as the Procfile does (with the Redis and the
database it is given), runs the benchmarks in order and writes their figures as JSON.

    python bench/suite.py --database-url URL --redis-url URL --workdir DIR --out FILE [--quick]
                          [--only NAME]... [--skip NAME]... [--profile DIR]
"""
import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import floor  # noqa: E402
import spy  # noqa: E402
from stack import Processes, free_port, python_module, wait_for  # noqa: E402

BENCHMARKS = ["floor", "seq40", "latency", "throughput", "fanout", "memory", "statements", "scale"]
SIZES = {
    "full": {"runs": 5, "floor3_runs": 50, "latency": 200, "throughput": 2000, "fanout": 500, "memory": 10_000,
             "stored": 100_000, "search_reps": 20},
    "quick": {"runs": 2, "floor3_runs": 20, "latency": 30, "throughput": 200, "fanout": 100, "memory": 1_000,
              "stored": 5_000, "search_reps": 10},
}
CLIENTS = 8  # concurrent API clients of the throughput benchmark
MEMORY_STEPS = 5  # sequential task runs per execution of the memory benchmark's flow
# Celery workers: name -> (queue, concurrency). The executor as in the Procfile; one group worker
# per group with one pool process, two for the throughput group.
WORKERS = {"executor": ("executor", 2), "seq": ("seq", 1), "tput1": ("tput", 1), "tput2": ("tput", 1),
           "fa": ("fa", 1), "fb": ("fb", 1), "mem": ("mem", 1)}
NEEDS = {"floor": ["seq"], "seq40": ["seq"], "latency": ["seq"], "throughput": ["tput1", "tput2"],
         "fanout": ["fa", "fb"], "memory": ["mem"], "statements": ["seq"], "scale": ["seq"]}
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED"}


def returns(count: int) -> str:
    return "".join(f"  - id: step{i}\n    type: io.kestra.plugin.core.debug.Return\n    format: \"{i}\"\n"
                   for i in range(count))


def foreach(values: int, child_group: str) -> str:
    return (f"  - id: each\n    type: io.kestra.plugin.core.flow.ForEach\n    values: {list(range(values))}\n"
            f"    concurrencyLimit: 0\n    tasks:\n      - id: child\n        type: io.kestra.plugin.core.debug.Return\n"
            f"        format: \"{{{{ taskrun.value }}}}\"\n        workerGroup:\n          key: \"{child_group}\"\n")


def flows(sizes: dict) -> dict[str, str]:
    """The benchmarks' flows, namespace `bench` (the statements benchmark's copy of seq40: `bench.stmt`)."""
    def flow(flow_id, tasks, group="seq", namespace="bench"):
        return f"id: {flow_id}\nnamespace: {namespace}\nworkerGroup:\n  key: {group}\ntasks:\n{tasks}"
    return {
        "seq40": flow("seq40", returns(40)),
        "three": flow("three", returns(3)),
        "single": flow("single", returns(1), group="tput"),
        # even values on group fa, odd ones on fb: the key is an expression rendered per task run
        "fanout": flow("fanout", foreach(sizes["fanout"], "{{ 'fa' if (taskrun.value | int) % 2 == 0 else 'fb' }}")),
        "memory": flow("memory", returns(MEMORY_STEPS), group="mem"),
        "stmt": flow("seq40", returns(40), namespace="bench.stmt"),
    }


def percentiles(values: list[float]) -> dict:
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else list(values) * 99
    return {"p50": statistics.median(values), "p95": cuts[94], "p99": cuts[98], "n": len(values)}


def rss_kib(pid: int) -> int:
    """Resident memory of `pid` and every descendant (a Celery worker's main and pool processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


class Suite:
    def __init__(self, args):
        self.args = args
        self.sizes = SIZES["quick" if args.quick else "full"]
        self.database = "sqlite" if args.database_url.startswith("sqlite") else "postgresql"
        self.processes = Processes(Path(args.workdir))
        self.results: dict = {"database": self.database, "sizes": self.sizes, "seconds": {}}
        self.selected = [name for name in BENCHMARKS if (not args.only or name in args.only) and name not in args.skip]

    # --- the stack -----------------------------------------------------------------------------

    def prepare(self) -> None:
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from flows.services import flow_upload, token_create, worker_group_create

        call_command("migrate", verbosity=0)
        get_user_model().objects.create_superuser("bench", password="bench")
        self.token = token_create(username="bench")
        for group in sorted({queue for queue, _ in WORKERS.values()} - {"executor"}):
            worker_group_create(key=group, description="benchmark group")
        for source in flows(self.sizes).values():
            flow_upload(source=source, tenant_key="main")

    def start(self) -> None:
        from flows.selectors import alive_workers

        self.port = free_port()
        self.processes.start("gunicorn", python_module(
            "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "--threads", "8",
            "--no-control-socket"))
        wanted = ["executor", *dict.fromkeys(w for name in self.selected for w in NEEDS[name])]
        for name in wanted:
            queue, concurrency = WORKERS[name]
            self.processes.start(name, python_module(
                "celery", "-A", "project", "worker", "-Q", queue, "-n", f"{name}@bench", "--concurrency",
                str(concurrency), "-l", "warning"))
        import httpx

        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120,
                                 headers={"Authorization": f"Bearer {self.token}"})

        def ready():
            for name in self.processes.started:
                self.processes.check(name)
            try:
                if self.http.get("/api/v1/openapi.json").status_code != 200:
                    return False
            except httpx.TransportError:
                return False
            return {f"{name}@bench" for name in wanted} <= {w.hostname for w in alive_workers()}

        wait_for(ready, timeout=180, what="gunicorn and the Celery workers", interval=0.3)
        if "mem" in wanted:
            time.sleep(3)  # at rest: started, alive, idle
            self.results["memory_rest_kib"] = rss_kib(self.processes.started["mem"].pid)

    # --- helpers ---------------------------------------------------------------------------------

    def post_execution(self, flow_id: str, http=None) -> tuple[float, str]:
        """Starts `bench.<flow_id>` over the API; (wall-clock time just before the call, execution id)."""
        before = time.time()
        response = (http or self.http).post(f"/api/v1/main/executions/bench/{flow_id}")
        if response.status_code != 200:
            raise RuntimeError(f"starting {flow_id}: {response.status_code} {response.text[:500]}")
        return before, response.json()["id"]

    def ended(self, execution_id: str, *, timeout: float = 300, interval: float = 0.01) -> dict:
        """Polls the row until the execution has ended; its timestamps come from the row, so the
        poll interval adds nothing to the figures."""
        from flows.models import Execution

        def row():
            found = Execution.objects.filter(id=execution_id).values("state", "created", "end_date").first()
            return found if found and found["state"] in TERMINAL else None

        found = wait_for(row, timeout=timeout, what=f"execution {execution_id}", interval=interval)
        if found["state"] != "SUCCESS":
            raise RuntimeError(f"execution {execution_id} ended {found['state']}:\n"
                               + self.processes.log_tail("executor") + "\n" + self.processes.log_tail("seq"))
        return found

    def run_flow(self, flow_id: str) -> float:
        """Seconds from just before the API call to the execution's end_date."""
        before, execution_id = self.post_execution(flow_id)
        return self.ended(execution_id)["end_date"].timestamp() - before

    def all_ended(self, ids: list[str], *, timeout: float) -> list[dict]:
        from flows.models import Execution

        def done():
            rows = list(Execution.objects.filter(id__in=ids).values("state", "created", "end_date"))
            return rows if len(rows) == len(ids) and all(r["state"] in TERMINAL for r in rows) else None

        rows = wait_for(done, timeout=timeout, what=f"{len(ids)} executions", interval=0.2)
        failed = [r["state"] for r in rows if r["state"] != "SUCCESS"]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(ids)} executions did not succeed: {failed[:5]}")
        return rows

    def pings(self, queues: list[str], count: int, *, clients: int = 1) -> float:
        """Seconds for `count` raw Celery `workers.ping` round trips (`apply_async().get()`), spread
        over `queues`, from `clients` threads one after another each; `clients=0`: all sent at once."""
        from project.celery import app

        signatures = [app.signature("workers.ping", queue=queue) for queue in queues]
        if clients == 0:
            started = time.perf_counter()
            results = [signatures[i % len(signatures)].apply_async() for i in range(count)]
            for result in results:
                result.get(timeout=120)
            return time.perf_counter() - started

        def client(share):
            for i in range(share):
                signatures[i % len(signatures)].apply_async().get(timeout=60)

        threads = [threading.Thread(target=client, args=(count // clients,)) for _ in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started

    @contextmanager
    def profiling(self, label: str, names: list[str]):
        """py-spy on the named processes and their children while the block runs (--profile)."""
        if not self.args.profile:
            yield
            return
        with spy.recording(Path(self.args.profile) / f"{self.database}-{label}",
                           {name: self.processes.started[name].pid for name in names}):
            yield

    # --- the benchmarks --------------------------------------------------------------------------

    def floor(self) -> dict:
        """The references: the bare chain (bench/floor.py) and raw Celery round trips."""
        self.processes.start("floor", [sys.executable, str(BENCH / "floor.py"), "worker", self.args.database_url,
                                       self.args.redis_url])
        chain = floor.Chain(self.args.database_url, self.args.redis_url)
        try:
            chain.run(3)  # warm-up
            chain40 = [chain.run(40) for _ in range(self.sizes["runs"])]
            chain3 = [chain.run(3) for _ in range(self.sizes["floor3_runs"])]
        finally:
            chain.stop_worker()
        self.pings(["seq"], 5)  # warm-up
        celery40 = [self.pings(["seq"], 40) for _ in range(self.sizes["runs"])]
        return {
            "chain40_s": statistics.median(chain40), "chain40_runs": chain40,
            "step_ms": statistics.median(chain40) / 40 * 1000,
            "chain3_ms": {k: v * 1000 if k != "n" else v for k, v in percentiles(chain3).items()},
            "celery40_s": statistics.median(celery40), "celery40_runs": celery40,
        }

    def seq40(self) -> dict:
        """40 sequential Return tasks on one group worker: API call to SUCCESS."""
        self.run_flow("seq40")  # warm-up: caches of the gunicorn worker, executor and group worker
        with self.profiling("seq40", ["executor", "seq"]):
            runs = [self.run_flow("seq40") for _ in range(self.sizes["runs"])]
        return {"median_s": statistics.median(runs), "runs": runs, "profiled": bool(self.args.profile)}

    def latency(self) -> dict:
        """A 3-step flow, one execution after another: creation → end, and task run created → started."""
        from flows.models import Execution, TaskRun

        for _ in range(2):
            self.run_flow("three")
        ids = []
        for _ in range(self.sizes["latency"]):
            _, execution_id = self.post_execution("three")
            self.ended(execution_id)
            ids.append(execution_id)
        executions = Execution.objects.filter(id__in=ids).values_list("created", "end_date")
        runs = TaskRun.objects.filter(execution_id__in=ids).values_list("created", "start_date")
        ms = lambda rows: [(end - start).total_seconds() * 1000 for start, end in rows]  # noqa: E731
        return {"end_to_end_ms": percentiles(ms(executions)), "dispatch_ms": percentiles(ms(runs))}

    def post_many(self, flow_id: str, total: int) -> tuple[list[str], float]:
        """`total` executions of `flow_id` posted by CLIENTS concurrent API clients (one keep-alive
        connection each); (their ids, the time the last one was accepted)."""
        import httpx

        ids, errors, submitted = [], [], []

        def client(share):
            with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120,
                              headers={"Authorization": f"Bearer {self.token}"}) as http:
                try:
                    for _ in range(share):
                        ids.append(self.post_execution(flow_id, http)[1])
                except Exception as error:  # reported below: the figure is void
                    errors.append(error)
                submitted.append(time.time())

        threads = [threading.Thread(target=client, args=(total // CLIENTS + (i < total % CLIENTS),))
                   for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(f"{len(errors)} API clients failed: {errors[0]}")
        return ids, max(submitted)

    def throughput(self) -> dict:
        """Single-task executions from CLIENTS concurrent API clients, two workers in group tput."""
        total = self.sizes["throughput"]
        self.run_flow("single")
        with self.profiling("throughput", ["gunicorn", "executor", "tput1"]):
            started = time.time()
            ids, submitted = self.post_many("single", total)
            rows = self.all_ended(ids, timeout=900)
        wall = max(row["end_date"] for row in rows).timestamp() - started
        self.pings(["tput"], 10)
        celery = self.pings(["tput"], total, clients=CLIENTS)
        return {"executions": len(ids), "clients": CLIENTS, "wall_s": wall, "per_s": len(ids) / wall,
                "submitted_per_s": len(ids) / (submitted - started), "celery_per_s": total / celery,
                "profiled": bool(self.args.profile)}

    def fanout(self) -> dict:
        """ForEach over N values, concurrencyLimit 0, children keyed by expression to groups fa and fb."""
        from django.db.models import Count

        from flows.models import TaskRun

        before, execution_id = self.post_execution("fanout")
        row = self.ended(execution_id, timeout=900, interval=0.05)
        wall = row["end_date"].timestamp() - before
        groups = dict(TaskRun.objects.filter(execution_id=execution_id, task_id="child")
                      .values_list("worker_group").annotate(Count("id")))
        values = self.sizes["fanout"]
        self.pings(["fa", "fb"], 10)
        celery = self.pings(["fa", "fb"], values, clients=0)
        return {"values": values, "wall_s": wall, "per_s": values / wall, "by_group": groups, "celery_wall_s": celery}

    def memory(self) -> dict:
        """Resident memory of group worker `mem` (main and pool processes) at rest, after its first
        execution (warm), and after N task runs: executions of MEMORY_STEPS sequential steps, posted
        by CLIENTS API clients so that the worker always has work."""
        pid = self.processes.started["mem"].pid
        executions = max(1, self.sizes["memory"] // MEMORY_STEPS)
        self.ended(self.post_execution("memory")[1], timeout=300, interval=0.05)
        time.sleep(1)
        warm = rss_kib(pid)
        started = time.time()
        ids, _ = self.post_many("memory", executions - 1)
        rows = self.all_ended(ids, timeout=1800)
        wall = max(row["end_date"] for row in rows).timestamp() - started
        time.sleep(2)
        after, rest = rss_kib(pid), self.results["memory_rest_kib"]
        task_runs = (len(ids) + 1) * MEMORY_STEPS
        return {"task_runs": task_runs, "task_runs_per_s": len(ids) * MEMORY_STEPS / wall, "rest_mib": rest / 1024,
                "warm_mib": warm / 1024, "after_mib": after / 1024, "growth_pct": (after - rest) / rest * 100,
                "growth_after_warm_pct": (after - warm) / warm * 100}

    def statements(self) -> dict:
        """SQL statements of each step of seq40, in this process, with messages recorded instead of
        sent (as tests/support/driver.py does): the API call, the executor's first advance, and each
        of the 40 worker steps (claim, run, end, advance)."""
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from flows import dispatch
        from flows.engine import execution_advance
        from workers.execution import taskrun_execute

        client = Client(SERVER_NAME="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {self.token}")
        sent: list = []

        def captured(action):
            with dispatch.sending_to(sent.append), CaptureQueriesContext(connection) as queries:
                action()
            return [query["sql"] for query in queries.captured_queries]

        path = "/api/v1/main/executions/bench.stmt/seq40"
        captured(lambda: client.post(path))  # warm-up: token use recorded, caches filled
        sent.clear()
        api = captured(lambda: client.post(path))
        steps = [captured(lambda: execution_advance(execution_id=sent[0].args[0]))]
        for _ in range(40):
            message = sent[-1]
            assert message.task == dispatch.RUN_TASKRUN, message
            steps.append(captured(lambda: taskrun_execute(taskrun_id=message.args[0], attempt=message.args[1],
                                                          worker_id="statements@bench")))
        middle = steps[20]
        kinds: dict = {}
        for sql in middle:
            kind = sql.split(None, 1)[0].upper()
            kinds[kind] = kinds.get(kind, 0) + 1
        return {"api_create": data_statements(api), "executor_first_advance": data_statements(steps[0]),
                "worker_steps": [data_statements(step) for step in steps[1:]], "worker_step": data_statements(middle),
                "worker_step_kinds": kinds, "worker_step_sql": [sql[:300] for sql in middle],
                "api_create_sql": [sql[:300] for sql in api], "floor_step": 3}

    def search_ms(self, query: str) -> float:
        for _ in range(2):
            self.http.get(f"/api/v1/main/executions/search{query}")
        times = []
        for _ in range(self.sizes["search_reps"]):
            started = time.perf_counter()
            response = self.http.get(f"/api/v1/main/executions/search{query}")
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"search{query}: {response.status_code} {response.text[:300]}")
        return statistics.median(times)

    def scale(self) -> dict:
        """executions/search and seq40 before and after storing N more executions (one task run each)."""
        for _ in range(25):  # the newest page: 3-step executions, before and after
            self.run_flow("three")
        queries = {"newest": "", "filtered": "?namespace=bench&state=SUCCESS"}
        before = {name: self.search_ms(query) for name, query in queries.items()}
        seq40_before = self.results.get("seq40", {}).get("median_s")
        if seq40_before is None:
            self.run_flow("seq40")
            seq40_before = statistics.median(self.run_flow("seq40") for _ in range(self.sizes["runs"]))
        started = time.perf_counter()
        stored = store_executions(self.sizes["stored"])
        insert_s = time.perf_counter() - started
        after = {name: self.search_ms(query) for name, query in queries.items()}
        self.run_flow("seq40")
        seq40_after = [self.run_flow("seq40") for _ in range(self.sizes["runs"])]
        return {"stored": stored, "insert_s": insert_s, "search_before_ms": before, "search_after_ms": after,
                "seq40_before_s": seq40_before, "seq40_after_s": statistics.median(seq40_after),
                "seq40_after_runs": seq40_after}

    def run(self) -> None:
        self.prepare()
        try:
            self.start()
            for name in self.selected:
                started = time.monotonic()
                print(f"  [{self.database}] {name} ...", flush=True)
                self.results[name] = getattr(self, name)()
                self.results["seconds"][name] = time.monotonic() - started
                print(f"  [{self.database}] {name}: {time.monotonic() - started:.1f}s", flush=True)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleaning up
            self.processes.stop_all()


def data_statements(sqls: list[str]) -> int:
    """SELECT, INSERT, UPDATE and DELETE statements: Django shows SQLite's BEGIN and COMMIT, not
    PostgreSQL's, so transaction control is left out of the counts (it is in the kinds)."""
    return sum(1 for sql in sqls if sql.split(None, 1)[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE"))


@contextmanager
def without_auto_now(*models):
    """Lets bulk_create store the `created` values given (they are auto_now_add)."""
    fields = [model._meta.get_field("created") for model in models]
    for field in fields:
        field.auto_now_add = False
    try:
        yield
    finally:
        for field in fields:
            field.auto_now_add = True


def store_executions(count: int, *, batch: int = 2000) -> int:
    """`count` ended executions of the last 30 days, one task run each, inserted directly, spread over
    20 namespaces `bench.scale.n<k>` and 50 flow ids; 90% SUCCESS, 8% FAILED, 2% KILLED. Older than
    the benchmarks' own executions, so that the newest page stays the same."""
    import random
    import uuid

    from django.db import connection, transaction
    from django.utils import timezone

    from flows.models import Execution, FlowRevision, TaskRun, Tenant

    tenant, revision = Tenant.objects.get(key="main"), FlowRevision.objects.filter(flow__flow_id="seq40").first()
    rng, now = random.Random(11), timezone.now()
    with without_auto_now(Execution, TaskRun):
        for offset in range(0, count, batch):
            executions, runs = [], []
            for i in range(offset, min(count, offset + batch)):
                created = now - timedelta(seconds=rng.uniform(60, 30 * 86400))
                start, end = created + timedelta(milliseconds=20), created + timedelta(milliseconds=200)
                state = "SUCCESS" if i % 50 < 45 else "FAILED" if i % 50 < 49 else "KILLED"
                history = [{"state": s, "date": d.isoformat()} for s, d in
                           (("CREATED", created), ("RUNNING", start), (state, end))]
                execution = Execution(
                    id=uuid.uuid4(), tenant=tenant, flow_revision=revision, namespace=f"bench.scale.n{i % 20}",
                    flow_id=f"f{i % 50}", state=state, state_history=history, created=created, start_date=start,
                    end_date=end)
                executions.append(execution)
                runs.append(TaskRun(
                    id=uuid.uuid4(), execution=execution, scope_key=f"{i:040x}", task_id="step0",
                    task_type="io.kestra.plugin.core.debug.Return", worker_group="seq", state=state,
                    state_history=history, outputs={"value": "0"}, created=created, published=created,
                    start_date=start, end_date=end, worker_id="seq@bench"))
            with transaction.atomic():
                Execution.objects.bulk_create(executions)
                TaskRun.objects.bulk_create(runs)
    if connection.vendor == "postgresql":  # the planner's statistics, as autovacuum refreshes them within a minute
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE flows_execution, flows_taskrun")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", choices=BENCHMARKS)
    parser.add_argument("--skip", action="append", choices=BENCHMARKS, default=[])
    parser.add_argument("--profile", help="directory for py-spy profiles of seq40 and throughput")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C: clean up first
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    os.environ.update(DATABASE_URL=args.database_url, CELERY_BROKER_URL=args.redis_url,
                      CELERY_RESULT_BACKEND=args.redis_url, DJANGO_SETTINGS_MODULE="project.settings")
    import django

    # whitenoise's warning that no collectstatic ran: the benchmarks read no static file
    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()
    suite = Suite(args)
    try:
        suite.run()
    finally:
        Path(args.out).write_text(json.dumps(suite.results, indent=2, default=str))


if __name__ == "__main__":
    main()
