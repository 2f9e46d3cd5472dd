"""Chain, map and set names, derived as Kubernetes derives them so rendered tables look familiar.

iptables chains carry a prefix and the first 16 characters of base32(sha256(...)): `KUBE-SVC-`, `KUBE-SVL-`,
`KUBE-EXT-` and `KUBE-FW-` hash "namespace/name:port" followed by the lower-case protocol; `KUBE-SEP-`
hashes the same string followed by the endpoint "ip:port". nftables chains instead keep the readable name
after an 8-character hash, e.g. `service-ULMVA6XW-ns1/svc1/tcp/p80`.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

NFT_CHAIN_NAME_MAX = 256
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _hash(text: str) -> str:
    """The first 16 characters of base32(sha256(text)) (standard alphabet): 80 bits, 10 bytes of digest."""
    bits = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    return "".join([_BASE32[(bits >> shift) & 31] for shift in range(75, -1, -5)])


@lru_cache(maxsize=1 << 16)
def port_proto_hash(service_port_name: str, protocol: str) -> str:
    return _hash(service_port_name + protocol)[:16]


def service_chain(service_port_name: str, protocol: str) -> str:
    return "KUBE-SVC-" + port_proto_hash(service_port_name, protocol)


def local_chain(service_port_name: str, protocol: str) -> str:
    return "KUBE-SVL-" + port_proto_hash(service_port_name, protocol)


def external_chain(service_port_name: str, protocol: str) -> str:
    return "KUBE-EXT-" + port_proto_hash(service_port_name, protocol)


@lru_cache(maxsize=1 << 18)
def endpoint_chain(service_port_name: str, protocol: str, endpoint: str) -> str:
    return "KUBE-SEP-" + _hash(service_port_name + protocol + endpoint)[:16]


def policy_chain(direction: str, pod_key: str) -> str:
    """The filter chain holding one pod's NetworkPolicy rules for one direction."""
    return "KUBE-NWPLCY-" + _hash(f"{direction}/{pod_key}")[:16]


@lru_cache(maxsize=1 << 18)
def hash_and_truncate(name: str) -> str:
    """nftables naming: an 8-character hash, a dash, then the readable name (cut at 256 characters)."""
    full = _hash(name)[:8] + "-" + name
    return full if len(full) <= NFT_CHAIN_NAME_MAX else full[: NFT_CHAIN_NAME_MAX - 3] + "..."


def nft_service_base(namespace: str, name: str, protocol: str, port_name: str) -> str:
    return hash_and_truncate(f"{namespace}/{name}/{protocol}/{port_name}")


def nft_endpoint_base(namespace: str, name: str, protocol: str, port_name: str, ip: str, port: int) -> str:
    return hash_and_truncate(f"{namespace}/{name}/{protocol}/{port_name}__{ip}/{port}")
