"""Exponential backoff: per key for the work queue, single-stream for the informer's reconnects."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Hashable

# client-go's default controller rate limiter: 5 ms, doubling per failure, capped at 1000 s.
DEFAULT_BASE_DELAY = 0.005
DEFAULT_MAX_DELAY = 1000.0


class ExponentialBackoff:
    """Per-key delays that double with each failure of that key until `forget` resets it."""

    def __init__(self, base_delay: float = DEFAULT_BASE_DELAY, max_delay: float = DEFAULT_MAX_DELAY) -> None:
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        """The delay before the next retry of `key`, counting this call as one more failure."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # Past ~60 doublings the float would overflow long after reaching any sensible cap.
        if failures > 60:
            return self.max_delay
        return min(self.base_delay * 2**failures, self.max_delay)

    def retries(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)


class ReconnectBackoff:
    """Growing, jittered pauses between attempts to reach the API server, reset by a success.

    Jitter keeps many informers that lost the server at the same moment from reconnecting in lockstep.
    """

    def __init__(self, initial: float = 0.8, maximum: float = 30.0, jitter: float = 0.2) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * (1 + random.uniform(0, self.jitter))

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self._next = self.initial
