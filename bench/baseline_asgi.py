"""A bare ASGI endpoint served exactly like the API server, to measure this machine's HTTP ceiling.

It runs uvicorn with the API server's settings: the cluster's serving certificate, client certificates
verified against the cluster CA (CERT_OPTIONAL), the same HTTP protocol class (httptools, with the
client-certificate extension), one worker, uvloop when installed, no access log. Every request body is
read in full and answered with one fixed 1 KB JSON body (201 for POST, 200 otherwise), so the figures
show what TLS, HTTP parsing and the ASGI hop cost without any API server work.

    python -P bench/baseline_asgi.py --data-dir DIR --port 18443

DIR is an API server data directory: its pki/ must already exist (the API server creates it).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from apiserver.main import http_config
from skiff.pki.cluster import ClusterPki

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def fixed_body(size: int = 1024) -> bytes:
    """A JSON object of exactly `size` bytes, shaped like a small API object."""
    shell = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fixed", "namespace": "default"}, "pad": ""}
    pad = size - len(orjson.dumps(shell))
    shell["pad"] = "x" * pad
    body = orjson.dumps(shell)
    assert len(body) == size
    return body


BODY = fixed_body()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    status = 201 if scope["method"] == "POST" else 200
    await send({"type": "http.response.start", "status": status, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path, help="API server data dir holding pki/")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    pki = ClusterPki.under(args.data_dir)
    config = http_config(app, args.bind, args.port, pki)
    server = uvicorn.Server(config)
    try:
        import uvloop
    except ImportError:
        asyncio.run(server.serve())
    else:
        uvloop.run(server.serve())


if __name__ == "__main__":
    main()
