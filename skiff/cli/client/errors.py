"""Errors as kubectl phrases them, and the exit codes it uses.

`Error from server (NotFound): pods "x" not found` for a Status from the API server, `error: ...` for
anything the client itself refuses. Both exit with code 1, as kubectl does.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import NoReturn

import httpx

from skiff.api.errors import ApiError
from skiff.client.kubeconfig import KubeconfigError

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A failure the client detects itself; printed as `error: <message>`."""


def server_error_text(error: ApiError) -> str:
    """kubectl's wording for a Status error."""
    if error.reason and error.reason != "Unknown":
        return f"Error from server ({error.reason}): {error.message}"
    return f"Error from server: {error.message}"


def print_error(error: BaseException) -> None:
    if isinstance(error, ApiError):
        print(server_error_text(error), file=sys.stderr)
    else:
        print(f"error: {error}", file=sys.stderr)


def fail(message: str) -> NoReturn:
    raise CommandError(message)


def _connection_text(error: httpx.HTTPError) -> str:
    request = getattr(error, "_request", None)
    where = f"{request.url.scheme}://{request.url.netloc.decode()}" if request is not None else "the server"
    if isinstance(error, httpx.ConnectError):
        return f"The connection to the server {where} was refused - did you specify the right host or port?"
    if isinstance(error, httpx.TimeoutException):
        return f"Unable to connect to the server: the request to {where} timed out"
    return f"Unable to connect to the server: {error}"


def handles_errors(command: Callable[[list[str]], int | None]) -> Callable[[list[str]], None]:
    """Run a command, print its failure the way kubectl does and exit with kubectl's code."""

    @functools.wraps(command)
    def run(argv: list[str]) -> None:
        try:
            code = command(argv) or 0
        except (ApiError, CommandError, KubeconfigError) as error:
            print_error(error)
            code = EXIT_FAILURE
        except httpx.HTTPError as error:
            print(_connection_text(error), file=sys.stderr)
            code = EXIT_FAILURE
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
        except BrokenPipeError:
            code = EXIT_FAILURE
        sys.stdout.flush()
        sys.exit(code)

    return run
