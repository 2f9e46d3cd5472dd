"""CustomResourceDefinition (apiextensions.k8s.io/v1): defaults, validation and the status split.

The conditions (NamesAccepted, Established, Terminating) and `status.acceptedNames` are written by the
API server's CRD controller (`apiserver.crd.serving`); `status.storedVersions` is kept here, on every
write, as kube's strategy keeps it.
"""

from __future__ import annotations

import re
from typing import Any

from apiserver.crd import jsonpath, structural
from apiserver.registry.base import NAME_COLUMN, Column, Strategy
from skiff.api import validation as v
from skiff.api.errors import Cause

Obj = dict[str, Any]

GROUP = "apiextensions.k8s.io"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
SCOPES = ("Cluster", "Namespaced")
COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
# Groups kube reserves for APIs reviewed upstream; a CRD in them needs the approval annotation.
PROTECTED_GROUP_SUFFIXES = (".k8s.io", ".kubernetes.io")
APPROVAL_ANNOTATION = "api-approved.kubernetes.io"


def storage_version(crd: Obj) -> str | None:
    for version in crd.get("spec", {}).get("versions") or []:
        if version.get("storage"):
            return version.get("name")
    return None


def condition(crd: Obj, kind: str) -> Obj | None:
    for item in crd.get("status", {}).get("conditions") or []:
        if item.get("type") == kind:
            return item
    return None


def is_established(crd: Obj) -> bool:
    found = condition(crd, "Established")
    return found is not None and found.get("status") == "True"


