"""What the store hands around: errors, stored objects, change-log entries, and the planning of a batch.

A batch of writes is planned in memory against the current versions of its keys: each write's
precondition is checked against the state the writes before it left, and the survivors get consecutive
resourceVersions. The backends (SQLite, PostgreSQL) only read those versions and apply the plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from apiserver.storage import tables as t


class StoreError(Exception):
    """A write whose precondition failed; the handler turns it into a Status."""


class KeyNotFound(StoreError):
    pass


class KeyExists(StoreError):
    pass


class VersionConflict(StoreError):
    pass


class ResourceVersionExpired(StoreError):
    """The requested resourceVersion is older than the compacted part of the change log."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"too old resource version: {requested} ({compacted})")
        self.requested = requested
        self.compacted = compacted


Key = tuple[str, str, str]


@dataclass(slots=True)
class Change:
    """One committed write: what the change log holds and what watchers receive."""

    rv: int
    event: str
    resource: str
    namespace: str
    name: str
    data: bytes
    _obj: dict[str, Any] | None = None

    def obj(self) -> dict[str, Any]:
        if self._obj is None:
            self._obj = orjson.loads(self.data)
        return self._obj


@dataclass(slots=True)
class Stored:
    """A stored object as read or written: its resourceVersion and its JSON bytes."""

    rv: int
    data: bytes
    _obj: dict[str, Any] | None = None
    # Read with an encryption key other than the current write key: an update writes it even unchanged.
    stale: bool = False

    def obj(self) -> dict[str, Any]:
        if self._obj is None:
            self._obj = orjson.loads(self.data)
        return self._obj


@dataclass(slots=True)
class Write:
    op: str  # create | update | delete
    key: Key
    obj: dict[str, Any]
    expected_rv: int | None
    future: asyncio.Future[Stored] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass(slots=True)
class ListPage:
    rv: int
    rows: list[tuple[str, str, bytes]]  # (namespace, name, data)
    more: bool


EVENT_CODES = {"ADDED": t.ADDED, "MODIFIED": t.MODIFIED, "DELETED": t.DELETED}


@dataclass
class Plan:
    last_rv: int
    changes: list[Change] = field(default_factory=list)
    outcomes: list[tuple[Write, Stored | Exception]] = field(default_factory=list)
    final: dict[Key, dict[str, Any] | None] = field(default_factory=dict)


def plan_batch(batch: Iterable[Write], current: dict[Key, int], rv: int) -> Plan:
    """Check each write against the state left by the writes before it and give survivors an rv."""
    plan = Plan(last_rv=rv)
    versions: dict[Key, int | None] = dict(current)
    for write in batch:
        existing = versions.get(write.key)
        failure = _precondition_failure(write, existing)
        if failure is not None:
            plan.outcomes.append((write, failure))
            continue
        plan.last_rv += 1
        new_rv = plan.last_rv
        metadata = write.obj.setdefault("metadata", {})
        metadata["resourceVersion"] = str(new_rv)
        data = orjson.dumps(write.obj)
        event_name = {"create": "ADDED", "update": "MODIFIED", "delete": "DELETED"}[write.op]
        resource, namespace, name = write.key
        plan.changes.append(Change(new_rv, event_name, resource, namespace, name, data, write.obj))
        if write.op == "delete":
            versions[write.key] = None
            plan.final[write.key] = None
        else:
            versions[write.key] = new_rv
            plan.final[write.key] = {
                "resource": resource,
                "namespace": namespace,
                "name": name,
                "uid": metadata.get("uid", ""),
                "rv": new_rv,
                "data": data,
            }
        plan.outcomes.append((write, Stored(new_rv, data, write.obj)))
    return plan


def _precondition_failure(write: Write, existing: int | None) -> StoreError | None:
    if write.op == "create":
        return KeyExists() if existing is not None else None
    if existing is None:
        return KeyNotFound()
    if write.expected_rv is not None and write.expected_rv != existing:
        return VersionConflict()
    return None
