"""The proxy modes and their renderers."""

from __future__ import annotations

from proxy.iptables import IptablesRenderer
from proxy.ipvs import IpvsRenderer
from proxy.nftables import NftablesRenderer
from proxy.render import Renderer

MODES = ("iptables", "ipvs", "nftables")


def renderer_for(mode: str) -> Renderer:
    if mode == "iptables":
        return IptablesRenderer()
    if mode == "ipvs":
        return IpvsRenderer()
    if mode == "nftables":
        return NftablesRenderer()
    raise ValueError(f"unknown proxy mode {mode!r}: use one of {', '.join(MODES)}")
