"""The set of known definitions: the built-in ones from definitions.json plus registered ones.

Definitions use bare definition names in `$ref` (e.g. "io.k8s.api.core.v1.PodSpec"); the OpenAPI
documents rewrite them into `#/definitions/...` or `#/components/schemas/...`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

GVK = tuple[str, str, str]
Schema = dict[str, Any]

_DATA_FILE = Path(__file__).with_name("definitions.json")


class DefinitionStore:
    """Definitions by name, the kind -> definition index, and a generation that changes on every edit."""

    def __init__(self, builtin: Mapping[str, Schema]) -> None:
        self._lock = threading.Lock()
        self._definitions: dict[str, Schema] = dict(builtin)
        self._by_kind: dict[GVK, str] = {}
        self._listeners: list[Callable[[], None]] = []
        self.generation = 0
        self._index(self._definitions)

    def _index(self, definitions: Mapping[str, Schema]) -> None:
        for name, schema in definitions.items():
            for gvk in schema.get("x-kubernetes-group-version-kind", ()):
                self._by_kind[(gvk["group"], gvk["version"], gvk["kind"])] = name

    def definitions(self) -> Mapping[str, Schema]:
        return self._definitions

    def get(self, name: str) -> Schema | None:
        return self._definitions.get(name)

    def name_for(self, group: str, version: str, kind: str) -> str | None:
        return self._by_kind.get((group, version, kind))

    def register(self, definitions: Mapping[str, Schema]) -> None:
        """Add or replace definitions; those carrying x-kubernetes-group-version-kind become kinds."""
        with self._lock:
            self._definitions = {**self._definitions, **definitions}
            self._index(definitions)
            self._changed()

    def unregister_kind(self, group: str, version: str, kind: str) -> None:
        """Forget a kind (e.g. when its custom resource definition is deleted)."""
        with self._lock:
            name = self._by_kind.pop((group, version, kind), None)
            if name is None:
                return
            if name not in self._by_kind.values():
                self._definitions = {k: v for k, v in self._definitions.items() if k != name}
            self._changed()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call listener after every change, so caches derived from the definitions can be dropped."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        self.generation += 1
        for listener in self._listeners:
            listener()


def load_builtin() -> dict[str, Schema]:
    return orjson.loads(_DATA_FILE.read_bytes())


STORE = DefinitionStore(load_builtin())
