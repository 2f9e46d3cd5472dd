"""The three PATCH formats of the Kubernetes API, as pure functions over JSON-shaped documents.

- JSON patch (RFC 6902, `application/json-patch+json`), applied with the `jsonpatch` library;
- JSON merge patch (RFC 7386, `application/merge-patch+json`), used by `kubectl label/annotate/scale`;
- strategic merge patch (`application/strategic-merge-patch+json`), used by `kubectl apply` and
  `kubectl set image`: a merge patch that knows, per field, whether a list merges element-wise by a
  key (containers by `name`, ports by `containerPort`) and that understands the `$patch`,
  `$retainKeys`, `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>` directives.

None of them mutates its inputs. Each returns a document that shares nothing with its inputs, so the
caller may change the result freely (the API server stamps metadata onto it); that costs one copy of
the document per patch, made with orjson, which is far cheaper than `copy.deepcopy`.

Errors follow kube-apiserver: a body of the wrong shape is 400 BadRequest; a JSON patch that cannot be
applied (a failed `test`, a missing path) is 422 Invalid with kube's generic message and the detail as
a cause.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonpatch
import jsonpointer
import orjson

from skiff.api.errors import ApiError, Cause, bad_request, internal, too_large
from skiff.api.patchmeta import FieldPath, PatchMetaLookup

# kube-apiserver refuses longer JSON patches with 413.
MAX_JSON_PATCH_OPERATIONS = 10000

_JSON_PATCH_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})

_PATCH = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ELEMENT_ORDER = "$setElementOrder"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"

_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
_BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"

_ABSENT: Any = object()


def _json_copy(value: Any) -> Any:
    """An independent copy of a JSON-shaped value."""
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:  # orjson cannot encode it (e.g. an integer beyond 64 bits): copy the slow way
        return copy.deepcopy(value)


def _show(value: Any) -> str:
    """Compact JSON for error messages."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def _rejected(detail: str) -> ApiError:
    """kube-apiserver's answer to a patch it understood but could not apply: 422, detail as a cause."""
    return ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        causes=[Cause("UnexpectedServerResponse", detail)],
    )


# ---------------------------------------------------------------------------------------------------
# JSON patch (RFC 6902)
# ---------------------------------------------------------------------------------------------------


def apply_json_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """Apply an RFC 6902 operation list to `doc` and return the patched copy.

    400 when `ops` is not a JSON array of objects, 413 beyond 10000 operations, 422 when an operation
    cannot be applied (unknown op, failed `test`, missing path) or the result is not an object.
    """
    operations = _checked_operations(ops)
    result: Any = _json_copy(doc)
    for operation in operations:
        result = _apply_operation(result, operation)
    if not isinstance(result, dict):
        raise _rejected("the patched document is not a JSON object")
    return result


def _checked_operations(ops: Any) -> list[dict[str, Any]]:
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise bad_request("a JSON patch must be a JSON array of operation objects")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise too_large(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}"
        )
    for op in ops:
        kind = op.get("op")
        if kind not in _JSON_PATCH_OPS:
            raise _rejected(f"Unexpected kind: {kind}")
        if not isinstance(op.get("path"), str):
            raise _rejected(f"{kind} operation is missing its path")
        if kind in ("move", "copy") and not isinstance(op.get("from"), str):
            raise _rejected(f"{kind} operation is missing its from path")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise _rejected(f"{kind} operation is missing its value")
    # Values in the operations are copied so that the result never aliases the request body.
    return _json_copy(ops)


def _apply_operation(doc: Any, operation: dict[str, Any]) -> Any:
    kind, path = operation["op"], operation["path"]
    try:
        return jsonpatch.apply_patch(doc, [operation], in_place=True)
    except jsonpatch.JsonPatchTestFailed:
        raise _rejected(f"testing value {path} failed: test failed") from None
    except (
        jsonpatch.JsonPatchException,
        jsonpointer.JsonPointerException,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
    ):
        # The library's own messages may quote the whole document (Secrets included); say less.
        where = f'"{operation["from"]}" or "{path}"' if kind in ("move", "copy") else f'"{path}"'
        raise _rejected(f"{kind} operation does not apply: doc is missing path: {where}") from None


# ---------------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386)
# ---------------------------------------------------------------------------------------------------


def merge_patch_value(target: Any, patch: Any) -> Any:
    """RFC 7386 on any JSON value: objects merge recursively, null deletes, anything else replaces.

    Neither argument is mutated.
    """
    if not isinstance(patch, dict):
        return _json_copy(patch)
    base = _json_copy(target) if isinstance(target, dict) else {}
    return _merge_into(base, _json_copy(patch))


