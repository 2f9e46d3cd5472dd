"""The proxy's HTTP endpoint: `/metrics`, `/healthz`, and the rendered tables at `/tables/<node>/<mode>`
(all of a node's files, each under a `# <command>` header) or `/tables/<node>/<mode>/<file>` (one file)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import orjson
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy.metrics import ProxyMetrics
from skiff.net.render import Tables

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
TEXT = "text/plain; charset=utf-8"


class ProxyHttp:
    def __init__(
        self, tables: Callable[[str], Tables | None], nodes: Callable[[], list[str]], metrics: ProxyMetrics
    ) -> None:
        self.tables = tables
        self.nodes = nodes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        status, content_type, body = self.route(scope["method"], scope["path"])
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method != "GET":
            return 405, TEXT, b"only GET is served\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
        if path in ("/healthz", "/livez", "/readyz"):
            return 200, TEXT, b"ok\n"
        parts = [p for p in path.split("/") if p]
        if parts == ["tables"]:
            listing = {node: (t.mode if (t := self.tables(node)) else None) for node in self.nodes()}
            return 200, "application/json", orjson.dumps(listing)
        if len(parts) in (3, 4) and parts[0] == "tables":
            tables = self.tables(parts[1])
            if tables is None:
                return 404, TEXT, f"no tables for node {parts[1]!r}\n".encode()
            if tables.mode != parts[2]:
                return 404, TEXT, f"node {parts[1]!r} is proxied in {tables.mode} mode, not {parts[2]}\n".encode()
            if len(parts) == 4:
                if parts[3] not in tables.files:
                    return 404, TEXT, f"no file {parts[3]!r}; files: {', '.join(tables.files)}\n".encode()
                return 200, TEXT, tables.text(parts[3]).encode()
            return 200, TEXT, tables.combined().encode()
        return 404, TEXT, b"not found\n"


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the proxy decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def http_server(app: ProxyHttp, host: str, port: int) -> QuietServer:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
    return QuietServer(config)
