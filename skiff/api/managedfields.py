"""Field ownership: `metadata.managedFields` and the fieldsV1 sets inside it.

A field set is a set of paths. A path is a tuple of elements spelled as in fieldsV1: `f:<name>` for a
map field, `k:{"name":"web"}` for an item of an associative list, `v:"x"` for a member of a set. An
atomic list or a scalar is a single leaf. A set is stored as Python `set[Path]` and converted to the
nested fieldsV1 dict only at the edges, where a node that is itself a member and also has children
carries the `"."` marker.

`record_update` keeps ownership after a create, update or patch; `skiff.api.apply` builds server-side
apply on top of the same pieces.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from skiff.api.patchmeta import FieldPath, PatchMetaLookup

Path = tuple[str, ...]
FieldSet = set[Path]

APPLY = "Apply"
UPDATE = "Update"
FIELDS_TYPE = "FieldsV1"

# Server-owned metadata that no manager ever owns (kube strips the same list before tracking).
UNTRACKED_METADATA = (
    "name",
    "namespace",
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "clusterName",
)

# Key fields the schema defaults: an applied container port without a protocol still names the
# live `{"containerPort":80,"protocol":"TCP"}` item, as it does in kube.
KEY_FIELD_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}

ATOMIC = "atomic"
ASSOCIATIVE = "map"
SET = "set"

# The order kube gives path elements: fields, then keys, then values, then indexes.
_ELEMENT_RANK = {"f": 0, "k": 1, "v": 2, "i": 3}


# --- path elements -------------------------------------------------------------------------------


def dumps_compact(value: Any) -> str:
    """JSON as fieldsV1 spells keys and values: compact, keys sorted."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def field_element(name: str) -> str:
    return f"f:{name}"


def value_element(value: Any) -> str:
    return f"v:{dumps_compact(value)}"


def key_element(item: Any, key_fields: tuple[str, ...]) -> str | None:
    """The `k:{...}` element naming an associative list item, or None when a key field is missing."""
    if not isinstance(item, dict):
        return None
    key: dict[str, Any] = {}
    for name in key_fields:
        if name in item and _is_scalar(item[name]):
            key[name] = item[name]
        elif name not in item and name in KEY_FIELD_DEFAULTS:
            key[name] = KEY_FIELD_DEFAULTS[name]
        else:
            return None
    return f"k:{dumps_compact(key)}"


def field_names(path: Path) -> FieldPath:
    """The schema path of a field path: list items add no element."""
    return tuple(element[2:] for element in path if element.startswith("f:"))


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


# --- list shapes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListShape:
    kind: str
    key_fields: tuple[str, ...] = ()


def list_shape(path: Path, lookup: PatchMetaLookup, items: list[Any]) -> ListShape:
    """How a list at `path` is tracked; a list whose items do not fit its schema is atomic."""
    strategy, merge_key = lookup(field_names(path))
    if merge_key:
        key_fields = tuple(name.strip() for name in merge_key.split(","))
        if all(key_element(item, key_fields) is not None for item in items):
            return ListShape(ASSOCIATIVE, key_fields)
        return ListShape(ATOMIC)
    strategies = (strategy or "").split(",")
    if "merge" in strategies and all(_is_scalar(item) for item in items):
        return ListShape(SET)
    return ListShape(ATOMIC)


def item_element(item: Any, shape: ListShape) -> str:
    if shape.kind == ASSOCIATIVE:
        element = key_element(item, shape.key_fields)
        assert element is not None  # list_shape only answers ASSOCIATIVE when every item has a key
        return element
    return value_element(item)


def index_items(items: list[Any], shape: ListShape) -> dict[str, Any]:
    """Items by element, in list order; a repeated element keeps its first item."""
    indexed: dict[str, Any] = {}
    for item in items:
        indexed.setdefault(item_element(item, shape), item)
    return indexed


def find_item(items: list[Any], element: str) -> int | None:
    """The index of the list item an element names."""
    kind, _, spelled = element.partition(":")
    wanted = orjson.loads(spelled)
    for index, item in enumerate(items):
        if kind == "v" and _is_scalar(item) and dumps_compact(item) == spelled:
            return index
        if kind == "k" and key_element(item, tuple(wanted)) == element:
            return index
    return None


# --- the fields an object sets -------------------------------------------------------------------


def trackable(obj: dict[str, Any], ignored: Iterable[FieldPath] = ()) -> dict[str, Any]:
    """A shallow view of an object without the fields no manager owns."""
    view = {key: value for key, value in obj.items() if key not in ("apiVersion", "kind")}
    metadata = view.get("metadata")
    if isinstance(metadata, dict):
        kept = {key: value for key, value in metadata.items() if key not in UNTRACKED_METADATA}
        if kept:
            view["metadata"] = kept
        else:
            view.pop("metadata")
    for path in ignored:
        view = _without_field(view, path)
    return view


