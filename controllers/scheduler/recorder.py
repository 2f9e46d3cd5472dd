"""Events about pods, posted by several recorders side by side.

One `EventRecorder` posts its events one after another. A scheduler placing hundreds of pods a second
records one "Scheduled" event per pod, so it spreads them over a few recorders, always choosing the same
recorder for the same pod: each pod's events stay in order and are still aggregated and rate-limited.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping
from typing import Any

from skiff.client.rest import AsyncClient
from skiff.runtime import EventRecorder

DEFAULT_SHARDS = 4


class ShardedRecorder:
    def __init__(self, client: AsyncClient, component: str, shards: int = DEFAULT_SHARDS) -> None:
        self._recorders = [EventRecorder(client, component) for _ in range(max(1, shards))]

    def event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        metadata = obj.get("metadata") or {}
        identity = f"{metadata.get('namespace')}/{metadata.get('name')}".encode()
        self._recorders[zlib.crc32(identity) % len(self._recorders)].event(obj, type, reason, message)

    async def aclose(self) -> None:
        await asyncio.gather(*(recorder.aclose() for recorder in self._recorders))
