"""The strategy of one served version of a custom resource: its schema, subresources and columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from apiserver.crd import jsonpath, structural
from apiserver.registry.base import NAME_COLUMN, Column, Strategy
from skiff.api.errors import ApiError, Cause
from skiff.api.kinds import ResourceType
from skiff.api.timefmt import age

Obj = dict[str, Any]

AGE_PRINTER_COLUMN: Obj = {
    "name": "Age",
    "type": "date",
    "jsonPath": ".metadata.creationTimestamp",
    "description": "Time since the object was created.",
}


@dataclass
class DefinitionState:
    """What every version of one CRD shares at run time: whether it is being deleted."""

    terminating: bool = False


@dataclass
class PrinterColumn:
    column: Column
    steps: list[tuple[str, Any]]
    type: str


@dataclass(eq=False)
class CustomResourceStrategy(Strategy):
    resource: ResourceType
    schema: Obj
    status: bool = False
    scale: Obj | None = None
    printer_columns: list[Obj] = field(default_factory=list)
    definition: DefinitionState = field(default_factory=DefinitionState)
    # Whether objects written through another version exist (then reads rewrite apiVersion).
    multi_version: bool = False

    strategic_merge_patch = False

    def __post_init__(self) -> None:
        self.status_subresource = self.status
        self._defaults = structural.has_defaults(self.schema)
        self.transforms_reads = self._defaults or self.multi_version
        if self.scale is not None:
            self.scale_paths = (
                self.scale.get("specReplicasPath") or ".spec.replicas",
                self.scale.get("statusReplicasPath") or ".status.replicas",
                self.scale.get("labelSelectorPath") or "",
            )
        columns = self.printer_columns or [AGE_PRINTER_COLUMN]
        self._columns = [
            PrinterColumn(
                Column(
                    c["name"],
                    c.get("type", "string"),
                    c.get("format", ""),
                    c.get("description", ""),
                    int(c.get("priority", 0) or 0),
                ),
                jsonpath.parse(c["jsonPath"]),
                c.get("type", "string"),
            )
            for c in columns
        ]

    # -- writes --------------------------------------------------------------------------------------
    def prepare_for_create(self, obj: Obj) -> None:
        if self.definition.terminating:
            raise ApiError(
                405, "MethodNotAllowed", "create not allowed while custom resource definition is terminating"
            )
        super().prepare_for_create(obj)

    def prune_unknown_fields(self, obj: Obj, mistyped: list[tuple[str, Any, str]] | None = None) -> list[str]:
        return structural.prune(self.schema, obj)

    def default(self, obj: Obj) -> None:
        if self._defaults:
            structural.apply_defaults(self.schema, obj)

    def validate(self, obj: Obj) -> list[Cause]:
        return structural.validate(self.schema, obj)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        ignored = ("metadata", "apiVersion", "kind", "status") if self.status else ("metadata", "apiVersion", "kind")
        return {k: v for k, v in new.items() if k not in ignored} != {k: v for k, v in old.items() if k not in ignored}

    # -- reads ---------------------------------------------------------------------------------------
    def present(self, obj: Obj) -> Obj:
        """The object as this version serves it: its apiVersion, with the schema's defaults."""
        obj["apiVersion"] = self.resource.api_version
        if self._defaults:
            structural.apply_defaults(self.schema, obj)
        return obj

    def table_columns(self) -> list[Column]:
        return [NAME_COLUMN, *(c.column for c in self._columns)]

    def table_row(self, obj: Obj) -> list[Any]:
        cells: list[Any] = [obj.get("metadata", {}).get("name", "")]
        for column in self._columns:
            cells.append(_cell(column.type, jsonpath.find(column.steps, obj)))
        return cells


def _cell(column_type: str, found: list[Any]) -> Any:
    if not found:
        return None
    if len(found) > 1:
        return ",".join(v if isinstance(v, str) else orjson.dumps(v).decode() for v in found)
    value = found[0]
    if column_type == "date":
        return age(value) if isinstance(value, str) else None
    if column_type == "integer":
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if column_type == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
