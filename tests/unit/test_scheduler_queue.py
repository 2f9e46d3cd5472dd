"""The scheduling queue: priority order, one attempt at a time per pod, backoff, and cluster changes."""

from __future__ import annotations

import asyncio

import pytest

from controllers.scheduler.queue import SchedulingQueue


async def pop_now(queue: SchedulingQueue) -> str | None:
    try:
        return await asyncio.wait_for(queue.pop(), 0.05)
    except TimeoutError:
        return None


async def test_higher_priority_first_then_arrival_order() -> None:
    queue = SchedulingQueue()
    queue.add("ns/low-1", 0)
    queue.add("ns/high", 1000)
    queue.add("ns/low-2", 0)
    assert [await queue.pop() for _ in range(3)] == ["ns/high", "ns/low-1", "ns/low-2"]


async def test_a_pod_in_flight_is_not_handed_out_again() -> None:
    queue = SchedulingQueue()
    queue.add("ns/p")
    assert await queue.pop() == "ns/p"
    queue.add("ns/p")  # an informer update while it is being scheduled
    assert await pop_now(queue) is None
    queue.succeeded("ns/p")
    queue.delete("ns/p")  # bound
    assert await pop_now(queue) is None


def test_backoff_doubles_from_one_second_to_ten() -> None:
    queue = SchedulingQueue()
    assert [queue.backoff_delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


async def test_an_unschedulable_pod_comes_back_after_its_backoff() -> None:
    queue = SchedulingQueue(initial_backoff=0.3, max_backoff=1)
    queue.add("ns/p")
    await queue.pop()
    assert queue.backoff("ns/p") == 0.3
    assert queue.is_waiting("ns/p") and await pop_now(queue) is None
    assert await asyncio.wait_for(queue.pop(), 2) == "ns/p"
    assert queue.backoff("ns/p") == 0.6  # the second failure waits twice as long


async def test_a_cluster_change_ends_every_wait_at_once() -> None:
    queue = SchedulingQueue(initial_backoff=60, max_backoff=60)
    for name in ("ns/a", "ns/b"):
        queue.add(name)
        await queue.pop()
        queue.backoff(name)
    assert queue.waiting == 2
    assert queue.move_all() == 2
    assert {await pop_now(queue), await pop_now(queue)} == {"ns/a", "ns/b"}


async def test_a_changed_pod_is_retried_at_once() -> None:
    queue = SchedulingQueue(initial_backoff=60, max_backoff=60)
    queue.add("ns/p")
    await queue.pop()
    queue.backoff("ns/p")
    queue.add("ns/p")  # an unrelated update does not cut the wait short
    assert await pop_now(queue) is None
    queue.update("ns/p")  # its spec changed (say, a toleration was added)
    assert await pop_now(queue) == "ns/p"


@pytest.mark.parametrize("while_in_flight", [True, False])
async def test_a_deleted_pod_is_never_handed_out(while_in_flight: bool) -> None:
    queue = SchedulingQueue(initial_backoff=0.01)
    queue.add("ns/p")
    if while_in_flight:
        await queue.pop()
        queue.delete("ns/p")
        assert queue.backoff("ns/p") == 0.0
    else:
        queue.delete("ns/p")
    queue.move_all()
    assert await pop_now(queue) is None
