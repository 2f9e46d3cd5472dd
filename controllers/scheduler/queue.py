"""The scheduling queue: pending pods by priority (then arrival), with per-pod backoff.

A pod that could not be scheduled waits out its backoff (1 s, doubling per attempt up to 10 s by
default) and is tried again; a cluster change that could make it fit (a node added or changed, a pod
removed) ends every wait at once. A pod is never handed out twice at once: while it is in flight
(being scheduled or bound) further adds are ignored, and the outcome decides what happens next.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

DEFAULT_INITIAL_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 10.0


class SchedulingQueue:
    def __init__(
        self, initial_backoff: float = DEFAULT_INITIAL_BACKOFF, max_backoff: float = DEFAULT_MAX_BACKOFF
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._heap: list[tuple[int, int, str]] = []
        self._active: dict[str, int] = {}  # key -> sequence number of its live heap entry
        self._waiting: dict[str, asyncio.TimerHandle] = {}
        self._in_flight: set[str] = set()
        self._pending: dict[str, int] = {}  # every pod the queue knows -> priority
        self._attempts: dict[str, int] = {}
        self._sequence = itertools.count()
        self._wakeup = asyncio.Event()

    # Pods arriving and leaving

    def add(self, key: str, priority: int = 0) -> None:
        """A pending pod (new, or seen again): queued unless it is already queued, waiting or in flight."""
        self._pending[key] = priority
        if key in self._active or key in self._waiting or key in self._in_flight:
            return
        self._activate(key)

    def update(self, key: str, priority: int = 0) -> None:
        """The pod's spec or labels changed: a pod waiting out its backoff is tried again now."""
        self._pending[key] = priority
        timer = self._waiting.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key not in self._active and key not in self._in_flight:
            self._activate(key)

    def delete(self, key: str) -> None:
        """The pod is gone or no longer pending (bound, deleted)."""
        self._pending.pop(key, None)
        self._attempts.pop(key, None)
        self._active.pop(key, None)
        timer = self._waiting.pop(key, None)
        if timer is not None:
            timer.cancel()

    # Taking and returning

    async def pop(self) -> str:
        while True:
            while self._heap:
                _, sequence, key = heapq.heappop(self._heap)
                if self._active.get(key) == sequence:
                    del self._active[key]
                    self._in_flight.add(key)
                    return key
            self._wakeup.clear()
            await self._wakeup.wait()

    def done(self, key: str) -> None:
        """The attempt is over (whatever its outcome)."""
        self._in_flight.discard(key)

    def succeeded(self, key: str) -> None:
        self._attempts.pop(key, None)
        self.done(key)

    def backoff(self, key: str) -> float:
        """Try `key` again after its backoff; returns the delay (0 if the pod is gone meanwhile)."""
        self.done(key)
        if key not in self._pending or key in self._active or key in self._waiting:
            return 0.0
        attempts = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempts
        delay = self.backoff_delay(attempts)
        self._waiting[key] = asyncio.get_running_loop().call_later(delay, self._backoff_over, key)
        return delay

    def backoff_delay(self, attempts: int) -> float:
        if attempts > 30:
            return self.max_backoff
        return min(self.initial_backoff * 2 ** (attempts - 1), self.max_backoff)

    def move_all(self) -> int:
        """The cluster changed in a way that may help: every waiting pod is tried again now."""
        waiting = list(self._waiting.items())
        self._waiting.clear()
        for key, timer in waiting:
            timer.cancel()
            self._activate(key)
        return len(waiting)

    # Introspection

    def __len__(self) -> int:
        return len(self._active)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def is_waiting(self, key: str) -> bool:
        return key in self._waiting

    def attempts(self, key: str) -> int:
        return self._attempts.get(key, 0)

    def _backoff_over(self, key: str) -> None:
        if self._waiting.pop(key, None) is not None:
            self._activate(key)

    def _activate(self, key: str) -> None:
        if key not in self._pending:
            return
        sequence = next(self._sequence)
        self._active[key] = sequence
        heapq.heappush(self._heap, (-self._pending[key], sequence, key))
        self._wakeup.set()
