"""skiff.runtime against a real API server: informers, leader election and event recording."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
import pytest

from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS
from skiff.client.builder import ResourceRef
from skiff.client.kubeconfig import load_kubeconfig
from skiff.client.rest import AsyncClient
from skiff.runtime import (
    NORMAL,
    WARNING,
    DeletedFinalStateUnknown,
    EventRecorder,
    Informer,
    LeaderElector,
    ReconnectBackoff,
    final_state,
)
from tests.support import ApiServer, free_port

CONFIGMAPS = BUILTINS.by_kind("", "v1", "ConfigMap")
LEASES = BUILTINS.by_kind("coordination.k8s.io", "v1", "Lease")
EVENTS = BUILTINS.by_kind("", "v1", "Event")
assert CONFIGMAPS is not None and LEASES is not None and EVENTS is not None


@asynccontextmanager
async def api_client(server: ApiServer) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(load_kubeconfig(str(server.kubeconfig)))
    try:
        yield client
    finally:
        await client.aclose()


async def new_namespace(client: AsyncClient) -> str:
    name = f"rt-{uuid.uuid4().hex[:8]}"
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def eventually(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)


@dataclass
class Seen:
    """What an informer's handlers were told, by object name."""

    events: list[tuple[str, str]] = field(default_factory=list)

    def on_add(self, obj: dict[str, Any]) -> None:
        self.events.append(("add", obj["metadata"]["name"]))

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.events.append(("update", new["metadata"]["name"]))

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        kind = "tombstone" if isinstance(obj, DeletedFinalStateUnknown) else "delete"
        self.events.append((kind, final_state(obj)["metadata"]["name"]))

    def of(self, name: str) -> list[str]:
        return [kind for kind, seen in self.events if seen == name]


class _CuttableStream:
    """A watch stream that breaks like a dropped connection when its client is cut."""

    def __init__(self, inner: Any, cut: asyncio.Event) -> None:
        self._inner = inner
        self._cut = cut

    async def __aiter__(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        events = self._inner.__aiter__()
        while True:
            following = asyncio.ensure_future(events.__anext__())
            cut = asyncio.ensure_future(self._cut.wait())
            await asyncio.wait({following, cut}, return_when=asyncio.FIRST_COMPLETED)
            cut.cancel()
            if self._cut.is_set():
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)
                raise httpx.ReadError("connection cut by the test")
            try:
                yield following.result()
            except StopAsyncIteration:
                return

    async def __aenter__(self) -> _CuttableStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._inner.aclose()


