"""The floor: the bare orchestration chain this design cannot beat (bench/README.md).

One step is what a sequential step must do at the least: claim the task run with a conditional
`UPDATE ... WHERE id=? AND state='CREATED'` (its own commit), then in one transaction write its
result and `INSERT` the next task run, and publish the next id on Redis, where a separate worker
process `BLPOP`s it. No Django, no expressions, no Celery; the same database settings as the
product (SQLite: WAL, synchronous=NORMAL, BEGIN IMMEDIATE).

    python bench/floor.py worker DATABASE_URL REDIS_URL   # the worker; run.py starts it
"""
import sqlite3
import sys
import time
from urllib.parse import urlparse

import redis

QUEUE, DONE, STOP = "floor:queue", "floor:done", b"stop"


class Database:
    def __init__(self, url: str):
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            self.conn = sqlite3.connect(urlparse(url).path, isolation_level=None, timeout=30)
            self.conn.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;")
        else:
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True)
        self.serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if self.sqlite else "BIGSERIAL PRIMARY KEY"

    def run(self, sql: str, *params):
        return self.conn.execute(sql if self.sqlite else sql.replace("?", "%s"), params)

    def transaction(self, *statements) -> list:
        """Runs (sql, params) pairs in one transaction; returns the rows of the last."""
        self.run("BEGIN IMMEDIATE" if self.sqlite else "BEGIN")
        try:
            for sql, params in statements:
                cursor = self.run(sql, *params)
                rows = cursor.fetchall() if cursor.description else []
            self.run("COMMIT")
        except BaseException:
            self.run("ROLLBACK")
            raise
        return rows

    def create_table(self):
        self.run(f"CREATE TABLE IF NOT EXISTS floor_taskrun (id {self.serial}, chain INTEGER NOT NULL, "
                 "step INTEGER NOT NULL, steps INTEGER NOT NULL, state VARCHAR(10) NOT NULL, result TEXT)")


def worker(database_url: str, redis_url: str) -> None:
    db, broker = Database(database_url), redis.Redis.from_url(redis_url)
    while (raw := broker.blpop([QUEUE])[1]) != STOP:
        claimed = db.run("UPDATE floor_taskrun SET state='RUNNING' WHERE id=? AND state='CREATED' "
                         "RETURNING chain, step, steps", int(raw)).fetchall()
        if len(claimed) != 1:
            continue
        chain, step, steps = claimed[0]
        finish = ("UPDATE floor_taskrun SET state='SUCCESS', result=? WHERE id=?", (str(step), int(raw)))
        if step + 1 == steps:
            db.transaction(finish)
            broker.rpush(DONE, chain)
            continue
        insert = ("INSERT INTO floor_taskrun (chain, step, steps, state) VALUES (?, ?, ?, 'CREATED') RETURNING id",
                  (chain, step + 1, steps))
        next_id = db.transaction(finish, insert)[0][0]
        broker.rpush(QUEUE, next_id)


class Chain:
    """The driver's side: start a chain of `steps` and wait for its last step (the worker runs apart)."""

    def __init__(self, database_url: str, redis_url: str):
        self.db, self.broker = Database(database_url), redis.Redis.from_url(redis_url)
        self.db.create_table()
        self.chains = 0

    def run(self, steps: int) -> float:
        """Seconds from inserting the first task run to the worker publishing that the last ended."""
        self.chains += 1
        started = time.perf_counter()
        first = self.db.run("INSERT INTO floor_taskrun (chain, step, steps, state) VALUES (?, 0, ?, 'CREATED') "
                            "RETURNING id", self.chains, steps).fetchone()[0]
        self.broker.rpush(QUEUE, first)
        done = self.broker.blpop([DONE], timeout=60)
        if done is None or int(done[1]) != self.chains:
            raise RuntimeError(f"floor chain {self.chains} did not end (got {done})")
        return time.perf_counter() - started

    def stop_worker(self) -> None:
        self.broker.rpush(QUEUE, STOP)


if __name__ == "__main__":
    if sys.argv[1:2] != ["worker"] or len(sys.argv) != 4:
        raise SystemExit(__doc__)
    worker(sys.argv[2], sys.argv[3])
