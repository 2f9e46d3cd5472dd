"""`skiff auth can-i VERB RESOURCE [NAME]`, `skiff auth whoami` and `skiff create token SA`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from skiff.api.kinds import BUILTINS
from skiff.cli.client.connect import Session, command_parser, open_session
from skiff.cli.client.durations import parse_duration
from skiff.cli.client.errors import CommandError, fail, handles_errors
from skiff.cli.client.printing import check_output_format, print_document, print_rows

ACCESS_REVIEW = BUILTINS.by_kind("authorization.k8s.io", "v1", "SelfSubjectAccessReview")
SELF_REVIEW = BUILTINS.by_kind("authentication.k8s.io", "v1", "SelfSubjectReview")
SERVICE_ACCOUNTS = BUILTINS.by_kind("", "v1", "ServiceAccount")


def can_i_parser() -> argparse.ArgumentParser:
    p = command_parser("auth can-i", "Check whether an action is allowed (prints yes or no).")
    p.add_argument("verb")
    p.add_argument("resource", metavar="TYPE[/NAME] | NONRESOURCEURL")
    p.add_argument("name", nargs="?")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="ask for every namespace")
    p.add_argument("--subresource", default="")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing; only the exit code answers")
    return p


def _resource_attributes(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    kind, _, name = args.resource.partition("/")
    plural, _, subresource = kind.partition("/")
    attributes: dict[str, Any] = {"verb": args.verb, "resource": plural, "group": ""}
    if plural != "*":
        try:
            resource = session.resolver.resolve(plural)
            attributes["resource"], attributes["group"] = resource.plural, resource.group
            if resource.namespaced and not args.all_namespaces:
                attributes["namespace"] = session.namespace
        except CommandError:
            print(f"Warning: the server doesn't have a resource type '{plural}'", file=sys.stderr)
            attributes["group"] = plural.partition(".")[2]
            attributes["resource"] = plural.partition(".")[0]
            if not args.all_namespaces:
                attributes["namespace"] = session.namespace
    elif not args.all_namespaces:
        attributes["namespace"] = session.namespace
    if name or args.name:
        attributes["name"] = name or args.name
    if subresource or args.subresource:
        attributes["subresource"] = subresource or args.subresource
    return attributes


def run_can_i(argv: list[str]) -> int:
    args = can_i_parser().parse_args(argv)
    with open_session(args) as session:
        if args.resource.startswith("/"):
            spec: dict[str, Any] = {"nonResourceAttributes": {"path": args.resource, "verb": args.verb}}
        else:
            spec = {"resourceAttributes": _resource_attributes(session, args)}
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": spec}
        answer = session.client.create(review, resource=ACCESS_REVIEW).get("status") or {}
    allowed = bool(answer.get("allowed"))
    if not args.quiet:
        print("yes" if allowed else "no")
        if answer.get("evaluationError"):
            print(answer["evaluationError"], file=sys.stderr)
    return 0 if allowed else 1


def run_whoami(argv: list[str]) -> int:
    p = command_parser("auth whoami", "Show who the server takes you for.")
    p.add_argument("-o", "--output", choices=["yaml", "json"])
    args = p.parse_args(argv)
    with open_session(args) as session:
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        reply = session.client.create(review, resource=SELF_REVIEW)
    if args.output:
        print_document(reply, args.output)
        return 0
    info = (reply.get("status") or {}).get("userInfo") or {}
    rows = [["Username", info.get("username", "")]]
    if info.get("uid"):
        rows.append(["UID", info["uid"]])
    if info.get("groups"):
        rows.append(["Groups", "[" + " ".join(info["groups"]) + "]"])
    for key, values in sorted((info.get("extra") or {}).items()):
        rows.append([f"Extra: {key}", "[" + " ".join(values) + "]"])
    print_rows(["ATTRIBUTE", "VALUE"], rows)
    return 0


def run_create_token(argv: list[str]) -> int:
    p = command_parser("create token", "Ask for a service account token (TokenRequest) and print it.")
    p.add_argument("service_account", metavar="SERVICEACCOUNT")
    p.add_argument("--duration", default="0s", help="how long the token is valid, e.g. 1h (default: server's)")
    p.add_argument("--audience", action="append", default=[], help="an audience the token is for (repeatable)")
    p.add_argument("-o", "--output", choices=["yaml", "json"])
    args = p.parse_args(argv)
    check_output_format(args.output)
    seconds = int(parse_duration(args.duration, "--duration"))
    if args.duration != "0s" and seconds <= 0:
        fail("--duration must be greater than 0")
    spec: dict[str, Any] = {"audiences": args.audience}
    if seconds:
        spec["expirationSeconds"] = seconds
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    with open_session(args) as session:
        reply = session.client.create(
            request, session.namespace, resource=SERVICE_ACCOUNTS, name=args.service_account, subresource="token"
        )
    if args.output:
        print_document(reply, args.output)
    else:
        print((reply.get("status") or {}).get("token", ""))
    return 0


SUBCOMMANDS = {"can-i": run_can_i, "whoami": run_whoami}


def run(argv: list[str]) -> int:
    if not argv or argv[0] not in SUBCOMMANDS:
        fail("usage: skiff auth can-i VERB TYPE[/NAME] | skiff auth whoami")
    return SUBCOMMANDS[argv[0]](argv[1:])


main = handles_errors(run)
