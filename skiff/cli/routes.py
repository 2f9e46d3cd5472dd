"""`skiff routes --node N`: print a node's proxy tables, from the proxy's HTTP endpoint or its files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import httpx

from skiff.cli.local.state import default_data_dir

MODES = ("iptables", "ipvs", "nftables")


def from_files(data_dir: Path, node: str, mode: str | None) -> list[tuple[str, str]]:
    directory = data_dir / "proxy" / node
    status_path = directory / "status.json"
    if not status_path.exists():
        raise LookupError(f"no tables for node {node!r} under {directory} (is `skiff proxy` running?)")
    status = json.loads(status_path.read_text())
    if mode and status.get("mode") != mode:
        raise LookupError(f"node {node!r} is proxied in {status.get('mode')} mode, not {mode}")
    return [(title, (directory / name).read_text()) for name, title in status.get("files", {}).items()]


def from_url(url: str, node: str, mode: str | None) -> list[tuple[str, str]]:
    base = url.rstrip("/")
    if mode is None:
        listing = httpx.get(f"{base}/tables", timeout=10).json()
        mode = listing.get(node)
        if mode is None:
            raise LookupError(f"the proxy at {url} has no tables for node {node!r}")
    response = httpx.get(f"{base}/tables/{node}/{mode}", timeout=30)
    if response.status_code != 200:
        raise LookupError(response.text.strip())
    sections: list[tuple[str, str]] = []
    title, body = "", []
    for line in response.text.splitlines(keepends=True):
        if line.startswith("# ") and line[2:].strip().split(" ")[0] in (
            "iptables-save",
            "ipvsadm",
            "ipset",
            "ip",
            "nft",
        ):
            if title:
                sections.append((title, "".join(body)))
            title, body = line[2:].strip(), []
        else:
            body.append(line)
    if title:
        sections.append((title, "".join(body)))
    return sections


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="skiff routes", description="Print a node's service routing tables.")
    parser.add_argument("--node", required=True)
    parser.add_argument("--mode", choices=MODES, help="the mode expected (default: whatever the proxy runs)")
    parser.add_argument("--proxy-url", help="the proxy's HTTP endpoint, e.g. http://127.0.0.1:10249")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), help="where the proxy writes tables")
    args = parser.parse_args(argv)
    try:
        if args.proxy_url:
            sections = from_url(args.proxy_url, args.node, args.mode)
        else:
            sections = from_files(args.data_dir.expanduser(), args.node, args.mode)
    except (LookupError, httpx.HTTPError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.rule import Rule

        console = Console()
        for title, body in sections:
            console.print(Rule(f"[bold]{title}[/] on {args.node}"))
            console.print(body.rstrip("\n"), highlight=False, markup=False)
    else:
        for title, body in sections:
            print(f"# {title}")
            print(body, end="")
