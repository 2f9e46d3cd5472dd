"""Where rendered tables go. The file backend writes them as text under DATA/proxy/<node>/; a backend that
loads them into a network namespace (iptables-restore, ipvsadm -R, ipset restore, nft -f) would take the
same `Tables` and change nothing else."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Protocol

from skiff.net.render import Tables


class Backend(Protocol):
    def apply(self, tables: Tables) -> None: ...


STATUS_FILE = "status.json"


class FileBackend:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "proxy"

    def node_dir(self, node: str) -> Path:
        return self.root / node

    def apply(self, tables: Tables) -> None:
        directory = self.node_dir(tables.node)
        directory.mkdir(parents=True, exist_ok=True)
        for name, chunks in tables.files.items():
            _write_atomically(directory / name, chunks)
        status = {
            "node": tables.node,
            "mode": tables.mode,
            "files": {name: tables.titles.get(name, name) for name in tables.files},
            "counts": tables.counts,
            "synced": time.time(),
        }
        _write_atomically(directory / STATUS_FILE, [json.dumps(status, indent=2) + "\n"])


def _write_atomically(path: Path, chunks: list[str]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as handle:
        handle.writelines(chunks)
    os.replace(temporary, path)
