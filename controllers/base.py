"""What every controller in the controller-manager receives, and how controllers are registered."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from skiff.client.rest import AsyncClient
from skiff.runtime import EventRecorder, SharedInformerFactory


@dataclass
class Options:
    """Controller-manager settings, from flags."""

    cluster_cidr: ipaddress.IPv4Network = field(default_factory=lambda: ipaddress.IPv4Network("10.244.0.0/16"))
    node_cidr_mask_size: int = 24
    node_monitor_grace_period: float = 40.0
    node_monitor_period: float = 5.0
    pod_eviction_timeout: float = 300.0
    root_ca_pem: str = ""
    service_account_key_file: str = ""
    concurrent_syncs: int = 5
    cluster_signing_cert_file: str = ""
    cluster_signing_key_file: str = ""
    cluster_signing_duration: float = 365 * 24 * 3600.0
    # External addresses the service-lb controller hands to LoadBalancer Services ("a-b" ranges, CIDRs).
    load_balancer_ip_pool: str = ""
    # Where the hostpath provisioner finds the kubelets' data (DATA/kubelet/<node>/); "" disables it.
    volume_data_dir: str = ""
    # The pool the simulated provisioner carves volumes from (a quantity).
    simulated_storage_capacity: str = "100Gi"


@dataclass
class ControllerContext:
    client: AsyncClient
    informers: SharedInformerFactory
    options: Options
    _recorders: dict[str, EventRecorder] = field(default_factory=dict)

    def recorder(self, component: str) -> EventRecorder:
        recorder = self._recorders.get(component)
        if recorder is None:
            recorder = self._recorders[component] = EventRecorder(self.client, component)
        return recorder

    async def close(self) -> None:
        for recorder in self._recorders.values():
            await recorder.aclose()
        await self.client.aclose()
