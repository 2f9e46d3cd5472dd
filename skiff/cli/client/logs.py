"""`skiff logs POD [-c C] [-f] [--tail N] [--previous]`: a container's log, streamed from its kubelet."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from skiff.api.kinds import BUILTINS
from skiff.cli.client.connect import Session, command_parser, open_session
from skiff.cli.client.errors import CommandError, handles_errors
from skiff.client.builder import ApiRequest, resource_path

PODS = BUILTINS.by_kind("", "v1", "Pod")
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"


def parser() -> argparse.ArgumentParser:
    p = command_parser("logs", "Print the logs of a container in a pod.")
    p.add_argument("pod", metavar="POD | pod/NAME")
    p.add_argument("container_arg", nargs="?", metavar="CONTAINER")
    p.add_argument("-c", "--container", help="the container (default: the pod's default or only one)")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming new lines")
    p.add_argument("--tail", type=int, default=-1, help="only the last N lines")
    p.add_argument("-p", "--previous", action="store_true", help="the previous, terminated instance")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    return p


def pod_name(text: str) -> str:
    kind, slash, name = text.partition("/")
    if not slash:
        return text
    if kind.lower() not in ("pod", "pods", "po"):
        raise CommandError(f"cannot get the logs of {kind}: name a pod as pod/NAME")
    return name


def choose_container(pod: dict[str, Any], wanted: str | None) -> str:
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    name = pod["metadata"]["name"]
    if wanted:
        every = containers + [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
        if wanted not in every:
            raise CommandError(f"container {wanted} is not valid for pod {name}")
        return wanted
    default = ((pod.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER)
    if default in containers:
        return default
    if len(containers) > 1:
        print(f'Defaulted container "{containers[0]}" out of: {", ".join(containers)}', file=sys.stderr)
    if not containers:
        raise CommandError(f"pod {name} has no containers")
    return containers[0]


def log_request(session: Session, name: str, container: str, args: argparse.Namespace) -> ApiRequest:
    params = [("container", container)]
    if args.follow:
        params.append(("follow", "true"))
    if args.tail >= 0:
        params.append(("tailLines", str(args.tail)))
    if args.previous:
        params.append(("previous", "true"))
    if args.timestamps:
        params.append(("timestamps", "true"))
    return ApiRequest("GET", resource_path(PODS, session.namespace, name, "log"), params, accept="text/plain")


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    name = pod_name(args.pod)
    with open_session(args) as session:
        pod = session.client.get(PODS, name, session.namespace)
        container = choose_container(pod, args.container or args.container_arg)
        response = session.client.open(log_request(session, name, container, args), stream=True)
        try:
            for chunk in response.iter_bytes():
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
        finally:
            response.close()
    return 0


main = handles_errors(run)
