"""Informers: a list+watch loop that keeps a local cache of one resource and tells handlers what changed.

The loop lists (in pages) and then watches from the list's resourceVersion, asking for bookmarks and a
server-side timeout so the watch is renewed every few minutes. It remembers the newest resourceVersion
it has seen, bookmarks included, and re-watches from there when a watch ends or the connection drops
(with a growing pause while the server is unreachable). When the server answers 410 Expired — the
version has been compacted away — the informer lists again and emits only what differs from its cache:
adds, updates, and deletes (as tombstones, since the DELETED event itself was missed).

Handlers run on the event loop, in order, one event at a time; they should be quick (typically they
put a key on a work queue). A handler that raises is logged and does not stop the informer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import httpx
import orjson

from skiff.api.errors import ApiError
from skiff.client.builder import ResourceRef
from skiff.client.rest import DEFAULT_PAGE_SIZE
from skiff.runtime.backoff import ReconnectBackoff
from skiff.runtime.cache import (
    Cache,
    DeletedFinalStateUnknown,
    IndexFunc,
    KubeObject,
    object_key,
    resource_version,
)

log = logging.getLogger(__name__)

# client-go picks each watch's timeout at random between 5 and 10 minutes so that informers started
# together do not all re-watch at the same moment.
DEFAULT_WATCH_TIMEOUT_SECONDS = 300

AddHandler = Callable[[KubeObject], Awaitable[None] | None]
UpdateHandler = Callable[[KubeObject, KubeObject], Awaitable[None] | None]
DeleteHandler = Callable[[KubeObject | DeletedFinalStateUnknown], Awaitable[None] | None]


class WatchStreamLike(Protocol):
    def __aiter__(self) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any: ...


class ListWatchClient(Protocol):
    """What an informer needs of `skiff.client.rest.AsyncClient` (so tests can stand in for it)."""

    async def list(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]: ...

    async def watch(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_watch_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> WatchStreamLike: ...


@dataclass
class EventHandlers:
    on_add: AddHandler | None = None
    on_update: UpdateHandler | None = None
    on_delete: DeleteHandler | None = None


class WatchExpired(Exception):
    """The watch's resourceVersion is too old; only a fresh list can continue."""


# Errors after which the stream may continue from the last resourceVersion we saw.
_CONNECTION_ERRORS = (httpx.TransportError, OSError, orjson.JSONDecodeError)


