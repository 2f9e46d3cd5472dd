"""Compiled views of the schemas for the hot paths: decoding checks (unknown fields, wrong JSON types)
and patch metadata.

A schema is compiled once into `Node`s that answer "which properties exist", "what do list items and
map values look like" and "how does each property merge" with plain dict lookups. References are
compiled lazily and shared, so recursive schemas compile without looping.
"""

from __future__ import annotations

import threading
from typing import Any

from skiff.api.patchmeta import FieldPath, PatchMeta
from skiff.api.schema.store import Schema

NO_META: PatchMeta = (None, None)

# The JSON values each schema type accepts (bool is checked apart: in Python it is an int).
_ACCEPTED: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
# Definitions whose JSON form is looser than their declared type: a quantity may be written as a number.
_LOOSER: dict[str, tuple[type, ...]] = {"io.k8s.apimachinery.pkg.api.resource.Quantity": (str, int, float)}


class Node:
    """One compiled schema: an object with known properties, a map, a list, or anything."""

    __slots__ = ("accepts", "items", "meta", "open", "properties", "type_name", "values")

    def __init__(self) -> None:
        self.properties: dict[str, Node] | None = None
        self.meta: dict[str, PatchMeta] = {}
        self.items: Node | None = None
        self.values: Node | None = None
        # True when any key is accepted (preserve-unknown-fields, or an object without a structure).
        self.open = False
        # The JSON value types this schema accepts (None: any), and its type as the schema names it.
        self.accepts: tuple[type, ...] | None = None
        self.type_name = ""


class Compiler:
    """Compiles schemas against a set of definitions, caching one Node per referenced definition."""

    def __init__(self, definitions: Any) -> None:
        self._definitions = definitions
        self._by_name: dict[str, Node] = {}
        # Nodes still being filled; published to _by_name together once the outermost one is done,
        # so another thread never walks a half-filled node.
        self._building: dict[str, Node] = {}
        self._lock = threading.RLock()

    def for_definition(self, name: str) -> Node:
        node = self._by_name.get(name)
        if node is not None:
            return node
        with self._lock:
            node = self._by_name.get(name) or self._building.get(name)
            if node is not None:
                # Already done by another thread, or a definition that refers to itself.
                return node
            outermost = not self._building
            node = self._building[name] = Node()
            self._fill(node, self._definitions.get(name) or {})
            if name in _LOOSER:
                node.accepts = _LOOSER[name]
            if outermost:
                self._by_name.update(self._building)
                self._building.clear()
            return node

    def compile(self, schema: Schema) -> Node:
        target = _single_ref(schema)
        if target is not None:
            return self.for_definition(target)
        node = Node()
        self._fill(node, schema)
        return node

    def _fill(self, node: Node, schema: Schema) -> None:
        target = _single_ref(schema)
        if target is not None:
            referenced = self.for_definition(target)
            node.properties, node.meta = referenced.properties, referenced.meta
            node.items, node.values, node.open = referenced.items, referenced.values, referenced.open
            node.accepts, node.type_name = referenced.accepts, referenced.type_name
            return
        schema_type = schema.get("type")
        if schema.get("x-kubernetes-int-or-string"):
            node.accepts, node.type_name = (int, str), "int-or-string"
        elif isinstance(schema_type, str) and schema_type in _ACCEPTED:
            node.accepts, node.type_name = _ACCEPTED[schema_type], schema_type
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            node.open = True
        properties = schema.get("properties")
        if properties is not None:
            node.properties = {key: self.compile(prop) for key, prop in properties.items()}
            node.meta = {key: meta for key, prop in properties.items() if (meta := _patch_meta(prop))}
        items = schema.get("items")
        if isinstance(items, dict):
            node.items = self.compile(items)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            node.values = self.compile(additional)
        elif properties is None and items is None and additional is not False:
            node.open = True


def _single_ref(schema: Schema) -> str | None:
    ref = schema.get("$ref")
    if ref is None:
        all_of = schema.get("allOf")
        if all_of and len(all_of) == 1:
            ref = all_of[0].get("$ref")
    if ref is None:
        return None
    return ref.rsplit("/", 1)[-1]


def _patch_meta(prop: Schema) -> PatchMeta | None:
    strategy = prop.get("x-kubernetes-patch-strategy")
    key = prop.get("x-kubernetes-patch-merge-key")
    if strategy is None and key is None:
        return None
    return (strategy, key)


def json_type_name(value: Any) -> str:
    """A JSON value's type in the words of Go's JSON decoder ("string", "number", "bool", ...)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string"


def _wrong_type(node: Node, value: Any) -> bool:
    accepts = node.accepts
    if accepts is None or value is None:  # null decodes to the zero value of any type
        return False
    if isinstance(value, bool):
        return bool not in accepts
    return not isinstance(value, accepts)


def unknown_paths(
    node: Node,
    value: Any,
    path: str,
    found: list[str],
    prune: bool = False,
    mistyped: list[tuple[str, Any, str]] | None = None,
) -> None:
    """Append to found the path of every key in value that node does not know; drop them if prune.
    With mistyped, also append (path, value, expected type) for every value of the wrong JSON type."""
    if mistyped is not None and _wrong_type(node, value):
        mistyped.append((path, value, node.type_name))
        return
    if isinstance(value, dict):
        _unknown_in_object(node, value, path, found, prune, mistyped)
    elif isinstance(value, list) and node.items is not None:
        for index, item in enumerate(value):
            unknown_paths(node.items, item, f"{path}[{index}]", found, prune, mistyped)


def _unknown_in_object(
    node: Node,
    value: dict[str, Any],
    path: str,
    found: list[str],
    prune: bool,
    mistyped: list[tuple[str, Any, str]] | None,
) -> None:
    properties = node.properties
    unknown: list[str] = []
    for key, child in value.items():
        child_path = f"{path}.{key}" if path else key
        if properties is not None and key in properties:
            unknown_paths(properties[key], child, child_path, found, prune, mistyped)
        elif node.values is not None:
            unknown_paths(node.values, child, child_path, found, prune, mistyped)
        elif not node.open and properties is not None:
            found.append(child_path)
            unknown.append(key)
    if prune:
        for key in unknown:
            del value[key]


class KindPatchMeta:
    """Patch metadata of one kind, answered from a per-path cache."""

    def __init__(self, root: Node) -> None:
        self._root = root
        self._cache: dict[FieldPath, PatchMeta] = {}

    def __call__(self, path: FieldPath) -> PatchMeta:
        meta = self._cache.get(path)
        if meta is None:
            meta = self._cache[path] = self._lookup(path)
        return meta

    def _lookup(self, path: FieldPath) -> PatchMeta:
        node: Node | None = self._root
        meta = NO_META
        for segment in path:
            if node is None:
                return NO_META
            while node.items is not None:
                # List items add no path element.
                node = node.items
            if node.properties is not None and segment in node.properties:
                meta = node.meta.get(segment, NO_META)
                node = node.properties[segment]
            elif node.values is not None:
                meta, node = NO_META, node.values
            else:
                return NO_META
        return meta
