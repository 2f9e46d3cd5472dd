"""`skiff encryption`: encryption at rest for Secrets.

    skiff encryption new-config --out FILE [--key-name NAME]   a fresh EncryptionConfiguration (AES-GCM)
    skiff encryption rewrite [--kubeconfig K]                  rewrite every secret with the current key

Rotating a key, as with kube-apiserver:
1. put a new key first in the aesgcm provider's key list (keep the old one after it) and restart every
   API server: new writes use the new key, values sealed with the old key stay readable;
2. run `skiff encryption rewrite`: every secret is written again, now sealed with the new key;
3. once the compaction window (--compaction-window, default 5 minutes) has passed since the rewrite, so
   the change log no longer holds values sealed with the old key, remove it and restart the API servers.

The rewrite sends each secret back unchanged (a PUT with its resourceVersion). The API server skips
no-op updates, except for a value it read with a key other than the current write key: that one it writes
again, re-encrypted. So the command changes nothing a client can see but the resourceVersion of the
secrets that were sealed with an older key (or stored as plaintext before encryption was configured).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from skiff.api.errors import ApiError
from skiff.client.kubeconfig import default_config
from skiff.client.rest import Client, default_user_agent

SECRETS = ("v1", "Secret")


def config_document(key_name: str, secret: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [{"aesgcm": {"keys": [{"name": key_name, "secret": secret}]}}, {"identity": {}}],
            }
        ],
    }


def new_config(out: Path, key_name: str) -> None:
    if out.exists():
        raise SystemExit(f"skiff encryption: {out} exists; refusing to replace a key file")
    secret = base64.b64encode(os.urandom(32)).decode("ascii")
    data = yaml.safe_dump(config_document(key_name, secret), sort_keys=False).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    print(f"Wrote {out} (aesgcm key {key_name!r}, then identity). Start the API server with")
    print(f"  --encryption-provider-config {out}")


def rewrite_secret(client: Client, item: dict[str, Any]) -> bool:
    """PUT one secret back unchanged; True when the server wrote it (it was sealed with an older key)."""
    metadata = item["metadata"]
    for _attempt in range(5):
        body = {**item, "apiVersion": "v1", "kind": "Secret"}
        try:
            written = client.update(body, metadata["namespace"], field_manager="skiff-encryption-rewrite")
        except ApiError as error:
            if error.code == 404:
                return False
            if error.code != 409:
                raise
            item = client.get(SECRETS, metadata["name"], metadata["namespace"])
            continue
        return written["metadata"]["resourceVersion"] != metadata["resourceVersion"]
    raise SystemExit(f"skiff encryption: {metadata['namespace']}/{metadata['name']} kept changing; run again")


def rewrite(kubeconfig: str | None) -> None:
    with Client(default_config(kubeconfig), user_agent=default_user_agent("skiff-encryption")) as client:
        items = client.list_all(SECRETS).get("items") or []
        rewritten = sum(rewrite_secret(client, item) for item in items)
    current = len(items) - rewritten
    print(f"{len(items)} secrets checked: {rewritten} re-encrypted with the current key, {current} already current")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="skiff encryption", description="Encryption at rest for Secrets.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("new-config", help="write a new EncryptionConfiguration with a random key")
    create.add_argument("--out", required=True, type=Path)
    create.add_argument("--key-name", default="key1")
    again = commands.add_parser("rewrite", help="rewrite every secret so it is sealed with the current key")
    again.add_argument("--kubeconfig", default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "new-config":
            new_config(args.out, args.key_name)
        else:
            rewrite(args.kubeconfig)
    except ApiError as error:
        print(f"skiff encryption: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
