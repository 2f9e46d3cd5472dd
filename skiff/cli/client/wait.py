"""`skiff wait --for=condition=C[=V] | --for=delete | --for=jsonpath='{.path}'[=value] TYPE/NAME...`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from skiff.cli.client.connect import Session, command_parser, open_session
from skiff.cli.client.durations import parse_duration
from skiff.cli.client.errors import CommandError, handles_errors
from skiff.cli.client.get import parse_targets
from skiff.cli.client.jsonpath import JsonPathError, evaluate, text
from skiff.cli.client.printing import object_name
from skiff.cli.client.waiting import WaitTimeout, watch_until

Check = Callable[[dict[str, Any] | None], bool]


def parser() -> argparse.ArgumentParser:
    p = command_parser("wait", "Wait for a condition on one or more resources.")
    p.add_argument("targets", nargs="+", metavar="TYPE[/NAME] [NAME...]")
    p.add_argument(
        "--for",
        dest="condition",
        required=True,
        help="delete, condition=NAME[=VALUE] or jsonpath='{.path}'[=VALUE]",
    )
    p.add_argument("--timeout", default="30s", help="how long to wait (default 30s; 0 checks once)")
    return p


def condition_check(spec: str) -> Check:
    name, _, value = spec.partition("=")
    expected = (value or "true").lower()

    def met(obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        generation = (obj.get("metadata") or {}).get("generation")
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if str(condition.get("type", "")).lower() != name.lower():
                continue
            observed = condition.get("observedGeneration")
            if observed is not None and generation is not None and observed < generation:
                return False
            return str(condition.get("status", "")).lower() == expected
        return False

    return met


def split_jsonpath(spec: str) -> tuple[str, str | None]:
    """`{.status.phase}=Running` → (`{.status.phase}`, `Running`); without `=value`, only presence counts."""
    if spec.startswith("{"):
        end = spec.rfind("}")
        if end < 0:
            raise CommandError(f"unbalanced braces in the JSONPath {spec!r}")
        expression, rest = spec[: end + 1], spec[end + 1 :]
    else:
        expression, eq, value = spec.partition("=")
        rest = eq + value
    if rest and not rest.startswith("="):
        raise CommandError(f"the JSONPath condition {spec!r} must look like {{.path}}=value")
    return expression, (rest[1:] if rest else None)


def jsonpath_check(spec: str) -> Check:
    expression, expected = split_jsonpath(spec)

    def met(obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        try:
            values = evaluate(obj, expression)
        except JsonPathError as error:
            raise CommandError(str(error)) from error
        if expected is None:
            return bool(values)
        return len(values) == 1 and text(values[0]) == expected

    return met


def check_for(spec: str) -> tuple[Check, bool]:
    """The predicate for `--for`, and whether it waits for deletion."""
    if spec == "delete":
        return (lambda obj: obj is None), True
    kind, _, rest = spec.partition("=")
    if kind == "condition" and rest:
        return condition_check(rest), False
    if kind == "jsonpath" and rest:
        return jsonpath_check(rest), False
    raise CommandError(f"unrecognized condition: {spec!r}")


def wait_one(session: Session, resource: Any, name: str, check: Check, deleting: bool, timeout: float) -> None:
    namespace = session.namespace if resource.namespaced else None
    if not deleting:
        # A condition on an object that does not exist is kubectl's NotFound error.
        session.client.get(resource, name, namespace)
    try:
        watch_until(session.client, resource, namespace, name, check, timeout)
    except WaitTimeout as error:
        raise CommandError(f"timed out waiting for the condition on {resource.plural}/{name}") from error
    print(f"{object_name(resource, name)} condition met", flush=True)


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    timeout = parse_duration(args.timeout, "--timeout")
    check, deleting = check_for(args.condition)
    with open_session(args) as session:
        targets = parse_targets(args.targets, session)
        if any(not t.names for t in targets):
            raise CommandError("resource name may not be empty: name the objects to wait for")
        for target in targets:
            for name in target.names:
                wait_one(session, target.resource, name, check, deleting, timeout)
    return 0


main = handles_errors(run)
