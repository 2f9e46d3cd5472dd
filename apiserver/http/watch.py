"""Watch streams: newline-delimited JSON events, from a resourceVersion or from the current state."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from apiserver.http.codec import Output
from apiserver.http.context import RequestContext
from apiserver.http.objects import partial_metadata
from apiserver.http.reads import Filter, collect, request_filter
from apiserver.http.responses import build_table, output_of
from apiserver.storage.records import Change, ResourceVersionExpired
from apiserver.watch.hub import Watcher
from skiff.api.errors import ApiError, bad_request, gone

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


class EventEncoder:
    """Encodes one watch event in the form the client asked for (object, Table row, metadata)."""

    def __init__(self, ctx: RequestContext, output: Output) -> None:
        self.ctx = ctx
        self.output = output
        self.columns_sent = False

    def encode(self, event_type: str, data: bytes, obj: dict[str, Any] | None) -> bytes:
        if self.ctx.strategy.transforms_reads:
            obj = self.ctx.strategy.present(orjson.loads(data))
            data = orjson.dumps(obj)
        if self.output.form == "object":
            return b'{"type":"' + event_type.encode() + b'","object":' + data + b"}\n"
        obj = obj if obj is not None else orjson.loads(data)
        if self.output.form == "partial":
            value = partial_metadata(obj)
        else:
            rv = obj.get("metadata", {}).get("resourceVersion", "")
            value = build_table(self.ctx.strategy, [obj], rv, self.output, with_columns=not self.columns_sent)
            self.columns_sent = True
        return orjson.dumps({"type": event_type, "object": value}) + b"\n"

    def bookmark(self, rv: int, initial_end: bool = False) -> bytes:
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
        resource = self.ctx.resource
        value = {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": metadata}
        return orjson.dumps({"type": "BOOKMARK", "object": value}) + b"\n"


def error_event(error: ApiError) -> bytes:
    return orjson.dumps({"type": "ERROR", "object": error.status()}) + b"\n"


def _timeout(ctx: RequestContext) -> float:
    text = ctx.query.get("timeoutSeconds", "")
    if not text:
        # Like kube-apiserver, spread long watches over 30-60 minutes so reconnects do not align.
        return random.uniform(1800, 3600)
    try:
        return max(float(text), 0.0)
    except ValueError:
        raise bad_request(f"timeoutSeconds: Invalid value: {text!r}") from None


async def handle_watch(ctx: RequestContext) -> Response:
    flt = request_filter(ctx)
    output = output_of(ctx)
    timeout = _timeout(ctx)
    rv_text = ctx.query.get("resourceVersion", "")
    send_initial = ctx.query.get("sendInitialEvents", "") == "true"
    bookmarks = ctx.flag("allowWatchBookmarks")
    if rv_text and not rv_text.isdigit():
        raise bad_request(f"resourceVersion: Invalid value: {rv_text!r}: must be a number")
    initial: list[bytes] = []
    if not rv_text or rv_text == "0" or send_initial:
        start_rv, initial, _ = await collect(ctx, flt, ctx.namespace or None, None, None)
    else:
        start_rv = int(rv_text)
    encoder = EventEncoder(ctx, output)
    stream = _stream(ctx, flt, encoder, start_rv, initial, send_initial and bookmarks, bookmarks, timeout)
    return StreamingResponse(stream, media_type="application/json")


async def _stream(
    ctx: RequestContext,
    flt: Filter,
    encoder: EventEncoder,
    start_rv: int,
    initial: list[bytes],
    initial_end_bookmark: bool,
    bookmarks: bool,
    timeout: float,
) -> AsyncIterator[bytes]:
    state = ctx.state
    watcher = state.hub.subscribe(ctx.storage_key(), ctx.namespace or None, start_rv)
    gauge = state.metrics.watchers.labels(ctx.resource.plural)
    gauge.inc()
    try:
        for data in initial:
            yield encoder.encode("ADDED", data, None)
        if initial_end_bookmark:
            yield encoder.bookmark(start_rv, initial_end=True)
        if watcher.backfill_until is not None:
            try:
                async for chunk in _backfill(ctx, flt, encoder, start_rv, watcher.backfill_until):
                    yield chunk
            except ResourceVersionExpired as expired:
                yield error_event(gone(f"too old resource version: {expired.requested} ({expired.compacted})"))
                return
        async for chunk in _follow(ctx, watcher, flt, encoder, bookmarks, timeout):
            yield chunk
    finally:
        watcher.close()
        gauge.dec()


async def _backfill(
    ctx: RequestContext, flt: Filter, encoder: EventEncoder, after: int, until: int
) -> AsyncIterator[bytes]:
    key = ctx.storage_key()
    namespace = ctx.namespace or None
    while after < until:
        changes = await ctx.state.store.changes_since(after, until)
        if not changes:
            return
        for change in changes:
            after = change.rv
            if change.resource == key and (namespace is None or change.namespace == namespace):
                chunk = _encode_change(change, flt, encoder)
                if chunk:
                    yield chunk


def _encode_change(change: Change, flt: Filter, encoder: EventEncoder) -> bytes | None:
    if flt.active and not flt.matches(change.obj()):
        return None
    return encoder.encode(change.event, change.data, change._obj)


async def _follow(
    ctx: RequestContext, watcher: Watcher, flt: Filter, encoder: EventEncoder, bookmarks: bool, timeout: float
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    interval = ctx.state.config.watch_bookmark_seconds
    next_bookmark = loop.time() + interval
    queue = watcher.queue
    while True:
        now = loop.time()
        if now >= deadline:
            return
        if queue.empty():
            # Wait only when there is nothing to send: a timer per event would cost more than the event.
            wait = min(deadline, next_bookmark) - now if bookmarks else deadline - now
            try:
                async with asyncio.timeout(max(wait, 0.001)):
                    first = await queue.get()
            except TimeoutError:
                if bookmarks and loop.time() >= next_bookmark:
                    next_bookmark = loop.time() + interval
                    if queue.empty():
                        yield encoder.bookmark(max(ctx.state.hub.head_rv, watcher.after_rv))
                continue
        else:
            first = queue.get_nowait()
        # Everything already queued goes out as one chunk: one write to the socket instead of one per event.
        chunks: list[bytes] = []
        change: Change | None = first
        while True:
            if change is None:
                if chunks:
                    yield b"".join(chunks)
                return  # closed: server shutdown or the consumer fell too far behind
            chunk = _encode_change(change, flt, encoder)
            if chunk:
                chunks.append(chunk)
            if queue.empty():
                break
            change = queue.get_nowait()
        if chunks:
            yield b"".join(chunks)
