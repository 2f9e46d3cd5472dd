"""Pod IP allocation from the node's pod CIDR, persisted the way CNI's host-local plugin does it.

Each allocated address is a file `DATA/kubelet/<node>/ipam/<cidr>/<ip>` holding the owner (the pod
sandbox's uid), created with O_EXCL so an address is never handed out twice. A restarted kubelet reads
the directory back, so existing pods keep their addresses. The network and broadcast addresses and the
first host address (the gateway, .1) are never handed out.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path


class PoolExhausted(Exception):
    pass


class IpAllocator:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # owner -> (cidr, ip), and the addresses taken per CIDR.
        self._by_owner: dict[str, tuple[str, str]] = {}
        self._taken: dict[str, set[str]] = {}
        self._last: dict[str, int] = {}
        self._load()

    def _load(self) -> None:
        if not self.directory.exists():
            return
        for cidr_dir in self.directory.iterdir():
            if not cidr_dir.is_dir():
                continue
            cidr = cidr_dir.name.replace("_", "/")
            for entry in cidr_dir.iterdir():
                owner = entry.read_text().strip()
                self._by_owner[owner] = (cidr, entry.name)
                self._taken.setdefault(cidr, set()).add(entry.name)

    def _cidr_dir(self, cidr: str) -> Path:
        return self.directory / cidr.replace("/", "_")

    def lookup(self, owner: str) -> str | None:
        found = self._by_owner.get(owner)
        return found[1] if found else None

    def allocate(self, cidr: str, owner: str) -> str:
        """The owner's address (the one it already has, whatever CIDR it came from, or a new one)."""
        existing = self.lookup(owner)
        if existing is not None:
            return existing
        network = ipaddress.ip_network(cidr, strict=False)
        cidr = str(network)
        taken = self._taken.setdefault(cidr, set())
        directory = self._cidr_dir(cidr)
        directory.mkdir(parents=True, exist_ok=True)
        # Start after the last address handed out, as host-local does, so a freed address is not
        # reused at once by the next pod (stale connections to it would reach the wrong pod).
        first, last = int(network.network_address) + 2, int(network.broadcast_address) - 1
        size = last - first + 1
        start = self._last.get(cidr, first - 1) + 1
        for step in range(size):
            candidate = first + (start - first + step) % size
            address = str(ipaddress.ip_address(candidate))
            if address in taken or not self._reserve(directory / address, owner):
                continue
            taken.add(address)
            self._by_owner[owner] = (cidr, address)
            self._last[cidr] = candidate
            return address
        raise PoolExhausted(f"no free addresses left in {cidr}")

    @staticmethod
    def _reserve(path: Path, owner: str) -> bool:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(owner)
        return True

    def release(self, owner: str) -> None:
        found = self._by_owner.pop(owner, None)
        if found is None:
            return
        cidr, address = found
        self._taken.get(cidr, set()).discard(address)
        (self._cidr_dir(cidr) / address).unlink(missing_ok=True)

    def allocated(self) -> dict[str, str]:
        """owner -> address, for everything allocated."""
        return {owner: address for owner, (_, address) in self._by_owner.items()}
