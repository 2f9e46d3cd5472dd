"""The HTTP application: authenticate → authorize → route to discovery, OpenAPI or a resource handler."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from apiserver.auth.authn import UserInfo
from apiserver.auth.impersonation import impersonate, wants_impersonation
from apiserver.auth.rbac import forbidden_error
from apiserver.http import discovery
from apiserver.http.context import RequestContext
from apiserver.http.deletes import handle_delete, handle_deletecollection
from apiserver.http.reads import handle_get, handle_list
from apiserver.http.requestinfo import RequestInfo, parse_request
from apiserver.http.responses import json_response, status_response
from apiserver.http.server_state import ServerState
from apiserver.http.subresources import handle_binding, handle_finalize, handle_scale, unsupported_subresource
from apiserver.http.version import version_info
from apiserver.http.watch import handle_watch
from apiserver.http.writes import handle_create, handle_patch, handle_update
from skiff.api.errors import ApiError, internal, method_not_allowed, unauthorized
from skiff.api.kinds import BUILTINS, ResourceType

log = logging.getLogger("skiff.apiserver")
access_log = logging.getLogger("skiff.access")

Handler = Callable[[RequestContext], Awaitable[Response]]

BUILTIN_GROUPS = frozenset(r.group for r in BUILTINS)
NEWLY_SERVED_WAIT_SECONDS = 2.0

MAIN_HANDLERS: dict[str, Handler] = {
    "get": handle_get,
    "list": handle_list,
    "watch": handle_watch,
    "create": handle_create,
    "update": handle_update,
    "patch": handle_patch,
    "delete": handle_delete,
    "deletecollection": handle_deletecollection,
}

# Subresources that read and write the parent object itself, with the spec/status split applied.
OBJECT_VIEW_SUBRESOURCES = frozenset({"status", "ephemeralcontainers"})
# Service-account issuer discovery: public, as kube grants it to unauthenticated users by default.
OPEN_PLUGGED_PATHS = ("/.well-known/openid-configuration", "/openid/v1/jwks")


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.skiff = state

    async def health(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def version(_request: Request) -> Response:
        return json_response(orjson.dumps(version_info()))

    async def everything(request: Request) -> Response:
        return await serve(state, request)  # what ApiServerApp passes on here (POST /version, say)

    for path in ("/healthz", "/livez", "/readyz"):
        app.router.routes.append(Route(path, health, methods=["GET", "HEAD"]))
    app.router.routes.append(Route("/version", version, methods=["GET"]))

    async def open_plugged(request: Request) -> Response:
        handler = state.extra_paths.get(request.url.path)
        if handler is None:
            return status_response(ApiError(404, "NotFound", "the server could not find the requested resource"))
        return await handler(request)

    for path in OPEN_PLUGGED_PATHS:
        app.router.routes.append(Route(path, open_plugged, methods=["GET"]))
    app.router.routes.append(Route("/{path:path}", everything, methods=sorted(SERVED_METHODS)))
    return app


# The methods the catch-all route hands to `serve`; anything else gets the framework's 405.
SERVED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# Paths the FastAPI routes above answer themselves (for GET and HEAD).
ROUTED_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", *OPEN_PLUGGED_PATHS})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ApiServerApp:
    """The ASGI entry point: API requests go straight to `serve`, everything else to the FastAPI app.

    Routing every request through FastAPI's router and middleware stack costs a sizeable share of a
    small request's CPU; the API paths need none of it, so only health, version, the plugged open paths
    and methods the API does not serve take that way.
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.fastapi = create_app(state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "")
        if scope["type"] != "http" or method not in SERVED_METHODS or scope["path"] in ROUTED_PATHS:
            await self.fastapi(scope, receive, send)
            return
        request = Request(scope, receive, send)
        response = await serve(self.state, request)
        await response(scope, receive, send)


async def serve(state: ServerState, request: Request) -> Response:
    started = time.perf_counter()
    info: RequestInfo | None = None
    user: UserInfo | None = None
    authenticated: UserInfo | None = None  # who made the request, before any impersonation (for audit)
    try:
        watch = request.query_params.get("watch", "") in ("true", "1")
        info = parse_request(request.method, request.url.path, watch)
        user = await state.authn.authenticate(request.scope, request.headers.get("authorization"))
        if user is None:
            raise unauthorized()
        authenticated = user
        if wants_impersonation(request.scope["headers"]):
            user = await impersonate(state.authz, user, request.headers.raw)
        decision = await state.authz.authorize(user, info)
        if not decision.allowed:
            raise _forbidden(user, info, decision.reason)
        if info.is_resource:
            response = await serve_resource(state, request, info, user)
        else:
            response = await serve_non_resource(state, request, info)
    except ApiError as error:
        response = status_response(error)
    except Exception:
        log.exception("request failed: %s %s", request.method, request.url.path)
        response = status_response(internal())
    _observe(state, info, user, response.status_code, time.perf_counter() - started, request.method)
    if state.audit is not None:
        impersonated = user if user is not authenticated else None
        state.audit.record(request, info, authenticated, response, time.perf_counter() - started, impersonated)
    return response


