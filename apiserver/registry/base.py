"""The strategy interface: what the generic REST handlers ask of each resource.

A strategy holds the per-resource rules (defaults, validation, the spec/status split, table columns,
field selectors). The generic handlers in `apiserver.http` do everything else (metadata, storage,
concurrency, watch), so a resource with no special rules uses `Strategy` as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skiff.api import schema, validation
from skiff.api.errors import Cause
from skiff.api.kinds import ResourceType
from skiff.api.timefmt import age

Obj = dict[str, Any]


@dataclass(frozen=True)
class Column:
    """A `meta.k8s.io/v1` Table column definition; priority 1 columns show only with `-o wide`."""

    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


NAME_COLUMN = Column("Name", format="name", description="Name must be unique within a namespace.")
AGE_COLUMN = Column("Age", description="Time since the object was created.")


def _metadata_name(obj: Obj) -> str:
    return obj.get("metadata", {}).get("name", "")


def age_of(obj: Obj) -> str:
    """Time since creation, as kubectl prints it (`5m`, `3h12m`, `2d`)."""
    return age(obj.get("metadata", {}).get("creationTimestamp"))


# Set by the server, never by a client: a `/status` update keeps the stored values.
_SYSTEM_METADATA = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


def _metadata_namespace(obj: Obj) -> str:
    return obj.get("metadata", {}).get("namespace", "")


class Strategy:
    """Default rules for a resource. Subclass per kind and override what differs."""

    #: True when the resource has a `status` subresource: then updates of the main resource keep the
    #: stored status and updates through `/status` change only the status.
    status_subresource: bool = False

    #: Whether an immediate delete answers with the deleted object (kube does this for a few kinds, such
    #: as pods and services) rather than a success Status.
    return_deleted_object: bool = False

    #: How names of this kind are checked (most kinds: a DNS-1123 subdomain).
    name_rule: validation.NameRule = staticmethod(validation.name_is_dns_subdomain)

    #: Whether objects carry `metadata.generation` (set to 1 on create, bumped when the desired state
    #: changes). As in kube, kinds without a spec for a controller to observe (ConfigMaps, Secrets,
    #: Namespaces, RBAC, ...) have none.
    tracks_generation: bool = True

    #: Metadata fields that a `/status` update may not change, beyond the system fields no update may.
    status_update_keeps_metadata: tuple[str, ...] = ()

    #: Whether strategic merge patch applies (kube answers 415 for custom resources).
    strategic_merge_patch: bool = True

    #: Where the `scale` subresource reads and writes: spec replicas, status replicas, label selector.
    scale_paths: tuple[str, str, str] = (".spec.replicas", ".status.replicas", ".spec.selector")

    #: Whether objects pass through `present` before they are served (custom resources: apiVersion
    #: of the requested version, schema defaults).
    transforms_reads: bool = False

    def __init__(self, resource: ResourceType) -> None:
        self.resource = resource

    # -- defaulting ---------------------------------------------------------------------------------
    def default(self, obj: Obj) -> None:
        """Fill in Kubernetes' defaults in place. Runs on create, update and patch results."""

    def prepare_for_create(self, obj: Obj) -> None:
        """Adjust a new object before validation (e.g. drop a status the client may not set)."""
        if not self.tracks_generation:
            obj.get("metadata", {}).pop("generation", None)
        if self.status_subresource:
            obj.pop("status", None)
            initial = self.initial_status(obj)
            if initial is not None:
                obj["status"] = initial

    def initial_status(self, obj: Obj) -> Obj | None:
        """The status a newly created object starts with, or None for no status."""
        return None

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Adjust an update of the main resource: the status is not changed through it."""
        if self.status_subresource:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """Adjust an update through `/status`: the status changes, the desired state does not."""
        for key in list(new):
            if key not in ("status", "metadata", "apiVersion", "kind"):
                new.pop(key)
        for key, value in old.items():
            if key not in ("status", "metadata"):
                new[key] = value
        new_meta = new.setdefault("metadata", {})
        old_meta = old.get("metadata", {})
        for field_name in (*_SYSTEM_METADATA, *self.status_update_keeps_metadata):
            if field_name in old_meta:
                new_meta[field_name] = old_meta[field_name]
            else:
                new_meta.pop(field_name, None)

    def prepare_for_delete(self, obj: Obj) -> None:
        """Adjust an object that a delete request is about to remove or mark (e.g. add a finalizer)."""

    def prune_unknown_fields(self, obj: Obj, mistyped: list[tuple[str, Any, str]] | None = None) -> list[str]:
        """Drop the fields the kind's schema does not know; returns their paths (see check_fields)."""
        resource = self.resource
        return schema.prune_unknown_fields(resource.group, resource.version, resource.kind, obj, mistyped)

    # -- validation ---------------------------------------------------------------------------------
    def validate_metadata(self, obj: Obj) -> list[Cause]:
        """The generic metadata rules with this kind's name rule."""
        return validation.validate_metadata(obj, self.resource, self.name_rule)

    def validate(self, obj: Obj) -> list[Cause]:
        """Validate a whole object (create and update). Metadata is validated generically."""
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """Rules that compare with the stored object, such as immutable fields."""
        return []

    # -- reading ------------------------------------------------------------------------------------
    def present(self, obj: Obj) -> Obj:
        """The object as served, when `transforms_reads` is set; may change obj in place."""
        return obj

    def table_columns(self) -> list[Column]:
        """Every Table column, in kubectl's order (Name first; Age where kubectl shows it)."""
        return [NAME_COLUMN, AGE_COLUMN]

    def table_row(self, obj: Obj) -> list[Any]:
        """The cells of `table_columns()` for one object."""
        return [_metadata_name(obj), age_of(obj)]

    def field_selectors(self) -> dict[str, Callable[[Obj], str]]:
        """Field paths this resource can be selected by, beyond metadata.name and metadata.namespace."""
        return {}

    def selectable_fields(self) -> dict[str, Callable[[Obj], str]]:
        fields: dict[str, Callable[[Obj], str]] = {"metadata.name": _metadata_name}
        if self.resource.namespaced:
            fields["metadata.namespace"] = _metadata_namespace
        fields.update(self.field_selectors())
        return fields

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        """Whether an update changes the desired state, which bumps metadata.generation."""
        if not self.tracks_generation:
            return False
        ignored = ("metadata", "status", "apiVersion", "kind")
        return {k: v for k, v in new.items() if k not in ignored} != {k: v for k, v in old.items() if k not in ignored}
