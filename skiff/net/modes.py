"""The proxy modes and their renderers."""

from __future__ import annotations

from skiff.net.iptables import IptablesRenderer
from skiff.net.ipvs import IpvsRenderer
from skiff.net.nftables import NftablesRenderer
from skiff.net.render import Renderer

MODES = ("iptables", "ipvs", "nftables")


def renderer_for(mode: str) -> Renderer:
    if mode == "iptables":
        return IptablesRenderer()
    if mode == "ipvs":
        return IpvsRenderer()
    if mode == "nftables":
        return NftablesRenderer()
    raise ValueError(f"unknown proxy mode {mode!r}: use one of {', '.join(MODES)}")