def _forbidden(user: UserInfo, info: RequestInfo, reason: str) -> ApiError:
    return forbidden_error(user, info, reason)


async def serve_resource(state: ServerState, request: Request, info: RequestInfo, user: UserInfo) -> Response:
    resource = state.resources.by_path(info.group, info.version, info.resource) or await _newly_served(state, info)
    if resource is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if info.namespace and not resource.namespaced:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    ctx = RequestContext(request, info, user, resource, state.strategy(resource), state)
    if info.subresource:
        return await _serve_subresource(ctx)
    extra = state.extra_resources.get((resource.group, resource.plural))
    if extra is not None:
        if info.verb != "create":
            raise method_not_allowed()
        return await extra(ctx)
    if info.verb not in resource.verbs:
        raise method_not_allowed()
    if resource.namespaced and not info.namespace and info.verb not in ("list", "watch"):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return await MAIN_HANDLERS[info.verb](ctx)


async def _newly_served(state: ServerState, info: RequestInfo) -> ResourceType | None:
    """Look an unknown resource up again once this server has caught up with the store.

    Served custom resources follow the change stream, which trails the database by a moment: a client that
    read an Established CRD and then uses its resource at once must not get a 404 in between.
    """
    if not info.group or info.group in BUILTIN_GROUPS:
        return None
    await state.hub.wait_for(await state.store.current_rv(), NEWLY_SERVED_WAIT_SECONDS)
    return state.resources.by_path(info.group, info.version, info.resource)


async def _serve_subresource(ctx: RequestContext) -> Response:
    sub, verb = ctx.info.subresource, ctx.info.verb
    if not ctx.resource.has_subresource(sub):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if sub in OBJECT_VIEW_SUBRESOURCES and verb in ("get", "update", "patch"):
        return await MAIN_HANDLERS[verb](ctx)
    if sub == "scale" and verb in ("get", "update", "patch"):
        return await handle_scale(ctx)
    if sub == "binding" and verb == "create":
        return await handle_binding(ctx, ctx.info.name)
    if sub == "finalize" and verb == "update":
        return await handle_finalize(ctx)
    extra = ctx.state.extra_subresources.get((ctx.resource.kind, sub))
    if extra is not None:
        return await extra(ctx)
    raise unsupported_subresource(ctx)


async def serve_non_resource(state: ServerState, request: Request, info: RequestInfo) -> Response:
    path = request.url.path.rstrip("/") or "/"
    if request.method not in ("GET", "HEAD"):
        raise method_not_allowed()
    accept = request.headers.get("accept")
    parts = [p for p in path.split("/") if p]
    aggregated = discovery.aggregated_version(accept)
    if parts == ["api"]:
        if aggregated:
            return _aggregated(discovery.aggregated_list(state.resources, True, aggregated), aggregated)
        host = request.headers.get("host", f"{state.config.bind}:{state.config.port}")
        return json_response(orjson.dumps(discovery.api_versions(host)))
    if parts == ["apis"]:
        if aggregated:
            return _aggregated(discovery.aggregated_list(state.resources, False, aggregated), aggregated)
        return json_response(orjson.dumps(discovery.api_group_list(state.resources)))
    document = None
    if len(parts) == 2 and parts[0] == "api":
        document = discovery.api_resource_list(state.resources, "", parts[1])
    elif len(parts) == 2 and parts[0] == "apis":
        document = discovery.api_group(state.resources, parts[1])
    elif len(parts) == 3 and parts[0] == "apis":
        document = discovery.api_resource_list(state.resources, parts[1], parts[2])
    elif path == "/metrics":
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
    elif parts[:1] == ["openapi"] or path == "/swagger-2.0.0.pb-v1" or path == "/swagger.json":
        return await state.openapi(request)
    else:
        handler = state.extra_paths.get(path)
        if handler is not None:
            return await handler(request)
    if document is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return json_response(orjson.dumps(document))


def _aggregated(document: dict[str, object], version: str) -> Response:
    media = discovery.AGGREGATED_MEDIA.format(version=version)
    return Response(orjson.dumps(document), media_type=media)


def _observe(
    state: ServerState,
    info: RequestInfo | None,
    user: UserInfo | None,
    code: int,
    seconds: float,
    method: str,
) -> None:
    verb = info.verb if info is not None else method.lower()
    group = info.group if info is not None else ""
    resource = info.resource if info is not None else ""
    sub = info.subresource if info is not None else ""
    state.metrics.requests.labels(verb, group, resource, sub, str(code)).inc()
    if verb != "watch":
        state.metrics.latency.labels(verb, group, resource, sub).observe(seconds)
    if state.config.access_log and access_log.isEnabledFor(logging.INFO):
        entry = {
            "user": user.name if user else "",
            "verb": verb,
            "path": info.path if info is not None else "",
            "namespace": info.namespace if info is not None else "",
            "code": code,
            "ms": round(seconds * 1000, 2),
        }
        access_log.info(orjson.dumps(entry).decode())
