"""Several API server processes on one PostgreSQL database; and SQLite refusing a second process.

Writes made through either server reach the watchers of both, each exactly once and in resourceVersion
order; a write acknowledged by one server is visible through the other at once.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from apiserver.storage.store import Store
from apiserver.watch.hub import WatchHub
from apiserver.watch.tailer import ChangeTailer
from tests.support import REPO_ROOT, ApiServer, free_port

CONFIGMAPS = "/api/v1/namespaces/{ns}/configmaps"
# The watch tests account for every acknowledged write, deletes included, by the resourceVersion it was
# answered with. A DELETE of a configmap answers a success Status without one (as kube-apiserver does); a
# DELETE of a serviceaccount answers the deleted object at the resourceVersion of its deletion.
SERVICEACCOUNTS = "/api/v1/namespaces/{ns}/serviceaccounts"
WRITERS = 8
OPS_PER_WRITER = 40


@pytest.fixture(scope="module")
def shared_database(require_postgres: None) -> Iterator[str]:
    from tests.support import postgres_database

    with postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def servers(shared_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, ApiServer]]:
    a = ApiServer(tmp_path_factory.mktemp("server-a"), free_port(), shared_database).start()
    try:
        b = ApiServer(tmp_path_factory.mktemp("server-b"), free_port(), shared_database).start()
    except Exception:
        a.stop()
        raise
    yield a, b
    b.stop()
    a.stop()


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def serviceaccount(name: str, **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "annotations": annotations}}


def rv_of(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def new_namespace(server: ApiServer) -> str:
    name = f"m-{uuid.uuid4().hex[:8]}"
    with server.client(timeout=30) as client:
        response = client.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert response.status_code == 201, response.text
    return name


@dataclass
class WatchLog:
    events: list[tuple[str, str, int]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


async def follow(server: ApiServer, path: str, start_rv: int, log: WatchLog) -> None:
    """Collect watch events from `start_rv` until cancelled."""
    params = {"watch": "true", "resourceVersion": str(start_rv), "timeoutSeconds": "300"}
    async with (
        server.async_client(timeout=httpx.Timeout(30, read=None)) as client,
        client.stream("GET", path, params=params) as stream,
    ):
        assert stream.status_code == 200
        log.ready.set()
        async for line in stream.aiter_lines():
            if line:
                event = json.loads(line)
                obj = event["object"]
                assert event["type"] in ("ADDED", "MODIFIED", "DELETED"), event
                log.events.append((event["type"], obj["metadata"]["name"], rv_of(obj)))


async def collect_until(logs: list[WatchLog], tasks: list[asyncio.Task[None]], last_rv: int) -> None:
    """Wait until every log reached `last_rv`, linger briefly so that duplicates would show, and stop."""

    async def caught_up(log: WatchLog) -> None:
        while not log.events or log.events[-1][2] < last_rv:
            for task in tasks:
                if task.done():
                    task.result()  # a watch that failed or ended early fails the test here
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(asyncio.gather(*(caught_up(log) for log in logs)), 60)
        await asyncio.sleep(1.0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def writer(server: ApiServer, path: str, index: int, acknowledged: list[tuple[str, str, int]], seed: int) -> None:
    """Creates, updates and deletes on its own objects and on a few shared ones (which conflict)."""
    rng = random.Random(seed)
    verbs = {"POST": "ADDED", "PUT": "MODIFIED", "PATCH": "MODIFIED", "DELETE": "DELETED"}
    async with server.async_client(timeout=60) as client:
        own: list[str] = []
        for step in range(OPS_PER_WRITER):
            choice = rng.random()
            if choice < 0.4 or not own:
                name = f"w{index}-{step}"
                response = await client.post(path, json=serviceaccount(name, step=str(step)))
                verb = "POST"
                if response.status_code == 201:
                    own.append(name)
            elif choice < 0.6:
                name = rng.choice(own)
                current = await client.get(f"{path}/{name}")
                body = current.json()
                body["metadata"]["annotations"] = {"step": str(step)}
                response = await client.put(f"{path}/{name}", json=body)  # carries its resourceVersion
                verb = "PUT"
            elif choice < 0.75:
                name = own.pop(rng.randrange(len(own)))
                response = await client.delete(f"{path}/{name}")
                verb = "DELETE"
            else:
                # Shared objects: every writer races on them, with a resourceVersion precondition, so
                # some updates fail with 409 and must leave no event behind.
                name = f"shared-{rng.randrange(3)}"
                current = await client.get(f"{path}/{name}")
                if current.status_code == 404:
                    response = await client.post(path, json=serviceaccount(name))
                    verb = "POST"
                else:
                    body = current.json()
                    body["metadata"]["annotations"] = {"by": str(index), "step": str(step)}
                    response = await client.put(f"{path}/{name}", json=body)
                    verb = "PUT"
            assert response.status_code in (200, 201, 404, 409), response.text
            if response.status_code in (200, 201):
                # Each acknowledged write answers the object as written, a deleted one included.
                assert response.json()["kind"] == "ServiceAccount", response.text
                acknowledged.append((verbs[verb], name, rv_of(response.json())))


def test_concurrent_writers_on_two_servers_reach_both_watchers_exactly_once_in_order(
    servers: tuple[ApiServer, ApiServer],
) -> None:
    a, b = servers
    ns = new_namespace(a)
    path = SERVICEACCOUNTS.format(ns=ns)
    with b.client(timeout=30) as client:
        start_rv = rv_of(client.get(path).json())

    async def scenario() -> tuple[list[tuple[str, str, int]], WatchLog, WatchLog]:
        acknowledged: list[tuple[str, str, int]] = []
        log_a, log_b = WatchLog(), WatchLog()
        watchers = [
            asyncio.create_task(follow(a, path, start_rv, log_a)),
            asyncio.create_task(follow(b, path, start_rv, log_b)),
        ]
        await asyncio.wait_for(asyncio.gather(log_a.ready.wait(), log_b.ready.wait()), 30)
        await asyncio.gather(*(writer(a if i % 2 == 0 else b, path, i, acknowledged, seed=i) for i in range(WRITERS)))
        await collect_until([log_a, log_b], watchers, max(rv for *_, rv in acknowledged))
        return acknowledged, log_a, log_b

    acknowledged, log_a, log_b = asyncio.run(scenario())

    expected = sorted(acknowledged, key=lambda event: event[2])
    rvs = [rv for *_, rv in expected]
    assert len(expected) > WRITERS * OPS_PER_WRITER // 2
    # Every acknowledged write got its own resourceVersion after the watch started. (The servers' own
    # bookkeeping, such as the `kubernetes` Service endpoints, also writes, so versions are not contiguous
    # here; the store tests check that the log itself has no holes.) A watcher seeing exactly the
    # acknowledged writes also shows that the writes refused with 409 left no event behind.
    assert len(set(rvs)) == len(rvs) and rvs[0] > start_rv
    for name, log in (("server A", log_a), ("server B", log_b)):
        assert log.events == expected, f"the watcher on {name} diverged from the acknowledged writes"


def test_a_write_through_one_server_is_visible_through_the_other(
    servers: tuple[ApiServer, ApiServer],
) -> None:
    a, b = servers
    ns = new_namespace(a)
    path = CONFIGMAPS.format(ns=ns)
    with a.client(timeout=30) as via_a, b.client(timeout=30) as via_b:
        for i in range(20):
            first, second = (via_a, via_b) if i % 2 == 0 else (via_b, via_a)
            created = first.post(path, json=configmap(f"cm-{i}", v="1"))
            assert created.status_code == 201, created.text
            read = second.get(f"{path}/cm-{i}")
            assert read.status_code == 200, f"created through one server, {read.status_code} from the other"
            assert rv_of(read.json()) == rv_of(created.json())

            updated = second.put(f"{path}/cm-{i}", json={**read.json(), "data": {"v": "2"}})
            assert updated.status_code == 200, updated.text
            again = first.get(f"{path}/cm-{i}")
            assert again.json()["data"] == {"v": "2"} and rv_of(again.json()) == rv_of(updated.json())

            # A list at the version just written, on the other server, includes the write.
            listed = second.get(path, params={"resourceVersion": str(rv_of(updated.json()))})
            assert listed.status_code == 200
            assert {item["metadata"]["name"] for item in listed.json()["items"]} >= {f"cm-{i}"}
            assert rv_of(listed.json()) >= rv_of(updated.json())


def test_a_watch_on_one_server_from_a_version_written_through_the_other_misses_nothing(
    servers: tuple[ApiServer, ApiServer],
) -> None:
    a, b = servers
    ns = new_namespace(a)
    path = SERVICEACCOUNTS.format(ns=ns)

    async def scenario() -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
        written: list[tuple[str, str, int]] = []
        async with a.async_client(timeout=30) as via_a, b.async_client(timeout=30) as via_b:
            before = await via_a.post(path, json=serviceaccount("before"))
            assert before.status_code == 201, before.text
            log = WatchLog()
            # Opened on B right away, with a version B may not have read from the log yet.
            task = asyncio.create_task(follow(b, path, rv_of(before.json()), log))
            for i in range(10):
                client = via_a if i % 2 == 0 else via_b
                response = await client.post(path, json=serviceaccount(f"after-{i}"))
                assert response.status_code == 201, response.text
                written.append(("ADDED", f"after-{i}", rv_of(response.json())))
            response = await via_a.delete(f"{path}/before")
            assert response.status_code == 200 and response.json()["kind"] == "ServiceAccount", response.text
            written.append(("DELETED", "before", rv_of(response.json())))
            await collect_until([log], [task], written[-1][2])
        return written, log.events

    written, seen = asyncio.run(scenario())
    assert seen == written


async def test_a_server_whose_log_reader_fell_behind_compaction_recovers(postgres_url: str) -> None:
    """If another server compacts changes this one never read, its watches end (so clients re-list
    on 410) and it keeps following the log, rather than stalling on the missing part forever."""
    writer_store = Store(postgres_url)
    reader_store = Store(postgres_url)
    await writer_store.open()
    await reader_store.open()
    hub = WatchHub(head_rv=await reader_store.current_rv())
    tailer = ChangeTailer(reader_store, hub, hub.publish)
    try:
        old_watch = hub.subscribe("core/configmaps", None, hub.head_rv)
        for i in range(3):
            await writer_store.create("core/configmaps", "lagging", f"old-{i}", configmap(f"old-{i}"))
        await asyncio.sleep(0.01)
        compacted = await writer_store.compact(0)  # before this server's reader got to them
        await tailer.start()
        tailer.poke()

        closed = await asyncio.wait_for(old_watch.queue.get(), 10)
        assert closed is None, "a watcher that cannot be served in order must be ended"
        new_watch = hub.subscribe("core/configmaps", None, compacted)
        later = await writer_store.create("core/configmaps", "lagging", "new", configmap("new"))
        tailer.poke()
        change = await asyncio.wait_for(new_watch.queue.get(), 10)
        assert change is not None and (change.name, change.rv) == ("new", later.rv)
        # A client resuming from a version inside the lost range is sent to the database, which says 410.
        assert hub.subscribe("core/configmaps", None, compacted - 1).backfill_until is not None
    finally:
        await tailer.stop()
        await reader_store.close()
        await writer_store.close()


def test_a_second_server_on_the_same_sqlite_data_dir_refuses_to_start(apiserver: ApiServer) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "apiserver", "--data-dir", str(apiserver.data_dir), "--port", str(free_port())],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1, second.stderr
    message = second.stderr.strip().splitlines()[-1]
    assert "is in use by another API server process" in message and "PostgreSQL" in message
    assert "Traceback" not in second.stderr
    # The first server is unaffected.
    with apiserver.client(timeout=30) as client:
        ns = new_namespace(apiserver)
        assert client.post(CONFIGMAPS.format(ns=ns), json=configmap("still-fine")).status_code == 201
