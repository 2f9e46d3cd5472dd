"""A small REST client for the Kubernetes API: sync (`Client`) and asyncio (`AsyncClient`).

Both share one `RequestBuilder`, which turns a verb on a resource into method, path, query and body
following the API conventions; the clients only send, decode with orjson and raise `ApiError` for any
non-2xx reply. Connections are pooled HTTP/1.1 keep-alive connections (httpx).
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson

from skiff.api.kinds import BUILTINS, ResourceTable, ResourceType
from skiff.client.kubeconfig import ClientConfig
from skiff.client.watch import AsyncWatchStream, WatchStream, error_from_response

# A resource named by its ResourceType or by (apiVersion, kind), e.g. ("apps/v1", "Deployment").
ResourceRef = ResourceType | tuple[str, str]
PatchType = Literal["merge", "json", "strategic", "apply"]
Query = list[tuple[str, str]]

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
JSON = "application/json"
PARTIAL_OBJECT_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_PAGE_SIZE = 500


def _version() -> str:
    try:
        return importlib.metadata.version("skiff")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


def default_user_agent(component: str = "skiff") -> str:
    return f"{component}/{_version()} ({platform.system().lower()}/{platform.machine().lower()})"


def resource_path(
    resource: ResourceType, namespace: str | None = None, name: str | None = None, subresource: str = ""
) -> str:
    """`/api/v1/namespaces/{ns}/pods/{name}/{sub}` and its cluster-scoped and group forms."""
    parts = ["/apis", resource.group, resource.version] if resource.group else ["/api", resource.version]
    if resource.namespaced and namespace:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(resource.plural)
    if name:
        parts.append(quote(name, safe=""))
    elif subresource:
        raise ValueError("a subresource needs the name of its object")
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


@dataclass(frozen=True)
class ApiRequest:
    """One request, ready to send."""

    method: str
    path: str
    params: Query = field(default_factory=list)
    body: bytes | None = None
    content_type: str | None = None
    # Overrides the client's Accept header, e.g. for a server-side Table (`TABLE`).
    accept: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.content_type} if self.content_type else {}
        if self.accept:
            headers["Accept"] = self.accept
        return headers


def _query(**values: str | int | bool | None) -> Query:
    """Query parameters in API spelling; None means absent."""
    out: Query = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append((key, str(value)))
    return out


def _dry_run(enabled: bool) -> str | None:
    return "All" if enabled else None


class RequestBuilder:
    """Turns API verbs into requests; shared by the sync and async clients."""

    def __init__(self, default_namespace: str = "default", resources: ResourceTable = BUILTINS) -> None:
        self.default_namespace = default_namespace
        self.resources = resources

    def resource(self, ref: ResourceRef) -> ResourceType:
        if isinstance(ref, ResourceType):
            return ref
        api_version, kind = ref
        found = self.resources.by_api_version(api_version, kind)
        if found is None:
            raise ValueError(f"unknown kind {kind!r} in {api_version!r}: pass its ResourceType instead")
        return found

    def _object_path(
        self, resource: ResourceType, namespace: str | None, name: str | None, subresource: str = ""
    ) -> str:
        return resource_path(resource, namespace or self.default_namespace, name, subresource)

    def _target(
        self, obj: Mapping[str, Any], resource: ResourceRef | None, namespace: str | None
    ) -> tuple[ResourceType, str | None]:
        """The resource and namespace an object is written to: explicit arguments win over its fields."""
        resolved = self.resource(resource or (obj.get("apiVersion", ""), obj.get("kind", "")))
        metadata = obj.get("metadata") or {}
        return resolved, namespace or metadata.get("namespace") or self.default_namespace

    def get(self, ref: ResourceRef, name: str, namespace: str | None, subresource: str = "") -> ApiRequest:
        return ApiRequest("GET", self._object_path(self.resource(ref), namespace, name, subresource))

    def list(
        self,
        ref: ResourceRef,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> ApiRequest:
        params = _query(
            labelSelector=label_selector,
            fieldSelector=field_selector,
            limit=limit,
            resourceVersion=resource_version,
            **{"continue": continue_token},
        )
        # Without a namespace a namespaced resource is listed across all namespaces.
        return ApiRequest("GET", resource_path(self.resource(ref), namespace), params)

    def watch(
        self,
        ref: ResourceRef,
        namespace: str | None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_watch_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> ApiRequest:
        params = _query(
            watch=True,
            resourceVersion=resource_version,
            labelSelector=label_selector,
            fieldSelector=field_selector,
            allowWatchBookmarks=allow_watch_bookmarks or None,
            timeoutSeconds=timeout_seconds,
        )
        return ApiRequest("GET", resource_path(self.resource(ref), namespace), params)

    def create(
        self,
        obj: Mapping[str, Any],
        resource: ResourceRef | None = None,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str = "",
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> ApiRequest:
        resolved, target_namespace = self._target(obj, resource, namespace)
        path = resource_path(resolved, target_namespace, name, subresource)
        params = _query(fieldManager=field_manager, dryRun=_dry_run(dry_run))
        return ApiRequest("POST", path, params, orjson.dumps(obj), JSON)

    def update(
        self,
        obj: Mapping[str, Any],
        namespace: str | None = None,
        subresource: str = "",
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> ApiRequest:
        resolved, target_namespace = self._target(obj, None, namespace)
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            raise ValueError("an update needs metadata.name")
        path = resource_path(resolved, target_namespace, name, subresource)
        params = _query(fieldManager=field_manager, dryRun=_dry_run(dry_run))
        return ApiRequest("PUT", path, params, orjson.dumps(obj), JSON)

    def patch(
        self,
        ref: ResourceRef,
        name: str,
        patch: Any,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        field_manager: str | None = None,
        force: bool | None = None,
        subresource: str = "",
        dry_run: bool = False,
    ) -> ApiRequest:
        if patch_type not in PATCH_CONTENT_TYPES:
            raise ValueError(f"unknown patch type {patch_type!r}")
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field manager")
        if force is not None and patch_type != "apply":
            raise ValueError("force applies only to server-side apply")
        # JSON is YAML, so an apply patch is sent as JSON under the apply media type.
        body = patch if isinstance(patch, bytes) else orjson.dumps(patch)
        params = _query(fieldManager=field_manager, force=force, dryRun=_dry_run(dry_run))
        path = self._object_path(self.resource(ref), namespace, name, subresource)
        return ApiRequest("PATCH", path, params, body, PATCH_CONTENT_TYPES[patch_type])

    def delete(
        self,
        ref: ResourceRef,
        name: str,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> ApiRequest:
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            options["preconditions"] = dict(preconditions)
        if dry_run:
            options["dryRun"] = ["All"]
        path = self._object_path(self.resource(ref), namespace, name)
        return ApiRequest("DELETE", path, [], orjson.dumps(options), JSON)


def _decode(response: httpx.Response) -> dict[str, Any]:
    if not response.is_success:
        raise error_from_response(response)
    return orjson.loads(response.content) if response.content else {}


def _merge_pages(first: dict[str, Any], items: list[Any], last: dict[str, Any]) -> dict[str, Any]:
    """One list made of all pages; its resourceVersion is the (shared) snapshot the pages came from."""
    metadata = {"resourceVersion": (last.get("metadata") or {}).get("resourceVersion", "")}
    return {
        "apiVersion": first.get("apiVersion"),
        "kind": first.get("kind"),
        "metadata": metadata,
        "items": items,
    }


def _next_page(page: dict[str, Any], items: list[Any]) -> str:
    items.extend(page.get("items") or [])
    return (page.get("metadata") or {}).get("continue") or ""


class _BearerAuth(httpx.Auth):
    """Adds the config's bearer token to every request; the token never enters a log line."""

    def __init__(self, config: ClientConfig) -> None:
        self._config = config

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._config.bearer_token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _client_options(
    config: ClientConfig, timeout: float, user_agent: str | None, max_connections: int, accept: str = JSON
) -> dict[str, Any]:
    verify: Any = config.ssl_context() if config.server.startswith("https:") else True
    return {
        "base_url": config.server,
        "verify": verify,
        "auth": _BearerAuth(config),
        "headers": {"User-Agent": user_agent or default_user_agent(), "Accept": accept},
        "timeout": httpx.Timeout(timeout),
        "limits": httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    }


