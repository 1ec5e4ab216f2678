"""Benchmark: the cost of one scheduler tick (flows/scheduler.py) with 10, 1,000 and 10,000 defined
triggers of which 10 are due, each due one a Schedule that starts an execution.

Run: .venv/bin/python bench/scheduler.py [--ticks 30] [--sizes 10 1000 10000]
It uses a SQLite database of its own in a temporary directory (or $DATABASE_URL: PostgreSQL must
let it create and drop a database `<name>_bench_scheduler`). No broker: what the tick would send is
counted, not sent. The tick's work is only what is due, so its time should not grow with the
triggers that are not (docs/triggers.md)."""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLOW = """\
id: scheduled
namespace: bench
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.date }}"
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
"""
DUE = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ticks", type=int, default=30, help="ticks measured per size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1_000, 10_000])
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="wgc-bench-scheduler-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, setup_databases, teardown_databases
    from django.utils import timezone

    # A database of its own, migrated, as the test runner makes one (never the project's own).
    from django.conf import settings

    settings.DATABASES["default"].setdefault("TEST", {})
    settings.DATABASES["default"]["TEST"]["NAME"] = (
        str(workdir / "bench-test.sqlite3") if connection.vendor == "sqlite"
        else f"{settings.DATABASES['default']['NAME']}_bench_scheduler"
    )
    old = setup_databases(verbosity=0, interactive=False)
    try:
        from flows import dispatch
        from flows.models import Execution, SchedulerTick, TriggerState
        from flows.scheduler import scheduler_tick
        from flows.services import flow_upload

        flow_upload(source=FLOW, tenant_key="main")
        template = TriggerState.objects.get()
        sent = []
        print(f"scheduler tick on {connection.vendor}: {DUE} due Schedule triggers (each starts an execution), "
              f"median of {args.ticks} ticks")
        print(f"{'defined':>9} {'due':>4} {'median ms':>10} {'p90 ms':>8} {'queries':>8}")
        results = {}
        for size in args.sizes:
            TriggerState.objects.exclude(pk=template.pk).delete()
            future = timezone.now() + timedelta(days=365)
            TriggerState.objects.bulk_create([
                TriggerState(flow=template.flow, trigger_id=f"t{index}", trigger_type=template.trigger_type,
                             definition=template.definition, fingerprint=template.fingerprint,
                             next_date=future + timedelta(seconds=index))
                for index in range(size - 1)
            ], batch_size=1000)
            ids = list(TriggerState.objects.order_by("pk").values_list("pk", flat=True)[:DUE])
            timings, queries = [], 0
            for _ in range(args.ticks + 2):  # the first two warm the caches and are not counted
                now = timezone.now()
                due_at = now.replace(minute=0, second=0, microsecond=0)  # a date of the hourly cron
                TriggerState.objects.filter(pk__in=ids).update(next_date=due_at)
                SchedulerTick.objects.update_or_create(pk=1, defaults={"last_tick": now})  # no silence
                connection.queries_log.clear()
                with dispatch.sending_to(sent.append), CaptureQueriesContext(connection) as captured:
                    started = time.perf_counter()
                    report = scheduler_tick(now=now)
                    timings.append(time.perf_counter() - started)
                assert report["fired"] == DUE, report
                queries = len(captured)
                Execution.objects.all().delete()
            timings = sorted(timings[2:])
            median = statistics.median(timings) * 1000
            results[size] = median
            p90 = timings[int(len(timings) * 0.9) - 1] * 1000
            print(f"{size:>9,} {DUE:>4} {median:>10.1f} {p90:>8.1f} {queries:>8}")
        smallest, largest = min(args.sizes), max(args.sizes)
        print(f"tick at {largest:,} defined / tick at {smallest:,}: {results[largest] / results[smallest]:.2f}x")
    finally:
        teardown_databases(old, verbosity=0)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
