"""The secrets agent: what the injected `vault-agent-init` and `vault-agent` containers run.

    python examples/secrets-injector/agent.py --service-url https://127.0.0.1:8200 --ca-file certs/ca.crt \
        --token-file TOKEN --namespace team-a --out-dir DIR --secret db-password=db-password --once

It presents the pod's projected service-account token to the secrets service and writes each secret to
`<out-dir>/<file>` (atomically). Without --once it refreshes them every --period seconds. Skiff's
simulated runtime runs no container processes, so the README runs this by hand against the pod's volume
directories on the simulated node.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import httpx


def fetch(client: httpx.Client, service_url: str, token: str, namespace: str, secret: str) -> str:
    response = client.get(
        f"{service_url.rstrip('/')}/v1/secrets/{namespace}/{secret}", headers={"Authorization": f"Bearer {token}"}
    )
    if response.status_code != 200:
        raise RuntimeError(f"secret {namespace}/{secret}: {response.status_code} {response.text}")
    return response.json()["value"]


def write_atomically(path: Path, value: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(value)
    temporary.chmod(0o644)
    os.replace(temporary, path)


def sync(args: argparse.Namespace, client: httpx.Client) -> None:
    token = Path(args.token_file).read_text().strip()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for spec in args.secret:
        file_name, _, secret = spec.partition("=")
        write_atomically(out / file_name, fetch(client, args.service_url, token, args.namespace, secret or file_name))


def main() -> None:
    parser = argparse.ArgumentParser(description="Fetch secrets with the pod's service-account token.")
    parser.add_argument("--service-url", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--ca-file", default=None, help="CA of the secrets service (default: system roots)")
    parser.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", "default"))
    parser.add_argument("--out-dir", default="/vault/secrets")
    parser.add_argument("--secret", action="append", default=[], help="FILE=SECRET (repeatable)")
    parser.add_argument("--once", action="store_true", help="fetch once and exit (the init container)")
    parser.add_argument("--period", type=float, default=60.0)
    args = parser.parse_args()
    with httpx.Client(verify=args.ca_file or True, timeout=10) as client:
        while True:
            try:
                sync(args, client)
            except (RuntimeError, httpx.HTTPError, OSError) as error:
                print(f"agent: {error}", file=sys.stderr)
                if args.once:
                    sys.exit(1)
            if args.once:
                return
            time.sleep(args.period)


if __name__ == "__main__":
    main()