def _without_field(obj: dict[str, Any], path: FieldPath) -> dict[str, Any]:
    if not path or path[0] not in obj:
        return obj
    copy = dict(obj)
    if len(path) == 1:
        del copy[path[0]]
    elif isinstance(copy[path[0]], dict):
        copy[path[0]] = _without_field(copy[path[0]], path[1:])
    return copy


def field_set(obj: dict[str, Any], lookup: PatchMetaLookup) -> FieldSet:
    """The paths an object (already made `trackable`) sets, as an applier of it would own them."""
    out: FieldSet = set()
    for name, value in obj.items():
        _collect_leaves(value, (field_element(name),), lookup, out)
    return out


def _collect_leaves(value: Any, path: Path, lookup: PatchMetaLookup, out: FieldSet) -> None:
    # A non-empty map is not owned itself (it stands for a struct); its entries are.
    if isinstance(value, dict) and value:
        for name, child in value.items():
            _collect_leaves(child, (*path, field_element(name)), lookup, out)
        return
    if isinstance(value, list) and value:
        shape = list_shape(path, lookup, value)
        if shape.kind != ATOMIC:
            _collect_items(value, shape, path, lookup, out)
            return
    out.add(path)


def _collect_items(items: list[Any], shape: ListShape, path: Path, lookup: PatchMetaLookup, out: FieldSet) -> None:
    for element, item in index_items(items, shape).items():
        item_path = (*path, element)
        out.add(item_path)
        if shape.kind == ASSOCIATIVE:
            for name, child in item.items():
                _collect_leaves(child, (*item_path, field_element(name)), lookup, out)


def fields_of(obj: dict[str, Any], lookup: PatchMetaLookup, ignore_status: bool = False) -> dict[str, Any]:
    """The fieldsV1 set of the fields an object sets."""
    ignored: tuple[FieldPath, ...] = (("status",),) if ignore_status else ()
    return encode_fields(field_set(trackable(obj, ignored), lookup))


def _all_nodes(value: Any, path: Path, lookup: PatchMetaLookup, out: FieldSet) -> None:
    """Every node of a subtree that appeared or disappeared as a whole, the subtree's root included."""
    out.add(path)
    if isinstance(value, dict):
        for name, child in value.items():
            _all_nodes(child, (*path, field_element(name)), lookup, out)
    elif isinstance(value, list) and value:
        shape = list_shape(path, lookup, value)
        if shape.kind == ATOMIC:
            return
        for element, item in index_items(value, shape).items():
            _all_nodes(item, (*path, element), lookup, out)


# --- comparing two versions of an object ---------------------------------------------------------


@dataclass
class Comparison:
    added: FieldSet = field(default_factory=set)
    modified: FieldSet = field(default_factory=set)
    removed: FieldSet = field(default_factory=set)

    @property
    def changed(self) -> FieldSet:
        """The fields whose new value someone wrote: the writer owns these afterwards."""
        return self.added | self.modified

    def is_same(self) -> bool:
        return not (self.added or self.modified or self.removed)


def compare(old: dict[str, Any], new: dict[str, Any], lookup: PatchMetaLookup) -> Comparison:
    """What changed between two `trackable` objects."""
    comparison = Comparison()
    _compare_maps(old, new, (), lookup, comparison)
    return comparison


def creation_baseline(new: dict[str, Any]) -> dict[str, Any]:
    """The "old" object of a create: its top-level structs exist but hold nothing.

    Kube compares a create against the kind's zero value, so `spec` and `metadata` are not owned as
    nodes themselves, while maps that appear inside them (labels, a container) are.
    """
    return {name: {} for name, value in new.items() if isinstance(value, dict)}


