"""The kubelet's settings: per-node identity (name, address, pod CIDR, capacity) and process-wide timings.

Nodes simulated by one process are numbered from `--first-node-index`; the index picks each node's
loopback address (127.0.10.<index>) and its fallback pod CIDR (10.244.<index>.0/24), so several
kubelet processes on one machine never collide as long as their indexes differ.
"""

from __future__ import annotations

import ipaddress
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

KUBELET_VERSION = "v1.33.0-skiff.1"
RUNTIME_VERSION = "skiff-sim://1.0"
OS_IMAGE = "Skiff simulated node"
DEFAULT_FAIL_IMAGE_PATTERNS = ("*:bad", "invalid/*")
NODE_ADDRESS_BASE = ipaddress.ip_address("127.0.10.0")
# `--pod-cidr` values that are not a CIDR.
POD_CIDR_AUTO = "auto"
POD_CIDR_NONE = "none"

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (`500ms`, `5s`, `1m30s`, `2h`); a bare number means seconds."""
    value = str(text).strip()
    if not value:
        raise ValueError("empty duration")
    try:
        return float(value)
    except ValueError:
        pass
    position, total = 0, 0.0
    for match in _DURATION_RE.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(value):
        raise ValueError(f"invalid duration {text!r} (expected e.g. 500ms, 5s, 1m30s)")
    return total


def go_arch() -> str:
    """The host architecture in Go's words, as `kubernetes.io/arch` spells it."""
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def node_address(index: int) -> str:
    return str(NODE_ADDRESS_BASE + index)


def default_pod_cidr(index: int) -> str:
    """10.244.<index>.0/24, continuing into 10.245.x.0/24 past index 255."""
    network = ipaddress.ip_network("10.244.0.0/24")
    return str(ipaddress.ip_network((int(network.network_address) + index * 256, 24)))


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str

    @classmethod
    def parse(cls, text: str) -> Taint:
        """`key=value:Effect` or `key:Effect`, as `kubectl taint` and `--register-with-taints` take them."""
        head, colon, effect = text.rpartition(":")
        if not colon or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(f"invalid taint {text!r}: expected key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
        key, _, value = head.partition("=")
        return cls(key, value, effect)

    def to_dict(self) -> dict[str, str]:
        out = {"key": self.key, "effect": self.effect}
        if self.value:
            out["value"] = self.value
        return out


@dataclass
class NodeConfig:
    """One simulated node."""

    name: str
    index: int
    address: str
    # A CIDR, POD_CIDR_AUTO (10.244.<index>.0/24) or POD_CIDR_NONE (wait for spec.podCIDR).
    pod_cidr: str
    register_pod_cidr: bool = False
    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    zone: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Taint] = field(default_factory=list)

    def fallback_pod_cidr(self) -> str | None:
        """The CIDR to use while the Node has no spec.podCIDR, or None to wait for one."""
        if self.pod_cidr == POD_CIDR_NONE:
            return None
        if self.pod_cidr == POD_CIDR_AUTO:
            return default_pod_cidr(self.index)
        return self.pod_cidr


@dataclass
class KubeletConfig:
    """Settings shared by every node of one kubelet process."""

    data_dir: Path
    kubelet_port: int = 10250
    node_status_update_frequency: float = 10.0
    node_status_report_frequency: float = 60.0
    node_lease_duration_seconds: int = 40
    node_lease_renew_interval: float = 10.0
    # CrashLoopBackOff and ImagePullBackOff: kube's 10 s doubling to 5 min.
    backoff_base: float = 10.0
    backoff_max: float = 300.0
    image_pull_duration: float = 0.5
    fail_image_patterns: tuple[str, ...] = DEFAULT_FAIL_IMAGE_PATTERNS
    # How often ConfigMap, Secret and token volume contents are re-read and rewritten.
    volume_refresh_period: float = 5.0
    workers: int = 16
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    client_ca_file: Path | None = None

    def node_dir(self, node: str) -> Path:
        return self.data_dir / "kubelet" / node
