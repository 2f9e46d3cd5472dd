"""The scheduler loop against informers fed by hand and a binder that records what it is asked to do."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from types import SimpleNamespace
from typing import Any

from controllers.scheduler.podinfo import PodInfo
from controllers.scheduler.scheduler import Scheduler
from skiff.api.errors import ApiError
from skiff.client.builder import RequestBuilder
from skiff.runtime import SharedInformerFactory
from tests.unit.test_scheduler_plugins import make_node, make_pod


class FakeBinder:
    def __init__(self) -> None:
        self.bound: dict[str, str] = {}
        self.unschedulable: dict[str, str] = {}
        self.errors: list[str] = []
        self.fail_with: dict[str, ApiError] = {}

    async def bind(self, pod: PodInfo, node: str) -> None:
        await asyncio.sleep(0.01)  # a request in flight: other pods are scheduled meanwhile
        error = self.fail_with.pop(pod.key, None)
        if error is not None:
            raise error
        self.bound[pod.key] = node

    async def report_unschedulable(self, pod: Mapping[str, Any], message: str) -> None:
        metadata = pod["metadata"]
        self.unschedulable[f"{metadata['namespace']}/{metadata['name']}"] = message

    def report_error(self, pod: Mapping[str, Any], message: str) -> None:
        self.errors.append(message)


class Harness:
    def __init__(self) -> None:
        factory = SharedInformerFactory(SimpleNamespace(requests=RequestBuilder()))  # type: ignore[arg-type]
        self.binder = FakeBinder()
        self.scheduler = Scheduler(None, factory, self.binder, initial_backoff=30, max_backoff=30)  # type: ignore[arg-type]
        self.scheduler.nodes.replace([], "1")
        self.scheduler.pods.replace([], "1")

    def node(self, node: dict[str, Any]) -> None:
        self.scheduler.nodes.apply_event("ADDED", node)

    def pod(self, pod: dict[str, Any], event: str = "ADDED") -> None:
        self.scheduler.pods.apply_event(event, pod)

    def observe_bindings(self) -> None:
        """What the API would report back: every bound pod with its nodeName."""
        for key, node in self.binder.bound.items():
            namespace, name = key.split("/")
            pod = self.scheduler.pods.get(namespace, name)
            if pod is not None and not pod["spec"].get("nodeName"):
                self.pod({**pod, "spec": {**pod["spec"], "nodeName": node}}, "MODIFIED")


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[Harness]:
    harness = Harness()
    task = asyncio.create_task(harness.scheduler.run())
    try:
        yield harness
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_burst_fills_nodes_without_overcommitting() -> None:
    async with running() as harness:
        for index in range(3):
            harness.node(make_node(f"n{index}", cpu="2"))
        for index in range(7):
            harness.pod(make_pod(f"p{index}", cpu="1"))
        await until(lambda: len(harness.binder.bound) + len(harness.binder.unschedulable) == 7)
        assert sorted(Counter(harness.binder.bound.values()).values()) == [2, 2, 2]
        assert list(harness.binder.unschedulable.values()) == ["0/3 nodes are available: 3 Insufficient cpu."]


async def test_an_unschedulable_pod_is_placed_when_a_node_is_added() -> None:
    async with running() as harness:
        harness.node(make_node("small", cpu="1"))
        harness.pod(make_pod("big", cpu="4"))
        await until(lambda: "default/big" in harness.binder.unschedulable)
        harness.node(make_node("large", cpu="8"))  # backoff is 30 s: only the cluster change brings it back
        await until(lambda: "default/big" in harness.binder.bound)
        assert harness.binder.bound["default/big"] == "large"


async def test_deleting_a_pod_frees_room_for_a_waiting_one() -> None:
    async with running() as harness:
        harness.node(make_node("n1", cpu="2"))
        harness.pod(make_pod("first", cpu="2"))
        await until(lambda: "default/first" in harness.binder.bound)
        harness.observe_bindings()
        harness.pod(make_pod("second", cpu="2"))
        await until(lambda: "default/second" in harness.binder.unschedulable)
        first = harness.scheduler.pods.get("default", "first")
        assert first is not None
        harness.pod(first, "DELETED")
        await until(lambda: "default/second" in harness.binder.bound)


async def test_a_failed_binding_releases_the_node_and_retries() -> None:
    async with running() as harness:
        harness.node(make_node("n1", cpu="1"))
        harness.binder.fail_with["default/a"] = ApiError(500, "InternalError", "storage unavailable")
        harness.pod(make_pod("a", cpu="1"))
        await until(lambda: harness.binder.errors != [])
        assert harness.binder.errors == ["Binding rejected: storage unavailable"]
        # Its assumed cpu is free again: another pod can take the node.
        harness.pod(make_pod("b", cpu="1"))
        await until(lambda: "default/b" in harness.binder.bound)


async def test_pods_for_other_schedulers_or_already_bound_are_left_alone() -> None:
    async with running() as harness:
        harness.node(make_node("n1"))
        harness.pod(make_pod("custom", schedulerName="my-scheduler"))
        harness.pod(make_pod("pinned", node_name="n1"))
        gated = make_pod("gated", schedulingGates=[{"name": "example.com/wait"}])
        harness.pod(gated)
        harness.pod(make_pod("mine"))
        await until(lambda: "default/mine" in harness.binder.bound)
        await asyncio.sleep(0.05)
        assert set(harness.binder.bound) == {"default/mine"}
        # Removing the gate makes the pod schedulable.
        harness.pod({**gated, "spec": {**gated["spec"], "schedulingGates": []}}, "MODIFIED")
        await until(lambda: "default/gated" in harness.binder.bound)
