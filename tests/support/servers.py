"""Servers a test owns and may stop, kill and restart: a redis-server that can keep or lose its data,
and a throwaway PostgreSQL cluster (initdb in a temporary directory, on a free loopback port).

Only loopback addresses are used. The PostgreSQL server CI starts for the suite is never touched:
a test that restarts PostgreSQL restarts a cluster of its own.
"""
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from . import _free_port, _ping, wait_for


class RedisServer:
    """A redis-server on 127.0.0.1 that keeps its port across restarts.

    With `persistent`, every write goes to an append-only file fsynced at once, so a stop by SIGTERM
    and a start in the same directory bring every queued message back; `stop(keep_data=False)`
    kills it and deletes its files, as a broker restarted without persistence would lose them."""

    def __init__(self, directory: Path, *, persistent: bool = True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.persistent = persistent
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        persistence = (["--appendonly", "yes", "--appendfsync", "always", "--save", ""] if self.persistent
                       else ["--appendonly", "no", "--save", ""])
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory), *persistence],
            stdout=open(self.directory / "redis.log", "a"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(lambda: _ping(self.client()), timeout=15, message=f"redis-server on port {self.port} to answer")
        return self

    def stop(self, *, keep_data: bool = True) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM if keep_data else signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None
        if not keep_data:
            for path in [*glob.glob(str(self.directory / "appendonly*")), *glob.glob(str(self.directory / "*.rdb"))]:
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


class PostgresCluster:
    """A PostgreSQL cluster of a test's own: initdb in a new temporary directory (one the `postgres`
    user can enter: as root, the server runs as that user), trust authentication for `postgres`,
    listening on 127.0.0.1 and a free port."""

    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="wgc-postgres-"))
        self.port = _free_port()
        self.bin = self._bin_dir()

    @staticmethod
    def _bin_dir() -> Path | None:
        versions = [Path(path).parent for path in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
        if versions:  # the newest, as .ci/run picks it
            return max(versions, key=lambda bin_dir: int(bin_dir.parent.name) if bin_dir.parent.name.isdigit() else 0)
        initdb = shutil.which("initdb")
        return Path(initdb).parent if initdb else None

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        command = list(argv)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result

    def init(self) -> "PostgresCluster":
        if self.bin is None:
            raise RuntimeError("PostgreSQL's initdb is not installed (apt-get install postgresql)")
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.directory / "data"), "-U", "postgres", "-A", "trust",
                  "--locale=C", "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> "PostgresCluster":
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c max_connections=100 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "-l", str(self.directory / "server.log"),
                  "-w", "-t", "60", "-o", options, "start")
        return self

    def stop(self, *, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "-m", mode, "-w", "stop", check=False)

    def running(self) -> bool:
        return self._run(str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "status", check=False).returncode == 0

    def create_database(self, name: str) -> str:
        """Creates database `name`; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        return subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
             "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout

    def destroy(self) -> None:
        if self.directory.exists():
            self.stop(mode="immediate")
            deadline = time.monotonic() + 10
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.2)
            shutil.rmtree(self.directory, ignore_errors=True)
