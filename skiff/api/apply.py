"""Server-side apply: merge an applied configuration into the live object and keep field ownership.

The applier owns exactly the fields its configuration sets. Applying merges maps, merges associative
lists by key and sets by value, and replaces atomic lists and scalars. A field the applier set last
time and no longer sets is removed, unless another manager owns it. Changing a field another manager
owns is a conflict (409) unless the apply is forced, which takes the field over; setting the value the
field already has is not a conflict: the managers then share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from skiff.api.errors import ApiError, Cause, bad_request
from skiff.api.managedfields import (
    APPLY,
    ASSOCIATIVE,
    ATOMIC,
    UPDATE,
    FieldSet,
    ListShape,
    ManagerEntry,
    Path,
    compare,
    creation_baseline,
    decode_entries,
    field_element,
    field_names,
    field_set,
    find_entry,
    find_item,
    index_items,
    key_element,
    list_shape,
    path_sort_key,
    path_string,
    store_entries,
    trackable,
    value_element,
)
from skiff.api.patchmeta import FieldPath, PatchMetaLookup


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    force: bool,
    api_version: str,
    now: str,
    lookup: PatchMetaLookup,
    *,
    subresource: str = "",
    ignored_fields: Iterable[FieldPath] = (),
) -> dict[str, Any]:
    """The object after `manager` applies `applied` to `live` (None when creating)."""
    validate_applied(applied, lookup)
    ignored = tuple(ignored_fields)
    entries = decode_entries((live or {}).get("metadata", {}).get("managedFields"))
    applier = ManagerEntry(manager, APPLY, api_version, now, set(), subresource)
    previous = find_entry(entries, applier.identity)
    others = [entry for entry in entries if entry.identity != applier.identity]
    applier.fields = field_set(trackable(applied, ignored), lookup)

    merged = _merge_values(_copy(live or {}), applied, (), lookup)
    if previous is not None:
        kept = applier.fields.union(*(entry.fields for entry in others))
        _prune(merged, previous.fields - applier.fields, kept)

    after = trackable(merged, ignored)
    before = trackable(live, ignored) if live is not None else creation_baseline(after)
    comparison = compare(before, after, lookup)
    _settle_conflicts(others, comparison.changed, force)
    for entry in others:
        entry.fields -= comparison.changed | comparison.removed
    if previous is not None and comparison.is_same():
        applier.time = previous.time  # a no-op apply does not touch the entry's time
    store_entries(merged, [*others, applier])
    return merged


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = orjson.loads(orjson.dumps(obj))
    return copied


# --- validating the applied configuration --------------------------------------------------------


def validate_applied(applied: Any, lookup: PatchMetaLookup) -> None:
    """Reject configurations kube rejects: missing identity, managedFields, unkeyable list items."""
    if not isinstance(applied, dict):
        raise bad_request("the apply configuration must be an object")
    for name in ("apiVersion", "kind"):
        if not isinstance(applied.get(name), str) or not applied[name]:
            raise bad_request(f"Object '{_title(name)}' is missing in the apply configuration")
    metadata = applied.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise bad_request("metadata.name: Required value: name is required in the apply configuration")
    if metadata.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    _check_lists(applied, (), lookup)


def _title(name: str) -> str:
    return "Kind" if name == "kind" else name


def _check_lists(value: Any, path: Path, lookup: PatchMetaLookup) -> None:
    if isinstance(value, dict):
        for name, child in value.items():
            _check_lists(child, (*path, field_element(name)), lookup)
    elif isinstance(value, list):
        _check_list_items(value, path, lookup)


def _check_list_items(items: list[Any], path: Path, lookup: PatchMetaLookup) -> None:
    strategy, merge_key = lookup(field_names(path))
    if merge_key:
        key_fields = tuple(name.strip() for name in merge_key.split(","))
        elements = [_required_key(item, index, key_fields, path) for index, item in enumerate(items)]
        for item in items:
            _check_lists(item, path, lookup)
    elif "merge" in (strategy or "").split(",") and all(not isinstance(i, dict | list) for i in items):
        elements = [value_element(item) for item in items]
    else:
        return
    _reject_duplicates(elements, path)


def _required_key(item: Any, index: int, key_fields: tuple[str, ...], path: Path) -> str:
    element = key_element(item, key_fields)
    if element is None:
        missing = ", ".join(f'"{name}"' for name in key_fields)
        raise bad_request(
            f"{path_string(path)}: element {index}: associative list with keys has an element "
            f"that omits key field {missing} (and doesn't have default value)"
        )
    return element


def _reject_duplicates(elements: list[str], path: Path) -> None:
    seen: set[str] = set()
    for element in elements:
        if element in seen:
            raise bad_request(f"{path_string(path)}: duplicate entries for key {path_string((element,))}")
        seen.add(element)


# --- merging -------------------------------------------------------------------------------------


def _merge_values(live: Any, applied: Any, path: Path, lookup: PatchMetaLookup) -> Any:
    if isinstance(live, dict) and isinstance(applied, dict):
        return _merge_maps(live, applied, path, lookup)
    if isinstance(live, list) and isinstance(applied, list):
        shape = list_shape(path, lookup, live + applied)
        if shape.kind != ATOMIC:
            return _merge_items(live, applied, shape, path, lookup)
    return _copy_value(applied)


def _copy_value(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value)) if isinstance(value, dict | list) else value


def _merge_maps(live: dict[str, Any], applied: dict[str, Any], path: Path, lookup: PatchMetaLookup) -> dict[str, Any]:
    merged = dict(live)
    for name, value in applied.items():
        if value is None:
            # An explicit null asks for the field to be unset; the applier still owns it.
            merged.pop(name, None)
        elif name in live:
            merged[name] = _merge_values(live[name], value, (*path, field_element(name)), lookup)
        else:
            merged[name] = _copy_value(value)
    return merged


def _merge_items(
    live: list[Any], applied: list[Any], shape: ListShape, path: Path, lookup: PatchMetaLookup
) -> list[Any]:
    """Live items keep their place (updated when applied again); newly applied items follow in order."""
    applied_items = index_items(applied, shape)
    live_items = index_items(live, shape)
    merged: list[Any] = []
    for element, item in live_items.items():
        if element in applied_items and shape.kind == ASSOCIATIVE:
            merged.append(_merge_maps(item, applied_items[element], (*path, element), lookup))
        else:
            merged.append(item)
    merged.extend(_copy_value(item) for element, item in applied_items.items() if element not in live_items)
    return merged


# --- removing what the applier gave up -----------------------------------------------------------


def _prune(obj: dict[str, Any], given_up: FieldSet, kept: FieldSet) -> None:
    """Remove fields the applier no longer sets, unless they (or fields inside them) stay owned."""
    protected = _with_ancestors(kept)
    for path in sorted(given_up, key=len):
        if path not in protected and not _names_kept_item(path, protected):
            _remove(obj, path, protected)


def _names_kept_item(path: Path, protected: FieldSet) -> bool:
    """Whether `path` is a key field of a list item that stays: an item never loses its key."""
    if len(path) < 2 or not path[-2].startswith("k:") or path[:-1] not in protected:
        return False
    return path[-1][2:] in orjson.loads(path[-2][2:])


def _with_ancestors(paths: FieldSet) -> FieldSet:
    out: FieldSet = set()
    for path in paths:
        out.update(path[:depth] for depth in range(1, len(path) + 1))
    return out


def _remove(obj: dict[str, Any], path: Path, protected: FieldSet) -> None:
    """Remove the field at `path`, then any map or list this left empty that nobody owns."""
    trail: list[tuple[Any, str]] = []
    node: Any = obj
    for element in path:
        trail.append((node, element))
        node = _child(node, element)
        if node is _MISSING:
            return
    for depth in range(len(trail) - 1, -1, -1):
        container, element = trail[depth]
        _delete_child(container, element)
        if depth == 0 or container or path[:depth] in protected:
            return


_MISSING = object()


def _child(node: Any, element: str) -> Any:
    if element.startswith("f:"):
        return node.get(element[2:], _MISSING) if isinstance(node, dict) else _MISSING
    if not isinstance(node, list):
        return _MISSING
    index = find_item(node, element)
    return _MISSING if index is None else node[index]


def _delete_child(container: Any, element: str) -> None:
    if isinstance(container, dict):
        container.pop(element[2:], None)
        return
    index = find_item(container, element)
    if index is not None:
        del container[index]


# --- conflicts -----------------------------------------------------------------------------------


def _settle_conflicts(others: list[ManagerEntry], changed: FieldSet, force: bool) -> None:
    conflicts = [(entry, path) for entry in others for path in entry.fields & changed]
    if conflicts and not force:
        raise conflict_error(conflicts)


def describe_manager(entry: ManagerEntry) -> str:
    """A manager as kube names it in conflicts: `"kubectl" with subresource "status" using apps/v1`."""
    described = orjson.dumps(entry.manager).decode()
    if entry.subresource:
        described += f" with subresource {orjson.dumps(entry.subresource).decode()}"
    if entry.operation == UPDATE:
        described += f" using {entry.api_version}"
    return described


def conflict_error(conflicts: list[tuple[ManagerEntry, Path]]) -> ApiError:
    """The 409 kube answers a conflicting apply with, in its message format."""
    ordered = sorted(conflicts, key=lambda c: (c[0].identity, path_sort_key(c[1])))
    causes = [
        Cause("FieldManagerConflict", f"conflict with {describe_manager(entry)}", path_string(path))
        for entry, path in ordered
    ]
    return ApiError(409, "Conflict", _conflict_message(ordered), causes=causes)


def _conflict_message(ordered: list[tuple[ManagerEntry, Path]]) -> str:
    if len(ordered) == 1:
        entry, path = ordered[0]
        return f"Apply failed with 1 conflict: conflict with {describe_manager(entry)}: {path_string(path)}"
    lines: list[str] = []
    last_identity: tuple[str, str, str, str] | None = None
    for entry, path in ordered:
        if entry.identity != last_identity:
            lines.append(f"conflicts with {describe_manager(entry)}:")
            last_identity = entry.identity
        lines.append(f"- {path_string(path)}")
    return f"Apply failed with {len(ordered)} conflicts: " + "\n".join(lines)
