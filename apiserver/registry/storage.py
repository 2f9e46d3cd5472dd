"""Storage: PersistentVolumes, PersistentVolumeClaims, StorageClasses and the CSI objects."""

from __future__ import annotations

from typing import Any

from apiserver.registry import printing as p
from apiserver.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Obj, Strategy, age_of
from skiff.api import validation as v
from skiff.api.errors import Cause
from skiff.api.quantity import QuantityError, parse_quantity

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
VOLUME_MODES = ("Block", "Filesystem")
PV_SOURCES = (
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "hostPath",
    "glusterfs",
    "nfs",
    "rbd",
    "iscsi",
    "cinder",
    "cephfs",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
)
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
PVC_SPEC_IMMUTABLE = (
    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
)


def validate_access_modes(modes: object, path: str) -> list[Cause]:
    if not modes:
        return [v.required(path)]
    causes: list[Cause] = []
    for mode in modes if isinstance(modes, list) else [modes]:
        if mode not in ACCESS_MODES:
            causes.append(v.not_supported(path, mode, ACCESS_MODES))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        causes.append(v.forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return causes


def _storage_amount(amounts: Obj, path: str) -> tuple[Any, list[Cause]]:
    raw = amounts.get("storage")
    if raw is None:
        return None, [v.required(path)]
    try:
        return parse_quantity(raw), []
    except QuantityError as error:
        return None, [v.invalid(path, raw, str(error))]


def storage_class_of(obj: Obj) -> str:
    annotations = p.meta(obj).get("annotations") or {}
    return p.spec(obj).get("storageClassName") or annotations.get("volume.beta.kubernetes.io/storage-class", "")


# -- PersistentVolume -------------------------------------------------------------------------------


class PersistentVolumeStrategy(Strategy):
    return_deleted_object = True

    tracks_generation = False
    status_subresource = True

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"phase": "Pending"}

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes = self._validate_capacity(spec.get("capacity") or {})
        causes += validate_access_modes(spec.get("accessModes"), "spec.accessModes")
        policy = spec.get("persistentVolumeReclaimPolicy")
        causes += v.one_of("spec.persistentVolumeReclaimPolicy", policy, ("Delete", "Recycle", "Retain"))
        causes += v.one_of("spec.volumeMode", spec.get("volumeMode"), VOLUME_MODES)
        sources = [s for s in PV_SOURCES if spec.get(s) is not None]
        if not sources:
            causes.append(v.required("spec", "must specify a volume type"))
        causes += [v.forbidden(f"spec.{s}", "may not specify more than 1 volume type") for s in sources[1:]]
        if isinstance(spec.get("hostPath"), dict) and not spec["hostPath"].get("path"):
            causes.append(v.required("spec.hostPath.path"))
        return causes

    def _validate_capacity(self, capacity: Obj) -> list[Cause]:
        if not capacity:
            return [v.required("spec.capacity")]
        if set(capacity) != {"storage"}:
            return [v.not_supported("spec.capacity", capacity, ["storage"])]
        amount, causes = _storage_amount(capacity, "spec.capacity[storage]")
        if amount is not None and amount.sign() < 0:
            causes.append(v.invalid("spec.capacity[storage]", str(amount), "must be greater than or equal to 0"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        new_spec, old_spec = p.spec(new), p.spec(old)
        causes: list[Cause] = []
        if {s: new_spec.get(s) for s in PV_SOURCES} != {s: old_spec.get(s) for s in PV_SOURCES}:
            causes.append(
                v.forbidden("spec.persistentvolumesource", "spec.persistentvolumesource is immutable after creation")
            )
        if new_spec.get("volumeMode") != old_spec.get("volumeMode"):
            causes.append(v.immutable("spec.volumeMode", new_spec.get("volumeMode")))
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Capacity", description="The size of the volume."),
            p.column("Access Modes", description="How the volume can be mounted."),
            p.column("Reclaim Policy", description="What happens to the volume when its claim is released."),
            p.column("Status", description="The phase of the volume."),
            p.column("Claim", description="The claim bound to the volume."),
            p.column("StorageClass", description="StorageClass of the pv"),
            p.column("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
            p.column("Reason", description="Why the volume is in its phase."),
            AGE_COLUMN,
            p.column(
                "VolumeMode",
                description="Whether the volume is a filesystem or a raw block device.",
                wide=True,
            ),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        spec, status = p.spec(obj), p.status(obj)
        claim_ref = spec.get("claimRef") or {}
        claim = f"{claim_ref.get('namespace', '')}/{claim_ref.get('name', '')}" if claim_ref else ""
        phase = "Terminating" if p.meta(obj).get("deletionTimestamp") else status.get("phase", "")
        return [
            p.name(obj),
            _quantity_cell((spec.get("capacity") or {}).get("storage")),
            p.access_modes(spec.get("accessModes")),
            spec.get("persistentVolumeReclaimPolicy", ""),
            phase,
            claim,
            storage_class_of(obj),
            spec.get("volumeAttributesClassName") or "<unset>",
            status.get("reason", ""),
            age_of(obj),
            spec.get("volumeMode") or "<unset>",
        ]

    def field_selectors(self) -> dict[str, Any]:
        return {"name": p.name}


def _quantity_cell(raw: object) -> str:
    if raw is None:
        return ""
    try:
        return str(parse_quantity(raw))
    except QuantityError:
        return str(raw)


# -- PersistentVolumeClaim --------------------------------------------------------------------------


class PersistentVolumeClaimStrategy(Strategy):
    return_deleted_object = True

    tracks_generation = False
    status_subresource = True

    def default(self, obj: Obj) -> None:
        obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"phase": "Pending"}

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes = validate_access_modes(spec.get("accessModes"), "spec.accessModes")
        requests = (spec.get("resources") or {}).get("requests") or {}
        amount, storage_causes = _storage_amount(requests, "spec.resources[storage]")
        causes += storage_causes
        if amount is not None and amount.sign() <= 0:
            causes.append(v.invalid("spec.resources[storage]", str(amount), "must be greater than zero"))
        causes += v.one_of("spec.volumeMode", spec.get("volumeMode"), VOLUME_MODES)
        class_name = spec.get("storageClassName")
        if class_name:
            causes += v.invalid_each("spec.storageClassName", class_name, v.dns1123_subdomain(class_name))
        causes += v.validate_label_selector(spec.get("selector"), "spec.selector")
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        new_spec, old_spec = dict(p.spec(new)), dict(p.spec(old))
        causes = self._validate_resize(new, old)
        for spec in (new_spec, old_spec):
            spec.pop("volumeAttributesClassName", None)
            spec["resources"] = {**(spec.get("resources") or {}), "requests": None}
        if not old_spec.get("volumeName"):
            # A claim may still be bound to a volume by name after it was created.
            new_spec.pop("volumeName", None)
            old_spec.pop("volumeName", None)
        if new_spec != old_spec:
            causes.append(v.forbidden("spec", PVC_SPEC_IMMUTABLE))
        return causes

    def _validate_resize(self, new: Obj, old: Obj) -> list[Cause]:
        requests = (p.spec(new).get("resources") or {}).get("requests") or {}
        capacity = p.status(old).get("capacity") or {}
        if "storage" not in requests or "storage" not in capacity:
            return []
        try:
            shrinks = parse_quantity(requests["storage"]) < parse_quantity(capacity["storage"])
        except QuantityError:
            return []
        if shrinks:
            return [v.forbidden("spec.resources.requests.storage", "field can not be less than status.capacity")]
        return []

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Status", description="The phase of the claim."),
            p.column("Volume", description="The volume bound to the claim."),
            p.column("Capacity", description="The size of the bound volume."),
            p.column("Access Modes", description="How the bound volume can be mounted."),
            p.column("StorageClass", description="StorageClass of the pvc"),
            p.column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
            AGE_COLUMN,
            p.column(
                "VolumeMode",
                description="Whether the claim is for a filesystem or a raw block device.",
                wide=True,
            ),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        spec, status = p.spec(obj), p.status(obj)
        bound = bool(spec.get("volumeName"))
        phase = "Terminating" if p.meta(obj).get("deletionTimestamp") else status.get("phase", "")
        return [
            p.name(obj),
            phase,
            spec.get("volumeName", ""),
            _quantity_cell((status.get("capacity") or {}).get("storage")) if bound else "",
            p.access_modes(status.get("accessModes")) if bound else "",
            storage_class_of(obj),
            spec.get("volumeAttributesClassName") or "<unset>",
            age_of(obj),
            spec.get("volumeMode") or "<unset>",
        ]

    def field_selectors(self) -> dict[str, Any]:
        return {"name": p.name}


# -- StorageClass -----------------------------------------------------------------------------------

MAX_PARAMETERS = 512
MAX_PARAMETERS_SIZE = 256 * 1024


class StorageClassStrategy(Strategy):
    return_deleted_object = True

    tracks_generation = False

    def default(self, obj: Obj) -> None:
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")

    def validate(self, obj: Obj) -> list[Cause]:
        provisioner = obj.get("provisioner") or ""
        causes: list[Cause] = []
        if not provisioner:
            causes.append(v.required("provisioner"))
        else:
            causes += v.invalid_each("provisioner", provisioner, v.qualified_name(provisioner.lower()))
        causes += v.one_of("reclaimPolicy", obj.get("reclaimPolicy"), ("Delete", "Retain"))
        mode = obj.get("volumeBindingMode")
        causes += v.one_of("volumeBindingMode", mode, ("Immediate", "WaitForFirstConsumer"), allow_empty=False)
        parameters = obj.get("parameters") or {}
        if len(parameters) > MAX_PARAMETERS:
            causes.append(v.too_many("parameters", len(parameters), MAX_PARAMETERS))
        if sum(len(k) + len(str(val)) for k, val in parameters.items()) > MAX_PARAMETERS_SIZE:
            causes.append(v.too_long("parameters", MAX_PARAMETERS_SIZE))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = [
            v.forbidden(field_name, f"updates to {field_name} are forbidden.")
            for field_name in ("parameters", "provisioner", "reclaimPolicy")
            if (new.get(field_name) or None) != (old.get(field_name) or None)
        ]
        if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
            causes.append(v.immutable("volumeBindingMode", new.get("volumeBindingMode")))
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Provisioner", description="The driver that provisions volumes of this class."),
            p.column("ReclaimPolicy", description="What happens to volumes of this class when released."),
            p.column("VolumeBindingMode", description="When volumes of this class are bound and provisioned."),
            p.column("AllowVolumeExpansion", "boolean", "Whether volumes of this class can grow."),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        annotations = p.meta(obj).get("annotations") or {}
        is_default = any(annotations.get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)
        name = f"{p.name(obj)} (default)" if is_default else p.name(obj)
        return [
            name,
            obj.get("provisioner", ""),
            obj.get("reclaimPolicy", ""),
            obj.get("volumeBindingMode", ""),
            bool(obj.get("allowVolumeExpansion")),
            age_of(obj),
        ]


# -- CSI --------------------------------------------------------------------------------------------


class CSIDriverStrategy(Strategy):
    tracks_generation = False

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("attachRequired", True)
        spec.setdefault("podInfoOnMount", False)
        spec.setdefault("storageCapacity", False)
        spec.setdefault("fsGroupPolicy", "ReadWriteOnceWithFSType")
        spec.setdefault("requiresRepublish", False)
        spec.setdefault("seLinuxMount", False)
        spec.setdefault("volumeLifecycleModes", ["Persistent"])

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes: list[Cause] = []
        policy = spec.get("fsGroupPolicy")
        causes += v.one_of("spec.fsGroupPolicy", policy, ("File", "None", "ReadWriteOnceWithFSType"))
        for position, mode in enumerate(spec.get("volumeLifecycleModes") or []):
            causes += v.one_of(f"spec.volumeLifecycleModes[{position}]", mode, ("Ephemeral", "Persistent"))
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("AttachRequired", "boolean", "Whether volumes need an attach operation."),
            p.column("PodInfoOnMount", "boolean", "Whether pod details are passed on mount."),
            p.column("StorageCapacity", "boolean", "Whether capacity is tracked for scheduling."),
            p.column("TokenRequests", description="Audiences of service account tokens passed on mount."),
            p.column("RequiresRepublish", "boolean", "Whether volumes are mounted again periodically."),
            p.column("Modes", description="Volume lifecycle modes supported by the driver."),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        spec = p.spec(obj)
        audiences = [t.get("audience", "") for t in spec.get("tokenRequests") or []]
        return [
            p.name(obj),
            bool(spec.get("attachRequired")),
            bool(spec.get("podInfoOnMount")),
            bool(spec.get("storageCapacity")),
            ",".join(audiences) or "<unset>",
            bool(spec.get("requiresRepublish")),
            ",".join(spec.get("volumeLifecycleModes") or []) or p.NONE,
            age_of(obj),
        ]


class CSINodeStrategy(Strategy):
    tracks_generation = False

    def table_columns(self) -> list[Column]:
        return [NAME_COLUMN, p.column("Drivers", "integer", "Number of CSI drivers on the node."), AGE_COLUMN]

    def table_row(self, obj: Obj) -> list[Any]:
        return [p.name(obj), len(p.spec(obj).get("drivers") or []), age_of(obj)]


class VolumeAttachmentStrategy(Strategy):
    tracks_generation = False
    status_subresource = True

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes = [v.required(f"spec.{f}") for f in ("attacher", "nodeName") if not spec.get(f)]
        source = spec.get("source") or {}
        chosen = [s for s in ("persistentVolumeName", "inlineVolumeSpec") if source.get(s)]
        if len(chosen) != 1:
            causes.append(
                v.invalid(
                    "spec.source",
                    source,
                    "must specify exactly one of inlineVolumeSpec and persistentVolumeName",
                )
            )
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        if p.spec(new) != p.spec(old):
            return [v.immutable("spec", p.spec(new))]
        return []

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Attacher", description="The driver that attaches the volume."),
            p.column("PV", description="The volume being attached."),
            p.column("Node", description="The node the volume is attached to."),
            p.column("Attached", "boolean", "Whether the volume is attached."),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        spec = p.spec(obj)
        volume = (spec.get("source") or {}).get("persistentVolumeName", "")
        attached = bool(p.status(obj).get("attached"))
        return [
            p.name(obj),
            spec.get("attacher", ""),
            volume,
            spec.get("nodeName", ""),
            attached,
            age_of(obj),
        ]
