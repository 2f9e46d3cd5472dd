"""The kubelet's restart and image-pull backoff: client-go's `flowcontrol.Backoff`.

The first failure is retried at once and sets the delay to the base (10 s); each further failure
within the delay doubles it up to the maximum (5 min). An entry untouched for twice the maximum
(10 min) is forgotten, so a container that ran fine for ten minutes starts over at the base.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass
class _Entry:
    delay: float
    last_update: float


class Backoff:
    def __init__(self, base: float, maximum: float, clock: Callable[[], float]) -> None:
        self.base = base
        self.maximum = maximum
        self.clock = clock
        self._entries: dict[Hashable, _Entry] = {}

    def _expired(self, entry: _Entry, moment: float) -> bool:
        return moment - entry.last_update > 2 * self.maximum

    def next(self, key: Hashable, at: float | None = None) -> float:
        """Record a retry of the failure at `at` (default now); returns the delay the next one must wait."""
        moment = self.clock() if at is None else at
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, moment):
            entry = self._entries[key] = _Entry(self.base, moment)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last_update = moment
        return entry.delay

    def delay(self, key: Hashable) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def remaining(self, key: Hashable, since: float) -> float:
        """Seconds still to wait after an event at `since` (a container's exit, a failed pull); 0 when
        not in backoff."""
        entry = self._entries.get(key)
        moment = self.clock()
        if entry is None or self._expired(entry, since):
            return 0.0
        return max(since + entry.delay - moment, 0.0)

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)
