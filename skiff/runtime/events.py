"""Recording core/v1 Events about objects, the way client-go's event recorder does.

`EventRecorder.event(obj, type, reason, message)` returns at once; a background task posts the Event.
Repeats of one event (same object, type, reason, message and source) within the aggregation window
do not create new Events: the existing one gets `count` + 1 and a new `lastTimestamp`, which is what
`kubectl describe` shows as "x3 over 2m". A per-object token bucket (client-go's spam filter: a burst of
25, then one every five minutes) keeps a controller stuck in a hot loop from flooding the API server.
Posting never raises into the caller: failures are logged and the event is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS, ResourceType
from skiff.api.timefmt import format_time, now
from skiff.client.rest import AsyncClient

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"

EVENTS: ResourceType = BUILTINS.by_kind("", "v1", "Event")  # type: ignore[assignment]

AGGREGATION_WINDOW_SECONDS = 600.0
# client-go's spam filter defaults.
SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0
_CACHE_SIZE = 4096
_BACKLOG = 1000
# Events about cluster-scoped objects (nodes, namespaces) live in this namespace, as in Kubernetes.
_CLUSTER_EVENT_NAMESPACE = "default"


@dataclass
class _Recorded:
    """What we posted for one distinct event: enough to bump it rather than post it again."""

    name: str
    namespace: str
    count: int
    last_seen: float


class _TokenBucket:
    def __init__(self, burst: int, refill_seconds: float, clock: float) -> None:
        self.tokens = float(burst)
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.updated = clock

    def take(self, clock: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (clock - self.updated) / self.refill_seconds)
        self.updated = clock
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class _LruDict(OrderedDict[Any, Any]):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def touch(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)


def involved_object(obj: Mapping[str, Any]) -> dict[str, str]:
    """The `involvedObject` reference for `obj` (kind, namespace, name, uid, apiVersion,
    resourceVersion), leaving out what `obj` does not have."""
    metadata = obj.get("metadata") or {}
    reference = {
        "kind": obj.get("kind") or "",
        "namespace": metadata.get("namespace") or "",
        "name": metadata.get("name") or "",
        "uid": metadata.get("uid") or "",
        "apiVersion": obj.get("apiVersion") or "",
        "resourceVersion": str(metadata.get("resourceVersion") or ""),
    }
    return {field: value for field, value in reference.items() if value}


class EventRecorder:
    def __init__(
        self,
        client: AsyncClient,
        component: str,
        host: str | None = None,
        *,
        aggregation_window: float = AGGREGATION_WINDOW_SECONDS,
        burst: int = SPAM_BURST,
        refill_seconds: float = SPAM_REFILL_SECONDS,
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.aggregation_window = aggregation_window
        self.burst = burst
        self.refill_seconds = refill_seconds
        self._recorded: _LruDict = _LruDict(_CACHE_SIZE)
        self._buckets: _LruDict = _LruDict(_CACHE_SIZE)
        self._backlog: asyncio.Queue[tuple[dict[str, str], str, str, str]] | None = None
        self._sender: asyncio.Task[None] | None = None

    def event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        """Record that `reason` happened to `obj` (`type` is "Normal" or "Warning"). Never raises."""
        try:
            backlog = self._ensure_sender()
            backlog.put_nowait((involved_object(obj), type, reason, message))
        except asyncio.QueueFull:
            log.warning("event backlog full; dropping %s event %s: %s", type, reason, message)
        except Exception:
            log.exception("cannot record %s event %s", type, reason)

    async def flush(self) -> None:
        """Wait until every event recorded so far has been posted (or dropped)."""
        if self._backlog is not None:
            await self._backlog.join()

    async def aclose(self) -> None:
        """Post what is pending, then stop the sender."""
        await self.flush()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None

    def _ensure_sender(self) -> asyncio.Queue[tuple[dict[str, str], str, str, str]]:
        if self._backlog is None:
            self._backlog = asyncio.Queue(_BACKLOG)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_forever())
        return self._backlog

    async def _send_forever(self) -> None:
        # One sender, in order: the second of two identical events must find the first's name.
        assert self._backlog is not None
        while True:
            reference, event_type, reason, message = await self._backlog.get()
            try:
                await self._record(reference, event_type, reason, message)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("could not post %s event %s about %s: %s", event_type, reason, reference, error)
            finally:
                self._backlog.task_done()

    # ------------------------------------------------------------------------------------------------

    async def _record(self, reference: dict[str, str], event_type: str, reason: str, message: str) -> None:
        clock = time.monotonic()
        if not self._allowed(reference, clock):
            log.debug("rate limit: dropping %s event %s about %s", event_type, reason, reference)
            return
        key = self._aggregation_key(reference, event_type, reason, message)
        previous: _Recorded | None = self._recorded.get(key)
        recent = previous is not None and clock - previous.last_seen < self.aggregation_window
        if recent and previous is not None and await self._bump(previous, message, clock):
            self._recorded.touch(key, previous)
            return
        self._recorded.touch(key, await self._create(reference, event_type, reason, message, clock))

    def _allowed(self, reference: dict[str, str], clock: float) -> bool:
        source = (self.component, self.host or "")
        key = (*source, *(reference.get(f, "") for f in ("kind", "namespace", "name", "uid", "apiVersion")))
        bucket: _TokenBucket | None = self._buckets.get(key)
        if bucket is None:
            bucket = _TokenBucket(self.burst, self.refill_seconds, clock)
        self._buckets.touch(key, bucket)
        return bucket.take(clock)

    def _aggregation_key(
        self, reference: dict[str, str], event_type: str, reason: str, message: str
    ) -> tuple[str, ...]:
        # resourceVersion is left out on purpose: the same thing happening to a changing object is
        # still the same event.
        fields = ("kind", "namespace", "name", "uid", "apiVersion")
        identity = tuple(reference.get(f, "") for f in fields)
        return (self.component, self.host or "", *identity, event_type, reason, message)

    async def _bump(self, previous: _Recorded, message: str, clock: float) -> bool:
        """Count one more occurrence on the existing Event; False if that Event is gone."""
        patch = {"count": previous.count + 1, "lastTimestamp": format_time(now()), "message": message}
        try:
            await self.client.patch(EVENTS, previous.name, patch, previous.namespace)
        except ApiError as error:
            if error.code == 404:
                return False  # deleted (events expire): start a new one
            raise
        previous.count += 1
        previous.last_seen = clock
        return True

    async def _create(
        self, reference: dict[str, str], event_type: str, reason: str, message: str, clock: float
    ) -> _Recorded:
        body = self._new_event(reference, event_type, reason, message)
        created = await self.client.create(body, body["metadata"]["namespace"])
        metadata = created.get("metadata") or body["metadata"]
        return _Recorded(
            name=metadata.get("name") or body["metadata"]["name"],
            namespace=metadata.get("namespace") or body["metadata"]["namespace"],
            count=int(created.get("count") or 1),
            last_seen=clock,
        )

    def _new_event(self, reference: dict[str, str], event_type: str, reason: str, message: str) -> dict[str, Any]:
        stamp = format_time(now())
        namespace = reference.get("namespace") or _CLUSTER_EVENT_NAMESPACE
        # client-go names events `<object>.<nanosecond timestamp in hex>`: unique and sortable.
        name = f"{reference.get('name') or 'unknown'}.{time.time_ns():x}"
        source = {"component": self.component, **({"host": self.host} if self.host else {})}
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": reference,
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": source,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.host or "",
        }
