"""The `skiff.dev/simulated` provisioner: volumes that are bookkeeping only, drawn from a fixed pool.

Every volume it makes is a CSI volume (`driver: skiff.dev/simulated`) reachable from every node; the
kubelet mounts an empty directory for it. What is real is the accounting: volumes are carved out of
`--simulated-storage-capacity` (default 100Gi), so a claim that does not fit fails with a
ProvisioningFailed event saying how much is left, and is tried again as space is freed. Deleting a
volume (reclaim policy Delete) returns its capacity to the pool; expanding one takes more from it.
"""

from __future__ import annotations

from fractions import Fraction

from controllers.base import ControllerContext
from controllers.volume.common import (
    ANN_PROVISIONED_BY,
    SIMULATED_PROVISIONER,
    Obj,
    annotations,
    name_of,
    requested,
)
from controllers.volume.provisioners import Provisioner, ProvisioningError, as_bytes, total_capacity
from skiff.api.quantity import BINARY_SI, format_quantity

DRIVER = SIMULATED_PROVISIONER


def pool_size(ctx: ControllerContext) -> Fraction:
    return as_bytes(ctx.options.simulated_storage_capacity or "0")


def used_capacity(volumes: list[Obj], provisioner: str = SIMULATED_PROVISIONER) -> Fraction:
    return total_capacity([v for v in volumes if annotations(v).get(ANN_PROVISIONED_BY) == provisioner])


def shown(amount: Fraction) -> str:
    return format_quantity(amount, BINARY_SI)


class SimulatedProvisioner(Provisioner):
    name = SIMULATED_PROVISIONER

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pool = pool_size(ctx)
        # Volumes created but not yet in the informer's cache: name → size.
        self.reserved: dict[str, Fraction] = {}
        self.volumes.add_event_handler(on_add=lambda v: self.reserved.pop(name_of(v), None))

    def used(self) -> Fraction:
        cached = self.volumes.list()
        names = {name_of(v) for v in cached}
        in_flight = sum((size for name, size in self.reserved.items() if name not in names), Fraction(0))
        return used_capacity(cached, self.name) + in_flight

    async def provision(self, claim: Obj, storage_class: Obj, node: str, volume_name: str) -> Obj:
        size = requested(claim)
        free = self.pool - self.used()
        if size > free:
            raise ProvisioningError(
                f"insufficient capacity: requested {shown(size)}, {shown(max(free, Fraction(0)))} of "
                f"{shown(self.pool)} available"
            )
        self.reserved[volume_name] = size
        return {"csi": {"driver": DRIVER, "volumeHandle": volume_name, "fsType": "ext4"}}

    async def delete(self, volume: Obj) -> None:
        self.reserved.pop(name_of(volume), None)


async def start(ctx: ControllerContext) -> None:
    provisioner = SimulatedProvisioner(ctx)
    provisioner.log.info("simulated storage pool: %s", shown(provisioner.pool))
    await provisioner.run()
