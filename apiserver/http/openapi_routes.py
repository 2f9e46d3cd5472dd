"""Serving the OpenAPI documents: /openapi/v3, /openapi/v3/<group-version>, /openapi/v2."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response

from apiserver.http import openapi
from skiff.api.errors import ApiError

if TYPE_CHECKING:
    from apiserver.http.server_state import ServerState

V2_PROTOBUF_MEDIA = openapi.OPENAPI_V2_PROTOBUF


def _not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


async def serve_openapi(state: ServerState, request: Request) -> Response:
    path = request.url.path.rstrip("/")
    resources = state.resources
    if path == "/openapi/v3":
        return Response(orjson.dumps(openapi.openapi_v3_index(resources)), media_type="application/json")
    if path.startswith("/openapi/v3/"):
        rest = path.removeprefix("/openapi/v3/")
        parts = rest.split("/")
        if parts[0] == "api" and len(parts) == 2:
            group, version = "", parts[1]
        elif parts[0] == "apis" and len(parts) == 3:
            group, version = parts[1], parts[2]
        else:
            raise _not_found()
        rendered = openapi.openapi_v3_document_json(resources, group, version)
        if rendered is None:
            raise _not_found()
        headers = {"ETag": f'"{rendered.etag}"', "Cache-Control": "public, immutable"}
        return Response(rendered.body, media_type="application/json", headers=headers)
    if path in ("/openapi/v2", "/swagger-2.0.0.pb-v1", "/swagger.json"):
        accept = request.headers.get("accept", "")
        if path == "/swagger-2.0.0.pb-v1" or openapi.wants_v2_protobuf(accept):
            rendered = openapi.openapi_v2_protobuf(resources)
            return Response(rendered.body, media_type=V2_PROTOBUF_MEDIA, headers={"ETag": f'"{rendered.etag}"'})
        rendered = openapi.openapi_v2_json(resources)
        return Response(rendered.body, media_type="application/json", headers={"ETag": f'"{rendered.etag}"'})
    raise _not_found()
