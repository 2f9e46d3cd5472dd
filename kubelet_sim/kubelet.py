"""One simulated node: its Node agent, lease, runtime, volumes and pod workers, wired together."""

from __future__ import annotations

import asyncio
import logging

from kubelet_sim.config import KubeletConfig, NodeConfig
from kubelet_sim.lease import NodeLease
from kubelet_sim.node import NodeAgent
from kubelet_sim.pods import PodWorkers
from kubelet_sim.simruntime import SimRuntime
from kubelet_sim.volumes import VolumeManager
from skiff.client.rest import AsyncClient
from skiff.runtime import EventRecorder, Informer

log = logging.getLogger("skiff.kubelet")


class NodeKubelet:
    def __init__(self, node: NodeConfig, config: KubeletConfig, client: AsyncClient, pods: Informer) -> None:
        self.node = node
        self.client = client
        node_dir = config.node_dir(node.name)
        self.recorder = EventRecorder(client, "kubelet", host=node.name)
        self.runtime = SimRuntime(node_dir, config.fail_image_patterns, config.image_pull_duration)
        self.agent = NodeAgent(node, config, client, self.recorder, self._pod_cidr_changed)
        self.lease = NodeLease(client, node.name, config.node_lease_duration_seconds, config.node_lease_renew_interval)
        self.volumes = VolumeManager(node_dir, client, config.volume_refresh_period, self.agent.capacity)
        self.workers = PodWorkers(
            node.name,
            lambda: node.address,
            lambda: self.agent.pod_cidr,
            client,
            self.recorder,
            pods,
            self.runtime,
            self.runtime,
            self.runtime,
            self.volumes,
            config.backoff_base,
            config.backoff_max,
            config.workers,
        )

    def _pod_cidr_changed(self, cidr: str) -> None:
        # Pods that waited for a CIDR can get their sandboxes now.
        self.workers.enqueue_all()

    async def run(self) -> None:
        self.runtime.load()
        self.runtime.start()
        await self.agent.register()
        self.lease.node_uid = self.agent.uid
        await self.workers.restore()
        tasks = [
            asyncio.create_task(self.lease.run(), name=f"lease {self.node.name}"),
            asyncio.create_task(self.agent.status_loop(), name=f"status {self.node.name}"),
            asyncio.create_task(self.workers.controller.run(), name=f"pods {self.node.name}"),
            asyncio.create_task(self.workers.follow_runtime_events(), name=f"events {self.node.name}"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.runtime.close()
            await self.recorder.aclose()
