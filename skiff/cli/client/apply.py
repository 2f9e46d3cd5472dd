"""`skiff apply -f` (server-side apply, reporting created/configured/unchanged) and `skiff create -f`."""

from __future__ import annotations

import argparse
from typing import Any

from skiff.api.errors import ApiError
from skiff.cli.client.connect import Session, command_parser, open_session
from skiff.cli.client.errors import CommandError, handles_errors, print_error
from skiff.cli.client.manifests import Manifest, place, read_manifests
from skiff.cli.client.printing import check_output_format, object_name, print_objects

FIELD_MANAGER = "skiff"


def parser(name: str, description: str) -> argparse.ArgumentParser:
    p = command_parser(name, description)
    p.add_argument("-f", "--filename", action="append", required=True, help="a file, a directory or - for stdin")
    p.add_argument("-R", "--recursive", action="store_true", help="read directories recursively")
    p.add_argument("-o", "--output", choices=["yaml", "json", "name"], help="print the resulting objects")
    p.add_argument("--dry-run", choices=["none", "server"], default="none", help="server: validate, store nothing")
    return p


def _resource_version(obj: dict[str, Any] | None) -> str:
    return ((obj or {}).get("metadata") or {}).get("resourceVersion", "")


def apply_one(session: Session, manifest: Manifest, force: bool, dry_run: bool) -> tuple[str, dict[str, Any]]:
    """Server-side apply of one object; the verb says whether anything changed."""
    assert manifest.resource is not None
    client = session.client
    try:
        before: dict[str, Any] | None = client.get(manifest.resource, manifest.name, manifest.namespace)
    except ApiError as error:
        if error.code != 404:
            raise
        before = None
    after = client.patch(
        manifest.resource,
        manifest.name,
        manifest.obj,
        manifest.namespace,
        patch_type="apply",
        field_manager=FIELD_MANAGER,
        force=force,
        dry_run=dry_run,
    )
    if before is None:
        return "created", after
    return ("unchanged" if _resource_version(before) == _resource_version(after) else "configured"), after


def create_one(session: Session, manifest: Manifest, dry_run: bool) -> tuple[str, dict[str, Any]]:
    created = session.client.create(
        manifest.obj, manifest.namespace, resource=manifest.resource, field_manager="skiff-create", dry_run=dry_run
    )
    return "created", created


def _report(manifest: Manifest, verb: str, result: dict[str, Any], args: argparse.Namespace) -> None:
    assert manifest.resource is not None
    if args.output:
        print_objects([result], manifest.resource, args.output, single=True)
        return
    suffix = " (server dry run)" if args.dry_run == "server" else ""
    print(f"{object_name(manifest.resource, manifest.name)} {verb}{suffix}", flush=True)


def _each(args: argparse.Namespace, write: Any) -> int:
    """Write every manifest, reporting each; a failure is printed and the rest still go ahead."""
    failed = False
    check_output_format(args.output)
    manifests = read_manifests(args.filename, args.recursive)
    with open_session(args) as session:
        for manifest in manifests:
            try:
                verb, result = write(session, place(session, manifest))
            except (ApiError, CommandError) as error:
                print_error(error)
                failed = True
                continue
            _report(manifest, verb, result, args)
    return 1 if failed else 0


def run_apply(argv: list[str]) -> int:
    p = parser("apply", "Apply a configuration to resources by file name or stdin (server-side apply).")
    p.add_argument("--force-conflicts", action="store_true", help="take over fields other managers own")
    args = p.parse_args(argv)
    dry_run = args.dry_run == "server"
    return _each(args, lambda session, m: apply_one(session, m, args.force_conflicts, dry_run))


def run_create(argv: list[str]) -> int:
    if argv and argv[0] == "token":
        from skiff.cli.client.auth import run_create_token

        return run_create_token(argv[1:])
    args = parser("create", "Create resources from files or stdin (`create token SA` asks for a token).").parse_args(
        argv
    )
    dry_run = args.dry_run == "server"
    return _each(args, lambda session, m: create_one(session, m, dry_run))


main_apply = handles_errors(run_apply)
main_create = handles_errors(run_create)
