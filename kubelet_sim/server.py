"""The kubelet's HTTPS endpoint: `/containerLogs/<namespace>/<pod>/<container>` and `/healthz`.

One server serves every node of the process: it listens on each node's address at `--kubelet-port`
and answers for the node whose address the connection came in on. The API server's `pods/log`
proxies here. Query parameters are those of `PodLogOptions`: follow, tailLines, sinceSeconds,
sinceTime, timestamps, previous and limitBytes. Each response closes its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

from kubelet_sim import containerlogs, tls
from kubelet_sim.containerlogs import LogOptions
from kubelet_sim.pods import LogError, LogTarget, PodWorkers
from kubelet_sim.runtime import ContainerState
from skiff.api.timefmt import parse_time

log = logging.getLogger("skiff.kubelet.server")

MAX_REQUEST_HEAD = 16 * 1024


class HttpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or [""])[-1].lower() in ("true", "1")


def _integer(query: dict[str, list[str]], name: str) -> int | None:
    raw = (query.get(name) or [None])[-1]
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400, f"invalid value for {name}: {raw!r}") from None
    if value < 0:
        raise HttpError(400, f"{name} must be greater than or equal to 0")
    return value


def log_options(query: dict[str, list[str]]) -> LogOptions:
    since: float | None = None
    since_seconds = _integer(query, "sinceSeconds")
    since_time = (query.get("sinceTime") or [""])[-1]
    if since_seconds is not None and since_time:
        raise HttpError(400, "at most one of sinceTime or sinceSeconds may be specified")
    if since_seconds is not None:
        since = time.time() - since_seconds
    elif since_time:
        try:
            since = parse_time(since_time).timestamp()
        except ValueError:
            raise HttpError(400, f"invalid sinceTime {since_time!r}") from None
    return LogOptions(
        follow=_flag(query, "follow"),
        tail_lines=_integer(query, "tailLines"),
        since=since,
        timestamps=_flag(query, "timestamps"),
        limit_bytes=_integer(query, "limitBytes"),
    )


class KubeletServer:
    def __init__(self, nodes: dict[str, PodWorkers], port: int, context: ssl.SSLContext) -> None:
        self.nodes = nodes  # node address -> that node's pod workers
        self.port = port
        self.context = context
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, host=list(self.nodes), port=self.port, ssl=self.context, reuse_address=True
        )
        log.info("serving container logs on port %d for %s", self.port, ", ".join(self.nodes))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except HttpError as error:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await _send_text(writer, error.code, error.message)
        except Exception:
            log.exception("serving a kubelet request failed")
            with contextlib.suppress(ConnectionError, RuntimeError):
                await _send_text(writer, 500, "internal error")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_REQUEST_HEAD:
            raise HttpError(431, "request header too large")
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        self._authorize(writer)
        url = urlsplit(target)
        if url.path in ("/healthz", "/healthz/"):
            await _send_text(writer, 200, "ok")
            return
        if method not in ("GET", "HEAD"):
            raise HttpError(405, f"method {method} not allowed")
        parts = [unquote(p) for p in url.path.split("/") if p]
        if len(parts) != 4 or parts[0] != "containerLogs":
            raise HttpError(404, "404 page not found")
        address = writer.get_extra_info("sockname")[0]
        workers = self.nodes.get(address)
        if workers is None:
            raise HttpError(404, "404 page not found")
        query = parse_qs(url.query, keep_blank_values=True)
        options = log_options(query)
        try:
            target_file = await workers.log_target(parts[1], parts[2], parts[3], _flag(query, "previous"))
        except LogError as error:
            raise HttpError(error.code, error.message) from None
        await self._stream(writer, workers, target_file, options)

    @staticmethod
    def _authorize(writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        identity = tls.peer_identity(ssl_object.getpeercert() if ssl_object is not None else None)
        if identity is None:
            raise HttpError(401, "Unauthorized")
        if not tls.allowed(identity):
            raise HttpError(403, f"Forbidden (user={identity[0]}, verb=get, resource=nodes, subresource=proxy)")

    async def _stream(
        self, writer: asyncio.StreamWriter, workers: PodWorkers, target: LogTarget, options: LogOptions
    ) -> None:
        runtime = workers.runtime
        # A simulated runtime writes its logs lazily; a real one has them on disk already.
        flush_logs = getattr(runtime, "flush_logs", None)

        def flush() -> None:
            if flush_logs is not None:
                flush_logs(target.container_id)

        async def running() -> bool:
            try:
                status = await runtime.container_status(target.container_id)
            except KeyError:
                return False
            return status.state is ContainerState.RUNNING

        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        async for chunk in containerlogs.stream(target.path, options, running, flush):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()


async def _send_text(writer: asyncio.StreamWriter, code: int, text: str) -> None:
    body = text.encode()
    phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Error"
    writer.write(
        f"HTTP/1.1 {code} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
