"""Watch fan-out: a window of recent changes in memory and the watchers that follow it.

Every committed change reaches `publish` exactly once and in resourceVersion order (from the local
writer on SQLite, from the change-log tailer on PostgreSQL). A watcher that starts inside the window is
served from memory; one that starts before it is first served from the change log in the database.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

from apiserver.storage.records import Change

DEFAULT_WINDOW = 50_000
WATCHER_QUEUE = 10_000


class Watcher:
    """One open watch: a queue of changes for one resource, optionally one namespace."""

    def __init__(self, hub: WatchHub, resource: str, namespace: str | None, after_rv: int) -> None:
        self.hub = hub
        self.resource = resource
        self.namespace = namespace
        self.after_rv = after_rv
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(maxsize=WATCHER_QUEUE)
        # Set when the watcher fell behind the window and must first read the log from the database,
        # up to and including this rv; live changes after it are already queued.
        self.backfill_until: int | None = None

    def offer(self, change: Change) -> None:
        if change.rv <= self.after_rv:
            return
        if self.namespace is not None and change.namespace != self.namespace:
            return
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            # A consumer this slow would hold unbounded memory; end its watch so that it re-lists.
            self.hub.unsubscribe(self)
            self._wake()

    def _wake(self) -> None:
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self.queue.get_nowait()
            self.queue.put_nowait(None)

    def close(self) -> None:
        self.hub.unsubscribe(self)
        self._wake()


class WatchHub:
    def __init__(self, head_rv: int = 0, window: int = DEFAULT_WINDOW) -> None:
        self.window: deque[Change] = deque(maxlen=window)
        self.head_rv = head_rv
        # Every change after this rv is in the window.
        self.window_start_rv = head_rv
        self._watchers: dict[str, set[Watcher]] = {}
        self._head_waiters: list[tuple[int, asyncio.Future[None]]] = []

    def publish(self, changes: Iterable[Change]) -> None:
        for change in changes:
            if change.rv <= self.head_rv:
                continue  # already delivered (a tailer re-read after a reconnect)
            if len(self.window) == self.window.maxlen:
                self.window_start_rv = self.window[0].rv
            self.window.append(change)
            self.head_rv = change.rv
            for watcher in tuple(self._watchers.get(change.resource, ())):
                watcher.offer(change)
        self._release_head_waiters()

    def compacted(self, rv: int) -> None:
        """The change log was compacted through `rv`: watches from before it must get 410 Gone here too.

        Without this the window would keep serving versions the log no longer has, so whether a watch
        from an old version works would depend on which API server it reached and when that one started.
        """
        rv = min(rv, self.head_rv)
        if rv <= self.window_start_rv:
            return
        while self.window and self.window[0].rv <= rv:
            self.window.popleft()
        self.window_start_rv = rv

    def restart_at(self, rv: int) -> None:
        """Continue after `rv`, skipping changes that can no longer be read, and end every open watch.

        The tailer calls this when it fell behind compaction: the changes it missed are gone, so no
        watcher here can be served in order. Their clients re-watch, get 410 Gone and re-list.
        """
        self.window.clear()
        self.head_rv = max(self.head_rv, rv)
        self.window_start_rv = self.head_rv
        self.close_all()
        self._release_head_waiters()

    def subscribe(self, resource: str, namespace: str | None, after_rv: int) -> Watcher:
        """Start a watcher for changes after `after_rv`. Runs without awaiting, so no change slips by."""
        watcher = Watcher(self, resource, namespace, after_rv)
        if after_rv < self.window_start_rv:
            watcher.backfill_until = self.window_start_rv
            replay_from = self.window_start_rv
        else:
            replay_from = after_rv
        for change in self._window_after(replay_from):
            if change.resource == resource:
                watcher.offer(change)
        self._watchers.setdefault(resource, set()).add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        watchers = self._watchers.get(watcher.resource)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[watcher.resource]

    def _window_after(self, rv: int) -> list[Change]:
        if not self.window or self.window[-1].rv <= rv:
            return []
        # Walk back from the newest end: watchers almost always start near the head.
        newer: list[Change] = []
        for change in reversed(self.window):
            if change.rv <= rv:
                break
            newer.append(change)
        newer.reverse()
        return newer

    async def wait_for(self, rv: int, timeout: float) -> bool:
        """Wait until changes up to `rv` have been published here (another process wrote them)."""
        if self.head_rv >= rv:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._head_waiters.append((rv, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
            return True
        except TimeoutError:
            return False

    def _release_head_waiters(self) -> None:
        if not self._head_waiters:
            return
        still = []
        for rv, future in self._head_waiters:
            if rv <= self.head_rv:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((rv, future))
        self._head_waiters = still

    def close_all(self) -> None:
        for watchers in list(self._watchers.values()):
            for watcher in list(watchers):
                watcher.close()
