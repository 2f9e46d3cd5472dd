"""Watch and list semantics that depend on storage, over HTTPS, on SQLite and on PostgreSQL.

Compacted versions get 410 Gone (what informers re-list on), watches older than the in-memory window
are served from the change log, bookmarks never go backwards, and selectors filter the stream.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from tests.support import ApiServer, free_port, postgres_database

CONFIGMAPS = "/api/v1/namespaces/{ns}/configmaps"
# A DELETE of a configmap answers a success Status, as kube-apiserver does, which names no resourceVersion.
# A DELETE of a serviceaccount answers the deleted object, carrying the resourceVersion of the deletion, so
# the tests that compare every acknowledged write with the watch stream, deletes included, use them.
SERVICEACCOUNTS = "/api/v1/namespaces/{ns}/serviceaccounts"
Event = dict[str, Any]


def start_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, extra: Sequence[str]
) -> Iterator[ApiServer]:
    with ExitStack() as stack:
        database = ""
        if request.param == "postgres":
            request.getfixturevalue("require_postgres")
            database = stack.enter_context(postgres_database())
        server = ApiServer(tmp_path_factory.mktemp("apiserver"), free_port(), database, extra).start()
        stack.callback(server.stop)
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def compacting(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A server that keeps no watch history: everything committed is compacted within moments."""
    yield from start_server(request, tmp_path_factory, ["--compaction-window", "0", "--compaction-interval", "0.2"])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def small_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A server that keeps only the last five changes in memory; older watches read the database."""
    yield from start_server(request, tmp_path_factory, ["--watch-cache-size", "5"])


def new_namespace(client: httpx.Client) -> tuple[str, int]:
    name = f"w-{uuid.uuid4().hex[:8]}"
    response = client.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert response.status_code == 201, response.text
    return name, rv_of(response.json())


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def serviceaccount(
    name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
    }


def rv_of(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def watch(
    server: ApiServer,
    path: str,
    params: dict[str, str],
    until: Any = None,
    timeout: float = 15.0,
) -> list[Event]:
    """Read watch events until `until(events)` is true or the server ends the stream."""
    events: list[Event] = []
    query = {"watch": "true", "timeoutSeconds": str(int(timeout)), **params}
    with server.client(timeout=timeout + 10) as client, client.stream("GET", path, params=query) as stream:
        assert stream.status_code == 200, stream.read()
        for line in stream.iter_lines():
            if line:
                events.append(json.loads(line))
                if until is not None and until(events):
                    break
    return events


def summary(events: list[Event]) -> list[tuple[str, str, int]]:
    return [(e["type"], e["object"]["metadata"]["name"], rv_of(e["object"])) for e in events]


def compacted_rv(server: ApiServer) -> int:
    with server.client() as client:
        text = client.get("/metrics").text
    match = re.search(r"^skiff_storage_compacted_resource_version ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, "the compaction gauge is missing from /metrics"
    return int(float(match.group(1)))


def wait_compacted_past(server: ApiServer, rv: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while compacted_rv(server) < rv:
        assert time.monotonic() < deadline, f"the change log was not compacted past {rv}"
        time.sleep(0.1)


def assert_expired_status(status: dict[str, Any]) -> None:
    assert status["kind"] == "Status" and status["apiVersion"] == "v1"
    assert status["status"] == "Failure"
    assert status["code"] == 410 and status["reason"] == "Expired"


def test_watch_from_a_compacted_version_gets_a_410_error_event(compacting: ApiServer) -> None:
    with compacting.client(timeout=30) as client:
        ns, _ = new_namespace(client)
        path = CONFIGMAPS.format(ns=ns)
        first = rv_of(client.post(path, json=configmap("a", v="1")).json())
        client.put(f"{path}/a", json=configmap("a", v="2"))
        last = rv_of(client.post(path, json=configmap("b")).json())
        wait_compacted_past(compacting, last)

    # The events are still recent enough for the server's memory, but the version is compacted:
    # the watch must say so instead of replaying, so the client re-lists like it would on any server.
    events = watch(compacting, path, {"resourceVersion": str(first)}, timeout=10)
    assert [e["type"] for e in events] == ["ERROR"]
    assert_expired_status(events[0]["object"])

    # The compacted version itself is still a valid starting point.
    events = watch(
        compacting,
        path,
        {"resourceVersion": str(compacted_rv(compacting)), "allowWatchBookmarks": "true"},
        until=lambda seen: seen[-1]["type"] != "ADDED",
        timeout=10,
    )
    assert events and events[-1]["type"] == "BOOKMARK"


def test_list_with_a_compacted_continue_token_gets_410(compacting: ApiServer) -> None:
    with compacting.client(timeout=30) as client:
        ns, _ = new_namespace(client)
        path = CONFIGMAPS.format(ns=ns)
        for name in ("a", "b", "c"):
            assert client.post(path, json=configmap(name)).status_code == 201
        page = client.get(path, params={"limit": "1"}).json()
        token = page["metadata"]["continue"]
        assert [i["metadata"]["name"] for i in page["items"]] == ["a"] and token
        later = rv_of(client.post(path, json=configmap("d")).json())
        wait_compacted_past(compacting, later)

        response = client.get(path, params={"limit": "1", "continue": token})
        assert response.status_code == 410, response.text
        assert_expired_status(response.json())
        # A fresh list works and sees everything.
        names = [i["metadata"]["name"] for i in client.get(path).json()["items"]]
        assert names == ["a", "b", "c", "d"]


def test_watch_older_than_the_memory_window_is_served_from_the_log(small_cache: ApiServer) -> None:
    with small_cache.client(timeout=30) as client:
        ns, start = new_namespace(client)
        other, _ = new_namespace(client)
        path = SERVICEACCOUNTS.format(ns=ns)
        expected: list[tuple[str, str, int]] = []

        def write(verb: str, name: str) -> None:
            if verb == "ADDED":
                response = client.post(path, json=serviceaccount(name))
            elif verb == "MODIFIED":
                response = client.put(f"{path}/{name}", json=serviceaccount(name, annotations={"changed": "yes"}))
            else:
                response = client.delete(f"{path}/{name}")
            assert response.status_code in (200, 201), response.text
            # Every answer here is the object as written, the deleted one included, with its resourceVersion.
            assert response.json()["kind"] == "ServiceAccount", response.text
            expected.append((verb, name, rv_of(response.json())))
            # Writes elsewhere push this namespace's changes out of the window faster.
            client.post(CONFIGMAPS.format(ns=other), json=configmap(f"x-{uuid.uuid4().hex[:6]}"))

        for i in range(12):
            write("ADDED", f"sa-{i}")
        for i in range(4):
            write("MODIFIED", f"sa-{i}")
        for i in range(3):
            write("DELETED", f"sa-{i}")

        # Keep writing while the watch starts, so that the hand-over from the database to the live
        # stream happens while changes arrive.
        received: list[Event] = []
        total = len(expected) + 15

        def run_watch() -> None:
            received.extend(watch(small_cache, path, {"resourceVersion": str(start)}, until=lambda s: len(s) >= total))

        watcher = threading.Thread(target=run_watch)
        watcher.start()
        for i in range(12, 27):
            write("ADDED", f"sa-{i}")
        watcher.join(60)
        assert not watcher.is_alive()

    assert summary(received) == expected


def test_bookmarks_never_go_behind_the_events_sent(small_cache: ApiServer) -> None:
    with small_cache.client(timeout=30) as client:
        ns, start = new_namespace(client)
        path = CONFIGMAPS.format(ns=ns)
        rvs = [rv_of(client.post(path, json=configmap(f"cm-{i}")).json()) for i in range(8)]
        # A write elsewhere moves the server's head past this namespace's last event.
        client.post("/api/v1/namespaces", json={"metadata": {"name": f"w-{uuid.uuid4().hex[:8]}"}})

    events = watch(
        small_cache,
        path,
        {"resourceVersion": str(start), "allowWatchBookmarks": "true"},
        until=lambda seen: sum(e["type"] == "BOOKMARK" for e in seen) >= 2,
    )
    assert [rv_of(e["object"]) for e in events if e["type"] == "ADDED"] == rvs
    newest = start
    for event in events:
        rv = rv_of(event["object"])
        assert rv >= newest, f"{event['type']} at {rv} after an event at {newest}"
        newest = rv
    bookmark = events[-1]
    assert bookmark["type"] == "BOOKMARK" and bookmark["object"]["kind"] == "ConfigMap"

    # Resuming from the bookmark neither repeats old events nor misses new ones.
    with small_cache.client(timeout=30) as client:
        after = client.post(path, json=configmap("after-bookmark")).json()
    resumed = watch(small_cache, path, {"resourceVersion": str(rv_of(bookmark["object"]))}, until=lambda s: len(s) >= 1)
    assert summary(resumed) == [("ADDED", "after-bookmark", rv_of(after))]


def test_watch_with_a_label_selector_gets_only_matching_objects(small_cache: ApiServer) -> None:
    with small_cache.client(timeout=30) as client:
        ns, start = new_namespace(client)
        path = SERVICEACCOUNTS.format(ns=ns)
        web = {"app": "web"}
        db = {"app": "db"}
        changed = {"changed": "yes"}
        expected = []

        def write(response: httpx.Response) -> dict[str, Any]:
            assert response.status_code in (200, 201), response.text
            assert response.json()["kind"] == "ServiceAccount", response.text
            return response.json()

        created = write(client.post(path, json=serviceaccount("web-1", web)))
        expected.append(("ADDED", "web-1", rv_of(created)))
        write(client.post(path, json=serviceaccount("db-1", db)))
        write(client.put(f"{path}/db-1", json=serviceaccount("db-1", db, changed)))
        write(client.post(path, json=serviceaccount("plain")))
        updated = write(client.put(f"{path}/web-1", json=serviceaccount("web-1", web, changed)))
        expected.append(("MODIFIED", "web-1", rv_of(updated)))
        write(client.delete(f"{path}/db-1"))
        deleted = write(client.delete(f"{path}/web-1"))
        expected.append(("DELETED", "web-1", rv_of(deleted)))
        created = write(client.post(path, json=serviceaccount("web-end", web)))
        expected.append(("ADDED", "web-end", rv_of(created)))

    for selector in ("app=web", "app in (web)", "app!=db,app"):
        events = watch(
            small_cache,
            path,
            {"resourceVersion": str(start), "labelSelector": selector},
            until=lambda seen: seen[-1]["object"]["metadata"]["name"] == "web-end",
        )
        assert summary(events) == expected, selector
