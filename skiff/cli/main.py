"""The `skiff` command: component entry points, the local-cluster launcher and a kubectl-like client."""

from __future__ import annotations

import importlib
import sys

# Components are separate programs: the launcher reaches them by module entry point, never by import,
# so that no component depends on another.
COMPONENTS: dict[str, str] = {
    "apiserver": "apiserver.main",
}

USAGE = """usage: skiff <command> [flags]

Components:
  apiserver     run the API server (HTTPS, SQLite or PostgreSQL)

Run `skiff <command> --help` for a command's flags."""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = args[0], args[1:]
    module = COMPONENTS.get(command)
    if module is None:
        print(f"skiff: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    importlib.import_module(module).main(rest)


if __name__ == "__main__":
    main()
