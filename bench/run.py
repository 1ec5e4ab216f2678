"""Every benchmark of the project in one run, each figure beside its reference measured in the same
run (bench/README.md says what each measures and how).

    python bench/run.py                       # both databases, full sizes (under 10 minutes)
    python bench/run.py --quick --db sqlite   # small sizes, one database
    python bench/run.py --only seq40 --only floor

It starts its own redis-server and PostgreSQL cluster (in a temporary directory, free loopback
ports) and uses a SQLite file there too; for each database, bench/suite.py migrates and starts
gunicorn, the executor and the group workers. It prints one table, writes bench/results.json and
bench/results.png, and stops every process and removes the temporary directory, on failure and
Ctrl-C too (--keep keeps the directory and its logs).
"""
import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from stack import ROOT, Processes, start_postgres, start_redis, stop_recorded  # noqa: E402
from suite import BENCHMARKS  # noqa: E402

DATABASES = ["sqlite", "postgresql"]
# MEMORY_ON_LAST: a worker's memory does not depend on the database, and 10,000 task runs take
# minutes at today's speed, so a run of both databases measures memory on PostgreSQL only
# (`--db sqlite` or `--only memory` measures it on SQLite too).
NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def get(results: dict, *path):
    for key in path:
        if not isinstance(results, dict) or key not in results:
            return None
        results = results[key]
    return results


# One row per figure: (label, unit, path to the value, reference label, path to the reference, target).
# A target is (text, test on value and reference, databases it applies to).
def at_most(limit):
    return lambda value, ref: value / ref <= limit


ROWS = [
    ("floor: bare chain, 40 steps", "s", ("floor", "chain40_s"), None, None, None),
    ("floor: raw Celery ping x40", "s", ("floor", "celery40_s"), None, None, None),
    ("seq40: API call to SUCCESS", "s", ("seq40", "median_s"), "bare chain", ("floor", "chain40_s"),
     ("<= 3x ref", at_most(3), DATABASES)),
    ("seq40 vs raw Celery x40", "s", ("seq40", "median_s"), "raw Celery", ("floor", "celery40_s"), None),
    ("3-step flow: creation to end, p50", "ms", ("latency", "end_to_end_ms", "p50"), "bare chain 3 steps p50",
     ("floor", "chain3_ms", "p50"), ("< 25 ms", lambda value, ref: value < 25, ["postgresql"])),
    ("3-step flow: creation to end, p95", "ms", ("latency", "end_to_end_ms", "p95"), "bare chain 3 steps p95",
     ("floor", "chain3_ms", "p95"), None),
    ("3-step flow: creation to end, p99", "ms", ("latency", "end_to_end_ms", "p99"), "bare chain 3 steps p99",
     ("floor", "chain3_ms", "p99"), None),
    ("dispatch: task run created to started, p50", "ms", ("latency", "dispatch_ms", "p50"), "bare chain step",
     ("floor", "step_ms"), None),
    ("dispatch: task run created to started, p95", "ms", ("latency", "dispatch_ms", "p95"), "bare chain step",
     ("floor", "step_ms"), None),
    ("throughput: 1-task executions, 8 API clients", "/s", ("throughput", "per_s"), "raw Celery pings, 8 clients",
     ("throughput", "celery_per_s"), (">= 200/s", lambda value, ref: value >= 200, ["postgresql"])),
    ("throughput: API submissions alone", "/s", ("throughput", "submitted_per_s"), None, None, None),
    ("fan-out: ForEach, 2 groups, API to SUCCESS", "s", ("fanout", "wall_s"), "raw Celery pings, all at once",
     ("fanout", "celery_wall_s"), None),
    ("scale: search, newest page, N stored", "ms", ("scale", "search_after_ms", "newest"), "same, before",
     ("scale", "search_before_ms", "newest"), ("<= 1.2x ref", at_most(1.2), DATABASES)),
    ("scale: search, filtered, N stored", "ms", ("scale", "search_after_ms", "filtered"), "same, before",
     ("scale", "search_before_ms", "filtered"), ("<= 1.2x ref", at_most(1.2), DATABASES)),
    ("scale: seq40, N stored", "s", ("scale", "seq40_after_s"), "seq40 before", ("scale", "seq40_before_s"),
     ("<= 1.2x ref", at_most(1.2), DATABASES)),
    ("memory: group worker RSS after N task runs", "MiB", ("memory", "after_mib"), "at rest", ("memory", "rest_mib"),
     ("< 1.1x ref", lambda value, ref: value / ref < 1.1, DATABASES)),
    ("memory: same, against warm (1st execution)", "MiB", ("memory", "after_mib"), "warm", ("memory", "warm_mib"),
     None),
    ("SQL statements: one sequential worker step", "", ("statements", "worker_step"), "bare chain step",
     ("statements", "floor_step"), None),
    ("SQL statements: API call creating an execution", "", ("statements", "api_create"), None, None, None),
    ("SQL statements: executor's first advance", "", ("statements", "executor_first_advance"), None, None, None),
]


