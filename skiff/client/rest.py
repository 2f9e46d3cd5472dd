"""A small REST client for the Kubernetes API: sync (`Client`) and asyncio (`AsyncClient`).

Both share one `RequestBuilder` (`skiff.client.builder`), which turns a verb on a resource into method,
path, query and body following the API conventions, and one set of verbs (`_Verbs`); the clients only
send, decode with orjson and raise `ApiError` for any non-2xx reply. Connections are pooled HTTP/1.1
keep-alive connections (httpx).
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx
import orjson

from skiff.api.kinds import BUILTINS, ResourceTable
from skiff.client.builder import JSON, ApiRequest, PatchType, RequestBuilder, ResourceRef
from skiff.client.kubeconfig import ClientConfig
from skiff.client.watch import AsyncWatchStream, WatchStream, error_from_response

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_PAGE_SIZE = 500
# What a verb returns: the decoded reply (sync) or a coroutine of it (async).
Reply = TypeVar("Reply")


def _version() -> str:
    try:
        return importlib.metadata.version("skiff")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


def default_user_agent(component: str = "skiff") -> str:
    return f"{component}/{_version()} ({platform.system().lower()}/{platform.machine().lower()})"


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
        # Keep idle connections well past the slowest periodic caller (a lease renewed every 10 s): a
        # fresh TLS handshake per renewal costs both sides far more than the request itself.
        "limits": httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=90
        ),
    }


def _watch_timeout(timeout: float) -> httpx.Timeout:
    # A watch is quiet for as long as nothing changes: no read timeout; the server ends it.
    return httpx.Timeout(timeout, read=None)


class _Verbs(Generic[Reply]):
    """The verbs both clients offer, in terms of `_call`: build a request with `self.requests` and send it.
    `namespace=None` on list/watch means all namespaces; on the other verbs the object's own namespace or
    the config's default namespace is used."""

    requests: RequestBuilder

    def _call(self, build: Callable[..., ApiRequest], *args: Any) -> Reply:
        raise NotImplementedError

    def get_path(self, path: str, params: Iterable[tuple[str, str]] = ()) -> Reply:
        """GET a non-resource path such as `/version` or `/apis`."""
        return self._call(ApiRequest, "GET", path, list(params))

    def get(self, resource: ResourceRef, name: str, namespace: str | None = None, subresource: str = "") -> Reply:
        return self._call(self.requests.get, resource, name, namespace, subresource)

    def list(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> Reply:
        return self._call(
            self.requests.list,
            resource,
            namespace,
            label_selector,
            field_selector,
            limit,
            continue_token,
            resource_version,
        )

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
    ) -> Reply:
        """POST `obj`; `resource`/`name`/`subresource` address subresources such as pods/x/binding."""
        return self._call(self.requests.create, obj, resource, namespace, name, subresource, field_manager, dry_run)

    def update(
        self,
        obj: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str = "",
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> Reply:
        return self._call(self.requests.update, obj, namespace, subresource, field_manager, dry_run)

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
    ) -> Reply:
        return self._call(
            self.requests.patch,
            resource,
            name,
            patch,
            namespace,
            patch_type,
            field_manager,
            force,
            subresource,
            dry_run,
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
    ) -> Reply:
        """DELETE; returns the object (still terminating or finalizing) or a success Status."""
        return self._call(
            self.requests.delete,
            resource,
            name,
            namespace,
            propagation_policy,
            grace_period_seconds,
            preconditions,
            dry_run,
        )


class Client(_Verbs[dict[str, Any]]):
    """Blocking API client."""

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

    def _call(self, build: Callable[..., ApiRequest], *args: Any) -> dict[str, Any]:
        return self.send(build(*args))

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
        return WatchStream(self.open(request, stream=True))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_Verbs[Coroutine[Any, Any, dict[str, Any]]]):
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

    async def _call(self, build: Callable[..., ApiRequest], *args: Any) -> dict[str, Any]:
        # The request is built inside the coroutine, so a bad argument raises where it is awaited.
        return await self.send(build(*args))

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
