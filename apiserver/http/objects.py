"""Generic object metadata rules shared by every resource: identity, timestamps, generation."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import orjson

from skiff.api.errors import bad_request
from skiff.api.kinds import ResourceType

Obj = dict[str, Any]

# Kubernetes' generateName alphabet: no vowels (no accidental words) and no look-alike characters.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Metadata fields a client may not set; the server owns them.
SERVER_OWNED = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink")


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


def check_type_meta(obj: Obj, resource: ResourceType) -> None:
    """Fill in apiVersion and kind when absent; refuse a body of another kind."""
    api_version = obj.get("apiVersion") or resource.api_version
    kind = obj.get("kind") or resource.kind
    if api_version != resource.api_version:
        group = api_version.rpartition("/")[0]
        if group != resource.group or kind != resource.kind:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({resource.api_version})"
            )
    if kind != resource.kind:
        raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({resource.kind})")
    obj["apiVersion"] = resource.api_version
    obj["kind"] = resource.kind


def check_metadata_shape(obj: Obj) -> Obj:
    metadata = obj.get("metadata")
    if metadata is None:
        metadata = obj["metadata"] = {}
    if not isinstance(metadata, dict):
        raise bad_request("metadata must be an object")
    for key in ("labels", "annotations"):
        value = metadata.get(key)
        if value is not None and (not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())):
            raise bad_request(f"metadata.{key} must be a map of string keys to string values")
    return metadata


def prepare_create_metadata(obj: Obj, namespace: str) -> Obj:
    metadata = check_metadata_shape(obj)
    for field in SERVER_OWNED:
        metadata.pop(field, None)
    metadata.pop("resourceVersion", None)
    if not metadata.get("name") and metadata.get("generateName"):
        metadata["name"] = f"{metadata['generateName']}{random_suffix()}"
    if namespace:
        metadata["namespace"] = namespace
    else:
        metadata.pop("namespace", None)
    metadata["uid"] = str(uuid.uuid4())
    metadata["creationTimestamp"] = now_rfc3339()
    metadata["generation"] = 1
    return metadata


def carry_update_metadata(new: Obj, old: Obj) -> None:
    """Keep what an update may not change: identity, creation time, deletion state."""
    metadata = check_metadata_shape(new)
    old_meta = old.get("metadata", {})
    for field in (
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ):
        if field in old_meta:
            metadata[field] = old_meta[field]
        else:
            metadata.pop(field, None)
    metadata["name"] = old_meta.get("name")
    if "namespace" in old_meta:
        metadata["namespace"] = old_meta["namespace"]
    metadata.pop("selfLink", None)


def same_content(new: Obj, old: Obj) -> bool:
    """Whether an update changes nothing but resourceVersion, so it can be skipped as kube does."""
    new_meta = {k: v for k, v in new.get("metadata", {}).items() if k != "resourceVersion"}
    old_meta = {k: v for k, v in old.get("metadata", {}).items() if k != "resourceVersion"}
    if new_meta != old_meta:
        return False
    return {k: v for k, v in new.items() if k != "metadata"} == {k: v for k, v in old.items() if k != "metadata"}


def deep_copy(obj: Obj) -> Obj:
    return orjson.loads(orjson.dumps(obj))


def partial_metadata(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def pending_finalizers(obj: Obj) -> list[str]:
    """Finalizers that keep an object being deleted: metadata ones, and a namespace's spec ones."""
    pending = list(obj.get("metadata", {}).get("finalizers") or [])
    if obj.get("kind") == "Namespace":
        pending += list(obj.get("spec", {}).get("finalizers") or [])
    return pending
