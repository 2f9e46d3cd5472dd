"""Expectations: creates and deletes a controller has asked for but not yet seen in its informer.

A controller that just created three pods must not trust a pod cache that does not show them yet, or
it would create three more. So it records what it expects (three creations, these deletions), the pod
informer's handlers tick them off as the watch delivers them, and until all are seen — or the
expectation is too old to believe, since a watch event may have been missed — the controller leaves
the count alone and only updates status (kube's UIDTrackingControllerExpectations).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# kube's ExpectationsTimeout: after this long an unmet expectation is ignored and the cache trusted.
EXPECTATIONS_TIMEOUT_SECONDS = 300.0


@dataclass
class _Expected:
    creations: int
    deletions: set[str]
    timestamp: float

    def fulfilled(self) -> bool:
        return self.creations <= 0 and not self.deletions


@dataclass
class Expectations:
    timeout: float = EXPECTATIONS_TIMEOUT_SECONDS
    clock: Callable[[], float] = time.monotonic
    _by_key: dict[str, _Expected] = field(default_factory=dict)

    def satisfied(self, key: str) -> bool:
        """True when the controller may act on `key` from its cache."""
        expected = self._by_key.get(key)
        if expected is None or expected.fulfilled():
            return True
        return self.clock() - expected.timestamp > self.timeout

    def expect_creations(self, key: str, count: int) -> None:
        self._by_key[key] = _Expected(count, set(), self.clock())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self._by_key[key] = _Expected(0, set(pod_keys), self.clock())

    def creation_observed(self, key: str) -> None:
        expected = self._by_key.get(key)
        if expected is not None:
            expected.creations -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        expected = self._by_key.get(key)
        if expected is not None:
            expected.deletions.discard(pod_key)

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still awaited for `key`."""
        expected = self._by_key.get(key)
        return (0, 0) if expected is None else (max(expected.creations, 0), len(expected.deletions))