def number(value, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s"
    if unit in ("ms", "MiB"):
        return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    if unit == "/s":
        return f"{value:.1f}/s" if value < 100 else f"{value:.0f}/s"
    return f"{value:g}"


def table(results: dict, databases: list[str]) -> tuple[str, list[dict]]:
    """The Markdown table and its rows as data."""
    header = ["figure"]
    for database in databases:
        header += [NAMES[database], "reference", "x"]
    header += ["target", "met"]
    lines, rows = [header], []
    for label, unit, path, ref_label, ref_path, target in ROWS:
        cells, row = [label], {"figure": label, "unit": unit, "reference": ref_label}
        met = []
        for database in databases:
            value, ref = get(results.get(database, {}), *path), get(results.get(database, {}), *ref_path) if ref_path else None
            ratio = value / ref if value is not None and ref else None
            cells += [number(value, unit), f"{ref_label}: {number(ref, unit)}" if ref_label else "",
                      f"{ratio:.2f}x" if ratio is not None else ""]
            ok = None
            if target and database in target[2] and value is not None and (ref or not ref_path):
                ok = bool(target[1](value, ref))
            if target:
                met.append("-" if database not in target[2] else "?" if ok is None else "yes" if ok else "NO")
            row[database] = {"value": value, "reference": ref, "ratio": ratio, "target_met": ok}
        cells += [target[0] if target else "", " / ".join(met)]
        row["target"] = target[0] if target else None
        lines.append(cells)
        rows.append(row)
    text = "\n".join("| " + " | ".join(cells) + " |" for cells in lines[:1])
    text += "\n|" + "|".join("---" for _ in header) + "|\n"
    text += "\n".join("| " + " | ".join(cells) + " |" for cells in lines[1:])
    return text, rows


def chart(results: dict, databases: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    width = 0.8 / max(1, len(databases))

    def bars(ax, items, title, unit, line=None):
        for index, database in enumerate(databases):
            values = [get(results.get(database, {}), *p) or 0 for _, p in items]
            positions = [i + index * width for i in range(len(items))]
            ax.bar(positions, values, width, label=NAMES[database])
        ax.set_xticks([i + width * (len(databases) - 1) / 2 for i in range(len(items))])
        ax.set_xticklabels([label for label, _ in items], rotation=20, ha="right", fontsize=8)
        ax.set_title(title)
        ax.set_ylabel(unit)
        if line:
            ax.axhline(line[0], color="red", linestyle="--", linewidth=1, label=line[1])
        ax.legend(fontsize=8)

    bars(axes[0][0], [("bare chain", ("floor", "chain40_s")), ("raw Celery x40", ("floor", "celery40_s")),
                      ("seq40", ("seq40", "median_s")), ("seq40, N stored", ("scale", "seq40_after_s"))],
         "40 sequential steps", "seconds")
    bars(axes[0][1], [("bare chain 3 steps p50", ("floor", "chain3_ms", "p50")),
                      ("3-step p50", ("latency", "end_to_end_ms", "p50")),
                      ("3-step p95", ("latency", "end_to_end_ms", "p95")),
                      ("3-step p99", ("latency", "end_to_end_ms", "p99")),
                      ("dispatch p50", ("latency", "dispatch_ms", "p50")),
                      ("dispatch p95", ("latency", "dispatch_ms", "p95"))],
         "3-step flow, one execution after another", "milliseconds", (25, "target p50 (PostgreSQL)"))
    bars(axes[1][0], [("executions, 8 API clients", ("throughput", "per_s")),
                      ("API submissions", ("throughput", "submitted_per_s")),
                      ("raw Celery pings", ("throughput", "celery_per_s"))],
         "throughput, two workers in one group", "per second", (200, "target (PostgreSQL)"))
    ratio_rows = [(label, path, ref_path, target) for label, _, path, _, ref_path, target in ROWS
                  if ref_path and target and target[0].endswith("x ref")]
    ax = axes[1][1]
    for index, database in enumerate(databases):
        ratios = []
        for _, path_, ref_path, _ in ratio_rows:
            value, ref = get(results.get(database, {}), *path_), get(results.get(database, {}), *ref_path)
            ratios.append(value / ref if value is not None and ref else 0)
        ax.barh([i + index * width for i in range(len(ratio_rows))], ratios, width, label=NAMES[database])
    for i, (_, _, _, target) in enumerate(ratio_rows):
        limit = float(target[0].split()[1].rstrip("x"))
        ax.plot([limit, limit], [i - 0.2, i + 0.2 + width], color="red", linewidth=2)
    ax.set_yticks([i + width * (len(databases) - 1) / 2 for i in range(len(ratio_rows))])
    ax.set_yticklabels([label.replace(": ", ":\n", 1) for label, *_ in ratio_rows], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("ratio to its reference (red: target)")
    ax.set_title("ratios to the references")
    ax.legend(fontsize=8)
    fig.suptitle(f"worker groups for Celery: bench/run.py, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def git_revision() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return commit + ("+uncommitted changes" if dirty else "")
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for development (about 2 minutes)")
    parser.add_argument("--db", choices=DATABASES, action="append", help="only this database (repeatable)")
    parser.add_argument("--only", choices=BENCHMARKS, action="append", metavar="NAME",
                        help=f"only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--profile", metavar="DIR", help="record py-spy profiles of seq40 and throughput into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, databases)")
    parser.add_argument("--out", default=str(BENCH / "results.json"))
    parser.add_argument("--chart", default=str(BENCH / "results.png"))
    args = parser.parse_args()
    databases = [database for database in DATABASES if not args.db or database in args.db]
    if "postgresql" in databases and not shutil.which("initdb") and not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        parser.error("PostgreSQL is not installed (apt-get install postgresql), or run with --db sqlite")

    started, load_before = time.monotonic(), os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="wgc-bench-"))
    servers = Processes(workdir / "servers")
    results, failures, suite = {}, [], None

    def terminated(signum, frame):  # stop as on Ctrl-C, which the suite gets from the terminal too
        if suite is not None:
            suite.send_signal(signal.SIGINT)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`&`)
    try:
        redis_url = start_redis(servers)
        for index, database in enumerate(databases):
            url = start_postgres(servers) if database == "postgresql" else f"sqlite:///{workdir / 'bench.sqlite3'}"
            print(f"{NAMES[database]}: {url}", flush=True)
            out = workdir / f"{database}.json"
            command = [sys.executable, str(BENCH / "suite.py"), "--database-url", url, "--redis-url",
                       f"{redis_url}/{index}", "--workdir", str(workdir / database), "--out", str(out)]
            command += ["--quick"] if args.quick else []
            command += [arg for name in args.only or [] for arg in ("--only", name)]
            if database != databases[-1] and not args.only:
                command += ["--skip", "memory"]  # on the last database only: see MEMORY_ON_LAST
            command += ["--profile", str(Path(args.profile).resolve())] if args.profile else []
            suite = subprocess.Popen(command, cwd=ROOT)
            code = suite.wait()
            suite = None
            if out.exists():
                results[database] = json.loads(out.read_text())
            if code:
                failures.append(f"{NAMES[database]}: bench/suite.py exited with status {code}")
                for log in sorted((workdir / database).glob("*.log")):
                    print(f"--- last lines of {log.name}", file=sys.stderr)
                    print("\n".join(log.read_text(errors="replace").splitlines()[-15:]), file=sys.stderr)
            stop_recorded(workdir / database)
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleaning up
        if suite is not None:  # interrupted: the suite stops its own processes first
            try:
                suite.wait(timeout=90)
            except subprocess.TimeoutExpired:
                suite.kill()
        for database in databases:  # what a suite that crashed left running
            stop_recorded(workdir / database)
        servers.stop_all()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    if results:
        text, rows = table(results, databases)
        sizes = next(iter(results.values()))["sizes"]
        print(f"\nN stored = {sizes['stored']:,}; memory: N = {sizes['memory']:,} task runs; seq40 and searches: "
              f"median of {sizes['runs']} and {sizes['search_reps']}; latency: {sizes['latency']} runs; "
              f"throughput: {sizes['throughput']:,} executions; fan-out: {sizes['fanout']} values\n")
        print(text)
        meta = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "revision": git_revision(),
            "quick": args.quick, "databases": databases, "only": args.only, "profiled": bool(args.profile),
            "cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
            "python": platform.python_version(), "seconds": time.monotonic() - started, "failures": failures,
        }
        Path(args.out).write_text(json.dumps({"meta": meta, "table": rows, **results}, indent=2, default=str) + "\n")
        chart(results, databases, Path(args.chart))
        print(f"\n{args.out}, {args.chart}; {meta['seconds']:.0f} s; load average {load_before[0]:.1f} before, "
              f"{meta['load_after'][0]:.1f} after, on {os.cpu_count()} CPUs")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
