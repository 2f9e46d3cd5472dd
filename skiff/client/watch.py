"""Decoding what the API server sends back: `Status` errors and watch streams.

A watch reply is a chunked stream of newline-delimited JSON events, `{"type": ..., "object": ...}`.
The streams here yield `(type, object)` pairs, BOOKMARKs included, and turn an ERROR event into an
`ApiError` so that a watcher handles "410 Gone" the same way whether it arrives as the reply's status
or inside the stream: by listing again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx
import orjson

from skiff.api.errors import ApiError, Cause

WatchEvent = tuple[str, dict[str, Any]]

# The reason client-go assigns when a reply carries no Status body.
_REASONS_BY_CODE = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_MAX_PLAIN_MESSAGE = 1024


def error_from_status(status: Mapping[str, Any], http_code: int = 500) -> ApiError:
    """The `ApiError` a `meta.k8s.io/v1 Status` body describes."""
    details = status.get("details") or {}
    code = int(status.get("code") or http_code)
    reason = status.get("reason") or _REASONS_BY_CODE.get(code, "Unknown")
    return ApiError(
        code=code,
        reason=reason,
        message=status.get("message") or reason,
        name=details.get("name"),
        group=details.get("group"),
        kind=details.get("kind"),
        causes=[_cause(c) for c in details.get("causes") or []],
        retry_after_seconds=details.get("retryAfterSeconds"),
        uid=details.get("uid"),
    )


def _cause(raw: Mapping[str, Any]) -> Cause:
    return Cause(reason=raw.get("reason", ""), message=raw.get("message", ""), field=raw.get("field", ""))


def error_from_response(response: httpx.Response) -> ApiError:
    """The `ApiError` for a non-2xx reply, from its Status body or, failing that, its status line."""
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        error = error_from_status(body, response.status_code)
    else:
        code = response.status_code
        text = response.text.strip()[:_MAX_PLAIN_MESSAGE]
        reason = _REASONS_BY_CODE.get(code, "Unknown")
        error = ApiError(code, reason, text or f"the server responded with HTTP {code} ({reason})")
    retry_after = response.headers.get("Retry-After", "")
    if error.retry_after_seconds is None and retry_after.isdigit():
        error.retry_after_seconds = int(retry_after)
    return error


def decode_event(line: bytes) -> WatchEvent:
    """One watch event line as (type, object); an ERROR event is raised as its `ApiError`."""
    event = orjson.loads(line)
    event_type, obj = event["type"], event["object"]
    if event_type == "ERROR":
        raise error_from_status(obj)
    return event_type, obj


class _LineSplitter:
    """Reassembles newline-delimited lines from chunks that may split or join them arbitrarily."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        return [line for line in lines if line.strip()]

    def rest(self) -> list[bytes]:
        pending, self._pending = self._pending, b""
        return [pending] if pending.strip() else []


class WatchStream:
    """Events of one open watch; iterate it, and close it (or use `with`) to drop the connection."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[WatchEvent]:
        splitter = _LineSplitter()
        try:
            for chunk in self._response.iter_bytes():
                for line in splitter.feed(chunk):
                    yield decode_event(line)
            for line in splitter.rest():
                yield decode_event(line)
        finally:
            self.close()

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncWatchStream:
    """The asyncio twin of `WatchStream`: `async for` over it, `async with` to close it."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[WatchEvent]:
        splitter = _LineSplitter()
        try:
            async for chunk in self._response.aiter_bytes():
                for line in splitter.feed(chunk):
                    yield decode_event(line)
            for line in splitter.rest():
                yield decode_event(line)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self._response.aclose()

    async def __aenter__(self) -> AsyncWatchStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
