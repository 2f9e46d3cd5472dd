"""The work queue's guarantees and the controller worker loop built on it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from skiff.runtime import Controller, ExponentialBackoff, QueueShutDown, WorkQueue


async def next_key(queue: WorkQueue[str], timeout: float = 5.0) -> str:
    return await asyncio.wait_for(queue.get(), timeout)


async def nothing_ready(queue: WorkQueue[str], within: float = 0.05) -> bool:
    try:
        key = await asyncio.wait_for(queue.get(), within)
    except TimeoutError:
        return True
    queue.done(key)
    return False


async def test_a_key_added_twice_while_queued_is_handed_out_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("default/web")
    queue.add("default/web")
    queue.add("default/db")

    assert len(queue) == 2
    assert await next_key(queue) == "default/web"
    assert await next_key(queue) == "default/db"
    assert await nothing_ready(queue)


async def test_a_key_added_while_processing_waits_for_done_and_comes_back_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("default/web")
    key = await next_key(queue)

    for _ in range(3):
        queue.add(key)
    # A second worker must not get the key another worker holds.
    assert await nothing_ready(queue)

    queue.done(key)
    assert await next_key(queue) == key
    queue.done(key)
    assert await nothing_ready(queue)


async def test_a_key_not_added_again_is_gone_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.done(await next_key(queue))
    assert len(queue) == 0
    assert await nothing_ready(queue)


async def test_waiting_workers_each_get_a_different_key() -> None:
    queue: WorkQueue[str] = WorkQueue()
    first, second = asyncio.create_task(queue.get()), asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.add("a")
    queue.add("b")
    got = {await asyncio.wait_for(first, 5), await asyncio.wait_for(second, 5)}
    assert got == {"a", "b"}


async def test_add_after_holds_the_key_back_until_the_delay_passes() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("later", 0.3)
    assert len(queue) == 0
    assert await nothing_ready(queue, within=0.1)
    assert await next_key(queue) == "later"


async def test_add_after_keeps_the_earliest_of_two_delays() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("k", 60)
    queue.add_after("k", 0.05)
    assert await next_key(queue) == "k"

    queue.done("k")
    queue.add_after("j", 0.05)
    queue.add_after("j", 60)
    assert await next_key(queue) == "j"
    assert queue.pending_delayed() == 0


async def test_add_after_without_delay_adds_at_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("now", 0)
    assert len(queue) == 1


def test_backoff_doubles_from_5ms_and_caps_at_1000s() -> None:
    backoff = ExponentialBackoff()
    delays = [backoff.when("k") for _ in range(20)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert delays[-1] == 1000.0
    assert max(delays) == 1000.0
    assert backoff.retries("k") == 20
    # Other keys keep their own count.
    assert backoff.when("other") == 0.005


def test_forget_starts_a_key_over_at_the_base_delay() -> None:
    backoff = ExponentialBackoff(base_delay=1, max_delay=10)
    assert [backoff.when("k") for _ in range(5)] == [1, 2, 4, 8, 10]
    backoff.forget("k")
    assert backoff.retries("k") == 0
    assert backoff.when("k") == 1


def test_backoff_rejects_a_cap_below_the_base() -> None:
    with pytest.raises(ValueError):
        ExponentialBackoff(base_delay=2, max_delay=1)


async def test_add_rate_limited_counts_requeues_until_forget() -> None:
    queue: WorkQueue[str] = WorkQueue(ExponentialBackoff(base_delay=0.001, max_delay=0.01))
    for _ in range(3):
        queue.add_rate_limited("flaky")
        key = await next_key(queue)
        queue.done(key)
    assert queue.num_requeues("flaky") == 3
    queue.forget("flaky")
    assert queue.num_requeues("flaky") == 0


async def test_shutdown_wakes_idle_workers_and_refuses_new_keys() -> None:
    queue: WorkQueue[str] = WorkQueue()
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.shutdown()
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(waiting, 5)
    queue.add("late")
    assert len(queue) == 0
    with pytest.raises(QueueShutDown):
        await next_key(queue)


async def test_shutdown_lets_workers_drain_queued_keys_and_drops_delayed_ones() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("queued")
    queue.add_after("delayed", 0.05)
    queue.shutdown()
    assert await next_key(queue) == "queued"
    await asyncio.sleep(0.1)
    with pytest.raises(QueueShutDown):
        await next_key(queue)


# ---------------------------------------------------------------------------------------------------
# Controller


async def run_until(controller: Controller[str], done: asyncio.Event) -> None:
    task = asyncio.create_task(controller.run())
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_failing_reconcile_is_retried_with_backoff_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[str] = []
    succeeded = asyncio.Event()

    async def reconcile(key: str) -> None:
        attempts.append(key)
        if len(attempts) < 3:
            raise RuntimeError("the API server said no")
        succeeded.set()

    queue: WorkQueue[str] = WorkQueue(ExponentialBackoff(base_delay=0.001, max_delay=0.01))
    controller = Controller("demo", reconcile, queue=queue)
    controller.enqueue("default/web")
    with caplog.at_level(logging.ERROR):
        await run_until(controller, succeeded)

    assert attempts == ["default/web"] * 3
    assert queue.num_requeues("default/web") == 0  # forgotten after success
    failures = [r for r in caplog.records if r.name == "skiff.controller.demo" and r.exc_info]
    assert len(failures) == 2
    assert "default/web" in failures[0].getMessage()


async def test_workers_never_reconcile_one_key_concurrently() -> None:
    active: set[str] = set()
    overlaps: list[str] = []
    calls = 0
    finished = asyncio.Event()
    controller: Controller[str]

    async def reconcile(key: str) -> None:
        nonlocal calls
        if key in active:
            overlaps.append(key)
        active.add(key)
        # Someone changes the object again while it is being reconciled.
        controller.enqueue(key)
        await asyncio.sleep(0.01)
        active.discard(key)
        calls += 1
        if calls >= 10:
            finished.set()

    controller = Controller("demo", reconcile, workers=4)
    controller.enqueue("default/web")
    await run_until(controller, finished)
    assert overlaps == []


async def test_workers_share_out_different_keys() -> None:
    running_together = asyncio.Event()
    active: set[str] = set()

    async def reconcile(key: str) -> None:
        active.add(key)
        if len(active) == 2:
            running_together.set()
        await asyncio.sleep(0.05)
        active.discard(key)

    controller = Controller("demo", reconcile, workers=2)
    controller.enqueue("a")
    controller.enqueue("b")
    await run_until(controller, running_together)


async def test_a_reconcile_can_ask_to_look_again_later() -> None:
    seen: list[str] = []
    twice = asyncio.Event()

    async def reconcile(key: str) -> float | None:
        seen.append(key)
        if len(seen) == 2:
            twice.set()
            return None
        return 0.05

    controller = Controller("demo", reconcile)
    controller.enqueue("cron")
    await run_until(controller, twice)
    assert seen == ["cron", "cron"]


async def test_controller_waits_for_its_informers_before_working() -> None:
    class SlowInformer:
        def __init__(self) -> None:
            self.synced = asyncio.Event()

        async def wait_synced(self, timeout: float | None = None) -> bool:
            await self.synced.wait()
            return True

    informer = SlowInformer()
    reconciled = asyncio.Event()

    async def reconcile(key: str) -> None:
        reconciled.set()

    controller = Controller("demo", reconcile, wait_for=[informer])
    controller.enqueue("k")
    task = asyncio.create_task(controller.run())
    await asyncio.sleep(0.05)
    assert not reconciled.is_set()
    informer.synced.set()
    await asyncio.wait_for(reconciled.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
