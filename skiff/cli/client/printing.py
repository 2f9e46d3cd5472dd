"""Output: server-side tables (rich on a terminal, kubectl's aligned plain columns otherwise) and the
yaml, json, name and jsonpath formats."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from skiff.api.kinds import ResourceType
from skiff.cli.client.errors import CommandError
from skiff.cli.client.jsonpath import JsonPathError, render
from skiff.cli.client.resolve import qualified_kind

COLUMN_GAP = 3
OUTPUT_FORMATS = ("wide", "yaml", "json", "name", "jsonpath=...")


def is_tty() -> bool:
    return sys.stdout.isatty()


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def check_output_format(output: str | None) -> None:
    if output and output not in ("wide", "yaml", "json", "name") and not output.startswith("jsonpath="):
        allowed = ", ".join(OUTPUT_FORMATS)
        raise CommandError(f'unable to match a printer suitable for the output format "{output}", allowed: {allowed}')


def cell_text(value: Any) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(cell_text(v) for v in value)
    return str(value)


def labels_text(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def aligned(rows: Sequence[Sequence[str]], widths: Sequence[int] | None = None) -> list[str]:
    """Rows as kubectl's tabwriter prints them: left-aligned, three spaces apart, no trailing blanks."""
    widths = widths or column_widths(rows)
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append((" " * COLUMN_GAP).join(cells).rstrip())
    return lines


def column_widths(rows: Sequence[Sequence[str]]) -> list[int]:
    count = max((len(r) for r in rows), default=0)
    return [max((len(r[i]) for r in rows if i < len(r)), default=0) for i in range(count)]


def print_rows(
    header: Sequence[str], rows: Sequence[Sequence[str]], no_headers: bool = False, plain: bool = False
) -> None:
    """A static table: rich on a terminal, aligned plain text otherwise (or when `plain`)."""
    if is_tty() and not plain:
        _print_rich(header, rows, no_headers)
        return
    for line in aligned(list(rows) if no_headers else [header, *rows]):
        print(line)


def _print_rich(header: Sequence[str], rows: Sequence[Sequence[str]], no_headers: bool) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_header=not no_headers, header_style="bold cyan", pad_edge=False)
    for name in header:
        table.add_column(Text(name), no_wrap=True)
    for row in rows:
        # Cells are data, never markup: `[dev system:authenticated]` must print as it is.
        table.add_row(*(Text(cell) for cell in row))
    console().print(table)


@dataclass
class TablePrinter:
    """Prints `meta.k8s.io/v1` Tables the way `kubectl get` does; keeps its columns across watch events."""

    wide: bool = False
    with_namespace: bool = False
    show_labels: bool = False
    no_headers: bool = False
    # Plain columns even on a terminal, so that rows printed later (a watch) line up with the first ones.
    plain: bool = False
    widths: list[int] = field(default_factory=list)

    def _columns(self, table: dict[str, Any]) -> list[int]:
        definitions = table.get("columnDefinitions") or []
        return [i for i, d in enumerate(definitions) if self.wide or int(d.get("priority") or 0) == 0]

    def header(self, table: dict[str, Any]) -> list[str]:
        definitions = table.get("columnDefinitions") or []
        names = [definitions[i]["name"].upper() for i in self._columns(table)]
        return (["NAMESPACE"] if self.with_namespace else []) + names + (["LABELS"] if self.show_labels else [])

    def rows(self, table: dict[str, Any]) -> list[list[str]]:
        columns = self._columns(table)
        out = []
        for row in table.get("rows") or []:
            cells = row.get("cells") or []
            metadata = (row.get("object") or {}).get("metadata") or {}
            line = [cell_text(cells[i]) if i < len(cells) else "" for i in columns]
            if self.with_namespace:
                line.insert(0, metadata.get("namespace") or "")
            if self.show_labels:
                line.append(labels_text(metadata.get("labels")))
            out.append(line)
        return out

    def print(self, table: dict[str, Any]) -> None:
        header, rows = self.header(table), self.rows(table)
        self.widths = column_widths([header, *rows])
        print_rows(header, rows, self.no_headers, self.plain)

    def print_more(self, table: dict[str, Any]) -> None:
        """Rows that arrive later (a watch): aligned to the first table's columns, no header again."""
        header, rows = self.header(table), self.rows(table)
        if not self.widths:
            self.widths = column_widths([header, *rows])
            if not self.no_headers:
                rows = [header, *rows]
        # A wider cell widens its column from here on; what is printed already stays as it is.
        self.widths = [max(pair) for pair in zip(self.widths, column_widths(rows), strict=False)]
        for line in aligned(rows, self.widths):
            print(line, flush=True)


def with_type(obj: dict[str, Any], resource: ResourceType) -> dict[str, Any]:
    """List items carry no apiVersion or kind; printed objects always do, with apiVersion and kind first."""
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": resource.api_version, "kind": resource.kind, **rest}


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def object_name(resource: ResourceType, name: str) -> str:
    return f"{qualified_kind(resource)}/{name}"


def dump(document: Any, output: str) -> str:
    if output == "json":
        return json.dumps(document, indent=4, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False, allow_unicode=True)


def print_document(document: Any, output: str) -> None:
    """yaml or json, highlighted on a terminal."""
    text = dump(document, output)
    if is_tty():
        from rich.syntax import Syntax

        console().print(Syntax(text.rstrip("\n"), "json" if output == "json" else "yaml", background_color="default"))
    else:
        sys.stdout.write(text)


def print_objects(objects: Iterable[dict[str, Any]], resource: ResourceType, output: str, single: bool) -> None:
    """Full objects in one of the non-table formats."""
    items = [with_type(o, resource) for o in objects]
    if output == "name":
        for obj in items:
            print(object_name(resource, obj["metadata"]["name"]))
    elif output.startswith("jsonpath="):
        document = items[0] if single and items else as_list(items)
        try:
            sys.stdout.write(render(document, output.partition("=")[2]))
        except JsonPathError as error:
            raise CommandError(str(error)) from error
    elif single and len(items) == 1:
        print_document(items[0], output)
    else:
        print_document(as_list(items), output)
