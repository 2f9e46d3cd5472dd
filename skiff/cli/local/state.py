"""What a running local cluster leaves in its data directory (DATA/cluster.json, written by the `skiff up`
supervisor), and whether its API server and nodes answer; shared by `skiff up`, `status` and `down`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import ssl
from pathlib import Path
from typing import Any

import httpx

from skiff.cli.local.identities import admin_client
from skiff.cli.local.specs import node_names, server_url
from skiff.cli.supervisor import Supervisor

STATE_FILE = "cluster.json"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "skiff"


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), help="cluster state and logs")


def api_ready(data_dir: Path, server: str, timeout: float = 2.0) -> bool:
    ca = data_dir / "pki" / "ca.crt"
    if not ca.exists():
        return False
    with contextlib.suppress(httpx.HTTPError, OSError, ssl.SSLError):
        context = ssl.create_default_context(cafile=str(ca))
        return httpx.get(f"{server}/readyz", verify=context, timeout=timeout).status_code == 200
    return False


def node_conditions(data_dir: Path) -> dict[str, str]:
    """Each Node's Ready condition: `Ready`, `NotReady` or `Unknown`."""
    with admin_client(data_dir, timeout=5) as client:
        nodes = client.list(("v1", "Node")).get("items") or []
    states = {}
    for node in nodes:
        ready = "Unknown"
        for condition in (node.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready":
                ready = {"True": "Ready", "False": "NotReady"}.get(condition.get("status"), "Unknown")
        states[node["metadata"]["name"]] = ready
    return states


def try_node_conditions(data_dir: Path) -> dict[str, str] | None:
    try:
        return node_conditions(data_dir)
    except Exception:  # the API server is (re)starting: not an answer yet
        return None


def read_state(data_dir: Path) -> dict[str, Any] | None:
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, OSError):
        state = json.loads((data_dir / STATE_FILE).read_text())
        return state if isinstance(state, dict) else None
    return None


def write_state(args: argparse.Namespace, supervisor: Supervisor, ready: bool) -> None:
    state = {
        "pid": os.getpid(),
        "server": server_url(args),
        "port": args.port,
        "dns": f"127.0.0.1:{args.dns_port}",
        "nodes": node_names(args),
        "ready": ready,
        "components": {
            name: {"pid": child.pid, "state": child.state, "restarts": child.restarts}
            for name, child in supervisor.children.items()
        },
    }
    path = args.data_dir / STATE_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=1))
    temporary.replace(path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_state(data_dir: Path) -> dict[str, Any] | None:
    state = read_state(data_dir)
    if state is None or not alive(int(state.get("pid") or 0)):
        return None
    return state


# ---------------------------------------------------------------------------------------------------
# Output


def usage_lines(data_dir: Path) -> list[str]:
    kubeconfig = data_dir / "admin.kubeconfig"
    return [
        f"  kubeconfig: {kubeconfig}",
        f"  logs:       {data_dir / 'logs'}",
        "",
        "Point kubectl at it:",
        f"  export KUBECONFIG={kubeconfig}",
        "  kubectl get nodes",
    ]