def _merge_into(target: Any, patch: Any) -> Any:
    # Both arguments are private copies here, so merging in place is safe.
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_into(target.get(key), value)
    return target


def apply_merge_patch(doc: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 7386 merge patch to an API object; 400 unless the patch is a JSON object.

    (A non-object patch would, per the RFC, replace the whole object with something that is not one.)
    """
    if not isinstance(patch, dict):
        raise bad_request(f"a merge patch for an object must be a JSON object, not {_json_type(patch)}")
    return merge_patch_value(doc, patch)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else type(value).__name__


# ---------------------------------------------------------------------------------------------------
# Strategic merge patch
# ---------------------------------------------------------------------------------------------------


def apply_strategic_merge_patch(doc: dict[str, Any], patch: dict[str, Any], lookup: PatchMetaLookup) -> dict[str, Any]:
    """Apply a strategic merge patch the way kube-apiserver does.

    `lookup(path)` gives the patch strategy and merge key of the field at `path` (list items add no
    path element). Maps merge recursively and null deletes a key; lists whose strategy is "merge"
    merge element-wise by their merge key (or, for primitives, as a union); other lists replace.
    Directives are obeyed and never appear in the result. Malformed directives or elements are 400
    (422 for lists of lists, as kube answers).
    """
    if not isinstance(patch, dict):
        raise bad_request(f"a strategic merge patch must be a JSON object, not {_json_type(patch)}")
    merger = _StrategicMerger(lookup)
    return merger.merge_map(_json_copy(doc), _json_copy(patch), ())


def _identity(value: Any) -> Any:
    """A hashable stand-in for a JSON value with JSON equality (true is not 1; 1 and 1.0 are equal)."""
    if isinstance(value, dict | list):
        return ("json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    return (isinstance(value, bool), value)


def _directive_field(key: str, prefix: str, complaint: str) -> str:
    """The field a `<prefix>/<field>` directive key names."""
    head, slash, name = key.partition("/")
    if head != prefix or not slash:
        raise bad_request(complaint)
    return name


def _element_kind(*lists: list[Any]) -> str:
    """'map' or 'scalar' for the elements of merging lists, which must all be of one JSON type."""
    kinds = set()
    for items in lists:
        for item in items:
            if isinstance(item, list):
                raise _rejected("lists of lists are not supported")
            kinds.add(_kind_of(item))
    if len(kinds) > 1:
        raise bad_request(f"list element types are not identical: {_show(list(lists))}")
    return "map" if kinds == {"map"} else "scalar"


def _kind_of(item: Any) -> str:
    if isinstance(item, dict):
        return "map"
    if isinstance(item, bool) or item is None or isinstance(item, str):
        return type(item).__name__
    return "number"


def _interleave(
    server_only: list[Any], from_patch: list[Any], server_order: list[Any], key: Callable[[Any], Any]
) -> list[Any]:
    """Merge two ordered lists, keeping each one's order, as kube places patched list elements.

    A server-only element goes first only when both it and the next patch element were in the live
    list and it came earlier there; so elements new to the list land right after the patch element
    that precedes them in the patch (or at the front).
    """
    position: dict[Any, int] = {}
    for index, item in enumerate(server_order):
        position.setdefault(key(item), index)
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) and j < len(from_patch):
        left, right = position.get(key(server_only[i])), position.get(key(from_patch[j]))
        if left is not None and right is not None and left < right:
            out.append(server_only[i])
            i += 1
        else:
            out.append(from_patch[j])
            j += 1
    out.extend(server_only[i:])
    out.extend(from_patch[j:])
    return out


def _order_like(items: list[Any], order: list[Any], server_order: list[Any], key: Callable[[Any], Any]) -> list[Any]:
    """Put `items` listed in `order` into that order, and weave the others in by their live order."""
    rank: dict[Any, int] = {}
    for index, item in enumerate(order):
        rank.setdefault(key(item), index)
    live_rank: dict[Any, int] = {}
    for index, item in enumerate(server_order):
        live_rank.setdefault(key(item), index)
    ordered = sorted((i for i in items if key(i) in rank), key=lambda i: rank[key(i)])
    others = sorted((i for i in items if key(i) not in rank), key=lambda i: live_rank.get(key(i), len(server_order)))
    return _interleave(others, ordered, server_order, key)


class _StrategicMerger:
    """One patch application. Works in place on private copies of the document and the patch."""

    def __init__(self, lookup: PatchMetaLookup) -> None:
        self.lookup = lookup

    def meta(self, path: FieldPath) -> tuple[str | None, str | None]:
        """(list/map strategy without "retainKeys", merge key) for the field at `path`."""
        strategy, merge_key = self.lookup(path)
        strategies = [s for s in (strategy or "").split(",") if s and s != "retainKeys"]
        return (strategies[0] if strategies else None), merge_key

    # -- maps -----------------------------------------------------------------------------------

    def merge_map(self, original: dict[str, Any], patch: dict[str, Any], path: FieldPath) -> dict[str, Any]:
        directive = patch.pop(_PATCH, _ABSENT)
        if directive == "delete":
            return {}
        if directive == "replace":
            return self.merge_map({}, patch, path)
        if directive is not _ABSENT and directive != "merge":
            patch[_PATCH] = directive
            raise bad_request(f"unknown patch type: {_show(directive)} in map: {_show(patch)}")
        self.apply_retain_keys(original, patch)
        self.apply_element_orders(original, patch, path)
        deletions = []
        for key, value in patch.items():
            if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
                deletions.append((key, value))
            elif value is None:
                original.pop(key, None)
            else:
                original[key] = self.merge_value(original.get(key, _ABSENT), value, (*path, key))
        # Deletions run last so that an element both added and deleted by one patch ends up deleted.
        for key, value in deletions:
            self.delete_from_primitive_list(original, key, value)
        return original

    def merge_value(self, current: Any, value: Any, path: FieldPath) -> Any:
        if isinstance(value, dict):
            strategy, _ = self.meta(path)
            if strategy == "replace" or not isinstance(current, dict):
                # Merging into an empty map still obeys (and strips) any directives inside.
                return self.merge_map({}, value, path)
            return self.merge_map(current, value, path)
        if isinstance(value, list):
            strategy, merge_key = self.meta(path)
            if strategy == "merge":
                return self.merge_list(current if isinstance(current, list) else [], value, path, merge_key)
            return [self.merge_map({}, item, path) if isinstance(item, dict) else item for item in value]
        return value

    def apply_retain_keys(self, original: dict[str, Any], patch: dict[str, Any]) -> None:
        """`$retainKeys`: drop every key of `original` not listed; the patch may only set listed keys."""
        if _RETAIN_KEYS not in patch:
            return
        listed = patch.pop(_RETAIN_KEYS)
        if not isinstance(listed, list):
            raise bad_request(_BAD_RETAIN_KEYS)
        keep = {key for key in listed if isinstance(key, str)}
        for key, value in patch.items():
            is_directive = key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER))
            if value is not None and not is_directive and key not in keep:
                raise bad_request(_BAD_RETAIN_KEYS)
        for key in [k for k in original if k not in keep]:
            del original[key]

    def delete_from_primitive_list(self, original: dict[str, Any], directive_key: str, values: Any) -> None:
        """`$deleteFromPrimitiveList/<field>`: remove every occurrence of the listed values."""
        field = _directive_field(directive_key, _DELETE_FROM_PRIMITIVE_LIST, _BAD_PRIMITIVE_LIST)
        if not isinstance(values, list):
            raise bad_request(_BAD_PRIMITIVE_LIST)
        current = original.get(field)
        if not isinstance(current, list):
            return  # nothing to delete from; the list is not created
        doomed = {_identity(v) for v in values}
        original[field] = [item for item in current if _identity(item) not in doomed]

    # -- $setElementOrder -------------------------------------------------------------------------

    def apply_element_orders(self, original: dict[str, Any], patch: dict[str, Any], path: FieldPath) -> None:
        """Merge each list that has a `$setElementOrder/<field>` and put it in the order given.

        The precedence is kube's: the directive's order, then the patch's order, then the live order.
        """
        for directive_key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
            order = patch.pop(directive_key)
            field = _directive_field(directive_key, _SET_ELEMENT_ORDER, _BAD_SET_ELEMENT_ORDER)
            if not isinstance(order, list):
                raise bad_request(_BAD_SET_ELEMENT_ORDER)
            if patch.get(field, _ABSENT) is None:
                continue  # the patch deletes the list; there is nothing to order
            self.merge_in_order(original, patch, field, order, (*path, field))

    def merge_in_order(
        self, original: dict[str, Any], patch: dict[str, Any], field: str, order: list[Any], path: FieldPath
    ) -> None:
        live = original.get(field, _ABSENT)
        patched = patch.pop(field, _ABSENT)
        if live is _ABSENT and patched is _ABSENT:
            return
        strategy, merge_key = self.meta(path)
        reorder = strategy == "merge"
        key = _element_key(merge_key, [live, patched, order])
        if reorder and isinstance(patched, list):
            _check_patch_follows_order(patched, order, key)
        merged = live if patched is _ABSENT else self.merge_value(live, patched, path)
        if reorder and isinstance(merged, list):
            merged = _order_like(merged, order, live if isinstance(live, list) else [], key)
        original[field] = merged

    # -- lists ------------------------------------------------------------------------------------

    def merge_list(self, live: list[Any], patch: list[Any], path: FieldPath, merge_key: str | None) -> list[Any]:
        if not live and not patch:
            return live
        if _element_kind(live, patch) == "scalar":
            return _union_scalars(live, patch)
        if not merge_key:
            raise internal(f"cannot merge lists without merge key for {'.'.join(path)}")
        live, plain, replace = _apply_list_directives(live, patch, merge_key)
        if replace:
            return [self.merge_map({}, item, path) for item in plain]
        for item in live:
            _require_merge_key(item, merge_key)
        merged = self.merge_by_key(live, plain, merge_key, path)
        key = _element_key(merge_key, [merged])
        patch_rank: dict[Any, int] = {}
        for index, item in enumerate(plain):
            patch_rank.setdefault(key(item), index)
        from_patch = sorted((m for m in merged if key(m) in patch_rank), key=lambda m: patch_rank[key(m)])
        server_only = [m for m in merged if key(m) not in patch_rank]
        return _interleave(server_only, from_patch, live, key)

    def merge_by_key(
        self, live: list[dict[str, Any]], plain: list[dict[str, Any]], merge_key: str, path: FieldPath
    ) -> list[dict[str, Any]]:
        """Merge each patch element into the live element with the same key, or append it."""
        merged = list(live)
        position: dict[Any, int] = {}
        for index, item in enumerate(merged):
            position.setdefault(_identity(item[merge_key]), index)
        for item in plain:
            _require_merge_key(item, merge_key)
            identity = _identity(item[merge_key])
            if identity in position:
                merged[position[identity]] = self.merge_map(merged[position[identity]], item, path)
            else:
                position[identity] = len(merged)
                merged.append(self.merge_map({}, item, path))
        return merged


def _element_key(merge_key: str | None, samples: list[Any]) -> Callable[[Any], Any]:
    """How elements of a merging list are told apart: by merge key for maps, by value for primitives."""
    lists = [sample for sample in samples if isinstance(sample, list)]
    if not merge_key or not any(isinstance(item, dict) for items in lists for item in items):
        return _identity

    def by_merge_key(item: Any) -> Any:
        _require_merge_key(item, merge_key)
        return _identity(item[merge_key])

    return by_merge_key


def _require_merge_key(item: Any, merge_key: str) -> None:
    if not isinstance(item, dict):
        raise bad_request(f"expected a map in a list merged by {merge_key}, but received {_show(item)}")
    if merge_key not in item:
        raise bad_request(f"map: {_show(item)} does not contain declared merge key: {merge_key}")


def _apply_list_directives(
    live: list[dict[str, Any]], patch: list[dict[str, Any]], merge_key: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """Handle `$patch` elements of a merging list of maps.

    Returns the live list minus deleted elements, the patch's ordinary elements, and whether a
    `$patch: replace` element asked for the ordinary elements to replace the list outright.
    """
    plain: list[dict[str, Any]] = []
    replace = False
    for item in patch:
        directive = item.get(_PATCH, _ABSENT)
        if directive is _ABSENT:
            plain.append(item)
        elif directive == "delete":
            _require_merge_key(item, merge_key)
            doomed = _identity(item[merge_key])
            live = [e for e in live if merge_key not in e or _identity(e[merge_key]) != doomed]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            del item[_PATCH]  # an explicit request for what happens anyway
            plain.append(item)
        else:
            raise bad_request(f"unknown patch type: {_show(directive)} in map: {_show(item)}")
    return live, plain, replace


def _union_scalars(live: list[Any], patch: list[Any]) -> list[Any]:
    """A merging list of primitives: live values not in the patch, then patch values, deduplicated."""
    patch_values = _dedupe(patch)
    in_patch = {_identity(v) for v in patch_values}
    server_only = _dedupe([v for v in live if _identity(v) not in in_patch])
    return _interleave(server_only, patch_values, live, _identity)


def _dedupe(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for value in values:
        identity = _identity(value)
        if identity not in seen:
            seen.add(identity)
            out.append(value)
    return out


def _check_patch_follows_order(patched: list[Any], order: list[Any], key: Callable[[Any], Any]) -> None:
    """Every ordinary patch element must appear in the `$setElementOrder` list, in the same order."""
    elements = [item for item in patched if not (isinstance(item, dict) and _PATCH in item)]
    if not elements or not order:
        return
    pending = iter(key(item) for item in order)
    for element in elements:
        wanted = key(element)
        if not any(candidate == wanted for candidate in pending):
            raise bad_request(
                f"the order in patch list {_show(patched)} doesn't match $setElementOrder list {_show(order)}"
            )
