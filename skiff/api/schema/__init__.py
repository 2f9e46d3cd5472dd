"""Structural schemas of the built-in kinds, and what the server derives from them.

- `definition_for` gives a kind's OpenAPI schema object (refs as bare definition names);
- `unknown_fields` lists fields a schema does not know, as strict field validation reports them;
- `prune_unknown_fields` drops them and can also report values of the wrong JSON type, both as decoding
  into a typed object would;
- `duplicate_fields` lists keys repeated in a JSON body;
- `patch_meta_for` gives strategic-merge-patch metadata (patch strategy, merge key) by field path;
- `register_definitions` / `unregister_kind` let custom resources add kinds at run time.

The built-in definitions live in definitions.json, written by `python -m skiff.api.schema.generate`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from skiff.api.patchmeta import PatchMetaLookup, no_patch_meta
from skiff.api.schema.duplicates import duplicate_fields
from skiff.api.schema.store import STORE, Schema
from skiff.api.schema.walk import Compiler, KindPatchMeta, json_type_name, unknown_paths

__all__ = [
    "all_definitions",
    "definition_for",
    "definition_name_for",
    "duplicate_fields",
    "on_change",
    "patch_meta_for",
    "register_definitions",
    "schema_generation",
    "type_error_message",
    "unknown_fields",
    "unregister_kind",
]


class _Compiled:
    """Compiled nodes and patch-meta lookups, rebuilt whenever the definitions change."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.compiler = Compiler(STORE.definitions())
        self.patch_meta: dict[tuple[str, str, str], PatchMetaLookup] = {}


_COMPILED = _Compiled()
STORE.on_change(_COMPILED.reset)


def all_definitions() -> Mapping[str, Schema]:
    """Every known definition by name (built-in and registered)."""
    return STORE.definitions()


def definition_name_for(group: str, version: str, kind: str) -> str | None:
    """The definition name of a kind, e.g. io.k8s.api.apps.v1.Deployment."""
    return STORE.name_for(group, version, kind)


def definition_for(group: str, version: str, kind: str) -> dict[str, Any] | None:
    """The OpenAPI schema object of a kind, or None for a kind without a schema."""
    name = STORE.name_for(group, version, kind)
    return STORE.get(name) if name else None


def patch_meta_for(group: str, version: str, kind: str) -> PatchMetaLookup:
    """Strategic-merge-patch metadata of a kind; `no_patch_meta` when the kind has no schema."""
    key = (group, version, kind)
    lookup = _COMPILED.patch_meta.get(key)
    if lookup is None:
        name = STORE.name_for(group, version, kind)
        lookup = KindPatchMeta(_COMPILED.compiler.for_definition(name)) if name else no_patch_meta
        _COMPILED.patch_meta[key] = lookup
    return lookup


def unknown_fields(group: str, version: str, kind: str, obj: dict[str, Any]) -> list[str]:
    """Paths of the fields in obj that the kind's schema does not know ("spec.foo",
    "spec.template.spec.containers[0].bogus"). A kind without a schema knows every field."""
    name = STORE.name_for(group, version, kind)
    if name is None:
        return []
    found: list[str] = []
    unknown_paths(_COMPILED.compiler.for_definition(name), obj, "", found)
    return found


def prune_unknown_fields(
    group: str,
    version: str,
    kind: str,
    obj: dict[str, Any],
    mistyped: list[tuple[str, Any, str]] | None = None,
) -> list[str]:
    """Remove the fields the kind's schema does not know, as decoding into a typed object would;
    returns their paths. With mistyped, also append (path, value, expected schema type) for every value
    of the wrong JSON type (a string where an integer belongs), which decoding would refuse."""
    name = STORE.name_for(group, version, kind)
    if name is None:
        return []
    found: list[str] = []
    unknown_paths(_COMPILED.compiler.for_definition(name), obj, "", found, prune=True, mistyped=mistyped)
    return found


def type_error_message(path: str, value: Any, expected: str) -> str:
    """How a decoder words a value of the wrong type, e.g.
    `cannot unmarshal string into field spec.replicas of type integer`."""
    return f"cannot unmarshal {json_type_name(value)} into field {path} of type {expected}"


def register_definitions(definitions: Mapping[str, Schema]) -> None:
    """Add definitions (e.g. a custom resource's schema). Each one carrying
    `x-kubernetes-group-version-kind` becomes the schema of those kinds; `$ref`s name other definitions
    by their bare names, such as io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta."""
    STORE.register(definitions)


def unregister_kind(group: str, version: str, kind: str) -> None:
    """Forget the schema of a kind."""
    STORE.unregister_kind(group, version, kind)


def schema_generation() -> int:
    """A number that changes whenever definitions are registered or removed (for cache keys)."""
    return STORE.generation


def on_change(listener: Callable[[], None]) -> None:
    """Call listener whenever definitions are registered or removed."""
    STORE.on_change(listener)
