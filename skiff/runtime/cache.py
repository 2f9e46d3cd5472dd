"""The informer's local copy of the cluster: objects by key, with secondary indexes.

Keys are client-go's `namespace/name` (just `name` for cluster-scoped objects). Every cache has the
`namespace` index; callers add their own with `add_indexer`, e.g. pods by `spec.nodeName` or
ReplicaSets by owner uid, so a controller finds related objects without scanning the whole cache.

Objects are shared with every handler and controller that reads the cache: treat them as read-only
and copy before changing one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

KubeObject = dict[str, Any]
# Maps an object to the index values it is filed under (none, one or several).
IndexFunc = Callable[[KubeObject], Iterable[str]]

NAMESPACE_INDEX = "namespace"


@dataclass(frozen=True)
class DeletedFinalStateUnknown:
    """Handed to `on_delete` when an object vanished while the informer was not watching: the informer
    saw no DELETED event, so `obj` is the last state it knew, which may be stale."""

    key: str
    obj: KubeObject


def final_state(deleted: KubeObject | DeletedFinalStateUnknown) -> KubeObject:
    """The object a delete notification is about, tombstone or not."""
    return deleted.obj if isinstance(deleted, DeletedFinalStateUnknown) else deleted


def object_key(obj: KubeObject) -> str:
    metadata = obj.get("metadata") or {}
    namespace, name = metadata.get("namespace") or "", metadata.get("name") or ""
    return f"{namespace}/{name}" if namespace else name


def make_key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str, str]:
    """(namespace, name); the namespace is "" for a cluster-scoped key."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


def resource_version(obj: KubeObject) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


# ---------------------------------------------------------------------------------------------------
# Index functions


def index_by_namespace(obj: KubeObject) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def index_by_owner_uid(obj: KubeObject) -> list[str]:
    """Every owner's uid, so "what does this object own" is one lookup."""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [owner["uid"] for owner in owners if owner.get("uid")]


def index_by_controller_uid(obj: KubeObject) -> list[str]:
    """Only the managing controller's uid (the owner with `controller: true`)."""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [owner["uid"] for owner in owners if owner.get("controller") and owner.get("uid")]


def index_by_field(path: str) -> IndexFunc:
    """Index by a dotted scalar field such as `spec.nodeName`; objects without it are not indexed."""
    steps = path.split(".")

    def index(obj: KubeObject) -> list[str]:
        value: Any = obj
        for step in steps:
            if not isinstance(value, dict) or step not in value:
                return []
            value = value[step]
        return [] if value is None or isinstance(value, dict | list) else [str(value)]

    return index


def index_by_label(label: str) -> IndexFunc:
    """Index by one label's value; objects without the label are not indexed."""

    def index(obj: KubeObject) -> list[str]:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return [str(labels[label])] if label in labels else []

    return index


# ---------------------------------------------------------------------------------------------------
# The store


class Cache:
    """Objects by key plus named indexes, kept consistent on every write."""

    def __init__(self) -> None:
        self._objects: dict[str, KubeObject] = {}
        self._indexers: dict[str, IndexFunc] = {}
        # index name -> index value -> keys filed under it
        self._indices: dict[str, dict[str, set[str]]] = {}
        self.add_indexer(NAMESPACE_INDEX, index_by_namespace)

    def add_indexer(self, name: str, index: IndexFunc) -> None:
        """Register an index; objects already cached are filed at once."""
        if name in self._indexers:
            raise ValueError(f"an index named {name!r} already exists")
        self._indexers[name] = index
        self._indices[name] = {}
        for key, obj in self._objects.items():
            self._file(name, key, obj)

    def has_indexer(self, name: str) -> bool:
        return name in self._indexers

    # Reads

    def get(self, namespace: str | None, name: str) -> KubeObject | None:
        return self._objects.get(make_key(namespace, name))

    def get_by_key(self, key: str) -> KubeObject | None:
        return self._objects.get(key)

    def list(self, namespace: str | None = None) -> list[KubeObject]:
        """Every object, or those of one namespace."""
        if namespace is None:
            return list(self._objects.values())
        return self.by_index(NAMESPACE_INDEX, namespace)

    def list_keys(self) -> list[str]:
        return list(self._objects)

    def by_index(self, index_name: str, value: str) -> list[KubeObject]:
        return [self._objects[key] for key in self.index_keys(index_name, value)]

    def index_keys(self, index_name: str, value: str) -> list[str]:
        if index_name not in self._indices:
            raise KeyError(f"no index named {index_name!r}")
        return sorted(self._indices[index_name].get(value, ()))

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def __iter__(self) -> Iterator[KubeObject]:
        return iter(list(self._objects.values()))

    # Writes (the informer's alone)

    def put(self, obj: KubeObject) -> KubeObject | None:
        """Store `obj`; returns what it replaced."""
        key = object_key(obj)
        old = self._objects.get(key)
        if old is not None:
            self._unfile_all(key, old)
        self._objects[key] = obj
        for name in self._indexers:
            self._file(name, key, obj)
        return old

    def remove(self, key: str) -> KubeObject | None:
        old = self._objects.pop(key, None)
        if old is not None:
            self._unfile_all(key, old)
        return old

    def _file(self, index_name: str, key: str, obj: KubeObject) -> None:
        index = self._indices[index_name]
        for value in self._indexers[index_name](obj):
            index.setdefault(value, set()).add(key)

    def _unfile_all(self, key: str, obj: KubeObject) -> None:
        for name, index_func in self._indexers.items():
            index = self._indices[name]
            for value in index_func(obj):
                keys = index.get(value)
                if keys is None:
                    continue
                keys.discard(key)
                if not keys:
                    del index[value]
