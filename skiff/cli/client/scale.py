"""`skiff scale TYPE/NAME --replicas N`: a merge patch on the scale subresource, as kubectl sends it."""

from __future__ import annotations

import argparse

from skiff.cli.client.connect import command_parser, open_session
from skiff.cli.client.errors import CommandError, handles_errors
from skiff.cli.client.get import parse_targets
from skiff.cli.client.printing import object_name


def parser() -> argparse.ArgumentParser:
    p = command_parser("scale", "Set a new size for a deployment, replica set, stateful set or controller.")
    p.add_argument("targets", nargs="+", metavar="TYPE/NAME | TYPE NAME")
    p.add_argument("--replicas", type=int, required=True, help="the new number of replicas")
    p.add_argument("--current-replicas", type=int, help="scale only if the size is this now")
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.replicas < 0:
        raise CommandError("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    with open_session(args) as session:
        for target in parse_targets(args.targets, session):
            resource = target.resource
            if not resource.has_subresource("scale"):
                raise CommandError(f"cannot scale {resource.plural}: they have no scale subresource")
            namespace = session.namespace if resource.namespaced else None
            for name in target.names:
                if args.current_replicas is not None:
                    scale = session.client.get(resource, name, namespace, subresource="scale")
                    current = (scale.get("spec") or {}).get("replicas", 0)
                    if current != args.current_replicas:
                        raise CommandError(f"Expected replicas to be {args.current_replicas}, was {current}")
                patch = {"spec": {"replicas": args.replicas}}
                session.client.patch(resource, name, patch, namespace, patch_type="merge", subresource="scale")
                print(f"{object_name(resource, name)} scaled", flush=True)
    return 0


main = handles_errors(run)