class CustomResourceDefinitionStrategy(Strategy):
    status_subresource = True
    tracks_generation = True

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        stored = storage_version(obj)
        obj["status"] = {
            "acceptedNames": {"plural": "", "kind": ""},
            "conditions": [],
            "storedVersions": [stored] if stored else [],
        }

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        self._record_storage_version(new)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        self._record_storage_version(new)

    def prepare_for_delete(self, obj: Obj) -> None:
        """As kube does, the first delete adds the finalizer that waits for the custom objects to go."""
        metadata = obj.setdefault("metadata", {})
        if metadata.get("deletionTimestamp"):
            return
        finalizers = list(metadata.get("finalizers") or [])
        if CLEANUP_FINALIZER not in finalizers:
            metadata["finalizers"] = [*finalizers, CLEANUP_FINALIZER]

    @staticmethod
    def _record_storage_version(obj: Obj) -> None:
        stored = storage_version(obj)
        status = obj.setdefault("status", {})
        versions = list(status.get("storedVersions") or [])
        if stored and stored not in versions:
            versions.append(stored)
        status["storedVersions"] = versions

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        names = spec.setdefault("names", {})
        kind = names.get("kind")
        if isinstance(kind, str) and kind:
            names.setdefault("singular", kind.lower())
            names.setdefault("listKind", kind + "List")
        spec.setdefault("conversion", {"strategy": "None"})
        for version in spec.get("versions") or []:
            if not isinstance(version, dict):
                continue
            version.setdefault("served", False)
            version.setdefault("storage", False)
            scale = (version.get("subresources") or {}).get("scale")
            if isinstance(scale, dict):
                scale.setdefault("statusReplicasPath", ".status.replicas")
            for column in version.get("additionalPrinterColumns") or []:
                if isinstance(column, dict):
                    column.setdefault("priority", 0)

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_definition(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for key in ("group", "scope"):
            old_value = old.get("spec", {}).get(key)
            if new.get("spec", {}).get(key) != old_value:
                causes.append(v.immutable(f"spec.{key}", new.get("spec", {}).get(key)))
        served = {ver.get("name") for ver in new.get("spec", {}).get("versions") or [] if isinstance(ver, dict)}
        for position, name in enumerate(new.get("status", {}).get("storedVersions") or []):
            if name not in served:
                causes.append(v.invalid(f"status.storedVersions[{position}]", name, "must appear in spec.versions"))
        return causes

    def table_columns(self) -> list[Column]:
        created = Column("Created At", "date", description="The time the definition was created.")
        return [NAME_COLUMN, created]

    def table_row(self, obj: Obj) -> list[Any]:
        metadata = obj.get("metadata", {})
        return [metadata.get("name", ""), metadata.get("creationTimestamp")]


def validate_definition(crd: Obj) -> list[Cause]:
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [v.required("spec")]
    causes: list[Cause] = []
    group = spec.get("group") or ""
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    plural = names.get("plural") or ""
    name = crd.get("metadata", {}).get("name", "")
    if plural and group and name != f"{plural}.{group}":
        causes.append(v.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if not group:
        causes.append(v.required("spec.group"))
    else:
        causes += v.invalid_each("spec.group", group, v.dns1123_subdomain(group))
        if "." not in group:
            causes.append(v.invalid("spec.group", group, "should be a domain with at least one dot"))
        annotations = crd.get("metadata", {}).get("annotations") or {}
        if group.endswith(PROTECTED_GROUP_SUFFIXES) and APPROVAL_ANNOTATION not in annotations:
            causes.append(
                v.required(
                    f"metadata.annotations[{APPROVAL_ANNOTATION}]",
                    "protected groups must have approval annotation",
                )
            )
    scope = spec.get("scope")
    if not scope:
        causes.append(v.required("spec.scope"))
    elif scope not in SCOPES:
        causes.append(v.not_supported("spec.scope", scope, SCOPES))
    causes += _validate_names(names, "spec.names")
    causes += _validate_versions(spec.get("versions"), "spec.versions")
    if spec.get("preserveUnknownFields"):
        causes.append(
            v.invalid(
                "spec.preserveUnknownFields",
                True,
                "must be false in order to use defaults in the schema",
            )
        )
    strategy = (spec.get("conversion") or {}).get("strategy", "None")
    if strategy != "None":
        # Skiff stores custom objects as they are written and serves every version from them.
        causes.append(v.not_supported("spec.conversion.strategy", strategy, ["None"]))
    return causes


def _validate_names(names: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    plural = names.get("plural") or ""
    if not plural:
        causes.append(v.required(f"{path}.plural"))
    else:
        causes += v.invalid_each(f"{path}.plural", plural, v.dns1035_label(plural))
    singular = names.get("singular") or ""
    if singular:
        causes += v.invalid_each(f"{path}.singular", singular, v.dns1035_label(singular))
    kind = names.get("kind") or ""
    if not kind:
        causes.append(v.required(f"{path}.kind"))
    elif not _KIND.match(kind):
        causes.append(
            v.invalid(
                f"{path}.kind", kind, "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?"
            )
        )
    list_kind = names.get("listKind") or ""
    if not list_kind and kind:
        causes.append(v.required(f"{path}.listKind"))
    elif list_kind and not _KIND.match(list_kind):
        causes.append(
            v.invalid(
                f"{path}.listKind",
                list_kind,
                "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
            )
        )
    if kind and list_kind == kind:
        causes.append(v.invalid(f"{path}.listKind", list_kind, "kind and listKind may not be the same"))
    for key in ("shortNames", "categories"):
        seen: set[str] = set()
        for position, item in enumerate(names.get(key) or []):
            item_path = f"{path}.{key}[{position}]"
            if not isinstance(item, str):
                causes.append(v.invalid(item_path, item, "must be a string"))
                continue
            causes += v.invalid_each(item_path, item, v.dns1035_label(item))
            if item in seen:
                causes.append(v.duplicate(item_path, item))
            seen.add(item)
    return causes


def _validate_versions(versions: Any, path: str) -> list[Cause]:
    if not isinstance(versions, list) or not versions:
        return [v.required(path, "must have exactly one version marked as storage version")]
    causes: list[Cause] = []
    seen: set[str] = set()
    storage = 0
    for position, version in enumerate(versions):
        vpath = f"{path}[{position}]"
        if not isinstance(version, dict):
            causes.append(v.invalid(vpath, version, "must be an object"))
            continue
        name = version.get("name") or ""
        if not name:
            causes.append(v.required(f"{vpath}.name"))
        else:
            causes += v.invalid_each(f"{vpath}.name", name, v.dns1035_label(name))
            if name in seen:
                causes.append(v.duplicate(f"{vpath}.name", name))
            seen.add(name)
        if version.get("storage"):
            storage += 1
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        causes += structural.structural_problems(schema, f"{vpath}.schema.openAPIV3Schema")
        causes += _validate_subresources(version.get("subresources") or {}, f"{vpath}.subresources", schema)
        causes += _validate_columns(version.get("additionalPrinterColumns") or [], f"{vpath}.additionalPrinterColumns")
    if storage != 1:
        causes.append(v.invalid(path, _names(versions), "must have exactly one version marked as storage version"))
    return causes


def _names(versions: list[Any]) -> list[str]:
    return [str(ver.get("name", "")) for ver in versions if isinstance(ver, dict)]


def _validate_subresources(subresources: Obj, path: str, schema: Any) -> list[Cause]:
    causes: list[Cause] = []
    scale = subresources.get("scale")
    if scale is None:
        return causes
    if not isinstance(scale, dict):
        return [v.invalid(f"{path}.scale", scale, "must be an object")]
    spec_path = scale.get("specReplicasPath") or ""
    if not spec_path:
        causes.append(v.required(f"{path}.scale.specReplicasPath"))
    elif not spec_path.startswith(".spec."):
        causes.append(v.invalid(f"{path}.scale.specReplicasPath", spec_path, "should be a json path under .spec"))
    status_path = scale.get("statusReplicasPath") or ""
    if status_path and not status_path.startswith(".status."):
        causes.append(v.invalid(f"{path}.scale.statusReplicasPath", status_path, "should be a json path under .status"))
    selector_path = scale.get("labelSelectorPath") or ""
    if selector_path and not selector_path.startswith((".spec.", ".status.")):
        causes.append(
            v.invalid(
                f"{path}.scale.labelSelectorPath", selector_path, "should be a json path under either .spec or .status"
            )
        )
    for key, value in (
        ("specReplicasPath", spec_path),
        ("statusReplicasPath", status_path),
        ("labelSelectorPath", selector_path),
    ):
        if value:
            try:
                jsonpath.parse(value)
            except jsonpath.JsonPathError as error:
                causes.append(v.invalid(f"{path}.scale.{key}", value, str(error)))
    return causes


def _validate_columns(columns: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for position, column in enumerate(columns):
        cpath = f"{path}[{position}]"
        if not isinstance(column, dict):
            causes.append(v.invalid(cpath, column, "must be an object"))
            continue
        if not column.get("name"):
            causes.append(v.required(f"{cpath}.name"))
        column_type = column.get("type")
        if not column_type:
            causes.append(v.required(f"{cpath}.type"))
        elif column_type not in COLUMN_TYPES:
            causes.append(v.not_supported(f"{cpath}.type", column_type, COLUMN_TYPES))
        expression = column.get("jsonPath") or ""
        if not expression:
            causes.append(v.required(f"{cpath}.jsonPath"))
        else:
            try:
                jsonpath.parse(expression)
            except jsonpath.JsonPathError as error:
                causes.append(v.invalid(f"{cpath}.jsonPath", expression, str(error)))
        priority = column.get("priority", 0)
        if not isinstance(priority, int) or priority < 0:
            causes.append(v.invalid(f"{cpath}.priority", priority, "must be greater than or equal to 0"))
    return causes