class CuttableClient:
    """A real client behind a network the test can cut and restore; counts lists and watches."""

    def __init__(self, inner: AsyncClient) -> None:
        self.inner = inner
        self.requests = inner.requests
        self.cut = asyncio.Event()
        self.lists = 0
        self.watches = 0

    def _refuse_if_cut(self) -> None:
        if self.cut.is_set():
            raise httpx.ConnectError("connection refused (cut by the test)")

    async def list(self, resource: ResourceRef, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._refuse_if_cut()
        self.lists += 1
        return await self.inner.list(resource, *args, **kwargs)

    async def watch(self, resource: ResourceRef, *args: Any, **kwargs: Any) -> _CuttableStream:
        self._refuse_if_cut()
        self.watches += 1
        return _CuttableStream(await self.inner.watch(resource, *args, **kwargs), self.cut)

    async def get(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._refuse_if_cut()
        return await self.inner.get(*args, **kwargs)

    async def create(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        self._refuse_if_cut()
        return await self.inner.create(obj, namespace)

    async def update(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        self._refuse_if_cut()
        return await self.inner.update(obj, namespace)


def fast_backoff() -> ReconnectBackoff:
    return ReconnectBackoff(initial=0.1, maximum=0.5)


# ---------------------------------------------------------------------------------------------------
# Informers


async def test_informer_sees_creates_updates_and_deletes_by_another_client(apiserver: ApiServer) -> None:
    async with api_client(apiserver) as writer, api_client(apiserver) as reader:
        namespace = await new_namespace(writer)
        await writer.create(configmap("before", v="1"), namespace)
        informer = Informer(reader, CONFIGMAPS, namespace, page_size=1)
        seen = Seen()
        informer.add_event_handler(seen.on_add, seen.on_update, seen.on_delete)
        informer.start()
        try:
            assert await informer.wait_synced(15)
            assert informer.get(namespace, "before")["data"] == {"v": "1"}

            await writer.create(configmap("web", v="1"), namespace)
            await writer.patch(CONFIGMAPS, "web", {"data": {"v": "2"}}, namespace)
            await writer.delete(CONFIGMAPS, "before", namespace)
            await eventually(lambda: seen.of("before") == ["add", "delete"], what="delete of 'before'")
            await eventually(lambda: seen.of("web") == ["add", "update"], what="create+update of 'web'")

            assert informer.get(namespace, "web")["data"] == {"v": "2"}
            assert informer.get(namespace, "before") is None
            assert [o["metadata"]["name"] for o in informer.list(namespace)] == ["web"]
        finally:
            await informer.stop()


async def test_informer_with_a_label_selector_sees_only_matching_objects(apiserver: ApiServer) -> None:
    async with api_client(apiserver) as client:
        namespace = await new_namespace(client)
        informer = Informer(client, CONFIGMAPS, namespace, label_selector="team=blue")
        informer.start()
        try:
            assert await informer.wait_synced(15)
            blue, red = configmap("blue"), configmap("red")
            blue["metadata"]["labels"] = {"team": "blue"}
            red["metadata"]["labels"] = {"team": "red"}
            await client.create(red, namespace)
            await client.create(blue, namespace)
            await eventually(lambda: informer.get(namespace, "blue") is not None, what="the blue configmap")
            assert informer.get(namespace, "red") is None
        finally:
            await informer.stop()


async def test_informer_renews_watches_the_server_ends(apiserver: ApiServer) -> None:
    async with api_client(apiserver) as writer, api_client(apiserver) as inner:
        client = CuttableClient(inner)
        namespace = await new_namespace(writer)
        # The server ends each watch after 1-2 s; the informer must carry on from where it was.
        informer = Informer(client, CONFIGMAPS, namespace, watch_timeout_seconds=1)
        informer.start()
        try:
            assert await informer.wait_synced(15)
            for index in range(5):
                await writer.create(configmap(f"cm-{index}"), namespace)
                await asyncio.sleep(0.8)
            await eventually(lambda: len(informer.list(namespace)) == 5, what="all five configmaps")
            assert client.watches >= 2
            assert client.lists == 1  # renewed from the last resourceVersion, never re-listed
        finally:
            await informer.stop()


async def test_informer_reconnects_after_a_dropped_connection(apiserver: ApiServer) -> None:
    async with api_client(apiserver) as writer, api_client(apiserver) as inner:
        client = CuttableClient(inner)
        namespace = await new_namespace(writer)
        informer = Informer(client, CONFIGMAPS, namespace, reconnect_backoff=fast_backoff())
        seen = Seen()
        informer.add_event_handler(seen.on_add, seen.on_update, seen.on_delete)
        informer.start()
        try:
            assert await informer.wait_synced(15)
            client.cut.set()
            await writer.create(configmap("while-away"), namespace)
            await asyncio.sleep(0.5)
            assert informer.get(namespace, "while-away") is None
            client.cut.clear()
            await eventually(lambda: informer.get(namespace, "while-away") is not None, what="catch-up")
            assert seen.of("while-away") == ["add"]
        finally:
            await informer.stop()


@pytest.fixture(scope="module")
def compacting_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    extra = ["--compaction-window", "1", "--compaction-interval", "1"]
    server = ApiServer(tmp_path_factory.mktemp("compacting"), free_port(), extra_args=extra).start()
    yield server
    server.stop()


async def test_informer_relists_after_410_and_converges(compacting_apiserver: ApiServer) -> None:
    server = compacting_apiserver
    async with api_client(server) as writer, api_client(server) as inner:
        client = CuttableClient(inner)
        namespace = await new_namespace(writer)
        for name in ("kept", "changed", "removed"):
            await writer.create(configmap(name, v="1"), namespace)
        informer = Informer(client, CONFIGMAPS, namespace, reconnect_backoff=fast_backoff())
        seen = Seen()
        informer.add_event_handler(seen.on_add, seen.on_update, seen.on_delete)
        informer.start()
        try:
            assert await informer.wait_synced(15)
            client.cut.set()
            # While the informer is away, write, and let the history it would resume from be compacted.
            await writer.patch(CONFIGMAPS, "changed", {"data": {"v": "2"}}, namespace)
            await writer.delete(CONFIGMAPS, "removed", namespace)
            await writer.create(configmap("added"), namespace)
            for index in range(4):
                await writer.create(configmap(f"filler-{index}"), namespace)
                await asyncio.sleep(1)
            # A restarted server no longer holds recent history in memory: it must answer from its
            # compacted change log, so resuming from the informer's resourceVersion gets 410 Expired.
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            client.cut.clear()

            await eventually(lambda: client.lists >= 2, what="a re-list after 410 Expired")
            expected = {"kept", "changed", "added", *(f"filler-{i}" for i in range(4))}
            await eventually(
                lambda: {o["metadata"]["name"] for o in informer.list(namespace)} == expected,
                what="the informer's cache converging",
            )
            assert informer.get(namespace, "changed")["data"] == {"v": "2"}
            assert seen.of("changed") == ["add", "update"]
            assert seen.of("removed") == ["add", "tombstone"]
            assert seen.of("added") == ["add"]
            assert seen.of("kept") == ["add"]  # unchanged objects are not reported again
        finally:
            await informer.stop()


# ---------------------------------------------------------------------------------------------------
# Leader election


@dataclass
class Candidate:
    """One elector plus a timeline of when it started and stopped leading."""

    identity: str
    client: CuttableClient
    elector: LeaderElector = field(init=False)
    started: float | None = None
    stopped: float | None = None
    work_cancelled: bool = False
    task: asyncio.Task[None] | None = None

    async def lead(self) -> None:
        self.started = time.monotonic()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.work_cancelled = True
            raise

    def stop_leading(self) -> None:
        self.stopped = time.monotonic()


def candidates(
    clients: list[AsyncClient], namespace: str, lease: str, duration: float, release: bool
) -> list[Candidate]:
    out = []
    for index, inner in enumerate(clients):
        candidate = Candidate(f"candidate-{index}", CuttableClient(inner))
        candidate.elector = LeaderElector(
            candidate.client,  # type: ignore[arg-type]
            namespace,
            lease,
            candidate.identity,
            lease_duration=duration,
            renew_deadline=duration * 2 / 3,
            retry_period=0.5,
            on_started_leading=candidate.lead,
            on_stopped_leading=candidate.stop_leading,
            release_on_cancel=release,
        )
        candidate.task = asyncio.create_task(candidate.elector.run())
        out.append(candidate)
    return out


async def stop_all(group: list[Candidate]) -> None:
    for candidate in group:
        if candidate.task is not None:
            candidate.task.cancel()
    await asyncio.gather(*(c.task for c in group if c.task is not None), return_exceptions=True)


async def exactly_one_leads(group: list[Candidate], over: float) -> Candidate:
    await eventually(lambda: any(c.elector.is_leader for c in group), what="a leader")
    deadline = time.monotonic() + over
    while time.monotonic() < deadline:
        assert sum(c.elector.is_leader for c in group) == 1
        await asyncio.sleep(0.05)
    return next(c for c in group if c.elector.is_leader)


async def test_one_of_two_candidates_leads_and_the_other_takes_over_when_it_stops_renewing(
    apiserver: ApiServer,
) -> None:
    duration = 3.0
    async with api_client(apiserver) as first, api_client(apiserver) as second, api_client(apiserver) as admin:
        namespace = await new_namespace(admin)
        group = candidates([first, second], namespace, "controller-manager", duration, release=False)
        try:
            leader = await exactly_one_leads(group, over=2.0)
            follower = next(c for c in group if c is not leader)
            lease = await admin.get(LEASES, "controller-manager", namespace)
            assert lease["spec"]["holderIdentity"] == leader.identity
            assert lease["spec"]["leaseDurationSeconds"] == 3
            transitions = lease["spec"]["leaseTransitions"]
            assert follower.elector.leader == leader.identity

            # The leader loses the API server: it must stop acting before anyone else starts.
            cut_at = time.monotonic()
            leader.client.cut.set()
            await eventually(lambda: follower.elector.is_leader, timeout=3 * duration, what="takeover")
            took_over_after = time.monotonic() - cut_at

            assert leader.task is not None and leader.task.done()  # run() returned: leadership lost
            assert leader.work_cancelled and leader.stopped is not None
            assert follower.started is not None and leader.stopped <= follower.started
            # Not before the lease could have expired, and within a lease duration (plus polling).
            assert duration - 0.5 - 0.3 <= took_over_after <= duration + 2 * 0.5 + 1.0
            lease = await admin.get(LEASES, "controller-manager", namespace)
            assert lease["spec"]["holderIdentity"] == follower.identity
            assert lease["spec"]["leaseTransitions"] == transitions + 1
            assert lease["spec"]["renewTime"].endswith("Z") and "." in lease["spec"]["renewTime"]
        finally:
            await stop_all(group)


async def test_a_leader_that_shuts_down_releases_the_lease_for_an_immediate_successor(
    apiserver: ApiServer,
) -> None:
    # A long lease makes "far sooner than the lease" unmistakable even on a busy machine.
    duration = 30.0
    async with api_client(apiserver) as first, api_client(apiserver) as second, api_client(apiserver) as admin:
        namespace = await new_namespace(admin)
        group = candidates([first, second], namespace, "scheduler", duration, release=True)
        try:
            leader = await exactly_one_leads(group, over=1.0)
            follower = next(c for c in group if c is not leader)
            assert leader.task is not None
            stopped_at = time.monotonic()
            leader.task.cancel()
            await asyncio.gather(leader.task, return_exceptions=True)
            assert leader.work_cancelled and leader.stopped is not None

            await eventually(lambda: follower.elector.is_leader, timeout=duration, what="takeover")
            # Far sooner than waiting out a 15 s lease.
            assert time.monotonic() - stopped_at < duration / 2
            lease = await admin.get(LEASES, "scheduler", namespace)
            assert lease["spec"]["holderIdentity"] == follower.identity
        finally:
            await stop_all(group)


async def test_an_expired_lease_left_by_a_crashed_leader_is_taken_at_once(apiserver: ApiServer) -> None:
    async with api_client(apiserver) as client:
        namespace = await new_namespace(client)
        stale = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "proxy"},
            "spec": {
                "holderIdentity": "crashed-long-ago",
                "leaseDurationSeconds": 15,
                "acquireTime": "2020-01-01T00:00:00.000000Z",
                "renewTime": "2020-01-01T00:00:00.000000Z",
                "leaseTransitions": 4,
            },
        }
        await client.create(stale, namespace)
        elector = LeaderElector(client, namespace, "proxy", "newcomer", retry_period=0.5)
        task = asyncio.create_task(elector.run())
        try:
            await eventually(lambda: elector.is_leader, timeout=5, what="leadership")
            lease = await client.get(LEASES, "proxy", namespace)
            assert lease["spec"]["holderIdentity"] == "newcomer"
            assert lease["spec"]["leaseTransitions"] == 5
            assert lease["spec"]["acquireTime"] != "2020-01-01T00:00:00.000000Z"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# ---------------------------------------------------------------------------------------------------
# Events


async def events_about(client: AsyncClient, namespace: str, name: str) -> list[dict[str, Any]]:
    listed = await client.list(EVENTS, namespace)
    return [e for e in listed["items"] if e["involvedObject"].get("name") == name]


async def test_the_same_event_twice_is_one_event_with_count_two(apiserver: ApiServer) -> None:
    async with api_client(apiserver) as client:
        namespace = await new_namespace(client)
        target = await client.create(configmap("settings"), namespace)
        recorder = EventRecorder(client, "config-controller", host="node-1")

        recorder.event(target, NORMAL, "Synced", "configuration applied")
        await recorder.flush()
        recorder.event(target, NORMAL, "Synced", "configuration applied")
        recorder.event(target, WARNING, "Invalid", "key x is malformed")
        await recorder.aclose()

        events = await events_about(client, namespace, "settings")
        by_reason = {e["reason"]: e for e in events}
        assert sorted(by_reason) == ["Invalid", "Synced"] and len(events) == 2
        synced = by_reason["Synced"]
        assert synced["count"] == 2
        assert synced["type"] == "Normal"
        assert synced["message"] == "configuration applied"
        assert synced["metadata"]["name"].startswith("settings.")
        assert synced["involvedObject"] == {
            "kind": "ConfigMap",
            "namespace": namespace,
            "name": "settings",
            "uid": target["metadata"]["uid"],
            "apiVersion": "v1",
            "resourceVersion": target["metadata"]["resourceVersion"],
        }
        assert synced["source"] == {"component": "config-controller", "host": "node-1"}
        assert synced["reportingComponent"] == "config-controller"
        assert synced["firstTimestamp"] <= synced["lastTimestamp"]
        assert by_reason["Invalid"]["count"] == 1
        assert by_reason["Invalid"]["type"] == "Warning"


async def test_a_hot_loop_of_events_is_rate_limited(apiserver: ApiServer) -> None:
    async with api_client(apiserver) as client:
        namespace = await new_namespace(client)
        target = await client.create(configmap("noisy"), namespace)
        recorder = EventRecorder(client, "busy-controller", burst=3)
        for attempt in range(20):
            recorder.event(target, WARNING, "Failed", f"attempt {attempt} failed")
        await recorder.aclose()

        events = await events_about(client, namespace, "noisy")
        assert sorted(e["message"] for e in events) == [f"attempt {i} failed" for i in range(3)]


async def test_an_event_that_cannot_be_posted_is_logged_not_raised(
    apiserver: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with api_client(apiserver) as client:
        ghost = configmap("ghost")
        ghost["metadata"].update(namespace="no-such-namespace", uid="1234")
        recorder = EventRecorder(client, "careful-controller")
        recorder.event(ghost, NORMAL, "Created", "made it")  # must not raise
        await recorder.aclose()
        assert any("could not post" in r.getMessage() for r in caplog.records)
        with pytest.raises(ApiError):
            await client.get(EVENTS, "ghost", "no-such-namespace")
