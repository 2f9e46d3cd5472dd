"""The informer against a scripted fake API: paging, watch events, bookmarks, re-lists and their diffs,
reconnects, indexes, handlers and the shared factory."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
import pytest

from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS
from skiff.client.builder import RequestBuilder, ResourceRef
from skiff.runtime import (
    DeletedFinalStateUnknown,
    Informer,
    ReconnectBackoff,
    SharedInformerFactory,
    final_state,
    index_by_field,
    index_by_label,
    index_by_owner_uid,
)

PODS = BUILTINS.by_kind("", "v1", "Pod")
assert PODS is not None
_END = object()


def pod(name: str, rv: int, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(rv), "uid": f"uid-{name}"},
        "spec": dict(spec),
    }


def gone() -> ApiError:
    return ApiError(410, "Expired", "too old resource version: 1 (50)")


class FakeWatch:
    """One open watch; the test feeds it events, ends it or breaks it."""

    def __init__(self) -> None:
        self._items: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = False

    def send(self, event_type: str, obj: dict[str, Any]) -> None:
        self._items.put_nowait((event_type, obj))

    def end(self) -> None:
        self._items.put_nowait(_END)

    def fail(self, error: BaseException) -> None:
        self._items.put_nowait(error)

    async def __aiter__(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        while True:
            item = await self._items.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def __aenter__(self) -> FakeWatch:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.closed = True


@dataclass
class FakeApi:
    """Serves lists from `objects` (paged) and hands out watches, or errors queued in `watch_errors`."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 100
    list_calls: list[dict[str, Any]] = field(default_factory=list)
    watch_calls: list[dict[str, Any]] = field(default_factory=list)
    watches: list[FakeWatch] = field(default_factory=list)
    watch_errors: list[BaseException] = field(default_factory=list)
    expire_continue_tokens: bool = False
    requests: RequestBuilder = field(default_factory=RequestBuilder)

    def put(self, obj: dict[str, Any]) -> None:
        self.objects[obj["metadata"]["name"]] = obj
        self.version = max(self.version, int(obj["metadata"]["resourceVersion"]))

    async def list(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        self.list_calls.append(
            {"namespace": namespace, "labels": label_selector, "fields": field_selector, "limit": limit}
        )
        self.list_calls[-1]["continue"] = continue_token
        if continue_token and self.expire_continue_tokens:
            raise gone()
        items = [copy.deepcopy(o) for _, o in sorted(self.objects.items())]
        start = int(continue_token or 0)
        end = len(items) if limit is None else start + limit
        metadata: dict[str, Any] = {"resourceVersion": str(self.version)}
        if end < len(items):
            metadata["continue"] = str(end)
        return {"kind": "PodList", "apiVersion": "v1", "metadata": metadata, "items": items[start:end]}

    async def watch(self, resource: ResourceRef, namespace: str | None = None, **params: Any) -> FakeWatch:
        self.watch_calls.append({"namespace": namespace, **params})
        if self.watch_errors:
            raise self.watch_errors.pop(0)
        stream = FakeWatch()
        self.watches.append(stream)
        return stream


@dataclass
class Recorded:
    events: list[tuple[str, Any]] = field(default_factory=list)

    def on_add(self, obj: dict[str, Any]) -> None:
        self.events.append(("add", obj["metadata"]["name"]))

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        versions = (old["metadata"]["resourceVersion"], new["metadata"]["resourceVersion"])
        self.events.append(("update", (new["metadata"]["name"], *versions)))

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        kind = "tombstone" if isinstance(obj, DeletedFinalStateUnknown) else "delete"
        self.events.append((kind, final_state(obj)["metadata"]["name"]))


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def fast_backoff() -> ReconnectBackoff:
    return ReconnectBackoff(initial=0.001, maximum=0.01)


async def started(api: FakeApi, **options: Any) -> tuple[Informer, Recorded]:
    informer = Informer(api, PODS, reconnect_backoff=fast_backoff(), **options)
    recorded = Recorded()
    informer.add_event_handler(recorded.on_add, recorded.on_update, recorded.on_delete)
    informer.start()
    assert await informer.wait_synced(5)
    await eventually(lambda: len(api.watches) >= 1)
    return informer, recorded


@pytest.fixture
def api() -> FakeApi:
    fake = FakeApi()
    for index, name in enumerate(["a", "b", "c", "d", "e"]):
        fake.put(pod(name, 10 + index))
    return fake


async def test_initial_list_is_paged_and_then_watched_from_its_version(api: FakeApi) -> None:
    informer, recorded = await started(api, page_size=2, watch_timeout_seconds=60)

    assert [call["continue"] for call in api.list_calls] == [None, "2", "4"]
    assert {call["limit"] for call in api.list_calls} == {2}
    assert sorted(o["metadata"]["name"] for o in informer.list()) == ["a", "b", "c", "d", "e"]
    assert sorted(recorded.events) == [("add", n) for n in "abcde"]
    watch = api.watch_calls[0]
    assert watch["resource_version"] == "100"
    assert watch["allow_watch_bookmarks"] is True
    # Renewed periodically: a timeout between one and two times the configured minimum.
    assert 60 <= watch["timeout_seconds"] <= 120
    await informer.stop()


async def test_watch_events_update_the_cache_and_reach_the_handlers(api: FakeApi) -> None:
    informer, recorded = await started(api)
    recorded.events.clear()
    stream = api.watches[0]

    stream.send("ADDED", pod("f", 101))
    stream.send("MODIFIED", pod("a", 102, nodeName="n1"))
    stream.send("DELETED", pod("b", 103))
    await eventually(lambda: len(recorded.events) == 3)

    assert recorded.events == [("add", "f"), ("update", ("a", "10", "102")), ("delete", "b")]
    assert informer.get("default", "a")["spec"] == {"nodeName": "n1"}
    assert informer.get("default", "b") is None
    assert informer.last_resource_version == "103"
    await informer.stop()


async def test_a_bookmark_moves_the_resume_point_without_telling_handlers(api: FakeApi) -> None:
    informer, recorded = await started(api)
    recorded.events.clear()
    api.watches[0].send("BOOKMARK", {"kind": "Pod", "metadata": {"resourceVersion": "250"}})
    api.watches[0].end()  # the server's timeoutSeconds ran out

    await eventually(lambda: len(api.watch_calls) == 2)
    assert api.watch_calls[1]["resource_version"] == "250"
    assert len(api.list_calls) == 1  # a normal end is not a reason to list again
    assert recorded.events == []
    await informer.stop()


async def test_a_410_during_the_watch_relists_and_emits_only_the_differences(api: FakeApi) -> None:
    informer, recorded = await started(api)
    recorded.events.clear()

    # While the informer was not looking: b changed, c was deleted, g was created; a, d, e unchanged.
    api.put(pod("b", 300, nodeName="n2"))
    del api.objects["c"]
    api.put(pod("g", 301))
    api.watches[0].fail(gone())

    await eventually(lambda: len(api.list_calls) == 2 and len(api.watch_calls) == 2)
    assert sorted(recorded.events) == [("add", "g"), ("tombstone", "c"), ("update", ("b", "11", "300"))]
    assert sorted(o["metadata"]["name"] for o in informer.list()) == ["a", "b", "d", "e", "g"]
    assert api.watch_calls[1]["resource_version"] == "301"
    await informer.stop()


async def test_a_410_when_opening_the_watch_also_relists(api: FakeApi) -> None:
    informer, _ = await started(api)
    api.watch_errors.append(gone())
    api.watches[0].end()

    await eventually(lambda: len(api.list_calls) == 2 and len(api.watches) == 2)
    assert informer.has_synced()
    await informer.stop()


async def test_a_dropped_connection_rewatches_from_the_last_version_without_listing(api: FakeApi) -> None:
    informer, recorded = await started(api)
    api.watches[0].send("MODIFIED", pod("a", 120))
    api.watches[0].fail(httpx.ReadError("connection reset"))
    api.watch_errors.append(httpx.ConnectError("connection refused"))

    await eventually(lambda: len(api.watches) == 2)
    assert [call["resource_version"] for call in api.watch_calls] == ["100", "120", "120"]
    assert len(api.list_calls) == 1
    assert api.watches[0].closed
    # Resuming is silent: nothing is re-announced, only the one real change was.
    assert recorded.events[5:] == [("update", ("a", "10", "120"))]
    await informer.stop()


async def test_listed_objects_carry_their_kind_even_when_the_list_leaves_it_out(api: FakeApi) -> None:
    for obj in api.objects.values():
        del obj["kind"], obj["apiVersion"]
    informer, _ = await started(api)
    assert {(o["apiVersion"], o["kind"]) for o in informer.list()} == {("v1", "Pod")}
    await informer.stop()


async def test_an_expired_continue_token_falls_back_to_one_full_list(api: FakeApi) -> None:
    api.expire_continue_tokens = True
    informer, recorded = await started(api, page_size=2)

    assert [call["limit"] for call in api.list_calls] == [2, 2, None]
    assert len(informer.list()) == 5
    assert len(recorded.events) == 5
    await informer.stop()


async def test_selectors_and_namespace_go_to_both_list_and_watch(api: FakeApi) -> None:
    informer, _ = await started(api, namespace="team-a", label_selector="app=web", field_selector="spec.nodeName=n1")
    assert api.list_calls[0]["namespace"] == "team-a"
    assert api.list_calls[0]["labels"] == "app=web"
    assert api.list_calls[0]["fields"] == "spec.nodeName=n1"
    assert api.watch_calls[0]["namespace"] == "team-a"
    assert api.watch_calls[0]["label_selector"] == "app=web"
    assert api.watch_calls[0]["field_selector"] == "spec.nodeName=n1"
    await informer.stop()


async def test_indexes_follow_updates_and_deletes(api: FakeApi) -> None:
    informer, recorded = await started(api)
    informer.add_indexer("node", index_by_field("spec.nodeName"))
    informer.add_indexer("owner", index_by_owner_uid)
    informer.add_indexer("app", index_by_label("app"))
    stream = api.watches[0]

    owned = pod("h", 104, namespace="team-a", nodeName="n1")
    owned["metadata"]["ownerReferences"] = [{"uid": "rs-1", "controller": True}]
    owned["metadata"]["labels"] = {"app": "web"}
    stream.send("ADDED", owned)
    stream.send("MODIFIED", pod("a", 105, nodeName="n1"))
    stream.send("MODIFIED", pod("a", 106, nodeName="n2"))
    await eventually(lambda: informer.last_resource_version == "106")

    assert [o["metadata"]["name"] for o in informer.by_index("node", "n1")] == ["h"]
    assert [o["metadata"]["name"] for o in informer.by_index("node", "n2")] == ["a"]
    assert [o["metadata"]["name"] for o in informer.by_index("owner", "rs-1")] == ["h"]
    assert [o["metadata"]["name"] for o in informer.by_index("app", "web")] == ["h"]
    assert [o["metadata"]["name"] for o in informer.list("team-a")] == ["h"]
    assert len(informer.list("default")) == 5

    stream.send("DELETED", owned)
    await eventually(lambda: ("delete", "h") in recorded.events)
    assert informer.by_index("node", "n1") == []
    assert informer.by_index("owner", "rs-1") == []
    assert informer.list("team-a") == []
    await informer.stop()


async def test_a_handler_added_late_is_told_about_every_cached_object(api: FakeApi) -> None:
    informer, _ = await started(api)
    late = Recorded()
    informer.add_event_handler(on_add=late.on_add)
    assert sorted(late.events) == [("add", n) for n in "abcde"]
    await informer.stop()


async def test_a_failing_handler_does_not_stop_the_others_or_the_informer(api: FakeApi) -> None:
    informer = Informer(api, PODS, reconnect_backoff=fast_backoff())

    def broken(obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    recorded = Recorded()
    informer.add_event_handler(on_add=broken)
    informer.add_event_handler(on_add=recorded.on_add)
    informer.start()
    assert await informer.wait_synced(5)
    await eventually(lambda: len(api.watches) == 1)
    api.watches[0].send("ADDED", pod("z", 200))
    await eventually(lambda: ("add", "z") in recorded.events)
    assert informer.running
    await informer.stop()


async def test_async_handlers_are_awaited(api: FakeApi) -> None:
    informer = Informer(api, PODS, reconnect_backoff=fast_backoff())
    seen: list[str] = []

    async def on_add(obj: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        seen.append(obj["metadata"]["name"])

    informer.add_event_handler(on_add=on_add)
    informer.start()
    await eventually(lambda: len(seen) == 5)
    await informer.stop()


async def test_wait_synced_times_out_while_the_server_is_unreachable() -> None:
    class Unreachable(FakeApi):
        async def list(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise httpx.ConnectError("connection refused")

    informer = Informer(Unreachable(), PODS, reconnect_backoff=fast_backoff())
    informer.start()
    assert await informer.wait_synced(0.1) is False
    assert not informer.has_synced()
    await informer.stop()


async def test_resync_replays_cached_objects_as_updates(api: FakeApi) -> None:
    informer, recorded = await started(api, resync_period=0.05)
    await eventually(lambda: sum(kind == "update" for kind, _ in recorded.events) >= 5)
    assert ("update", ("a", "10", "10")) in recorded.events
    await informer.stop()


async def test_the_factory_shares_one_informer_per_resource_namespace_and_selector(api: FakeApi) -> None:
    factory = SharedInformerFactory(api)
    by_type = factory.informer(PODS)
    by_kind = factory.informer(("v1", "Pod"))
    in_namespace = factory.informer(PODS, namespace="team-a")
    selected = factory.informer(PODS, label_selector="app=web")

    assert by_type is by_kind
    assert len({id(by_type), id(in_namespace), id(selected)}) == 3
    assert factory.informer(PODS, label_selector="app=web") is selected

    factory.start()
    assert await factory.wait_for_cache_sync(5)
    late = factory.informer(PODS, field_selector="spec.nodeName=n1")
    assert late.running  # asked for after start: started at once
    assert await late.wait_synced(5)
    await factory.shutdown()
    assert not any(informer.running for informer in factory.informers)
