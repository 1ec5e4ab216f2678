"""The processes of a benchmark run, each in a session of its own: a redis-server, a PostgreSQL
cluster (initdb in a temporary directory, free loopback port), and the product's processes.

A Ctrl-C in the terminal reaches only the bench's own Python processes, which then stop what they
started: a process is stopped with its whole process group (a Celery worker's pool, gunicorn's
workers), SIGTERM first, SIGKILL after a grace period. Every process group started is also written
to `<directory>/pgids`, so that run.py can stop what a crashed suite left behind.
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
    return value


def stop_group(pgid: int, *, grace: float = 20.0, first: int = signal.SIGTERM,
               leader: subprocess.Popen | None = None) -> None:
    """`first` (SIGTERM) to a process group, SIGKILL to what is left after `grace` seconds. The
    group's `leader`, when it is our child, is reaped on the way (a zombie still counts as there)."""
    for sig, wait in ((first, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if leader is not None:
                leader.poll()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def stop_recorded(directory: Path) -> None:
    """Stops every process group recorded under `directory` (any depth) that is still there."""
    for path in glob.glob(str(directory / "**" / "pgids"), recursive=True):
        for line in reversed(Path(path).read_text().split()):
            stop_group(int(line), grace=10.0)


class Processes:
    """Processes started for one benchmark run, logged to `<directory>/<name>.log`."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.started: dict[str, subprocess.Popen] = {}
        self.stop_signals: dict[str, int] = {}

    def start(self, name: str, argv: list[str], *, env: dict | None = None, cwd: Path = ROOT,
              user: str | None = None, stop_signal: int = signal.SIGTERM) -> subprocess.Popen:
        log = open(self.directory / f"{name}.log", "ab")
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   **as_user(user))
        log.close()
        self.started[name], self.stop_signals[name] = process, stop_signal
        with open(self.directory / "pgids", "a") as pgids:
            pgids.write(f"{process.pid}\n")
        return process

    def check(self, name: str) -> None:
        """Raises if `name` has exited, with the end of its log."""
        code = self.started[name].poll()
        if code is not None:
            raise RuntimeError(f"{name} exited with status {code}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.directory / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, name: str) -> None:
        process = self.started.pop(name, None)
        if process is not None:
            stop_group(process.pid, first=self.stop_signals.pop(name), leader=process)
            process.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.started)):
            self.stop(name)


def start_redis(processes: Processes) -> str:
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    processes.start("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", str(processes.directory)])

    def answers():
        processes.check("redis")
        try:
            return redis.Redis(port=port).ping()
        except redis.ConnectionError:
            return False

    wait_for(answers, timeout=20, what="redis-server")
    return f"redis://127.0.0.1:{port}"


def as_user(user: str | None) -> dict:
    """Popen arguments that run a process as `user` (PostgreSQL refuses to run as root)."""
    if not user:
        return {}
    import pwd

    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    if shutil.which("initdb"):
        return Path(shutil.which("initdb")).parent
    raise SystemExit("PostgreSQL is not installed (apt-get install postgresql), or run with --db sqlite")


def start_postgres(processes: Processes) -> str:
    """A cluster of our own with the server's default durability (fsync and synchronous_commit on,
    as in production), trust authentication on 127.0.0.1; returns the URL of database `bench`."""
    import psycopg

    bin_dir, data = postgres_bin(), processes.directory / "pgdata"
    user = "postgres" if os.geteuid() == 0 else None  # initdb refuses to run as root
    if user:  # the server's user must reach its directory: ours and its parent are root's, mode 700
        shutil.chown(processes.directory, user)
        os.chmod(processes.directory.parent, 0o711)
    initdb = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--locale=C",
                             "-E", "UTF8"], capture_output=True, text=True, **as_user(user))
    if initdb.returncode:
        raise RuntimeError(f"initdb failed:\n{initdb.stdout}{initdb.stderr}")
    port = free_port()
    processes.start("postgres", [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(processes.directory),
                                 "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
                    user=user, stop_signal=signal.SIGINT)  # SIGINT: fast shutdown, clients or not
    url = f"postgresql://postgres@127.0.0.1:{port}"

    def answers():
        processes.check("postgres")
        try:
            with psycopg.connect(f"{url}/postgres", connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    wait_for(answers, timeout=60, what="PostgreSQL", interval=0.2)
    with psycopg.connect(f"{url}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE bench")
    return f"{url}/bench"


def python_module(*args: str) -> list[str]:
    """A module of this interpreter's environment: `python -m celery ...`, `python -m gunicorn ...`."""
    return [sys.executable, "-m", *args]
