"""The simulated runtime, pod IP allocation and the kubelet's backoff."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest

from kubelet_sim.backoff import Backoff
from kubelet_sim.behaviour import Behaviour, container_annotations
from kubelet_sim.config import default_pod_cidr, parse_duration
from kubelet_sim.ipam import IpAllocator, PoolExhausted
from kubelet_sim.runtime import ContainerConfig, ContainerMetadata, ContainerState, PodSandboxConfig, PodSandboxMetadata
from kubelet_sim.simruntime import SimRuntime


def test_ip_allocation_skips_network_and_gateway_and_survives_a_restart(tmp_path: Path) -> None:
    ipam = IpAllocator(tmp_path)
    first, second = ipam.allocate("10.244.7.0/24", "pod-a"), ipam.allocate("10.244.7.0/24", "pod-b")
    assert (first, second) == ("10.244.7.2", "10.244.7.3")
    assert ipam.allocate("10.244.7.0/24", "pod-a") == first
    reloaded = IpAllocator(tmp_path)
    assert reloaded.lookup("pod-a") == first
    assert reloaded.allocate("10.244.7.0/24", "pod-c") not in (first, second)
    reloaded.release("pod-a")
    assert IpAllocator(tmp_path).lookup("pod-a") is None


def test_a_full_pool_refuses_more_pods(tmp_path: Path) -> None:
    ipam = IpAllocator(tmp_path)
    addresses = {ipam.allocate("10.0.0.0/29", f"pod-{i}") for i in range(5)}
    assert len(addresses) == 5 and all(
        ipaddress.ip_address(a) in ipaddress.ip_network("10.0.0.0/29") for a in addresses
    )
    with pytest.raises(PoolExhausted):
        ipam.allocate("10.0.0.0/29", "one-too-many")


def test_backoff_doubles_to_the_cap_and_resets_after_twice_the_cap() -> None:
    clock = [1000.0]
    backoff = Backoff(10, 300, lambda: clock[0])
    assert backoff.remaining("c", clock[0]) == 0  # the first failure restarts at once
    delays = [backoff.next("c") for _ in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert backoff.remaining("c", clock[0]) == 300
    clock[0] += 601
    assert backoff.remaining("c", clock[0]) == 0
    assert backoff.next("c") == 10


def test_behaviour_annotations_per_container_override_the_pod_wide_ones() -> None:
    annotations = {"sim.skiff.dev/exit-after": "5s", "sim.skiff.dev/web.exit-after": "1m30s", "other": "x"}
    assert container_annotations(annotations, "web") == {"sim.skiff.dev/exit-after": "1m30s"}
    assert Behaviour.from_annotations(container_annotations(annotations, "db")).exit_after == 5
    assert parse_duration("500ms") == 0.5
    with pytest.raises(ValueError, match=r"sim\.skiff\.dev/exit-code"):
        Behaviour.from_annotations({"sim.skiff.dev/exit-code": "one"})
    assert default_pod_cidr(3) == "10.244.3.0/24" and default_pod_cidr(256) == "10.245.0.0/24"


def test_containers_exit_on_their_timetable_and_are_restored_from_disk(tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = SimRuntime(tmp_path, pull_duration=0)
        runtime.start()
        await runtime.update_runtime_config("10.244.1.0/24")
        sandbox = PodSandboxConfig(PodSandboxMetadata("p", "ns", "uid-1"), log_directory=str(tmp_path / "logs"))
        sandbox_id = await runtime.run_pod_sandbox(sandbox)
        config = ContainerConfig(
            ContainerMetadata("main", 0),
            "nginx:1",
            log_path="main/0.log",
            annotations={"sim.skiff.dev/exit-after": "200ms", "sim.skiff.dev/exit-code": "4"},
        )
        container_id = await runtime.create_container(sandbox_id, config, sandbox)
        await runtime.start_container(container_id)
        events = runtime.container_events()
        assert (await runtime.container_status(container_id)).state is ContainerState.RUNNING
        event = await asyncio.wait_for(anext(events), 5)
        assert event.container_id == container_id and event.pod_uid == "uid-1"
        status = await runtime.container_status(container_id)
        assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, 4, "Error")
        await runtime.close()
        restored = SimRuntime(tmp_path)
        restored.load()
        assert (await restored.pod_sandbox_status(sandbox_id)).ip == "10.244.1.2"
        assert (await restored.container_status(container_id)).exit_code == 4
        log = (tmp_path / "logs" / "main" / "0.log").read_text()
        assert "exited with code 4" in log

    asyncio.run(scenario())


def test_images_matching_the_fail_pattern_do_not_pull(tmp_path: Path) -> None:
    from kubelet_sim.runtime import ImagePullError

    runtime = SimRuntime(tmp_path, fail_image_patterns=("*:bad", "invalid/*"), pull_duration=0)
    assert asyncio.run(runtime.pull_image("nginx:1.25")).id.startswith("docker.io/library/nginx@sha256:")
    for image in ("nginx:bad", "invalid/thing:1"):
        with pytest.raises(ImagePullError, match="fail-image-pattern"):
            asyncio.run(runtime.pull_image(image))
