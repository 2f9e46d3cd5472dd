"""The object store on SQLite and PostgreSQL: preconditions, resourceVersions, the change log, compaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from apiserver.storage.records import Change, KeyExists, KeyNotFound, ResourceVersionExpired, VersionConflict
from apiserver.storage.store import Store

PODS = "core/pods"
CONFIGMAPS = "core/configmaps"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'skiff.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest_asyncio.fixture(loop_scope="function")
async def store(db_url: str) -> AsyncIterator[Store]:
    store = Store(db_url)
    await store.open()
    yield store
    await store.close()


def obj(name: str, **data: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}"}, "data": data}


def rv_of(stored_obj: dict[str, Any]) -> int:
    return int(stored_obj["metadata"]["resourceVersion"])


pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_create_get_update_delete_with_preconditions(store: Store) -> None:
    created = await store.create(PODS, "ns", "a", obj("a", v=1))
    assert created.rv > 0 and rv_of(created.obj()) == created.rv

    got = await store.get(PODS, "ns", "a")
    assert got is not None and got.rv == created.rv and got.obj()["data"] == {"v": 1}
    assert await store.get(PODS, "ns", "missing") is None
    assert await store.get(PODS, "other", "a") is None  # the namespace is part of the key

    with pytest.raises(KeyExists):
        await store.create(PODS, "ns", "a", obj("a", v=2))
    with pytest.raises(VersionConflict):
        await store.update(PODS, "ns", "a", obj("a", v=2), expected_rv=created.rv + 1000)
    with pytest.raises(KeyNotFound):
        await store.update(PODS, "ns", "missing", obj("missing"), expected_rv=None)
    # None of the failed writes changed the object.
    unchanged = await store.get(PODS, "ns", "a")
    assert unchanged is not None and unchanged.rv == created.rv and unchanged.obj()["data"] == {"v": 1}

    updated = await store.update(PODS, "ns", "a", obj("a", v=2), expected_rv=created.rv)
    assert updated.rv > created.rv
    # An update without a precondition wins regardless of the version.
    forced = await store.update(PODS, "ns", "a", obj("a", v=3), expected_rv=None)
    assert forced.rv > updated.rv
    with pytest.raises(VersionConflict):
        await store.delete(PODS, "ns", "a", obj("a"), expected_rv=updated.rv)

    deleted = await store.delete(PODS, "ns", "a", obj("a", v=3), expected_rv=forced.rv)
    assert deleted.rv > forced.rv
    assert await store.get(PODS, "ns", "a") is None
    with pytest.raises(KeyNotFound):
        await store.delete(PODS, "ns", "a", obj("a"), expected_rv=None)
    assert await store.current_rv() == deleted.rv

    # The name is free again.
    again = await store.create(PODS, "ns", "a", obj("a", v=4))
    assert again.rv > deleted.rv


async def test_resource_versions_are_unique_and_increasing_across_resources(store: Store) -> None:
    rvs: list[int] = []
    for i in range(5):
        rvs.append((await store.create(PODS, "ns", f"p{i}", obj(f"p{i}"))).rv)
        rvs.append((await store.create(CONFIGMAPS, "ns", f"p{i}", obj(f"p{i}"))).rv)
        rvs.append((await store.create(PODS, f"ns{i}", "x", obj("x"))).rv)
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)

    # Concurrent writers share one sequence as well.
    results = await asyncio.gather(*(store.create(CONFIGMAPS, "concurrent", f"c{i}", obj(f"c{i}")) for i in range(100)))
    concurrent = [r.rv for r in results]
    assert len(set(concurrent)) == 100 and min(concurrent) > max(rvs)
    assert await store.current_rv() == max(concurrent)


async def test_several_writes_to_one_key_in_one_batch_apply_in_order(store: Store) -> None:
    # Submitted without awaiting in between: the writer commits them together, in submission order.
    created, first, second, gone, recreated = await asyncio.gather(
        store.create(PODS, "ns", "k", obj("k", step=1)),
        store.update(PODS, "ns", "k", obj("k", step=2), expected_rv=None),
        store.update(PODS, "ns", "k", obj("k", step=3), expected_rv=None),
        store.delete(PODS, "ns", "k", obj("k", step=3), expected_rv=None),
        store.create(PODS, "ns", "k", obj("k", step=4)),
    )
    rvs = [created.rv, first.rv, second.rv, gone.rv, recreated.rv]
    assert rvs == list(range(rvs[0], rvs[0] + 5))

    final = await store.get(PODS, "ns", "k")
    assert final is not None and final.rv == recreated.rv and final.obj()["data"] == {"step": 4}
    log = await store.changes_since(created.rv - 1)
    assert [(c.rv, c.event, c.obj()["data"]["step"]) for c in log] == [
        (rvs[0], "ADDED", 1),
        (rvs[1], "MODIFIED", 2),
        (rvs[2], "MODIFIED", 3),
        (rvs[3], "DELETED", 3),
        (rvs[4], "ADDED", 4),
    ]


async def test_failed_precondition_in_a_batch_does_not_affect_the_others(store: Store) -> None:
    base = await store.create(PODS, "ns", "existing", obj("existing", v=0))
    outcomes = await asyncio.gather(
        store.create(PODS, "ns", "new-1", obj("new-1")),
        store.create(PODS, "ns", "existing", obj("existing", v=99)),  # KeyExists
        store.update(PODS, "ns", "existing", obj("existing", v=1), expected_rv=base.rv),
        store.update(PODS, "ns", "existing", obj("existing", v=2), expected_rv=base.rv),  # now stale
        store.delete(PODS, "ns", "nothing", obj("nothing"), expected_rv=None),  # KeyNotFound
        store.create(PODS, "ns", "new-2", obj("new-2")),
        return_exceptions=True,
    )
    new1, exists, update_ok, stale, not_found, new2 = outcomes
    assert isinstance(exists, KeyExists)
    assert isinstance(stale, VersionConflict)
    assert isinstance(not_found, KeyNotFound)
    survivors = [new1, update_ok, new2]
    assert all(not isinstance(s, BaseException) for s in survivors)
    rvs = [s.rv for s in survivors]  # type: ignore[union-attr]
    assert rvs == list(range(base.rv + 1, base.rv + 4))  # failures take no resourceVersion

    existing = await store.get(PODS, "ns", "existing")
    assert existing is not None and existing.obj()["data"] == {"v": 1}
    page = await store.list(PODS, "ns")
    assert [row[1] for row in page.rows] == ["existing", "new-1", "new-2"]
    log = await store.changes_since(base.rv)
    assert [(c.rv, c.name) for c in log] == list(zip(rvs, ["new-1", "existing", "new-2"], strict=True))


async def test_list_is_a_consistent_snapshot_and_pages_in_key_order(store: Store) -> None:
    names = [f"obj-{i:02d}" for i in range(25)]
    for name in names:
        await store.create(CONFIGMAPS, "b", name, obj(name))
    await store.create(CONFIGMAPS, "a", "first", obj("first"))
    await store.create(PODS, "b", "not-a-configmap", obj("not-a-configmap"))

    everything = await store.list(CONFIGMAPS, None)
    assert everything.rv == await store.current_rv()
    assert [(ns, name) for ns, name, _ in everything.rows] == [("a", "first")] + [("b", n) for n in names]
    assert not everything.more
    assert everything.rv >= max(rv_of(orjson.loads(data)) for *_, data in everything.rows)

    # Pages of 10 in one namespace cover every name exactly once, in order.
    seen: list[str] = []
    after: tuple[str, str] | None = None
    pages = 0
    while True:
        page = await store.list(CONFIGMAPS, "b", after=after, limit=10)
        pages += 1
        seen += [name for _, name, _ in page.rows]
        if not page.more:
            break
        after = (page.rows[-1][0], page.rows[-1][1])
    assert seen == names and pages == 3
    assert [r[1] for r in (await store.list(CONFIGMAPS, "b", name="obj-07")).rows] == ["obj-07"]

    # A list taken while writes are in flight never shows a row newer than its resourceVersion.
    async def churn() -> None:
        for i in range(40):
            await store.update(CONFIGMAPS, "b", names[i % 25], obj(names[i % 25], i=i), expected_rv=None)

    writer = asyncio.create_task(churn())
    while not writer.done():
        page = await store.list(CONFIGMAPS, "b")
        assert len(page.rows) == 25
        assert max(rv_of(orjson.loads(data)) for *_, data in page.rows) <= page.rv
        await asyncio.sleep(0)
    await writer


async def test_changes_since_returns_the_log_in_order(store: Store) -> None:
    start = await store.current_rv()
    await store.create(PODS, "ns", "a", obj("a"))
    await store.create(CONFIGMAPS, "ns", "b", obj("b"))
    await store.update(PODS, "ns", "a", obj("a", v=2), expected_rv=None)
    await store.delete(CONFIGMAPS, "ns", "b", obj("b", last=True), expected_rv=None)

    log = await store.changes_since(start)
    assert [(c.rv, c.event, c.resource, c.name) for c in log] == [
        (start + 1, "ADDED", PODS, "a"),
        (start + 2, "ADDED", CONFIGMAPS, "b"),
        (start + 3, "MODIFIED", PODS, "a"),
        (start + 4, "DELETED", CONFIGMAPS, "b"),
    ]
    # The DELETED entry carries the object's final state, stamped with the deletion's version.
    assert log[3].obj()["data"] == {"last": True} and rv_of(log[3].obj()) == start + 4
    assert [c.rv for c in await store.changes_since(start + 1, until_rv=start + 3)] == [start + 2, start + 3]
    assert [c.rv for c in await store.changes_since(start, limit=2)] == [start + 1, start + 2]
    assert await store.changes_since(start + 4) == []


async def test_compaction_drops_old_entries_and_expires_old_versions(store: Store) -> None:
    first = await store.create(PODS, "ns", "a", obj("a"))
    last = await store.update(PODS, "ns", "a", obj("a", v=2), expected_rv=first.rv)
    # A long window keeps everything.
    assert await store.compact(3600) == 0
    assert [c.rv for c in await store.changes_since(first.rv - 1)] == [first.rv, last.rv]

    await asyncio.sleep(0.01)
    compacted = await store.compact(0)
    assert compacted == last.rv == await store.compacted_rv()
    assert await store.log_size() == 0
    with pytest.raises(ResourceVersionExpired) as expired:
        await store.changes_since(first.rv)
    assert expired.value.requested == first.rv and expired.value.compacted == last.rv
    # From the compacted version on, the log is whole again.
    assert await store.changes_since(last.rv) == []
    later = await store.create(PODS, "ns", "b", obj("b"))
    assert [c.rv for c in await store.changes_since(last.rv)] == [later.rv]
    # The objects themselves are untouched.
    current = await store.get(PODS, "ns", "a")
    assert current is not None and current.rv == last.rv
    # Compacting again with nothing older does not move the mark backwards.
    assert await store.compact(3600) == last.rv


async def test_writes_keep_succeeding_while_compaction_runs(store: Store) -> None:
    stop = asyncio.Event()

    async def compactor() -> int:
        rounds = 0
        while not stop.is_set():
            await store.compact(0)
            rounds += 1
            await asyncio.sleep(0)
        return rounds

    task = asyncio.create_task(compactor())
    outcomes: list[Any] = []
    for round_ in range(20):
        outcomes += await asyncio.gather(
            *(store.create(CONFIGMAPS, "ns", f"c{round_}-{i}", obj(f"c{i}")) for i in range(15)),
            *(store.update(CONFIGMAPS, "ns", f"c0-{i}", obj(f"c{i}"), expected_rv=None) for i in range(5)),
            return_exceptions=True,
        )
    stop.set()
    assert await task > 0
    # Every write was acknowledged; none failed because the compactor held the database.
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert len((await store.list(CONFIGMAPS, "ns")).rows) == 300


async def test_migrations_are_idempotent(db_url: str) -> None:
    first = Store(db_url)
    await first.open()
    written = await first.create(PODS, "ns", "kept", obj("kept"))
    await first.close()

    for _ in range(2):  # opening an up-to-date database again changes nothing
        again = Store(db_url)
        await again.open()
        try:
            assert await again.current_rv() == written.rv
            kept = await again.get(PODS, "ns", "kept")
            assert kept is not None and kept.rv == written.rv
            log: list[Change] = await again.changes_since(0)
            assert [c.rv for c in log] == [written.rv]
        finally:
            await again.close()

    if not db_url.startswith("postgresql"):
        return  # SQLite serves one API server process
    # Two API servers starting together against one database both come up on the same schema.
    a, b = Store(db_url), Store(db_url)
    try:
        await asyncio.gather(a.open(), b.open())
        assert await a.current_rv() == await b.current_rv() == written.rv
    finally:
        await a.close()
        await b.close()


async def test_concurrent_compactions_never_move_the_compacted_mark_backwards(postgres_url: str) -> None:
    """Two API servers compact one database at once; the later, narrower one must not undo the wider."""
    import asyncpg

    from apiserver.watch.tailer import asyncpg_dsn

    a, b = Store(postgres_url), Store(postgres_url)
    await a.open()
    await b.open()
    blocker = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        old = [(await a.create(PODS, "ns", f"old-{i}", obj(f"old-{i}"))).rv for i in range(3)]
        await asyncio.sleep(1.0)
        new = [(await a.create(PODS, "ns", f"new-{i}", obj(f"new-{i}"))).rv for i in range(3)]

        # Hold the oldest log rows so that both compactions queue up on them, wide one first.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.fetch("SELECT rv FROM changes WHERE rv <= $1 FOR UPDATE", old[-1])

        async def waiting_on_locks() -> int:
            return int(
                await blocker.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )

        async def until_waiting(count: int) -> None:
            for _ in range(200):
                if await waiting_on_locks() >= count:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError("the compaction did not reach the lock")

        wide = asyncio.create_task(a.compact(0))  # everything so far
        await until_waiting(1)
        narrow = asyncio.create_task(b.compact(0.5))  # only the old entries
        await until_waiting(2)
        await transaction.rollback()
        await asyncio.gather(wide, narrow)

        assert await a.compacted_rv() == new[-1]
        # The whole compacted range answers 410 rather than a log with a hole in it.
        with pytest.raises(ResourceVersionExpired):
            await a.changes_since(old[-1] + 1)
    finally:
        await blocker.close()
        await a.close()
        await b.close()
