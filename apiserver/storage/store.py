"""The object store: reads, batched writes with optimistic concurrency, and the change log.

Writes from all requests go through one writer task per process that commits them in batches (group
commit): one transaction takes the resourceVersion counter, checks every operation's precondition
against the current rows, writes the surviving operations and their change-log rows, and commits. A
failed precondition fails only its own operation. On PostgreSQL the counter row is locked for the
transaction, so writers in several processes commit in resourceVersion order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, event, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from apiserver.storage import tables as t
from apiserver.storage.encryption import EncryptionConfig, storage_context
from apiserver.storage.migrate import upgrade
from apiserver.storage.records import (
    EVENT_CODES,
    Change,
    Key,
    ListPage,
    Plan,
    ResourceVersionExpired,
    Stored,
    Write,
    plan_batch,
)
from apiserver.storage.sqlite import (
    SQL_COUNTER,
    SQL_DELETE,
    SQL_GET,
    SQL_LOG,
    SQL_SET_COUNTER,
    SQL_UPSERT,
    SQLITE_BEGIN,
    SqliteReader,
    SqliteWriter,
    sqlite_begin,
    sqlite_file,
    sqlite_pragmas,
)

log = logging.getLogger("skiff.storage")

MAX_BATCH = 256


class Store:
    """Async access to the object table and the change log."""

    def __init__(self, url: str, on_commit: Callable[[list[Change]], None] | None = None) -> None:
        self.url = url
        self.engine: AsyncEngine = self._make_engine(url)
        self.dialect = self.engine.dialect.name
        # Single-statement reads need no transaction around them: on PostgreSQL, autocommit saves the
        # BEGIN and ROLLBACK round trips that a transaction per read would cost.
        self._reads: AsyncEngine = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT") if self.dialect == "postgresql" else self.engine
        )
        self.on_commit = on_commit
        self._queue: asyncio.Queue[Write] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.write_latency: Callable[[float], None] | None = None
        # Encryption at rest (--encryption-provider-config): applied to object and change-log data only.
        self.encryption: EncryptionConfig | None = None
        self._reader: SqliteReader | None = None
        self._sqlite_writer: SqliteWriter | None = None

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @staticmethod
    def _make_engine(url: str) -> AsyncEngine:
        if url.startswith("sqlite"):
            engine = create_async_engine(url, pool_size=4, max_overflow=4)
            event.listen(engine.sync_engine, "connect", sqlite_pragmas)
            event.listen(engine.sync_engine, "begin", sqlite_begin)
            return engine
        # No pool_pre_ping: on asyncpg it costs three round trips (BEGIN, a ping, ROLLBACK) per checkout,
        # more than most reads themselves. A connection found broken is invalidated with the rest of the
        # pool by the error it raises; recycling bounds how long an idle connection is kept.
        return create_async_engine(url, pool_size=8, max_overflow=8, pool_recycle=1800)

    async def open(self) -> None:
        await upgrade(self.engine)
        path = sqlite_file(self.url) if not self.is_postgres else None
        if path is not None:
            self._reader = SqliteReader(path)
            self._sqlite_writer = SqliteWriter(path)
        self._writer = asyncio.create_task(self._write_loop(), name="store-writer")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._sqlite_writer is not None:
            await self._sqlite_writer.close()
            self._sqlite_writer = None
        await self.engine.dispose()

    # -- reads --------------------------------------------------------------------------------------
    async def current_rv(self) -> int:
        if self._reader is not None:
            return self._reader.counter(t.RESOURCE_VERSION)
        async with self._reads.connect() as conn:
            return await self._counter(conn, t.RESOURCE_VERSION)

    async def compacted_rv(self) -> int:
        if self._reader is not None:
            return self._reader.counter(t.COMPACTED)
        async with self._reads.connect() as conn:
            return await self._counter(conn, t.COMPACTED)

    @staticmethod
    async def _counter(conn: AsyncConnection, key: str) -> int:
        result = await conn.execute(select(t.counters.c.value).where(t.counters.c.key == key))
        return int(result.scalar_one())

    async def get(self, resource: str, namespace: str, name: str) -> Stored | None:
        if self._reader is not None:
            found = self._reader.rows(SQL_GET, (resource, namespace, name))
            if not found:
                return None
            rv, raw = found[0]
            data, stale = self._open(resource, namespace, name, raw)
            return Stored(rv, data, stale=stale)
        o = t.objects.c
        query = select(o.rv, o.data).where(o.resource == resource, o.namespace == namespace, o.name == name)
        async with self._reads.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        data, stale = self._open(resource, namespace, name, row.data)
        return Stored(row.rv, data, stale=stale)

    async def list(
        self,
        resource: str,
        namespace: str | None,
        *,
        after: tuple[str, str] | None = None,
        limit: int | None = None,
        name: str | None = None,
    ) -> ListPage:
        """Read the objects of one resource (optionally one namespace) in key order, from one snapshot."""
        if self._reader is not None:
            return self._list_sqlite(self._reader, resource, namespace, after, limit, name)
        o = t.objects.c
        query = select(o.namespace, o.name, o.data).where(o.resource == resource)
        if namespace is not None:
            query = query.where(o.namespace == namespace)
        if name is not None:
            query = query.where(o.name == name)
        if after is not None:
            query = query.where(tuple_(o.namespace, o.name) > tuple_(*after))
        query = query.order_by(o.namespace, o.name)
        if limit:
            query = query.limit(limit + 1)
        async with self._snapshot() as conn:
            rv = await self._counter(conn, t.RESOURCE_VERSION)
            rows = [
                (r.namespace, r.name, self._open(resource, r.namespace, r.name, r.data)[0])
                for r in await conn.execute(query)
            ]
        more = bool(limit) and len(rows) > (limit or 0)
        if more:
            rows = rows[:limit]
        return ListPage(rv, rows, more)

    def _list_sqlite(
        self,
        reader: SqliteReader,
        resource: str,
        namespace: str | None,
        after: tuple[str, str] | None,
        limit: int | None,
        name: str | None,
    ) -> ListPage:
        sql = "SELECT namespace, name, data FROM objects WHERE resource = ?"
        params: list[Any] = [resource]
        if namespace is not None:
            sql += " AND namespace = ?"
            params.append(namespace)
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        if after is not None:
            sql += " AND (namespace, name) > (?, ?)"
            params += after
        sql += " ORDER BY namespace, name"
        if limit:
            sql += " LIMIT ?"
            params.append(limit + 1)
        with reader.snapshot():
            rv = reader.counter(t.RESOURCE_VERSION)
            found = reader.rows(sql, tuple(params))
        more = bool(limit) and len(found) > (limit or 0)
        if more:
            found = found[:limit]
        if self.encryption is None:
            return ListPage(rv, found, more)
        return ListPage(rv, [(ns, nm, self._open(resource, ns, nm, data)[0]) for ns, nm, data in found], more)

    async def count(self, resource: str, namespace: str | None = None) -> int:
        o = t.objects.c
        query = select(func.count()).select_from(t.objects).where(o.resource == resource)
        if namespace is not None:
            query = query.where(o.namespace == namespace)
        async with self._reads.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    @contextlib.asynccontextmanager
    async def _write_transaction(self):  # type: ignore[no-untyped-def]
        async with self.engine.connect() as conn:
            if not self.is_postgres:
                conn = await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                yield conn

    @contextlib.asynccontextmanager
    async def _snapshot(self):  # type: ignore[no-untyped-def]
        async with self.engine.connect() as conn:
            if self.is_postgres:
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                yield conn

    async def changes_since(self, after_rv: int, until_rv: int | None = None, limit: int = 5000) -> list[Change]:
        """Read the change log after `after_rv`, in order. Raises ResourceVersionExpired when compacted."""
        if self._reader is not None:
            rows = self._changes_sqlite(self._reader, after_rv, until_rv, limit)
        else:
            rows = await self._changes_db(after_rv, until_rv, limit)
        return [
            Change(
                rv,
                t.EVENT_NAMES[code],
                resource,
                namespace,
                name,
                self._open(resource, namespace, name, data)[0],
            )
            for rv, code, resource, namespace, name, data in rows
        ]

    @staticmethod
    def _changes_sqlite(reader: SqliteReader, after_rv: int, until_rv: int | None, limit: int) -> list[Any]:
        sql = "SELECT rv, event, resource, namespace, name, data FROM changes WHERE rv > ?"
        params: list[Any] = [after_rv]
        if until_rv is not None:
            sql += " AND rv <= ?"
            params.append(until_rv)
        sql += " ORDER BY rv LIMIT ?"
        params.append(limit)
        with reader.snapshot():
            compacted = reader.counter(t.COMPACTED)
            if after_rv < compacted:
                raise ResourceVersionExpired(after_rv, compacted)
            return reader.rows(sql, tuple(params))

    async def _changes_db(self, after_rv: int, until_rv: int | None, limit: int) -> list[Any]:
        c = t.changes.c
        query = select(c.rv, c.event, c.resource, c.namespace, c.name, c.data).where(c.rv > after_rv)
        if until_rv is not None:
            query = query.where(c.rv <= until_rv)
        query = query.order_by(c.rv).limit(limit)
        if self.is_postgres:
            # Two autocommit statements instead of a snapshot transaction: the rows first, then the mark.
            # Compaction deletes entries and raises the mark in one transaction, so a mark read after the
            # rows that is still at or below `after_rv` proves no entry the rows should hold was deleted.
            async with self._reads.connect() as conn:
                rows = list((await conn.execute(query)).all())
                compacted = await self._counter(conn, t.COMPACTED)
            if after_rv < compacted:
                raise ResourceVersionExpired(after_rv, compacted)
            return rows
        async with self._snapshot() as conn:
            compacted = await self._counter(conn, t.COMPACTED)
            if after_rv < compacted:
                raise ResourceVersionExpired(after_rv, compacted)
            return list((await conn.execute(query)).all())

    def _open(self, resource: str, namespace: str, name: str, data: bytes) -> tuple[bytes, bool]:
        """Stored bytes → object JSON, and whether they were sealed with an older key (stale)."""
        transformer = self.encryption.for_resource(resource) if self.encryption is not None else None
        if transformer is None:
            return data, False
        return transformer.from_storage(data, storage_context(resource, namespace, name))

    def _seal(self, resource: str, namespace: str, name: str, data: bytes) -> bytes:
        """Object JSON → the bytes the database keeps (ciphertext for encrypted resources)."""
        transformer = self.encryption.for_resource(resource) if self.encryption is not None else None
        if transformer is None:
            return data
        return transformer.to_storage(data, storage_context(resource, namespace, name))

    async def resources_in_namespace(self, namespace: str) -> list[tuple[str, str]]:
        o = t.objects.c
        query = select(o.resource, o.name).where(o.namespace == namespace)
        async with self.engine.connect() as conn:
            return [(r.resource, r.name) for r in await conn.execute(query)]

    # -- writes -------------------------------------------------------------------------------------
    async def create(self, resource: str, namespace: str, name: str, obj: dict[str, Any]) -> Stored:
        return await self._submit("create", (resource, namespace, name), obj, None)

    async def update(
        self, resource: str, namespace: str, name: str, obj: dict[str, Any], expected_rv: int | None
    ) -> Stored:
        return await self._submit("update", (resource, namespace, name), obj, expected_rv)

    async def delete(
        self, resource: str, namespace: str, name: str, obj: dict[str, Any], expected_rv: int | None
    ) -> Stored:
        """Remove an object; `obj` is its final state, which the DELETED event carries."""
        return await self._submit("delete", (resource, namespace, name), obj, expected_rv)

    async def _submit(self, op: str, key: Key, obj: dict[str, Any], expected_rv: int | None) -> Stored:
        write = Write(op, key, obj, expected_rv)
        self._queue.put_nowait(write)
        return await write.future

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            started = time.perf_counter()
            try:
                changes = await self._commit(batch)
            except Exception as exc:  # a database failure fails the whole batch, never the loop
                log.exception("storage write failed")
                for write in batch:
                    if not write.future.done():
                        write.future.set_exception(exc)
                continue
            if self.write_latency is not None:
                self.write_latency(time.perf_counter() - started)
            if self.on_commit is not None and changes:
                self.on_commit(changes)

    async def _commit(self, batch: list[Write]) -> list[Change]:
        if self._sqlite_writer is not None:
            plan = await self._sqlite_writer.run(lambda conn: self._commit_sqlite(conn, batch))
        else:
            plan = await self._commit_db(batch)
        for write, outcome in plan.outcomes:
            if isinstance(outcome, Exception):
                write.future.set_exception(outcome)
            else:
                write.future.set_result(outcome)
        return plan.changes

    def _commit_sqlite(self, conn: sqlite3.Connection, batch: list[Write]) -> Plan:
        """One batch inside the writer thread's open transaction (see `SqliteWriter`)."""
        rv = int(conn.execute(SQL_COUNTER, (t.RESOURCE_VERSION,)).fetchone()[0])
        keys = list({w.key for w in batch})
        placeholders = "VALUES " + ", ".join(["(?, ?, ?)"] * len(keys))
        sql = f"SELECT resource, namespace, name, rv FROM objects WHERE (resource, namespace, name) IN ({placeholders})"
        found = conn.execute(sql, [part for key in keys for part in key])
        current = {(resource, namespace, name): version for resource, namespace, name, version in found}
        plan = plan_batch(batch, current, rv)
        if not plan.changes:
            return plan
        removed = [key for key, state in plan.final.items() if state is None]
        if removed:
            conn.executemany(SQL_DELETE, removed)
        present = [
            (
                state["resource"],
                state["namespace"],
                state["name"],
                state["uid"],
                state["rv"],
                self._seal(state["resource"], state["namespace"], state["name"], state["data"]),
            )
            for state in plan.final.values()
            if state is not None
        ]
        if present:
            conn.executemany(SQL_UPSERT, present)
        now = time.time()
        conn.executemany(
            SQL_LOG,
            [
                (
                    ch.rv,
                    ch.resource,
                    ch.namespace,
                    ch.name,
                    EVENT_CODES[ch.event],
                    now,
                    self._seal(ch.resource, ch.namespace, ch.name, ch.data),
                )
                for ch in plan.changes
            ],
        )
        conn.execute(SQL_SET_COUNTER, (plan.last_rv, t.RESOURCE_VERSION))
        return plan

    async def _commit_db(self, batch: list[Write]) -> Plan:
        async with self._write_transaction() as conn:
            counter = select(t.counters.c.value).where(t.counters.c.key == t.RESOURCE_VERSION)
            rv = int((await conn.execute(counter.with_for_update())).scalar_one())
            current = await self._current_versions(conn, {w.key for w in batch})
            plan = plan_batch(batch, current, rv)
            if plan.changes:
                await self._apply_plan(conn, plan)
                advance = update(t.counters).where(t.counters.c.key == t.RESOURCE_VERSION).values(value=plan.last_rv)
                if self.is_postgres:
                    # Wake the change-log tailers (delivered at commit) in the same round trip.
                    advance = advance.returning(func.pg_notify("skiff_changes", ""))
                await conn.execute(advance)
        return plan

    @staticmethod
    async def _current_versions(conn: AsyncConnection, keys: set[Key]) -> dict[Key, int]:
        o = t.objects.c
        query = select(o.resource, o.namespace, o.name, o.rv).where(
            tuple_(o.resource, o.namespace, o.name).in_(list(keys))
        )
        return {(r.resource, r.namespace, r.name): r.rv for r in await conn.execute(query)}

    async def _apply_plan(self, conn: AsyncConnection, plan: Plan) -> None:
        o = t.objects.c
        removed = [key for key, state in plan.final.items() if state is None]
        present = [
            {**state, "data": self._seal(state["resource"], state["namespace"], state["name"], state["data"])}
            for state in plan.final.values()
            if state is not None
        ]
        for key in removed:
            await conn.execute(delete(t.objects).where(o.resource == key[0], o.namespace == key[1], o.name == key[2]))
        if present:
            insert = (postgresql.insert if self.is_postgres else sqlite.insert)(t.objects)
            upsert = insert.on_conflict_do_update(
                index_elements=[o.resource, o.namespace, o.name],
                set_={"uid": insert.excluded.uid, "rv": insert.excluded.rv, "data": insert.excluded.data},
            )
            await conn.execute(upsert, present)
        now = time.time()
        await conn.execute(
            t.changes.insert(),
            [
                {
                    "rv": ch.rv,
                    "resource": ch.resource,
                    "namespace": ch.namespace,
                    "name": ch.name,
                    "event": EVENT_CODES[ch.event],
                    "ts": now,
                    "data": self._seal(ch.resource, ch.namespace, ch.name, ch.data),
                }
                for ch in plan.changes
            ],
        )

    # -- maintenance --------------------------------------------------------------------------------
    async def compact(self, window_seconds: float) -> int:
        """Drop change-log entries older than the window; returns the new compacted resourceVersion."""
        c = t.changes.c
        cutoff = time.time() - window_seconds
        async with self._write_transaction() as conn:
            # Lock the mark first: API servers sharing a database compact concurrently, and one that read
            # the mark before another committed would otherwise move it back over deleted entries.
            mark = select(t.counters.c.value).where(t.counters.c.key == t.COMPACTED).with_for_update()
            compacted = int((await conn.execute(mark)).scalar_one())
            newest_old = (await conn.execute(select(func.max(c.rv)).where(c.ts < cutoff))).scalar_one()
            if newest_old is None or newest_old <= compacted:
                return compacted
            await conn.execute(delete(t.changes).where(c.rv <= newest_old))
            await conn.execute(update(t.counters).where(t.counters.c.key == t.COMPACTED).values(value=newest_old))
            return int(newest_old)

    async def log_size(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(t.changes))).scalar_one())
