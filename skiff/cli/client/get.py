"""`skiff get`: server-side tables as kubectl prints them, the other output formats, and `-w`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.kinds import ResourceType
from skiff.cli.client.connect import Session, command_parser, open_session
from skiff.cli.client.errors import CommandError, handles_errors, print_error
from skiff.cli.client.printing import TablePrinter, check_output_format, print_objects, with_type
from skiff.cli.client.resolve import qualified_kind
from skiff.client.builder import TABLE, ApiRequest
from skiff.client.watch import WatchStream

PAGE_SIZE = 500


@dataclass
class Target:
    """One resource type and the names asked for (none: list them all)."""

    resource: ResourceType
    names: list[str]


def parse_targets(words: list[str], session: Session) -> list[Target]:
    """`TYPE[,TYPE] [NAME...]` or `TYPE/NAME...`, as kubectl reads them."""
    if not words:
        raise CommandError("You must specify the type of resource to get. Use `skiff api-resources`-style names")
    if "/" in words[0]:
        targets: list[Target] = []
        for word in words:
            kind, slash, name = word.partition("/")
            if not slash or not name:
                raise CommandError(f"there is no need to specify a resource type as a separate argument: {word}")
            resource = session.resolver.resolve(kind)
            found = next((t for t in targets if t.resource == resource), None)
            if found is None:
                targets.append(Target(resource, [name]))
            else:
                found.names.append(name)
        return targets
    return [Target(session.resolver.resolve(kind), list(words[1:])) for kind in words[0].split(",") if kind]


def parser() -> argparse.ArgumentParser:
    p = command_parser("get", "Display one or many resources.")
    p.add_argument("targets", nargs="*", metavar="TYPE[/NAME] [NAME...]")
    p.add_argument("-o", "--output", help="wide, yaml, json, name or jsonpath=TEMPLATE")
    p.add_argument("-l", "--selector", help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", help="field selector, e.g. status.phase=Running")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, watch for changes")
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument("--no-headers", action="store_true", help="print no header row")
    return p


class Getter:
    """Runs one `get`: fetches tables or objects per target and prints them."""

    def __init__(self, session: Session, args: argparse.Namespace) -> None:
        self.session = session
        self.args = args
        self.failed = False
        self.table_output = args.output in (None, "wide")
        self.printers: dict[ResourceType, TablePrinter] = {}

    def namespace(self, resource: ResourceType) -> str | None:
        if not resource.namespaced or self.args.all_namespaces:
            return None
        return self.session.namespace

    def printer(self, resource: ResourceType) -> TablePrinter:
        """One printer per type, so that watch events line up under the listed columns."""
        if resource not in self.printers:
            self.printers[resource] = TablePrinter(
                wide=self.args.output == "wide",
                with_namespace=resource.namespaced and self.args.all_namespaces,
                show_labels=self.args.show_labels,
                no_headers=self.args.no_headers,
                plain=self.args.watch,
            )
        return self.printers[resource]

    def _accept(self, request: ApiRequest) -> ApiRequest:
        return dataclasses.replace(request, accept=TABLE) if self.table_output else request

    def list(self, resource: ResourceType) -> dict[str, Any]:
        """Every page of the list (a Table or a plain list), as one."""
        requests = self.session.client.requests
        first: dict[str, Any] | None = None
        token: str | None = None
        while True:
            request = requests.list(
                resource, self.namespace(resource), self.args.selector, self.args.field_selector, PAGE_SIZE, token
            )
            page = self.session.client.send(self._accept(request))
            first = page if first is None else _merge(first, page)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                first.setdefault("metadata", {})["resourceVersion"] = page["metadata"].get("resourceVersion", "")
                return first

    def fetch_named(self, resource: ResourceType, names: list[str]) -> list[dict[str, Any]]:
        found = []
        for name in names:
            request = self.session.client.requests.get(resource, name, self.namespace(resource) or None)
            try:
                found.append(self.session.client.send(self._accept(request)))
            except ApiError as error:
                print_error(error)
                self.failed = True
        return found

    def show(self, target: Target, several_types: bool) -> str:
        """Print one target; returns the resourceVersion to watch from."""
        if target.names:
            replies = self.fetch_named(target.resource, target.names)
            rv = ""
        else:
            reply = self.list(target.resource)
            replies, rv = [reply], reply["metadata"].get("resourceVersion", "")
        if self.table_output:
            table = _combine_tables(replies)
            if several_types:
                _prefix_names(table, target.resource)
            self._print_table(target, table)
        else:
            objects = _objects(replies, target)
            if objects or target.names:
                print_objects(objects, target.resource, self.args.output, single=bool(target.names))
            else:
                self._nothing_found(target.resource)
        return rv

    def _print_table(self, target: Target, table: dict[str, Any]) -> None:
        if table.get("rows"):
            self.printer(target.resource).print(table)
        elif not target.names:
            self._nothing_found(target.resource)

    def _nothing_found(self, resource: ResourceType) -> None:
        if resource.namespaced and not self.args.all_namespaces:
            print(f"No resources found in {self.session.namespace} namespace.", file=sys.stderr)
        else:
            print("No resources found", file=sys.stderr)


def _merge(first: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
    key = "rows" if first.get("kind") == "Table" else "items"
    first[key] = (first.get(key) or []) + (page.get(key) or [])
    return first


def _combine_tables(tables: list[dict[str, Any]]) -> dict[str, Any]:
    if not tables:
        return {"columnDefinitions": [], "rows": []}
    return {
        "columnDefinitions": tables[0].get("columnDefinitions") or [],
        "rows": [row for t in tables for row in t.get("rows") or []],
    }


def _prefix_names(table: dict[str, Any], resource: ResourceType) -> None:
    """With several types in one `get`, kubectl names each row `kind.group/name`."""
    for row in table.get("rows") or []:
        if row.get("cells"):
            row["cells"][0] = f"{qualified_kind(resource)}/{row['cells'][0]}"


def _objects(replies: list[dict[str, Any]], target: Target) -> list[dict[str, Any]]:
    if target.names:
        return replies
    return [item for reply in replies for item in reply.get("items") or []]


def watch(getter: Getter, target: Target, resource_version: str) -> None:
    """Follow changes after the list, printing a row (or object) per event, until interrupted."""
    session, args = getter.session, getter.args
    resource = target.resource
    field_selector = f"metadata.name={target.names[0]}" if target.names else args.field_selector
    printer = getter.printer(resource)
    rv = resource_version
    while True:
        request = session.client.requests.watch(
            resource, getter.namespace(resource), rv or None, args.selector, field_selector, True, 1800
        )
        try:
            rv = _follow(session, getter._accept(request), getter, printer, target)
        except ApiError as error:
            if error.code != 410:
                raise
            rv = getter.list(resource)["metadata"].get("resourceVersion", "")


def _follow(session: Session, request: ApiRequest, getter: Getter, printer: TablePrinter, target: Target) -> str:
    rv = dict(request.params).get("resourceVersion", "")
    with WatchStream(session.client.open(request, stream=True)) as stream:
        for event_type, obj in stream:
            rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
            if event_type == "BOOKMARK":
                continue
            if getter.table_output:
                printer.print_more(obj)
            else:
                print_objects([with_type(obj, target.resource)], target.resource, getter.args.output, single=True)
                sys.stdout.flush()
    return rv


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    check_output_format(args.output)
    with open_session(args) as session:
        targets = parse_targets(args.targets, session)
        if args.watch and (len(targets) != 1 or len(targets[0].names) > 1):
            raise CommandError("watch is only supported on individual resources and resource collections")
        getter = Getter(session, args)
        for index, target in enumerate(targets):
            if index and getter.table_output:
                print()
            rv = getter.show(target, several_types=len(targets) > 1)
        if args.watch and not getter.failed:
            if not rv:
                rv = _current_version(getter, targets[0])
            watch(getter, targets[0], rv)
    return 1 if getter.failed else 0


def _current_version(getter: Getter, target: Target) -> str:
    selector = f"metadata.name={target.names[0]}"
    reply = getter.session.client.list(target.resource, getter.namespace(target.resource), field_selector=selector)
    return reply["metadata"].get("resourceVersion", "")


main = handles_errors(run)
