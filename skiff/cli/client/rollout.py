"""`skiff rollout status|history|undo|restart|pause|resume TYPE/NAME`, following kubectl's rules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from skiff.api.kinds import ResourceType
from skiff.api.timefmt import now_rfc3339
from skiff.cli.client.connect import Session, command_parser, open_session
from skiff.cli.client.describe_text import Section
from skiff.cli.client.describers import owned_replica_sets, pod_template, revision
from skiff.cli.client.durations import parse_duration
from skiff.cli.client.errors import CommandError, handles_errors
from skiff.cli.client.get import parse_targets
from skiff.cli.client.printing import is_tty, object_name
from skiff.cli.client.rollout_status import STATUS_VIEWERS, StatusProgress
from skiff.cli.client.waiting import WaitTimeout, watch_until

Obj = dict[str, Any]
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
CHANGE_CAUSE = "kubernetes.io/change-cause"
# Annotations a rollback leaves alone: they describe the ReplicaSet, not the template.
UNDO_SKIPPED = {
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "kubectl.kubernetes.io/last-applied-configuration",
}


def parser() -> argparse.ArgumentParser:
    p = command_parser("rollout", "Manage the rollout of a deployment (status, history, undo, restart).")
    p.add_argument("action", choices=["status", "history", "undo", "restart", "pause", "resume"])
    p.add_argument("targets", nargs="+", metavar="TYPE/NAME | TYPE NAME")
    p.add_argument("--watch", "-w", default="true", choices=["true", "false"], help="status: follow until done")
    p.add_argument("--timeout", default="0s", help="status: how long to wait (0: no limit)")
    p.add_argument("--revision", type=int, default=0, help="history: show one revision's pod template")
    p.add_argument("--to-revision", type=int, default=0, help="undo: the revision to go back to (0: previous)")
    return p


def status(session: Session, resource: ResourceType, name: str, args: argparse.Namespace) -> None:
    viewer = STATUS_VIEWERS.get(resource.kind)
    if viewer is None:
        raise CommandError(f"no status viewer has been implemented for {resource.kind}")
    namespace = session.namespace
    obj = session.client.get(resource, name, namespace)
    progress = StatusProgress(fancy=is_tty())
    if args.watch == "false":
        progress.show(viewer(obj))
        return
    timeout = parse_duration(args.timeout, "--timeout") or None

    def done(current: Obj | None) -> bool:
        if current is None:
            raise CommandError(f'object has been deleted: {resource.plural} "{name}"')
        return progress.show(viewer(current))

    try:
        with progress:
            watch_until(session.client, resource, namespace, name, done, timeout)
    except WaitTimeout as error:
        raise CommandError("timed out waiting for the condition") from error


def history(session: Session, resource: ResourceType, name: str, args: argparse.Namespace) -> None:
    deployment = session.client.get(resource, name, session.namespace)
    sets = sorted(owned_replica_sets(session.client, deployment), key=revision)
    if args.revision:
        found = next((rs for rs in sets if revision(rs) == args.revision), None)
        if found is None:
            raise CommandError(f"unable to find the specified revision {args.revision}")
        section = Section()
        pod_template(section, _template(found))
        print(f"{object_name(resource, name)} with revision #{args.revision}")
        sys.stdout.write(section.render())
        return
    print(f"{object_name(resource, name)} ")
    print("REVISION  CHANGE-CAUSE")
    for rs in sets:
        cause = ((rs.get("metadata") or {}).get("annotations") or {}).get(CHANGE_CAUSE, "<none>")
        print(f"{revision(rs)!s:<10}{cause}")
    print()


def _template(rs: Obj) -> Obj:
    """A ReplicaSet's pod template without the hash label the deployment controller adds."""
    template = dict((rs.get("spec") or {}).get("template") or {})
    metadata = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != "pod-template-hash"}
    metadata["labels"] = labels
    template["metadata"] = metadata
    return template


def undo(session: Session, resource: ResourceType, name: str, args: argparse.Namespace) -> None:
    deployment = session.client.get(resource, name, session.namespace)
    if (deployment.get("spec") or {}).get("paused"):
        raise CommandError(
            "you cannot rollback a paused deployment; resume it first with 'skiff rollout resume' and try again"
        )
    sets = sorted(owned_replica_sets(session.client, deployment), key=revision)
    target = _undo_target(sets, args.to_revision)
    template = _template(target)
    label = object_name(resource, name)
    if template == (deployment.get("spec") or {}).get("template"):
        print(f"{label} skipped rollback (current template already matches revision {revision(target)})")
        return
    annotations = dict((deployment.get("metadata") or {}).get("annotations") or {})
    for key, value in ((target.get("metadata") or {}).get("annotations") or {}).items():
        if key not in UNDO_SKIPPED:
            annotations[key] = value
    patch = [
        {"op": "replace", "path": "/spec/template", "value": template},
        # `add` sets the member whether or not the deployment had annotations before.
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
    ]
    session.client.patch(resource, name, patch, session.namespace, patch_type="json")
    print(f"{label} rolled back")


def _undo_target(sets: list[Obj], to_revision: int) -> Obj:
    if to_revision:
        found = next((rs for rs in sets if revision(rs) == to_revision), None)
        if found is None:
            raise CommandError(f"unable to find specified revision {to_revision} in history")
        return found
    if len(sets) < 2:
        raise CommandError("no rollout history found")
    return sets[-2]


def restart(session: Session, resource: ResourceType, name: str, args: argparse.Namespace) -> None:
    current = session.client.get(resource, name, session.namespace)
    if (current.get("spec") or {}).get("paused"):
        raise CommandError(f'{resource.plural} "{name}" can\'t restart paused deployment (run rollout resume first)')
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now_rfc3339()}}}}}
    session.client.patch(resource, name, patch, session.namespace, patch_type="strategic")
    print(f"{object_name(resource, name)} restarted")


def _pause(paused: bool) -> Callable[[Session, ResourceType, str, argparse.Namespace], None]:
    def act(session: Session, resource: ResourceType, name: str, args: argparse.Namespace) -> None:
        current = session.client.get(resource, name, session.namespace)
        label = object_name(resource, name)
        if bool((current.get("spec") or {}).get("paused")) == paused:
            print(f"{label} already {'paused' if paused else 'resumed'}")
            return
        session.client.patch(resource, name, {"spec": {"paused": paused}}, session.namespace)
        print(f"{label} {'paused' if paused else 'resumed'}")

    return act


ACTIONS = {
    "status": status,
    "history": history,
    "undo": undo,
    "restart": restart,
    "pause": _pause(True),
    "resume": _pause(False),
}
DEPLOYMENT_ONLY = {"history", "undo", "pause", "resume"}


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    with open_session(args) as session:
        for target in parse_targets(args.targets, session):
            kind = target.resource.kind
            if kind not in STATUS_VIEWERS or (args.action in DEPLOYMENT_ONLY and kind != "Deployment"):
                raise CommandError(f"{args.action} is not supported for {target.resource.plural}")
            if not target.names:
                raise CommandError("required resource not specified")
            for name in target.names:
                ACTIONS[args.action](session, target.resource, name, args)
    return 0


main = handles_errors(run)
