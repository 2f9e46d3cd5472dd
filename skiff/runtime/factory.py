"""One informer per (resource, namespace, selectors) per process, however many controllers ask.

Controllers in one process (the controller-manager runs many) share informers, so each resource is
listed and watched once and every controller reads the same cache.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from skiff.api.kinds import BUILTINS, ResourceType
from skiff.client.builder import RequestBuilder, ResourceRef
from skiff.client.rest import DEFAULT_PAGE_SIZE
from skiff.runtime.informer import DEFAULT_WATCH_TIMEOUT_SECONDS, Informer, ListWatchClient

InformerKey = tuple[str, str, str, str, str, str]


class FactoryClient(ListWatchClient, Protocol):
    requests: RequestBuilder


class SharedInformerFactory:
    def __init__(
        self,
        client: FactoryClient,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        watch_timeout_seconds: int = DEFAULT_WATCH_TIMEOUT_SECONDS,
        resync_period: float | None = None,
    ) -> None:
        self.client = client
        self.page_size = page_size
        self.watch_timeout_seconds = watch_timeout_seconds
        self.resync_period = resync_period
        self._informers: dict[InformerKey, Informer] = {}
        self._started = False

    def informer(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Informer:
        """The shared informer for this view; informers asked for after `start` start at once."""
        resolved = self._resolve(resource)
        key = (
            resolved.group,
            resolved.version,
            resolved.plural,
            namespace or "",
            label_selector or "",
            field_selector or "",
        )
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(
                self.client,
                resolved,
                namespace,
                label_selector or None,
                field_selector or None,
                page_size=self.page_size,
                watch_timeout_seconds=self.watch_timeout_seconds,
                resync_period=self.resync_period,
            )
            self._informers[key] = informer
            if self._started:
                informer.start()
        return informer

    def _resolve(self, resource: ResourceRef) -> ResourceType:
        if isinstance(resource, ResourceType):
            return resource
        requests = getattr(self.client, "requests", None) or RequestBuilder(resources=BUILTINS)
        return requests.resource(resource)

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        """Start every informer not yet running."""
        self._started = True
        for informer in self._informers.values():
            informer.start()

    async def wait_for_cache_sync(self, timeout: float | None = None) -> bool:
        """Wait until every informer has synced; False if `timeout` passed first."""
        results = await asyncio.gather(*(i.wait_synced(timeout) for i in self._informers.values()))
        return all(results)

    async def shutdown(self) -> None:
        self._started = False
        await asyncio.gather(*(informer.stop() for informer in self._informers.values()))