def _watch_timeout(timeout: float) -> httpx.Timeout:
    # A watch is quiet for as long as nothing changes: no read timeout; the server ends it.
    return httpx.Timeout(timeout, read=None)


class Client:
    """Blocking API client. `namespace=None` on list/watch means all namespaces; on the other verbs the
    object's own namespace or the config's default namespace is used."""

    def __init__(
        self,
        config: ClientConfig,
        resources: ResourceTable = BUILTINS,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        user_agent: str | None = None,
        max_connections: int = 20,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.requests = RequestBuilder(config.namespace, resources)
        self._timeout = timeout
        options = _client_options(config, timeout, user_agent, max_connections)
        self._http = httpx.Client(transport=transport, **options)

    def send(self, request: ApiRequest) -> dict[str, Any]:
        """Send a prepared request and return the decoded reply; non-2xx replies raise `ApiError`."""
        response = self._http.request(
            request.method,
            request.path,
            params=request.params,
            content=request.body,
            headers=request.headers(),
        )
        return _decode(response)

    def open(self, request: ApiRequest, stream: bool = False) -> httpx.Response:
        """Send a request and return the raw reply (for text such as pod logs, or a stream to iterate and
        close); non-2xx replies raise `ApiError`. Streams have no read timeout."""
        timeout = _watch_timeout(self._timeout) if stream else httpx.USE_CLIENT_DEFAULT
        prepared = self._http.build_request(
            request.method,
            request.path,
            params=request.params,
            content=request.body,
            headers=request.headers(),
            timeout=timeout,
        )
        response = self._http.send(prepared, stream=stream)
        if not response.is_success:
            response.read()
            response.close()
            raise error_from_response(response)
        return response

    def get_path(self, path: str, params: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
        """GET a non-resource path such as `/version` or `/apis`."""
        return self.send(ApiRequest("GET", path, list(params)))

    def get(
        self, resource: ResourceRef, name: str, namespace: str | None = None, subresource: str = ""
    ) -> dict[str, Any]:
        return self.send(self.requests.get(resource, name, namespace, subresource))

    def list(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        return self.send(
            self.requests.list(
                resource, namespace, label_selector, field_selector, limit, continue_token, resource_version
            )
        )

    def list_all(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> dict[str, Any]:
        """Every page of a list, following `continue`, as one list."""
        items: list[Any] = []
        first = page = self.list(resource, namespace, label_selector, field_selector, page_size)
        while token := _next_page(page, items):
            page = self.list(resource, namespace, label_selector, field_selector, page_size, token)
        return _merge_pages(first, items, page)

    def create(
        self,
        obj: Mapping[str, Any],
        namespace: str | None = None,
        *,
        resource: ResourceRef | None = None,
        name: str | None = None,
        subresource: str = "",
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """POST `obj`; `resource`/`name`/`subresource` address subresources such as pods/x/binding."""
        return self.send(self.requests.create(obj, resource, namespace, name, subresource, field_manager, dry_run))

    def update(
        self,
        obj: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str = "",
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        return self.send(self.requests.update(obj, namespace, subresource, field_manager, dry_run))

    def patch(
        self,
        resource: ResourceRef,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        field_manager: str | None = None,
        force: bool | None = None,
        subresource: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        return self.send(
            self.requests.patch(
                resource, name, patch, namespace, patch_type, field_manager, force, subresource, dry_run
            )
        )

    def delete(
        self,
        resource: ResourceRef,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """DELETE; returns the object (still terminating or finalizing) or a success Status."""
        return self.send(
            self.requests.delete(
                resource, name, namespace, propagation_policy, grace_period_seconds, preconditions, dry_run
            )
        )

    def watch(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_watch_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> WatchStream:
        """Open a watch; an error reply (e.g. 410 for a compacted version) raises `ApiError` here, an
        ERROR event raises it during iteration."""
        request = self.requests.watch(
            resource,
            namespace,
            resource_version,
            label_selector,
            field_selector,
            allow_watch_bookmarks,
            timeout_seconds,
        )
        prepared = self._http.build_request(
            "GET", request.path, params=request.params, timeout=_watch_timeout(self._timeout)
        )
        response = self._http.send(prepared, stream=True)
        if not response.is_success:
            response.read()
            response.close()
            raise error_from_response(response)
        return WatchStream(response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient:
    """The asyncio twin of `Client`, with the same verbs and the same namespace rules."""

    def __init__(
        self,
        config: ClientConfig,
        resources: ResourceTable = BUILTINS,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        user_agent: str | None = None,
        max_connections: int = 20,
        transport: httpx.AsyncBaseTransport | None = None,
        accept: str = JSON,
    ) -> None:
        # `accept` picks the representation of every reply, e.g. `PARTIAL_OBJECT_METADATA` for a client
        # that only needs metadata (lists and watches of any resource then carry no spec or data).
        self.config = config
        self.requests = RequestBuilder(config.namespace, resources)
        self._timeout = timeout
        options = _client_options(config, timeout, user_agent, max_connections, accept)
        self._http = httpx.AsyncClient(transport=transport, **options)

    async def send(self, request: ApiRequest) -> dict[str, Any]:
        response = await self._http.request(
            request.method,
            request.path,
            params=request.params,
            content=request.body,
            headers=request.headers(),
        )
        return _decode(response)

    async def get_path(self, path: str, params: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
        return await self.send(ApiRequest("GET", path, list(params)))

    async def get(
        self, resource: ResourceRef, name: str, namespace: str | None = None, subresource: str = ""
    ) -> dict[str, Any]:
        return await self.send(self.requests.get(resource, name, namespace, subresource))

    async def list(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        return await self.send(
            self.requests.list(
                resource, namespace, label_selector, field_selector, limit, continue_token, resource_version
            )
        )

    async def list_all(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> dict[str, Any]:
        items: list[Any] = []
        first = page = await self.list(resource, namespace, label_selector, field_selector, page_size)
        while token := _next_page(page, items):
            page = await self.list(resource, namespace, label_selector, field_selector, page_size, token)
        return _merge_pages(first, items, page)

    async def create(
        self,
        obj: Mapping[str, Any],
        namespace: str | None = None,
        *,
        resource: ResourceRef | None = None,
        name: str | None = None,
        subresource: str = "",
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        return await self.send(
            self.requests.create(obj, resource, namespace, name, subresource, field_manager, dry_run)
        )

    async def update(
        self,
        obj: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str = "",
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        return await self.send(self.requests.update(obj, namespace, subresource, field_manager, dry_run))

    async def patch(
        self,
        resource: ResourceRef,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        field_manager: str | None = None,
        force: bool | None = None,
        subresource: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        return await self.send(
            self.requests.patch(
                resource, name, patch, namespace, patch_type, field_manager, force, subresource, dry_run
            )
        )

    async def delete(
        self,
        resource: ResourceRef,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        return await self.send(
            self.requests.delete(
                resource, name, namespace, propagation_policy, grace_period_seconds, preconditions, dry_run
            )
        )

    async def watch(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_watch_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> AsyncWatchStream:
        request = self.requests.watch(
            resource,
            namespace,
            resource_version,
            label_selector,
            field_selector,
            allow_watch_bookmarks,
            timeout_seconds,
        )
        prepared = self._http.build_request(
            "GET", request.path, params=request.params, timeout=_watch_timeout(self._timeout)
        )
        response = await self._http.send(prepared, stream=True)
        if not response.is_success:
            await response.aread()
            await response.aclose()
            raise error_from_response(response)
        return AsyncWatchStream(response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
