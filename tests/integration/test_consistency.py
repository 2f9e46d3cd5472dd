"""Consistency under concurrency and crashes, on SQLite and on PostgreSQL.

- No lost update: concurrent read-modify-write loops with resourceVersion preconditions.
- Crash safety: kill -9 in the middle of a stream of creates; acknowledged writes survive, and a watcher
  resuming from its last resourceVersion gets exactly what it missed.
- Watch ordering: concurrent writers, one watcher; events in strictly increasing resourceVersion order,
  matching the successful writes one for one.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import ApiServer, free_port

CONFIGMAPS = "/api/v1/namespaces/{ns}/configmaps"
WAIT_SECONDS = 180.0
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiServer]:
    """A fresh API server per test, on SQLite in its data dir or on a scratch PostgreSQL database."""
    database = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    instance = ApiServer(tmp_path / "data", free_port(), database=database).start()
    yield instance
    instance.stop()


def make_namespace(server: ApiServer) -> str:
    name = f"c-{uuid.uuid4().hex[:8]}"
    with server.client(timeout=30) as http:
        response = http.post("/api/v1/namespaces", json={"metadata": {"name": name}})
        assert response.status_code == 201, response.text
    return name


def rv_of(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


@dataclass
class Recorder:
    """A watch on one path in a thread, recording every event until told where to stop.

    The watch asks for bookmarks; once `finish(rv)` is called, the first bookmark at or past `rv`
    ends it: events arrive in resourceVersion order, so nothing up to `rv` can still be on its way.
    """

    server: ApiServer
    path: str
    since: int
    limit: int | None = None  # end the watch (drop the connection) after this many events
    events: list[dict[str, Any]] = field(default_factory=list)
    last_rv: int = 0
    error: BaseException | None = None
    _target: int | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.last_rv = self.since

    def start(self) -> Recorder:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def finish(self, rv: int) -> None:
        self._target = rv

    def wait(self, timeout: float = WAIT_SECONDS) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the watch did not reach rv {self._target} in {timeout}s"

    def _run(self) -> None:
        params = {
            "watch": "true",
            "resourceVersion": str(self.since),
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(int(WAIT_SECONDS)),
        }
        try:
            with (
                self.server.client(timeout=httpx.Timeout(30.0)) as http,
                http.stream("GET", self.path, params=params) as stream,
            ):
                assert stream.status_code == 200, stream.read()
                for line in stream.iter_lines():
                    if not line:
                        continue
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError:
                        return  # a line cut short by a dying server ends the stream
                    if event["type"] == "ERROR":
                        self.error = RuntimeError(f"the watch failed: {event['object']}")
                        return
                    rv = rv_of(event["object"])
                    if event["type"] == "BOOKMARK":
                        self.last_rv = max(self.last_rv, rv)
                        if self._target is not None and rv >= self._target:
                            return
                        continue
                    self.events.append(event)
                    self.last_rv = rv
                    if self.limit is not None and len(self.events) >= self.limit:
                        return
            self.error = RuntimeError(f"the watch ended at rv {self.last_rv}, before rv {self._target}")
        except Exception as exc:  # reported to the test, which decides whether it was expected
            self.error = exc


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(e["type"], e["object"]["metadata"]["name"], rv_of(e["object"])) for e in events]


def watch_once(server: ApiServer, path: str, since: int, until: int) -> list[dict[str, Any]]:
    recorder = Recorder(server, path, since)
    recorder.finish(until)
    recorder.start().wait()
    assert recorder.error is None, recorder.error
    return recorder.events


# -- a. no lost update ---------------------------------------------------------------------------------
LOOPS = 20
INCREMENTS = 5


def test_concurrent_read_modify_write_loses_no_update(server: ApiServer) -> None:
    ns = make_namespace(server)
    path = CONFIGMAPS.format(ns=ns)
    with server.client(timeout=30) as http:
        created = http.post(path, json={"metadata": {"name": "counter"}, "data": {"counter": "0"}})
        assert created.status_code == 201, created.text
    start_rv = rv_of(created.json())
    live = Recorder(server, path, start_rv).start()

    lock = threading.Lock()
    writes: list[tuple[int, int]] = []  # (resourceVersion, counter value written)
    conflicts = [0]
    failures: list[str] = []
    barrier = threading.Barrier(LOOPS)

    def loop() -> None:
        with server.client(timeout=30) as http:
            barrier.wait()
            done = 0
            while done < INCREMENTS:
                current = http.get(f"{path}/counter").json()
                value = int(current["data"]["counter"]) + 1
                current["data"]["counter"] = str(value)
                answer = http.put(f"{path}/counter", json=current)
                if answer.status_code == 409:
                    assert answer.json()["reason"] == "Conflict"
                    with lock:
                        conflicts[0] += 1
                    continue
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code}: {answer.text}")
                    return
                written = answer.json()
                assert written["data"]["counter"] == str(value)
                with lock:
                    writes.append((rv_of(written), value))
                done += 1

    threads = [threading.Thread(target=loop) for _ in range(LOOPS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    assert not any(t.is_alive() for t in threads), "the writers did not finish"
    assert failures == []

    total = LOOPS * INCREMENTS
    assert len(writes) == total
    with server.client(timeout=30) as http:
        final = http.get(f"{path}/counter").json()
    assert final["data"]["counter"] == str(total)
    # Each value 1..total was written exactly once: no two writers built on the same read.
    assert sorted(value for _, value in writes) == list(range(1, total + 1))
    assert conflicts[0] > 0, "the writers never collided, so the test proved nothing"
    print(f"{server.database or 'sqlite'}: {total} increments, {conflicts[0]} conflicts retried")

    # The change log holds exactly one MODIFIED per successful write, in counter order, both live and
    # when replayed from the log afterwards.
    expected = [("MODIFIED", "counter", rv) for rv, _ in sorted(writes)]
    live.finish(rv_of(final))
    live.wait()
    assert live.error is None, live.error
    replayed = watch_once(server, path, start_rv, rv_of(final))
    for events in (live.events, replayed):
        assert summary(events) == expected
        assert [e["object"]["data"]["counter"] for e in events] == [str(n) for n in range(1, total + 1)]


# -- b. crash safety -----------------------------------------------------------------------------------
WRITERS = 6
CREATES_BEFORE_KILL = 80
EARLY_EVENTS = 20


def test_kill_during_creates_keeps_acknowledged_writes_and_resumes_watch(server: ApiServer) -> None:
    ns = make_namespace(server)
    path = CONFIGMAPS.format(ns=ns)
    with server.client(timeout=30) as http:
        start_rv = int(http.get(path).json()["metadata"]["resourceVersion"])
    # One watcher stays connected until the server dies; the other drops its connection early, so that
    # when it resumes, part of what it missed was written before the crash and part around it.
    steady = Recorder(server, path, start_rv).start()
    early = Recorder(server, path, start_rv, limit=EARLY_EVENTS).start()

    lock = threading.Lock()
    acknowledged: dict[str, int] = {}  # name → resourceVersion, for every create answered 201
    enough = threading.Event()
    stop = threading.Event()
    unexpected: list[str] = []

    def writer(index: int) -> None:
        with server.client(timeout=10) as http:
            n = 0
            while not stop.is_set():
                name = f"w{index}-{n}"
                n += 1
                try:
                    answer = http.post(path, json={"metadata": {"name": name}, "data": {"n": str(n)}})
                except (httpx.HTTPError, OSError):
                    return  # the server died under us
                if answer.status_code != 201:
                    unexpected.append(f"{name}: {answer.status_code} {answer.text}")
                    return
                with lock:
                    acknowledged[name] = rv_of(answer.json())
                    if len(acknowledged) >= CREATES_BEFORE_KILL and len(early.events) == EARLY_EVENTS and steady.events:
                        enough.set()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    try:
        assert enough.wait(WAIT_SECONDS), "the writers did not get going"
        server.kill()  # SIGKILL while every writer is mid-stream
    finally:
        stop.set()
        for thread in threads:
            thread.join(WAIT_SECONDS)
    steady.wait()
    early.wait()
    assert unexpected == []

    server.start()
    with server.client(timeout=30) as http:
        listed = http.get(path).json()
    present = {item["metadata"]["name"]: rv_of(item) for item in listed["items"]}
    list_rv = int(listed["metadata"]["resourceVersion"])
    everything = [("ADDED", name, rv) for name, rv in sorted(present.items(), key=lambda item: item[1])]

    # Every acknowledged create survived, unchanged.
    lost = {name: rv for name, rv in acknowledged.items() if present.get(name) != rv}
    assert lost == {}, f"{len(lost)} acknowledged creates lost or changed by the crash: {lost}"

    for watcher in (steady, early):
        seen = summary(watcher.events)
        # What the watcher saw before the crash was true: each event is an object that is stored.
        assert seen == everything[: len(seen)]
        # Resuming from the last resourceVersion it got yields exactly the objects created after it,
        # once each, in increasing resourceVersion order, nothing it already had.
        resumed = summary(watch_once(server, path, watcher.last_rv, list_rv))
        assert resumed == [event for event in everything if event[2] > watcher.last_rv]
        # Together, before and after the crash, the watcher has every object exactly once.
        assert seen + resumed == everything
        print(
            f"{server.database or 'sqlite'}: {len(acknowledged)} creates acknowledged, {len(present)} stored; "
            f"a watcher saw {len(seen)} before the crash and {len(resumed)} on resuming"
        )


# -- c. watch ordering ---------------------------------------------------------------------------------
ORDER_WRITERS = 8
OBJECTS_PER_WRITER = 6


def test_watch_delivers_concurrent_writes_in_order_without_gaps(server: ApiServer) -> None:
    ns = make_namespace(server)
    path = CONFIGMAPS.format(ns=ns)
    with server.client(timeout=30) as http:
        start_rv = int(http.get(path).json()["metadata"]["resourceVersion"])
    live = Recorder(server, path, start_rv).start()

    lock = threading.Lock()
    writes: list[tuple[str, str, int]] = []  # (event type, name, resourceVersion)
    deleted: list[str] = []
    failures: list[str] = []

    def writer(index: int) -> None:
        with server.client(timeout=30) as http:
            for k in range(OBJECTS_PER_WRITER):
                name = f"o{index}-{k}"
                answer = http.post(path, json={"metadata": {"name": name}, "data": {"step": "0"}})
                if answer.status_code != 201:
                    failures.append(f"create {name}: {answer.status_code}")
                    return
                mine = [("ADDED", name, rv_of(answer.json()))]
                for step in (1, 2):
                    answer = http.patch(
                        f"{path}/{name}", content=json.dumps({"data": {"step": str(step)}}), headers=MERGE
                    )
                    if answer.status_code != 200:
                        failures.append(f"patch {name}: {answer.status_code}")
                        return
                    mine.append(("MODIFIED", name, rv_of(answer.json())))
                dropped = k % 2 == 0
                if dropped:
                    answer = http.delete(f"{path}/{name}")
                    if answer.status_code != 200:
                        failures.append(f"delete {name}: {answer.status_code}")
                        return
                with lock:
                    writes.extend(mine)
                    if dropped:
                        deleted.append(name)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(ORDER_WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    assert not any(t.is_alive() for t in threads), "the writers did not finish"
    assert failures == []

    with server.client(timeout=30) as http:
        end_rv = int(http.get(path).json()["metadata"]["resourceVersion"])
    live.finish(end_rv)
    live.wait()
    assert live.error is None, live.error
    events = summary(live.events)

    versions = [rv for *_, rv in events]
    assert all(a < b for a, b in itertools.pairwise(versions)), "events out of order"
    # Creates and updates: one event each, carrying the resourceVersion the writer was answered with.
    assert [e for e in events if e[0] != "DELETED"] == sorted(writes, key=lambda w: w[2])
    # Deletes: one event per deleted object, its last event, after its last update.
    removals = [(name, rv) for kind, name, rv in events if kind == "DELETED"]
    assert sorted(name for name, _ in removals) == sorted(deleted)
    for name, rv in removals:
        assert max(w[2] for w in writes if w[1] == name) < rv
        assert [e for e in events if e[1] == name][-1][0] == "DELETED"
    # Nothing was written in this namespace but these writes, and no rv in between went missing.
    assert len(events) == len(writes) + len(deleted)

    # Replaying the log from the same starting point gives the very same stream.
    assert summary(watch_once(server, path, start_rv, end_rv)) == events
