"""`skiff delete TYPE NAME... | TYPE/NAME | -f FILE | -l SEL`: delete, then wait until the objects are gone."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from skiff.api.errors import ApiError
from skiff.api.kinds import ResourceType
from skiff.cli.client.connect import Session, command_parser, open_session
from skiff.cli.client.durations import parse_duration
from skiff.cli.client.errors import CommandError, handles_errors, print_error
from skiff.cli.client.get import parse_targets
from skiff.cli.client.manifests import place, read_manifests
from skiff.cli.client.resolve import qualified_kind
from skiff.cli.client.waiting import WaitTimeout, watch_until

CASCADE = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan", "true": "Background"}


@dataclass
class Victim:
    resource: ResourceType
    name: str
    namespace: str | None
    uid: str = ""

    def label(self) -> str:
        return f'{qualified_kind(self.resource)} "{self.name}"'


def parser() -> argparse.ArgumentParser:
    p = command_parser("delete", "Delete resources by type and name, by file, or by label selector.")
    p.add_argument("targets", nargs="*", metavar="TYPE[/NAME] [NAME...]")
    p.add_argument("-f", "--filename", action="append", help="delete the objects a file describes")
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("-l", "--selector", help="delete every object of the type matching this label selector")
    p.add_argument("--all", action="store_true", help="delete every object of the type in the namespace")
    p.add_argument("--wait", default="true", choices=["true", "false"], help="wait until the objects are gone")
    p.add_argument("--timeout", default="0s", help="how long to wait (0: no limit)")
    p.add_argument("--cascade", default="background", choices=sorted(CASCADE), help="dependents' fate")
    p.add_argument("--grace-period", type=int, help="seconds a pod gets to stop")
    p.add_argument("--ignore-not-found", action="store_true", help="treat a missing object as deleted")
    return p


def _from_files(session: Session, args: argparse.Namespace) -> list[Victim]:
    victims = []
    for manifest in read_manifests(args.filename, args.recursive):
        place(session, manifest)
        assert manifest.resource is not None
        victims.append(Victim(manifest.resource, manifest.name, manifest.namespace))
    return victims


def _from_targets(session: Session, args: argparse.Namespace) -> list[Victim]:
    victims = []
    for target in parse_targets(args.targets, session):
        namespace = session.namespace if target.resource.namespaced else None
        names = target.names
        if not names:
            if not (args.selector or args.all):
                raise CommandError("resource(s) were provided, but no name was specified")
            listed = session.client.list_all(target.resource, namespace, label_selector=args.selector)
            names = [item["metadata"]["name"] for item in listed.get("items") or []]
        victims += [Victim(target.resource, name, namespace) for name in names]
    return victims


def delete_one(session: Session, victim: Victim, args: argparse.Namespace) -> str:
    """Send the DELETE: `deleted`, `missing` (ignored as asked) or `failed` (already reported)."""
    try:
        reply = session.client.delete(
            victim.resource,
            victim.name,
            victim.namespace,
            propagation_policy=CASCADE[args.cascade],
            grace_period_seconds=args.grace_period,
        )
    except ApiError as error:
        if error.code == 404 and args.ignore_not_found:
            return "missing"
        print_error(error)
        return "failed"
    if reply.get("kind") != "Status":
        victim.uid = (reply.get("metadata") or {}).get("uid", "")
    print(f"{victim.label()} deleted", flush=True)
    return "deleted"


def wait_gone(session: Session, victim: Victim, timeout: float | None) -> None:
    def gone(obj: dict | None) -> bool:
        return obj is None or bool(victim.uid and obj["metadata"].get("uid") != victim.uid)

    watch_until(session.client, victim.resource, victim.namespace, victim.name, gone, timeout)


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if bool(args.filename) == bool(args.targets):
        raise CommandError("you must provide one or more resources by argument or filename")
    timeout = parse_duration(args.timeout, "--timeout") or None
    with open_session(args) as session:
        victims = _from_files(session, args) if args.filename else _from_targets(session, args)
        if not victims and not args.filename:
            print("No resources found")
        outcomes = [(victim, delete_one(session, victim, args)) for victim in victims]
        deleted = [victim for victim, outcome in outcomes if outcome == "deleted"]
        failed = any(outcome == "failed" for _, outcome in outcomes)
        if args.wait == "true":
            for victim in deleted:
                try:
                    wait_gone(session, victim, timeout)
                except WaitTimeout as error:
                    raise CommandError(f"timed out waiting for the condition on {victim.label()}") from error
    return 1 if failed else 0


main = handles_errors(run)