def _compare_values(old: Any, new: Any, path: Path, lookup: PatchMetaLookup, out: Comparison) -> None:
    if type(old) is type(new) and old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        _compare_maps(old, new, path, lookup, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        shape = list_shape(path, lookup, old + new)
        if shape.kind != ATOMIC:
            _compare_items(old, new, shape, path, lookup, out)
            return
    _compare_replaced(old, new, path, lookup, out)


def _compare_maps(
    old: dict[str, Any], new: dict[str, Any], path: Path, lookup: PatchMetaLookup, out: Comparison
) -> None:
    for name in {**old, **new}:
        child_path = (*path, field_element(name))
        if name not in new:
            _all_nodes(old[name], child_path, lookup, out.removed)
        elif name not in old:
            _all_nodes(new[name], child_path, lookup, out.added)
        else:
            _compare_values(old[name], new[name], child_path, lookup, out)


def _compare_items(
    old: list[Any], new: list[Any], shape: ListShape, path: Path, lookup: PatchMetaLookup, out: Comparison
) -> None:
    old_items, new_items = index_items(old, shape), index_items(new, shape)
    for element in {**old_items, **new_items}:
        item_path = (*path, element)
        if element not in new_items:
            _all_nodes(old_items[element], item_path, lookup, out.removed)
        elif element not in old_items:
            _all_nodes(new_items[element], item_path, lookup, out.added)
        elif shape.kind == ASSOCIATIVE:
            _compare_maps(old_items[element], new_items[element], item_path, lookup, out)


def _compare_replaced(old: Any, new: Any, path: Path, lookup: PatchMetaLookup, out: Comparison) -> None:
    # The leaf itself was rewritten; whatever hung below the old value is gone, the new value's
    # insides are new.
    out.modified.add(path)
    before: FieldSet = set()
    after: FieldSet = set()
    _all_nodes(old, path, lookup, before)
    _all_nodes(new, path, lookup, after)
    out.removed |= before - {path}
    out.added |= after - {path}


# --- fieldsV1 encoding ---------------------------------------------------------------------------


def encode_fields(paths: Iterable[Path]) -> dict[str, Any]:
    """The nested fieldsV1 dict of a set of paths, with kube's element order and "." markers."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for element in path:
            child = node.get(element)
            if child is None:
                child = node[element] = {}
            node = child
        if node is not tree:
            node[_MEMBER] = True  # no element is spelled "." (they all start with a kind and a colon)
    return _render(tree)


_MEMBER = "."


def _render(tree: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if _MEMBER in tree:
        if len(tree) == 1:
            return out
        out[_MEMBER] = {}
        elements = [element for element in tree if element != _MEMBER]
    else:
        elements = list(tree)
    if all(element.startswith("f:") for element in elements):
        elements.sort()  # fields only: the plain string order is the order of their names
    else:
        elements.sort(key=element_sort_key)
    for element in elements:
        out[element] = _render(tree[element])
    return out


def decode_fields(fields: Any) -> FieldSet:
    """The set of paths in a fieldsV1 dict; anything that is not a dict decodes to nothing."""
    out: FieldSet = set()
    if isinstance(fields, dict):
        _decode_node(fields, (), out)
    return out


def _decode_node(node: dict[str, Any], prefix: Path, out: FieldSet) -> None:
    for element, child in node.items():
        if element == ".":
            if prefix:
                out.add(prefix)
        elif isinstance(child, dict) and child:
            _decode_node(child, (*prefix, element), out)
        else:
            out.add((*prefix, element))


# --- ordering and printing paths -----------------------------------------------------------------


def _scalar_sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, dumps_compact(value))


@lru_cache(maxsize=8192)
def element_sort_key(element: str) -> tuple[Any, ...]:
    kind, _, spelled = element.partition(":")
    rank = _ELEMENT_RANK.get(kind, 4)
    if kind == "f":
        return (rank, spelled)
    try:
        parsed = orjson.loads(spelled)
    except orjson.JSONDecodeError:
        return (rank, (4, spelled))
    if kind == "k" and isinstance(parsed, dict):
        return (rank, tuple((name, _scalar_sort_key(value)) for name, value in sorted(parsed.items())))
    return (rank, _scalar_sort_key(parsed))


def path_sort_key(path: Path) -> tuple[Any, ...]:
    """Kube's walk order over a set: at each node its members first, then its children, each sorted."""
    last = len(path) - 1
    return tuple((0 if depth == last else 1, element_sort_key(e)) for depth, e in enumerate(path))


def path_string(path: Path) -> str:
    """A path as kube prints it: `.spec.containers[name="web"].image`, `.metadata.finalizers[="x"]`."""
    return "".join(_element_string(element) for element in path)


def _element_string(element: str) -> str:
    kind, _, spelled = element.partition(":")
    if kind == "f":
        return "." + spelled
    parsed = orjson.loads(spelled)
    if kind == "k":
        return "[" + ",".join(f"{name}={dumps_compact(v)}" for name, v in sorted(parsed.items())) + "]"
    return f"[={dumps_compact(parsed)}]"


# --- managedFields entries -----------------------------------------------------------------------


@dataclass
class ManagerEntry:
    """One managedFields entry, with its fieldsV1 decoded into a set of paths."""

    manager: str
    operation: str
    api_version: str
    time: str | None
    fields: FieldSet
    subresource: str = ""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        # An applier keeps one entry whatever version it applies with; an updater has one per version.
        version = "" if self.operation == APPLY else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time:
            entry["time"] = self.time
        entry["fieldsType"] = FIELDS_TYPE
        entry["fieldsV1"] = encode_fields(self.fields)
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry

    def sort_key(self) -> tuple[str, str, str, str, str]:
        # Kube compares times at one-second resolution.
        return (self.operation, (self.time or "")[:19], self.manager, self.api_version, self.subresource)


def decode_entries(raw: Any) -> list[ManagerEntry]:
    """The entries of a managedFields list; entries that do not decode are dropped, repeats merged."""
    by_identity: dict[tuple[str, str, str, str], ManagerEntry] = {}
    for item in raw if isinstance(raw, list) else []:
        entry = _decode_entry(item)
        if entry is None:
            continue
        known = by_identity.get(entry.identity)
        if known is None:
            by_identity[entry.identity] = entry
        else:
            known.fields |= entry.fields
    return list(by_identity.values())


def _decode_entry(item: Any) -> ManagerEntry | None:
    if not isinstance(item, dict) or item.get("fieldsType", FIELDS_TYPE) != FIELDS_TYPE:
        return None
    operation = item.get("operation")
    if operation not in (APPLY, UPDATE):
        return None
    return ManagerEntry(
        manager=str(item.get("manager") or ""),
        operation=operation,
        api_version=str(item.get("apiVersion") or ""),
        time=item.get("time") if isinstance(item.get("time"), str) else None,
        fields=decode_fields(item.get("fieldsV1")),
        subresource=str(item.get("subresource") or ""),
    )


def store_entries(obj: dict[str, Any], entries: Iterable[ManagerEntry]) -> None:
    """Write entries into `obj` in kube's order, dropping those that own nothing."""
    kept = sorted((entry for entry in entries if entry.fields), key=ManagerEntry.sort_key)
    metadata = obj.setdefault("metadata", {})
    if kept:
        metadata["managedFields"] = [entry.to_dict() for entry in kept]
    else:
        metadata.pop("managedFields", None)


def find_entry(entries: list[ManagerEntry], identity: tuple[str, str, str, str]) -> ManagerEntry | None:
    return next((entry for entry in entries if entry.identity == identity), None)


def reset_fields_for(subresource: str, has_status_subresource: bool) -> tuple[FieldPath, ...]:
    """The fields a write through (sub)resource cannot change, so it must not take ownership of them.

    With a status subresource, writes to the main resource leave `status` alone and writes to
    `/status` leave `spec` alone; the registry resets those fields, ownership follows.
    """
    if subresource == "status":
        return (("spec",),)
    if not subresource and has_status_subresource:
        return (("status",),)
    return ()


# --- ownership after a create, update or patch ---------------------------------------------------


def _is_reset_request(sent: Any) -> bool:
    # An empty list means "keep what is there" (clients that do not know the field send nothing);
    # a list holding one empty entry is the documented way to clear managedFields.
    return sent == [{}]


def _starting_entries(new: dict[str, Any], old: dict[str, Any] | None) -> list[ManagerEntry] | None:
    sent = (new.get("metadata") or {}).get("managedFields")
    if _is_reset_request(sent):
        return None
    if sent:
        return decode_entries(sent)
    return decode_entries((old or {}).get("metadata", {}).get("managedFields"))


def record_update(
    new: dict[str, Any],
    old: dict[str, Any] | None,
    manager: str,
    operation: str,
    api_version: str,
    now: str,
    lookup: PatchMetaLookup,
    subresource: str = "",
    *,
    ignored_fields: Iterable[FieldPath] = (),
) -> None:
    """Record in `new` (mutated in place) that `manager` wrote the fields that differ from `old`."""
    entries = _starting_entries(new, old)
    if entries is None:
        new.setdefault("metadata", {}).pop("managedFields", None)
        return
    ignored = tuple(ignored_fields)
    after = trackable(new, ignored)
    before = trackable(old, ignored) if old is not None else creation_baseline(after)
    comparison = compare(before, after, lookup)
    writer = ManagerEntry(manager, operation, api_version, now, set(), subresource)
    for entry in entries:
        if entry.identity != writer.identity:
            entry.fields -= comparison.changed | comparison.removed
    _credit_writer(entries, writer, comparison)
    store_entries(new, entries)


def _credit_writer(entries: list[ManagerEntry], writer: ManagerEntry, comparison: Comparison) -> None:
    own = find_entry(entries, writer.identity)
    if own is not None:
        own.fields -= comparison.removed
    if not comparison.changed:
        return  # nothing written: the entry, and its time, stay as they were
    if own is None:
        entries.append(writer)
        own = writer
    own.fields |= comparison.changed
    own.time = writer.time
    own.api_version = writer.api_version
