"""Encoding objects, lists and tables for the client in the form it asked for."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from apiserver.http.codec import Output, dump_yaml, negotiate
from apiserver.http.context import RequestContext
from apiserver.http.objects import partial_metadata
from apiserver.registry.base import Strategy
from skiff.api.errors import ApiError

JSON_TYPE = "application/json"
YAML_TYPE = "application/yaml"


def json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=JSON_TYPE, headers=headers)


def status_response(error: ApiError) -> Response:
    headers = {}
    if error.retry_after_seconds is not None:
        headers["Retry-After"] = str(error.retry_after_seconds)
    return json_response(orjson.dumps(error.status()), error.code, headers)


def success_status(details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    return body


def output_of(ctx: RequestContext) -> Output:
    include = ctx.query.get("includeObject")
    return negotiate(ctx.request.headers.get("accept"), include)


def _finish(ctx: RequestContext, body: bytes, status: int, yaml: bool, value: Any = None) -> Response:
    if yaml:
        body = dump_yaml(value if value is not None else orjson.loads(body))
        response = Response(body, status_code=status, media_type=YAML_TYPE)
    else:
        response = json_response(body, status)
    for warning in ctx.warnings:
        response.headers.append("Warning", f'299 - "{warning}"')
    return response


def object_response(ctx: RequestContext, data: bytes, obj: dict[str, Any] | None, status: int = 200) -> Response:
    """One object: raw stored bytes when JSON was asked, else a Table row or partial metadata."""
    output = output_of(ctx)
    if ctx.strategy.transforms_reads:
        obj = ctx.strategy.present(orjson.loads(data))
        data = orjson.dumps(obj)
    if output.form == "object":
        return _finish(ctx, data, status, output.yaml)
    obj = obj if obj is not None else orjson.loads(data)
    if output.form == "partial":
        value = partial_metadata(obj)
    else:
        value = build_table(ctx.strategy, [obj], obj.get("metadata", {}).get("resourceVersion", ""), output)
    return _finish(ctx, orjson.dumps(value), status, output.yaml, value)


def value_response(ctx: RequestContext, value: dict[str, Any], status: int = 200) -> Response:
    output = output_of(ctx)
    return _finish(ctx, orjson.dumps(value), status, output.yaml, value)


def list_response(
    ctx: RequestContext, rows: list[bytes], rv: int, continue_token: str | None, remaining: int | None = None
) -> Response:
    output = output_of(ctx)
    resource = ctx.resource
    if ctx.strategy.transforms_reads:
        rows = [orjson.dumps(ctx.strategy.present(orjson.loads(row))) for row in rows]
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if continue_token:
        meta["continue"] = continue_token
        if remaining is not None:
            meta["remainingItemCount"] = remaining
    if output.form == "object" and not output.yaml:
        head = orjson.dumps({"kind": resource.list_kind, "apiVersion": resource.api_version, "metadata": meta})
        body = head[:-1] + b',"items":[' + b",".join(rows) + b"]}"
        return _finish(ctx, body, 200, False)
    objects = [orjson.loads(row) for row in rows]
    if output.form == "object":
        value: dict[str, Any] = {
            "kind": resource.list_kind,
            "apiVersion": resource.api_version,
            "metadata": meta,
            "items": objects,
        }
    elif output.form == "partial":
        value = {
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
            "items": [partial_metadata(o) for o in objects],
        }
    else:
        value = build_table(ctx.strategy, objects, str(rv), output, continue_token)
    return _finish(ctx, orjson.dumps(value), 200, output.yaml, value)


def build_table(
    strategy: Strategy,
    objects: list[dict[str, Any]],
    rv: str,
    output: Output,
    continue_token: str | None = None,
    with_columns: bool = True,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if continue_token:
        meta["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": [c.to_dict() for c in strategy.table_columns()] if with_columns else [],
        "rows": [table_row(strategy, obj, output) for obj in objects],
    }


def table_row(strategy: Strategy, obj: dict[str, Any], output: Output) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": strategy.table_row(obj)}
    if output.include_object == "Object":
        row["object"] = obj
    elif output.include_object != "None":
        row["object"] = partial_metadata(obj)
    return row
