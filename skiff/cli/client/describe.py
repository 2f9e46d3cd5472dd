"""`skiff describe TYPE NAME`: a readable view of an object, its related objects, and its events."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS, ResourceType
from skiff.api.timefmt import try_parse_time
from skiff.cli.client.connect import Session, command_parser, open_session
from skiff.cli.client.describe_text import NONE, Section, metadata_lines, nested, since, timestamp
from skiff.cli.client.describers import DESCRIBERS
from skiff.cli.client.errors import handles_errors, print_error
from skiff.cli.client.get import parse_targets
from skiff.cli.client.printing import is_tty
from skiff.client.rest import Client

EVENTS = BUILTINS.by_kind("", "v1", "Event")


def parser() -> argparse.ArgumentParser:
    p = command_parser("describe", "Show details of a resource, its related objects and its events.")
    p.add_argument("targets", nargs="+", metavar="TYPE[/NAME] [NAME...]")
    p.add_argument("-l", "--selector", help="describe every object matching this label selector")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("--show-events", default="true", choices=["true", "false"], help="list events (default true)")
    return p


def event_selector(obj: dict[str, Any], resource: ResourceType) -> tuple[str | None, str]:
    """The namespace to list events in and kubectl's field selector for the events of `obj`."""
    meta = obj.get("metadata") or {}
    terms = [f"involvedObject.name={meta.get('name')}"]
    if resource.namespaced:
        terms += [f"involvedObject.namespace={meta.get('namespace')}", f"involvedObject.uid={meta.get('uid')}"]
        return meta.get("namespace"), ",".join(terms)
    # Events about cluster-scoped objects live in any namespace (usually `default`).
    terms.append(f"involvedObject.kind={resource.kind}")
    return None, ",".join(terms)


def _last_seen(event: dict[str, Any]) -> Any:
    return event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")


def _event_age(event: dict[str, Any]) -> str:
    count = event.get("count") or (event.get("series") or {}).get("count") or 1
    last = since(_last_seen(event))
    if count > 1:
        first = event.get("firstTimestamp") or event.get("eventTime")
        return f"{last} (x{count} over {since(first)})"
    return last


def _event_source(event: dict[str, Any]) -> str:
    source = event.get("source") or {}
    return source.get("component") or event.get("reportingComponent") or ""


def events_of(client: Client, obj: dict[str, Any], resource: ResourceType) -> list[dict[str, Any]]:
    namespace, selector = event_selector(obj, resource)
    items = client.list(EVENTS, namespace, field_selector=selector).get("items") or []
    return sorted(items, key=lambda e: try_parse_time(_last_seen(e) or "") or _EPOCH)


_EPOCH = try_parse_time("1970-01-01T00:00:00Z")


def events_section(section: Section, events: list[dict[str, Any]]) -> None:
    if not events:
        section.kv("Events", NONE)
        return
    section.heading("Events")
    rows = [
        [e.get("type", ""), e.get("reason", ""), _event_age(e), _event_source(e), (e.get("message") or "").strip()]
        for e in events
    ]
    section.table(["Type", "Reason", "Age", "From", "Message"], rows)


def describe_generic(client: Client, obj: dict[str, Any], section: Section, resource: ResourceType) -> None:
    meta = obj.get("metadata") or {}
    metadata_lines(section, obj, resource.namespaced)
    section.kv("API Version", obj.get("apiVersion") or resource.api_version)
    section.kv("Kind", obj.get("kind") or resource.kind)
    section.heading("Metadata")
    section.kv("Creation Timestamp", timestamp(meta.get("creationTimestamp")), 1)
    section.kv("Resource Version", meta.get("resourceVersion"), 1)
    section.kv("UID", meta.get("uid"), 1)
    for key, value in obj.items():
        if key not in ("apiVersion", "kind", "metadata") and value not in (None, {}, []):
            if isinstance(value, dict | list):
                section.heading(key[:1].upper() + key[1:])
                nested(section, value, 1)
            else:
                section.kv(key[:1].upper() + key[1:], value)


def describe_one(session: Session, obj: dict[str, Any], resource: ResourceType, with_events: bool) -> str:
    section = Section()
    describer = DESCRIBERS.get((resource.group, resource.kind))
    if describer is None:
        describe_generic(session.client, obj, section, resource)
    else:
        describer(session.client, obj, section)
    if with_events:
        events_section(section, events_of(session.client, obj, resource))
    return section.render()


def _objects(session: Session, args: argparse.Namespace, resource: ResourceType, names: list[str]) -> list[Any]:
    namespace = None if args.all_namespaces or not resource.namespaced else session.namespace
    if names:
        return [_get_or_error(session, resource, name, namespace) for name in names]
    items = session.client.list_all(resource, namespace, label_selector=args.selector).get("items") or []
    if not items:
        where = f" in {session.namespace} namespace" if namespace else ""
        print(f"No resources found{where}.", file=sys.stderr)
    return items


def _get_or_error(session: Session, resource: ResourceType, name: str, namespace: str | None) -> Any:
    try:
        return session.client.get(resource, name, namespace)
    except ApiError as error:
        return error


def emit(text: str) -> None:
    if is_tty():
        from rich.console import Console

        Console(highlight=True).print(text.rstrip("\n"), markup=False)
    else:
        sys.stdout.write(text)


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    failed = False
    with open_session(args) as session:
        outputs = []
        for target in parse_targets(args.targets, session):
            for obj in _objects(session, args, target.resource, target.names):
                if isinstance(obj, ApiError):
                    print_error(obj)
                    failed = True
                    continue
                outputs.append(describe_one(session, obj, target.resource, args.show_events == "true"))
        emit("\n\n".join(o.rstrip("\n") for o in outputs) + "\n" if outputs else "")
    return 1 if failed else 0


main = handles_errors(run)
