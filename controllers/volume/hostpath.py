"""The `skiff.dev/hostpath` provisioner: a directory on one node, like kind's local-path provisioner.

Each volume is a real directory in the chosen node's simulated host filesystem (see kubelet_sim's
README): the volume says `hostPath: {path: /var/lib/skiff/volumes/<pv>}` with nodeAffinity to that
node's `kubernetes.io/hostname`, and the directory lives at
`<volume-data-dir>/kubelet/<node>/host/var/lib/skiff/volumes/<pv>/`, which is where that node's kubelet
mounts it from. The node is the scheduler's choice (`volume.kubernetes.io/selected-node`) for a
WaitForFirstConsumer class, or, for an Immediate class, the Ready node holding the fewest of these
volumes. The StorageClass parameter `basePath` changes `/var/lib/skiff/volumes`. Deleting the volume
(reclaim policy Delete) removes the directory and everything in it.

The controller-manager must be able to reach the kubelets' data directory (`--volume-data-dir`; `skiff
up` passes its data directory). A volume lives on one node, so ReadWriteMany is refused.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from pathlib import Path

from controllers.base import ControllerContext
from controllers.volume.common import (
    ANN_PROVISIONED_BY,
    HOSTNAME_LABEL,
    HOSTPATH_PROVISIONER,
    Obj,
    annotations,
    meta,
    name_of,
    node_affinity_for,
    node_affinity_terms,
    spec,
)
from controllers.volume.provisioners import Provisioner, ProvisioningError, ready_nodes

DEFAULT_BASE_PATH = "/var/lib/skiff/volumes"


def volume_node(volume: Obj) -> str:
    """The node a hostpath volume lives on, from its nodeAffinity."""
    for term in node_affinity_terms(volume) or []:
        for expression in term.get("matchExpressions") or []:
            if expression.get("key") == HOSTNAME_LABEL and expression.get("operator") == "In":
                values = expression.get("values") or []
                if values:
                    return str(values[0])
    return ""


def host_directory(data_dir: Path, node: str, path: str) -> Path:
    """Where the kubelet of `node` keeps host path `path`."""
    return data_dir / "kubelet" / node / "host" / path.lstrip("/")


class HostPathProvisioner(Provisioner):
    name = HOSTPATH_PROVISIONER
    supported_modes = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteOncePod")

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.data_dir = Path(ctx.options.volume_data_dir) if ctx.options.volume_data_dir else None

    def pick_node(self, claim: Obj) -> str:
        nodes = sorted(name_of(n) for n in ready_nodes(self.nodes))
        if not nodes:
            raise ProvisioningError("no Ready node can host the volume")
        held: Counter[str] = Counter(
            volume_node(v) for v in self.volumes.list() if annotations(v).get(ANN_PROVISIONED_BY) == self.name
        )
        return min(nodes, key=lambda n: (held[n], n))

    async def provision(self, claim: Obj, storage_class: Obj, node: str, volume_name: str) -> Obj:
        if self.data_dir is None:
            raise ProvisioningError("the controller-manager has no --volume-data-dir to create volumes in")
        if not node:
            raise ProvisioningError("no node selected for the volume")
        base = str((storage_class.get("parameters") or {}).get("basePath") or DEFAULT_BASE_PATH)
        path = f"{base.rstrip('/')}/{volume_name}"
        directory = host_directory(self.data_dir, node, path)
        try:
            await asyncio.to_thread(directory.mkdir, 0o777, True, True)
        except OSError as error:
            raise ProvisioningError(f"cannot create {directory}: {error.strerror}") from None
        self.log.info("claim %s/%s: directory %s on node %s", meta(claim).get("namespace"), name_of(claim),
                      directory, node)  # fmt: skip
        return {"hostPath": {"path": path, "type": "DirectoryOrCreate"}, "nodeAffinity": node_affinity_for(node)}

    async def delete(self, volume: Obj) -> None:
        if self.data_dir is None:
            raise ProvisioningError("the controller-manager has no --volume-data-dir to delete volumes from")
        node, path = volume_node(volume), (spec(volume).get("hostPath") or {}).get("path") or ""
        if not node or not path:
            return
        directory = host_directory(self.data_dir, node, path)
        try:
            await asyncio.to_thread(shutil.rmtree, directory)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise ProvisioningError(f"cannot remove {directory}: {error.strerror}") from None


async def start(ctx: ControllerContext) -> None:
    provisioner = HostPathProvisioner(ctx)
    if provisioner.data_dir is None:
        provisioner.log.warning("no --volume-data-dir: claims of skiff.dev/hostpath classes fail to provision")
    await provisioner.run()
