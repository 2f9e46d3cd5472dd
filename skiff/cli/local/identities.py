"""The identities of a local cluster's components, and the add-ons `skiff up` applies as the admin: the
RBAC its DNS server needs beyond kube's default roles, and a default StorageClass."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

import yaml

from skiff.cli.local.specs import DNS_USER, kubeconfig_path, node_names, server_url

FIELD_MANAGER = "skiff-up"


def _kubeconfig_server(path: Path) -> str | None:
    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError, TypeError):
        document = yaml.safe_load(path.read_text()) or {}
        for entry in document.get("clusters") or []:
            return str((entry.get("cluster") or {}).get("server"))
    return None


def issue_identities(args: argparse.Namespace) -> list[str]:
    """Create the cluster PKI if missing, then a kubeconfig under DATA/kubeconfigs/ for every component:
    the ones `skiff pki components` and `skiff pki node NAME` issue, and one for the DNS server. Existing
    kubeconfigs are kept unless they point at another address. Returns the names of those issued."""
    from skiff.cli import pki as pki_cli
    from skiff.pki import cluster as cluster_pki

    server = server_url(args)
    pki = cluster_pki.ensure_cluster_pki(args.data_dir, server)
    identities = [
        *pki_cli.COMPONENTS,
        pki_cli.Identity("dns", DNS_USER),
        *(pki_cli.node_identity(name) for name in node_names(args)),
    ]
    issued = []
    for identity in identities:
        path = kubeconfig_path(args, identity.file_name)
        if path.exists() and _kubeconfig_server(path) == server:
            continue
        pki_cli.issue(pki, identity, server)
        issued.append(identity.user)
    return issued


ADDONS_FILE = Path(__file__).with_name("addons.yaml")


def addon_rbac() -> list[dict[str, Any]]:
    """What the DNS server needs to read beyond kube's default roles, granted to its user only."""
    return [doc for doc in yaml.safe_load_all(ADDONS_FILE.read_text()) if doc]


def admin_client(data_dir: Path, timeout: float = 10.0) -> Any:
    from skiff.client.kubeconfig import load_kubeconfig
    from skiff.client.rest import Client

    return Client(load_kubeconfig(str(data_dir / "admin.kubeconfig")), timeout=timeout, user_agent="skiff-up")


def apply_addons(data_dir: Path) -> None:
    with admin_client(data_dir) as client:
        for obj in addon_rbac():
            ref = (obj["apiVersion"], obj["kind"])
            client.patch(ref, obj["metadata"]["name"], obj, patch_type="apply", field_manager=FIELD_MANAGER, force=True)
        ensure_default_storage_class(client)


# The default StorageClass: hostpath directories on the node that runs the pod (WaitForFirstConsumer, as
# kind's local-path class). Created once, and only while no class is marked default, so an administrator
# may replace it, change it or unmark it.
DEFAULT_STORAGE_CLASS: dict[str, Any] = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                 "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
    "provisioner": "skiff.dev/hostpath", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
    "allowVolumeExpansion": True,
}  # fmt: skip


def ensure_default_storage_class(client: Any) -> None:
    classes = client.list(("storage.k8s.io/v1", "StorageClass")).get("items") or []
    if any(c.get("metadata", {}).get("name") == "standard" for c in classes):
        return
    marks = ("storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class")
    if any((c.get("metadata", {}).get("annotations") or {}).get(mark) == "true" for c in classes for mark in marks):
        return
    client.create(DEFAULT_STORAGE_CLASS)
