"""A rate-limited work queue of object keys, with client-go's guarantees.

- A key is queued at most once: adding a key that is already waiting does nothing.
- A key is never handed to two workers at once: a key added while a worker holds it is remembered
  and queued again (once) when that worker calls `done`.
- `add_after` delays a key; of several pending delays for one key the earliest wins.
- `add_rate_limited` delays a key by its own exponential backoff; `forget` resets that backoff.

The queue lives on one asyncio event loop; `add` and friends are plain calls, safe from informer
handlers, and `get` is awaited by workers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from skiff.runtime.backoff import ExponentialBackoff

KeyT = TypeVar("KeyT", bound=Hashable)


class QueueShutDown(Exception):
    """`get` was called on a queue that is shut down and empty."""


class WorkQueue(Generic[KeyT]):
    def __init__(self, rate_limiter: ExponentialBackoff | None = None) -> None:
        self.rate_limiter = rate_limiter or ExponentialBackoff()
        self._queue: deque[KeyT] = deque()
        # Keys that need processing: queued, or added again while a worker holds them.
        self._dirty: set[KeyT] = set()
        self._processing: set[KeyT] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        # Delayed adds: key -> (loop time it becomes due, its timer)
        self._delayed: dict[KeyT, tuple[float, asyncio.TimerHandle]] = {}
        self._shutting_down = False

    # Adding

    def add(self, key: KeyT) -> None:
        """Queue `key` unless it is already queued; ignored after `shutdown`."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # `done` queues it again
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: KeyT, delay: float) -> None:
        """Queue `key` once `delay` seconds have passed (at once when `delay <= 0`)."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._delayed.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        self._delayed[key] = (due, loop.call_at(due, self._add_delayed, key))

    def add_rate_limited(self, key: KeyT) -> None:
        """Queue `key` after its backoff, which doubles with each call until `forget(key)`."""
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: KeyT) -> None:
        """Reset `key`'s backoff, typically after it was processed successfully."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: KeyT) -> int:
        return self.rate_limiter.retries(key)

    def _add_delayed(self, key: KeyT) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    # Taking

    async def get(self) -> KeyT:
        """The next key, waiting for one. Raises `QueueShutDown` once shut down and drained."""
        while not self._queue:
            if self._shutting_down:
                raise QueueShutDown
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: KeyT) -> None:
        """Mark `key` finished; if it was added meanwhile, it is queued again now."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # Lifecycle

    def shutdown(self) -> None:
        """Stop accepting keys and drop delayed ones; workers drain what is queued, then get
        `QueueShutDown`."""
        self._shutting_down = True
        for _, timer in self._delayed.values():
            timer.cancel()
        self._delayed.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def __len__(self) -> int:
        """Keys waiting to be handed out (not those being processed or delayed)."""
        return len(self._queue)

    def pending_delayed(self) -> int:
        return len(self._delayed)
