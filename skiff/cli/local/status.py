"""`skiff status` and `skiff down`: look at, or stop, the cluster `skiff up` runs from a data directory."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time

from skiff.cli.local.state import (
    STATE_FILE,
    add_common,
    alive,
    api_ready,
    running_state,
    try_node_conditions,
    usage_lines,
)


def down(args: argparse.Namespace) -> int:
    state = running_state(args.data_dir)
    if state is None:
        print(f"No cluster is running from {args.data_dir}.")
        return 0
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
    # Whatever the supervisor could not stop (it was killed) goes with its process group.
    for component in (state.get("components") or {}).values():
        child_pid = component.get("pid") if isinstance(component, dict) else None
        if child_pid and alive(int(child_pid)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(child_pid), signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        (args.data_dir / STATE_FILE).unlink()
    print("Skiff stopped.")
    return 0


def status(args: argparse.Namespace) -> int:
    state = running_state(args.data_dir)
    if state is None:
        print(f"No cluster is running from {args.data_dir}.")
        return 3
    server = str(state.get("server") or f"https://127.0.0.1:{state.get('port')}")
    ready = api_ready(args.data_dir, server)
    nodes = try_node_conditions(args.data_dir) if ready else None
    wanted = list(state.get("nodes") or [])
    nodes_ready = nodes is not None and all(nodes.get(name) == "Ready" for name in wanted)
    verdict = "Ready" if ready and nodes_ready else "NotReady"
    print(f"Skiff at {server}: {verdict} (supervisor pid {state['pid']})")
    print(f"\n{'COMPONENT':<28} {'PID':<8} {'STATE':<11} RESTARTS")
    for name, component in (state.get("components") or {}).items():
        pid = component.get("pid")
        shown = component.get("state", "?") if pid and alive(int(pid)) else "stopped"
        print(f"{name:<28} {pid or '-'!s:<8} {shown:<11} {component.get('restarts', 0)}")
    print(f"\n{'NODE':<28} STATUS")
    if nodes is None:
        print(f"{'(the API server does not answer)':<28}")
    else:
        for name in sorted(set(wanted) | set(nodes), key=lambda n: (len(n), n)):
            print(f"{name:<28} {nodes.get(name, 'Missing')}")
    print()
    print("\n".join(usage_lines(args.data_dir)))
    return 0 if verdict == "Ready" else 1


def main_down(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="skiff down", description="Stop a local Skiff cluster.")
    add_common(parser)
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir.expanduser().resolve()
    sys.exit(down(args))


def main_status(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="skiff status", description="Show a local Skiff cluster.")
    add_common(parser)
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir.expanduser().resolve()
    sys.exit(status(args))
