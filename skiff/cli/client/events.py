"""`skiff events [-A] [--for TYPE/NAME] [--types Warning] [-w]`: a namespace's events, oldest first."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from skiff.api.kinds import BUILTINS
from skiff.api.timefmt import try_parse_time
from skiff.cli.client.connect import Session, command_parser, open_session
from skiff.cli.client.describe_text import since
from skiff.cli.client.errors import handles_errors
from skiff.cli.client.printing import aligned, print_rows

EVENTS = BUILTINS.by_kind("", "v1", "Event")
_EPOCH = try_parse_time("1970-01-01T00:00:00Z")


def parser() -> argparse.ArgumentParser:
    p = command_parser("events", "List events, oldest first.")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("--for", dest="for_object", metavar="TYPE/NAME", help="only events about this object")
    p.add_argument("--types", help="comma-separated event types to show, e.g. Warning")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, print new events as they come")
    return p


def _last_seen(event: dict[str, Any]) -> Any:
    return event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")


def _row(event: dict[str, Any], with_namespace: bool) -> list[str]:
    involved = event.get("involvedObject") or event.get("regarding") or {}
    count = event.get("count") or 1
    last = since(_last_seen(event))
    seen = f"{last} (x{count} over {since(event.get('firstTimestamp'))})" if count > 1 else last
    target = f"{(involved.get('kind') or '').capitalize()}/{involved.get('name', '')}"
    row = [seen, event.get("type", ""), event.get("reason", ""), target, (event.get("message") or "").strip()]
    return ([event["metadata"].get("namespace", "")] if with_namespace else []) + row


def field_selector(session: Session, args: argparse.Namespace) -> str | None:
    if not args.for_object:
        return None
    kind, _, name = args.for_object.partition("/")
    resource = session.resolver.resolve(kind)
    return f"involvedObject.kind={resource.kind},involvedObject.name={name}"


def _wanted(event: dict[str, Any], types: set[str]) -> bool:
    return not types or event.get("type", "").lower() in types


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    types = {t.strip().lower() for t in (args.types or "").split(",") if t.strip()}
    with open_session(args) as session:
        namespace = None if args.all_namespaces else session.namespace
        selector = field_selector(session, args)
        reply = session.client.list_all(EVENTS, namespace, field_selector=selector)
        items = sorted(
            (e for e in reply.get("items") or [] if _wanted(e, types)),
            key=lambda e: try_parse_time(_last_seen(e) or "") or _EPOCH,
        )
        header = (["NAMESPACE"] if args.all_namespaces else []) + ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        rows = [_row(e, args.all_namespaces) for e in items]
        if rows:
            print_rows(header, rows)
        elif not args.watch:
            where = "" if args.all_namespaces else f" in {session.namespace} namespace"
            print(f"No events found{where}.", file=sys.stderr)
        if args.watch:
            _watch(session, namespace, selector, reply["metadata"].get("resourceVersion", ""), args, types, header)
    return 0


def _watch(
    session: Session,
    namespace: str | None,
    selector: str | None,
    rv: str,
    args: argparse.Namespace,
    types: set[str],
    header: list[str],
) -> None:
    printed_header = False
    with session.client.watch(EVENTS, namespace, resource_version=rv, field_selector=selector) as stream:
        for event_type, event in stream:
            if event_type not in ("ADDED", "MODIFIED") or not _wanted(event, types):
                continue
            row = _row(event, args.all_namespaces)
            lines = aligned([header, row]) if not printed_header else aligned([row])
            printed_header = True
            print("\n".join(lines), flush=True)


main = handles_errors(run)
