"""The worker loop every controller shares: take a key, reconcile it, retry it with backoff on failure.

A reconcile function reads current state (usually from informer caches) and drives the cluster toward
the desired state for one key. It may return a number of seconds to look at the key again later
(for deadlines and periodic checks); raising requeues the key with its per-key exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, Protocol

from skiff.runtime.workqueue import KeyT, QueueShutDown, WorkQueue

Reconcile = Callable[[KeyT], Awaitable[float | None]]


class Syncable(Protocol):
    async def wait_synced(self, timeout: float | None = None) -> bool: ...


class Controller(Generic[KeyT]):
    """Runs `workers` concurrent workers over one `WorkQueue`; no key is ever worked on twice at once."""

    def __init__(
        self,
        name: str,
        reconcile: Reconcile[KeyT],
        workers: int = 1,
        queue: WorkQueue[KeyT] | None = None,
        wait_for: Iterable[Syncable] = (),
        logger: logging.Logger | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a controller needs at least one worker")
        self.name = name
        self.queue: WorkQueue[KeyT] = queue if queue is not None else WorkQueue()
        self._reconcile = reconcile
        self._workers = workers
        self._wait_for = list(wait_for)
        self._log = logger or logging.getLogger(f"skiff.controller.{name}")

    def enqueue(self, key: KeyT) -> None:
        self.queue.add(key)

    async def run(self) -> None:
        """Wait for the informers to sync, then work until cancelled or the queue is shut down."""
        for informer in self._wait_for:
            await informer.wait_synced()
        self._log.info("starting %d worker(s)", self._workers)
        workers = [asyncio.create_task(self._worker(), name=f"{self.name}-{i}") for i in range(self._workers)]
        try:
            await asyncio.gather(*workers)
        finally:
            self.queue.shutdown()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: KeyT) -> None:
        try:
            requeue_after = await self._reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            retries = self.queue.num_requeues(key)
            self._log.exception("reconciling %s failed (retry %d)", _shown(key), retries + 1)
            self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        if requeue_after is not None:
            self.queue.add_after(key, requeue_after)


def _shown(key: Hashable) -> str:
    return key if isinstance(key, str) else repr(key)