class Informer:
    """A cache of one resource (optionally one namespace, optionally filtered by selectors) kept
    current by list+watch, with change notifications."""

    def __init__(
        self,
        client: ListWatchClient,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        watch_timeout_seconds: int = DEFAULT_WATCH_TIMEOUT_SECONDS,
        resync_period: float | None = None,
        reconnect_backoff: ReconnectBackoff | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self.watch_timeout_seconds = watch_timeout_seconds
        self.resync_period = resync_period
        self.cache = Cache()
        self._handlers: list[EventHandlers] = []
        self._backoff = reconnect_backoff or ReconnectBackoff()
        self._last_resource_version = ""
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handler_tasks: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------------------------------------------
    # Public surface

    def add_event_handler(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        """Register handlers. A handler added after the first sync is told about every cached object
        as an add, so it starts from the same picture as the others."""
        handlers = EventHandlers(on_add, on_update, on_delete)
        self._handlers.append(handlers)
        if self.has_synced() and on_add is not None:
            for obj in self.cache:
                self._spawn_if_awaitable(_call_safely(on_add, obj))

    def add_indexer(self, name: str, index: IndexFunc) -> None:
        self.cache.add_indexer(name, index)

    def get(self, namespace: str | None, name: str) -> KubeObject | None:
        return self.cache.get(namespace, name)

    def list(self, namespace: str | None = None) -> list[KubeObject]:
        return self.cache.list(namespace)

    def by_index(self, index_name: str, value: str) -> list[KubeObject]:
        return self.cache.by_index(index_name, value)

    def has_synced(self) -> bool:
        """True once the first list has been loaded into the cache and handed to the handlers."""
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait for the first sync; False if `timeout` passed first."""
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def last_resource_version(self) -> str:
        """The newest resourceVersion seen: of the last list, or of the last watch event or bookmark."""
        return self._last_resource_version

    def start(self) -> asyncio.Task[None]:
        """Run the informer in a background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"informer {self._describe()}")
        return self._task

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run(self) -> None:
        """List and watch until cancelled."""
        resync = asyncio.create_task(self._resync_loop()) if self.resync_period else None
        try:
            while True:
                await self._list_and_watch_once()
        finally:
            if resync is not None:
                resync.cancel()

    # ------------------------------------------------------------------------------------------------
    # The list+watch loop

    async def _list_and_watch_once(self) -> None:
        """One list, then watches until only a new list can help."""
        try:
            items, list_version = await self._list()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("listing %s failed: %s", self._describe(), _reason(error))
            await self._backoff.sleep()
            return
        self._backoff.reset()
        self.replace(items, list_version)
        await self._watch_until_expired()

    async def _watch_until_expired(self) -> None:
        while True:
            try:
                await self._watch_once()
            except WatchExpired:
                version = self._last_resource_version
                log.info("watch of %s expired at %s; listing again", self._describe(), version)
                return
            except _CONNECTION_ERRORS as error:
                log.warning("watch of %s lost: %s", self._describe(), _reason(error))
                await self._backoff.sleep()
            except ApiError as error:
                # Anything else the server refuses (403 after an RBAC change, 429, 500 ...) is safest
                # answered with a fresh list after a pause.
                log.warning("watch of %s failed: %s", self._describe(), _reason(error))
                await self._backoff.sleep()
                return

    async def _watch_once(self) -> None:
        """Follow one watch until the server ends it."""
        try:
            stream = await self.client.watch(
                self.resource,
                self.namespace,
                resource_version=self._last_resource_version,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                allow_watch_bookmarks=True,
                timeout_seconds=self._watch_timeout(),
            )
            async with stream:
                async for event_type, obj in stream:
                    self._backoff.reset()
                    self.apply_event(event_type, obj)
        except ApiError as error:
            if error.code == 410:
                raise WatchExpired from error
            raise

    def _watch_timeout(self) -> int:
        return int(self.watch_timeout_seconds * (1 + random.random()))

    async def _list(self) -> tuple[list[KubeObject], str]:
        """Every matching object, page by page, and the snapshot's resourceVersion."""
        items: list[KubeObject] = []
        token: str | None = None
        while True:
            try:
                page = await self._list_page(self.page_size, token)
            except ApiError as error:
                if error.code != 410 or token is None:
                    raise
                # The continue token outlived the snapshot it pointed into: take everything at once.
                page, items = await self._list_page(None, None), []
            items.extend(self._typed(item) for item in page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or None
            if token is None:
                return items, str(metadata.get("resourceVersion") or "")

    def _typed(self, item: KubeObject) -> KubeObject:
        # Kubernetes leaves apiVersion and kind out of list items; handlers (and the event recorder's
        # involvedObject) need them, as they get them on watched objects.
        if item.get("kind") and item.get("apiVersion"):
            return item
        api_version, kind = (
            self.resource if isinstance(self.resource, tuple) else (self.resource.api_version, self.resource.kind)
        )
        return {"apiVersion": api_version, "kind": kind, **item}

    async def _list_page(self, limit: int | None, token: str | None) -> dict[str, Any]:
        return await self.client.list(
            self.resource, self.namespace, self.label_selector, self.field_selector, limit, token
        )

    # ------------------------------------------------------------------------------------------------
    # Applying what the server says to the cache

    def replace(self, items: Iterable[KubeObject], list_version: str) -> None:
        """Make the cache equal to a fresh list, notifying handlers of each difference."""
        fresh = {object_key(obj): obj for obj in items}
        for key in self.cache.list_keys():
            if key not in fresh:
                gone = self.cache.remove(key)
                if gone is not None:
                    self._notify_delete(DeletedFinalStateUnknown(key, gone))
        for obj in fresh.values():
            old = self.cache.get_by_key(object_key(obj))
            if old is None:
                self.cache.put(obj)
                self._notify_add(obj)
            elif resource_version(old) != resource_version(obj):
                self.cache.put(obj)
                self._notify_update(old, obj)
        self._last_resource_version = list_version
        self._synced.set()

    def apply_event(self, event_type: str, obj: KubeObject) -> None:
        """Apply one watch event (ADDED, MODIFIED, DELETED, BOOKMARK) to the cache."""
        version = resource_version(obj)
        if event_type in ("ADDED", "MODIFIED"):
            old = self.cache.put(obj)
            if old is None:
                self._notify_add(obj)
            else:
                self._notify_update(old, obj)
        elif event_type == "DELETED":
            self.cache.remove(object_key(obj))
            self._notify_delete(obj)
        elif event_type != "BOOKMARK":
            log.warning("ignoring a watch event of unknown type %r for %s", event_type, self._describe())
        if version:
            self._last_resource_version = version

    async def _resync_loop(self) -> None:
        """Hand every cached object to `on_update` now and then, so work lost by a controller (a crashed
        reconcile that was not retried) is picked up again."""
        assert self.resync_period is not None
        while True:
            await asyncio.sleep(self.resync_period)
            if self.has_synced():
                for obj in self.cache:
                    self._notify_update(obj, obj)

    # ------------------------------------------------------------------------------------------------
    # Notifications

    def _notify_add(self, obj: KubeObject) -> None:
        for handlers in self._handlers:
            if handlers.on_add is not None:
                self._spawn_if_awaitable(_call_safely(handlers.on_add, obj))

    def _notify_update(self, old: KubeObject, new: KubeObject) -> None:
        for handlers in self._handlers:
            if handlers.on_update is not None:
                self._spawn_if_awaitable(_call_safely(handlers.on_update, old, new))

    def _notify_delete(self, obj: KubeObject | DeletedFinalStateUnknown) -> None:
        for handlers in self._handlers:
            if handlers.on_delete is not None:
                self._spawn_if_awaitable(_call_safely(handlers.on_delete, obj))

    def _spawn_if_awaitable(self, result: Awaitable[None] | None) -> None:
        # Async handlers are allowed but must not stall the watch: they run as their own tasks, held
        # here so they are not collected half-way.
        if result is not None:
            task = asyncio.ensure_future(_await_safely(result))
            self._handler_tasks.add(task)
            task.add_done_callback(self._handler_tasks.discard)

    def _describe(self) -> str:
        if isinstance(self.resource, tuple):
            what = f"{self.resource[1]} ({self.resource[0]})"
        else:
            what = ".".join(part for part in (self.resource.plural, self.resource.group) if part)
        return f"{what} in {self.namespace}" if self.namespace else what


def _call_safely(handler: Callable[..., Awaitable[None] | None], *args: Any) -> Awaitable[None] | None:
    try:
        result = handler(*args)
    except Exception:
        log.exception("an informer event handler failed")
        return None
    return result if inspect.isawaitable(result) else None


async def _await_safely(result: Awaitable[None]) -> None:
    try:
        await result
    except Exception:
        log.exception("an informer event handler failed")


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
