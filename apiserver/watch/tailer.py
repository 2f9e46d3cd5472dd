"""Follow the change log in PostgreSQL so that every API server process sees every write, in order.

Writers lock the resourceVersion counter until they commit, so the log is always committed as a gap-free
prefix: reading `rv > last` in order never skips an event. NOTIFY wakes the tailer at once; a short
poll covers a lost notification or a dropped listener connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from apiserver.storage.records import Change, ResourceVersionExpired
from apiserver.storage.store import Store
from apiserver.watch.hub import WatchHub

log = logging.getLogger("skiff.watch")

POLL_SECONDS = 1.0
CHANNEL = "skiff_changes"


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class ChangeTailer:
    def __init__(self, store: Store, hub: WatchHub, publish: Callable[[list[Change]], None]) -> None:
        self.store = store
        self.hub = hub
        self.publish = publish
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None

    def poke(self) -> None:
        """Read the log now (called after a local commit, so local writes show up without waiting)."""
        self._wake.set()

    async def start(self) -> None:
        await self._listen()
        self._task = asyncio.create_task(self._run(), name="change-tailer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()

    async def _listen(self) -> None:
        try:
            self._listener = await asyncpg.connect(asyncpg_dsn(self.store.url))
            await self._listener.add_listener(CHANNEL, lambda *_: self._wake.set())
        except (OSError, asyncpg.PostgresError):
            log.warning("change notifications unavailable; following the log by polling")
            self._listener = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()
            try:
                await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading the change log failed; retrying")
                await asyncio.sleep(POLL_SECONDS)
            if self._listener is None or self._listener.is_closed():
                await self._listen()

    async def _drain(self) -> None:
        while True:
            try:
                changes = await self.store.changes_since(self.hub.head_rv)
            except ResourceVersionExpired as expired:
                # Another process compacted changes this one never read; they cannot be delivered.
                log.warning(
                    "the change log was compacted past this server's position (%d < %d); "
                    "ending open watches so that their clients re-list",
                    expired.requested,
                    expired.compacted,
                )
                self.hub.restart_at(expired.compacted)
                continue
            if not changes:
                return
            self.publish(changes)
