"""NodePorts: a pod's host ports (port, protocol and host IP) must be free on the node."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controllers.scheduler.framework import SKIP, FilterPlugin
from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.podinfo import PodInfo

ERR_PORTS = "node(s) didn't have free ports for the requested pod ports"


class NodePorts(FilterPlugin):
    name = "NodePorts"

    def pre_filter(self, pod: PodInfo) -> Any:
        return None if pod.host_ports else SKIP

    def filter(self, pod: PodInfo, node: NodeInfo, state: Any) -> Sequence[str]:
        for ip, protocol, port in pod.host_ports:
            if node.port_taken(ip, protocol, port):
                return (ERR_PORTS,)
        return ()
