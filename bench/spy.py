"""py-spy profiles for `run.py --profile DIR` (needs `pip install py-spy`; as root, or with ptrace
allowed). Each named process is sampled with its children (a Celery worker's pool, gunicorn's
workers), idle time included so that time spent waiting for the database counts, while a benchmark
runs. A raw profile (one collapsed stack per line) is written per process, and beside it a summary
of the samples that fall inside the product's work (a Celery task or a Django request): the top
functions by own time and by total time.
"""
import shutil
import signal
import subprocess
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

# A sample is work when its stack holds one of these frames; the rest is waiting for a message or
# a request, or Celery's and gunicorn's own loops.
WORK_FRAMES = ("run_taskrun (workers/tasks.py", "execution_advance (flows/tasks.py", "get_response (django/core/handlers")
OUR_CODE = ("flows/", "workers/", "project/")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    return found


@contextmanager
def recording(directory: Path, pids: dict[str, int], *, rate: int = 200):
    directory.mkdir(parents=True, exist_ok=True)
    binary = py_spy()
    recorders = {
        name: subprocess.Popen([binary, "record", "--pid", str(pid), "--subprocesses", "--idle", "--nonblocking",
                                "--rate", str(rate), "--format", "raw", "--output", str(directory / f"{name}.txt")],
                               stdout=subprocess.DEVNULL, stderr=open(directory / f"{name}.log", "w"))
        for name, pid in pids.items()
    }
    try:
        yield
    finally:
        for recorder in recorders.values():
            recorder.send_signal(signal.SIGINT)
        for recorder in recorders.values():
            try:
                recorder.wait(timeout=60)
            except subprocess.TimeoutExpired:
                recorder.kill()
    for name in pids:
        raw = directory / f"{name}.txt"
        if raw.exists():
            (directory / f"{name}-top.txt").write_text(summary(raw.read_text(), title=f"{directory.name} {name}"))


def function(frame: str) -> str:
    """`name (file.py:12)` → `name (file.py)`: functions, not lines."""
    head, _, tail = frame.rpartition(":")
    return f"{head})" if head and tail.rstrip(")").isdigit() else frame


def summary(raw: str, *, title: str, top: int = 20) -> str:
    own, total, work, samples = Counter(), Counter(), 0, 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        count = int(count)
        samples += count
        if not any(marker in stack for marker in WORK_FRAMES):
            continue
        work += count
        frames = [function(frame) for frame in stack.split(";")]
        frames = frames[next(i for i, frame in enumerate(frames) if any(m in frame for m in WORK_FRAMES)):]
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not work:
        return f"{title}: no samples inside a task or request ({samples} samples in all)\n"

    def table(counter, keep=lambda frame: True):
        rows = [(n, f) for f, n in counter.most_common() if keep(f)][:top]
        return "\n".join(f"  {n / work * 100:5.1f}%  {f}" for n, f in rows)

    ours = lambda frame: any(f"({prefix}" in frame for prefix in OUR_CODE)  # noqa: E731
    return (f"{title}: {work} samples inside a task or request, of {samples} ({work / samples * 100:.0f}%)\n"
            f"by own time:\n{table(own)}\n"
            f"by total time, our code:\n{table(total, ours)}\n"
            f"by total time, all:\n{table(total)}\n")


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(summary(Path(path).read_text(), title=path))
