"""SQLite access outside SQLAlchemy's async adapter, where thread hops cost more than the queries.

Reads run on a plain `sqlite3` connection on the event loop's thread (a primary-key read in WAL mode takes
microseconds); each batch of writes runs as one transaction on its own connection in one worker thread.
The engine hooks below make SQLAlchemy's SQLite connections (migrations, compaction) behave the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import make_url

from apiserver.storage.records import Plan


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver so that SQLAlchemy's own BEGIN (below) opens a real transaction for
    # reads too: a list must read the counter and the rows from one snapshot.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL keeps every committed transaction across a process crash (kill -9); only an OS crash or
    # power loss can drop the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def sqlite_begin(connection: Any) -> None:
    # A write transaction takes the write lock up front (BEGIN IMMEDIATE, waiting up to busy_timeout):
    # a deferred one that read first and then tries to write fails with "database is locked" at once
    # if another connection (the compactor) committed in between, which would fail a whole batch.
    mode = connection.get_execution_options().get(SQLITE_BEGIN, "")
    connection.exec_driver_sql(f"BEGIN {mode}".rstrip())


SQLITE_BEGIN = "skiff_sqlite_begin"


def sqlite_file(url: str) -> str | None:
    """The database file of a file-backed SQLite URL (None for in-memory or URI databases)."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.query or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return database


class SqliteReader:
    """Reads served on the event loop's thread through a plain sqlite3 connection.

    A read in WAL mode never waits for the writer and a primary-key read takes microseconds, far less
    than handing each statement to a driver thread and back. The connection is in autocommit mode, so a
    single statement reads the newest committed state; `snapshot` wraps several in one read transaction.
    """

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.conn.execute("PRAGMA query_only=1")

    def rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    def counter(self, key: str) -> int:
        return int(self.rows(SQL_COUNTER, (key,))[0][0])

    @contextlib.contextmanager
    def snapshot(self):  # type: ignore[no-untyped-def]
        self.conn.execute("BEGIN")
        try:
            yield self
        finally:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


SQL_COUNTER = "SELECT value FROM counters WHERE key = ?"
SQL_GET = "SELECT rv, data FROM objects WHERE resource = ? AND namespace = ? AND name = ?"
SQL_SET_COUNTER = "UPDATE counters SET value = ? WHERE key = ?"
SQL_DELETE = "DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?"
SQL_UPSERT = (
    "INSERT INTO objects (resource, namespace, name, uid, rv, data) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (resource, namespace, name) DO UPDATE SET uid = excluded.uid, rv = excluded.rv, data = excluded.data"
)
SQL_LOG = "INSERT INTO changes (rv, resource, namespace, name, event, ts, data) VALUES (?, ?, ?, ?, ?, ?, ?)"


class SqliteWriter:
    """The writer's batches committed through a plain sqlite3 connection, one worker-thread hop per batch.

    The whole transaction (BEGIN IMMEDIATE, counter, preconditions, writes, COMMIT) runs in a single
    dedicated thread, so the event loop hands a batch over once instead of once per statement.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-sqlite-writer")

    def _connect(self) -> sqlite3.Connection:
        if self.conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA synchronous=NORMAL")
            self.conn = conn
        return self.conn

    async def run(self, fn: Callable[[sqlite3.Connection], Plan]) -> Plan:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._transaction, fn)

    def _transaction(self, fn: Callable[[sqlite3.Connection], Plan]) -> Plan:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            plan = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return plan

    def _close_conn(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    async def close(self) -> None:
        # On the writer thread, after any batch still running there.
        await asyncio.get_running_loop().run_in_executor(self.executor, self._close_conn)
        self.executor.shutdown(wait=False)
