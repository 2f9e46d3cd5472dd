"""Storage admission: DefaultStorageClass, StorageObjectInUseProtection and PersistentVolumeClaimResize.

As kube-apiserver's plugins of the same names:

- DefaultStorageClass: a new claim that names no class (no `spec.storageClassName`, no beta
  annotation) gets the default StorageClass, the one annotated
  `storageclass.kubernetes.io/is-default-class: "true"` (the newest, if several are). A claim that asks
  for class "" keeps it, and so binds only to volumes without a class.
- StorageObjectInUseProtection: new claims get the `kubernetes.io/pvc-protection` finalizer and new
  volumes `kubernetes.io/pv-protection`, which the protection controllers remove once the object is
  no longer in use.
- PersistentVolumeClaimResize: asking a claim for more storage is allowed only when its StorageClass
  sets `allowVolumeExpansion: true` (shrinking is refused by validation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from skiff.api.errors import ApiError
from skiff.api.quantity import QuantityError, parse_quantity

if TYPE_CHECKING:
    from apiserver.http.context import RequestContext

Obj = dict[str, Any]
CLASSES_KEY = "storage.k8s.io/storageclasses"
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
RESIZE_FORBIDDEN = (
    "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
)


def _is_core(ctx: RequestContext, kind: str) -> bool:
    resource = ctx.resource
    return not resource.group and resource.kind == kind and not ctx.info.subresource


def default_class(classes: list[Obj]) -> Obj | None:
    """kube's rule since 1.26: of several default classes, the newest (then by name) wins."""
    defaults = [
        c
        for c in classes
        if any((c.get("metadata", {}).get("annotations") or {}).get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)
    ]
    if not defaults:
        return None
    return max(defaults, key=lambda c: (c["metadata"].get("creationTimestamp") or "", c["metadata"].get("name")))


def add_finalizer(obj: Obj, finalizer: str) -> None:
    metadata = obj.setdefault("metadata", {})
    finalizers = list(metadata.get("finalizers") or [])
    if finalizer not in finalizers:
        metadata["finalizers"] = [*finalizers, finalizer]


class StorageAdmission:
    async def admit(self, ctx: RequestContext, operation: str, new: Obj | None, old: Obj | None) -> None:
        if new is None:
            return
        if _is_core(ctx, "PersistentVolumeClaim"):
            if operation == "CREATE":
                await self._default_class(ctx, new)
                add_finalizer(new, PVC_PROTECTION)
            elif operation == "UPDATE" and old is not None:
                await self._check_resize(ctx, new, old)
        elif _is_core(ctx, "PersistentVolume") and operation == "CREATE":
            add_finalizer(new, PV_PROTECTION)

    async def _default_class(self, ctx: RequestContext, claim: Obj) -> None:
        spec = claim.setdefault("spec", {})
        annotations = claim.get("metadata", {}).get("annotations") or {}
        if spec.get("storageClassName") is not None or BETA_CLASS_ANNOTATION in annotations:
            return
        page = await ctx.state.store.list(CLASSES_KEY, None)
        chosen = default_class([orjson.loads(data) for _namespace, _name, data in page.rows])
        if chosen is not None:
            spec["storageClassName"] = chosen["metadata"]["name"]

    async def _check_resize(self, ctx: RequestContext, new: Obj, old: Obj) -> None:
        wanted = _storage(new)
        before = _storage(old)
        if wanted is None or before is None or wanted <= before:
            return
        class_name = (new.get("spec") or {}).get("storageClassName") or (
            (new.get("metadata", {}).get("annotations") or {}).get(BETA_CLASS_ANNOTATION)
        )
        allowed = False
        if class_name:
            stored = await ctx.state.store.get(CLASSES_KEY, "", class_name)
            allowed = stored is not None and bool(stored.obj().get("allowVolumeExpansion"))
        if not allowed:
            name = new.get("metadata", {}).get("name", "")
            raise ApiError(
                403,
                "Forbidden",
                f'persistentvolumeclaims "{name}" is forbidden: {RESIZE_FORBIDDEN}',
                name,
                "",
                "persistentvolumeclaims",
            )


def _storage(claim: Obj) -> Any:
    raw = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    try:
        return parse_quantity(raw).value if raw is not None else None
    except QuantityError:
        return None
