"""get and list, with label and field selectors and paging."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from apiserver.http.context import RequestContext
from apiserver.http.responses import list_response, object_response
from apiserver.storage.records import Stored
from skiff.api.errors import ApiError, bad_request, gone, not_found
from skiff.api.fieldselectors import FieldSelector, parse_field_selector
from skiff.api.selectors import LabelSelector, parse_label_selector

LIST_PAGE = 1000


async def read_object(ctx: RequestContext, name: str | None = None) -> Stored:
    """The stored object the request names, or 404 in kube's words."""
    name = name or ctx.info.name
    stored = await ctx.state.store.get(ctx.storage_key(), ctx.namespace, name)
    if stored is None:
        raise not_found(ctx.resource.plural, name, ctx.resource.group)
    return stored


async def handle_get(ctx: RequestContext) -> Response:
    stored = await read_object(ctx)
    return object_response(ctx, stored.data, stored._obj)


@dataclass
class Filter:
    labels: LabelSelector | None
    fields: FieldSelector | None
    getters: dict[str, Callable[[dict[str, Any]], str]]

    @property
    def active(self) -> bool:
        return self.labels is not None or self.fields is not None

    def matches(self, obj: dict[str, Any]) -> bool:
        if self.labels is not None and not self.labels.matches(obj.get("metadata", {}).get("labels") or {}):
            return False
        if self.fields is not None:
            values = {name: self.getters[name](obj) for name in self.fields.fields}
            if not self.fields.matches(values):
                return False
        return True

    def exact_name(self) -> str | None:
        return self.fields.value_for("metadata.name") if self.fields is not None else None


def request_filter(ctx: RequestContext) -> Filter:
    label_text = ctx.query.get("labelSelector", "")
    field_text = ctx.query.get("fieldSelector", "")
    labels = parse_label_selector(label_text) if label_text else None
    if labels is not None and labels.empty:
        labels = None
    fields = parse_field_selector(field_text) if field_text else None
    getters = ctx.strategy.selectable_fields()
    if fields is not None:
        for name in fields.fields:
            if name not in getters:
                raise bad_request(f'"{name}" is not a known field selector: only "{", ".join(getters)}"')
        if not fields.requirements:
            fields = None
    return Filter(labels, fields, getters)


def encode_continue(rv: int, namespace: str, name: str) -> str:
    raw = orjson.dumps({"v": "skiff.dev/v1", "rv": rv, "start": [namespace, name]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = orjson.loads(raw)
        namespace, name = value["start"]
        return int(value["rv"]), (str(namespace), str(name))
    except (ValueError, KeyError, TypeError):
        raise bad_request("continue key is not valid: the token could not be decoded") from None


def parse_limit(ctx: RequestContext) -> int | None:
    text = ctx.query.get("limit", "")
    if not text:
        return None
    if not text.isdigit():
        raise bad_request(f"limit: Invalid value: {text!r}: must be a non-negative integer")
    return int(text) or None


async def collect(
    ctx: RequestContext, flt: Filter, namespace: str | None, limit: int | None, start: tuple[str, str] | None
) -> tuple[int, list[bytes], tuple[str, str] | None]:
    """Read matching objects in key order; returns (list rv, rows, key to continue after or None)."""
    store = ctx.state.store
    key = ctx.storage_key()
    name = flt.exact_name()
    if not flt.active:
        page = await store.list(key, namespace, after=start, limit=limit, name=name)
        last = (page.rows[-1][0], page.rows[-1][1]) if page.more and page.rows else None
        return page.rv, [row[2] for row in page.rows], last
    rows: list[bytes] = []
    list_rv = 0
    after = start
    while True:
        page = await store.list(key, namespace, after=after, limit=LIST_PAGE, name=name)
        list_rv = list_rv or page.rv
        for row_namespace, row_name, data in page.rows:
            if flt.matches(orjson.loads(data)):
                rows.append(data)
                if limit is not None and len(rows) == limit:
                    return list_rv, rows, (row_namespace, row_name)
        if not page.more:
            return list_rv, rows, None
        after = (page.rows[-1][0], page.rows[-1][1])


async def handle_list(ctx: RequestContext) -> Response:
    flt = request_filter(ctx)
    limit = parse_limit(ctx)
    namespace = ctx.namespace or None
    token = ctx.query.get("continue", "")
    start: tuple[str, str] | None = None
    continued_rv: int | None = None
    if token:
        continued_rv, start = decode_continue(token)
        if continued_rv < await ctx.state.store.compacted_rv():
            raise ApiError(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. You can "
                "start a new list without the continue parameter.",
            )
    await wait_for_requested_version(ctx)
    rv, rows, last = await collect(ctx, flt, namespace, limit, start)
    list_rv = continued_rv if continued_rv is not None else rv
    next_token = encode_continue(list_rv, *last) if last is not None else None
    return list_response(ctx, rows, list_rv, next_token)


async def wait_for_requested_version(ctx: RequestContext) -> None:
    """A list at a resourceVersion newer than this server has seen waits briefly, as kube's does."""
    text = ctx.query.get("resourceVersion", "")
    if not text or text == "0":
        return
    if not text.isdigit():
        raise bad_request(f"resourceVersion: Invalid value: {text!r}: must be a number")
    requested = int(text)
    match = ctx.query.get("resourceVersionMatch", "")
    if match == "Exact" and requested < await ctx.state.store.compacted_rv():
        raise gone(f"too old resource version: {requested}")
    if requested > ctx.state.hub.head_rv and not await ctx.state.hub.wait_for(requested, 3.0):
        raise ApiError(
            504,
            "Timeout",
            f"Too large resource version: {requested}, current: {ctx.state.hub.head_rv}",
            retry_after_seconds=1,
        )
