"""The audit log: one `audit.k8s.io/v1` Event per request, as a JSON line, at the Metadata level.

Metadata level means who did what to which object and with what outcome — never a request or response
body, so secret data, service-account tokens and token reviews cannot reach the log. Headers are not
logged either (an Authorization header would carry a credential).

The request path only builds the event and puts it on a queue; a writer thread appends the lines and
rotates the file by size (`PATH` → `PATH.1` → `PATH.2` …, keeping `maxbackup` old files). A watch is
recorded once, when its response starts (stage `ResponseStarted`); other requests are recorded when
their response is ready (stage `ResponseComplete`).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import queue
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from apiserver.auth.authn import UserInfo
from apiserver.http.requestinfo import RequestInfo

log = logging.getLogger("skiff.audit")

QUEUE_SIZE = 10_000
_STOP = object()


def _timestamp(epoch: float) -> str:
    """RFC 3339 with microseconds, as kube-apiserver writes audit timestamps."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _user(user: UserInfo | None) -> dict[str, Any]:
    if user is None:
        return {}
    out: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        out["uid"] = user.uid
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra.items()}
    return out


def source_ips(request: Request) -> list[str]:
    """X-Forwarded-For and X-Real-Ip addresses (as a proxy reported them), then the connection's peer."""
    ips: list[str] = []
    candidates = request.headers.get("x-forwarded-for", "").split(",")
    candidates.append(request.headers.get("x-real-ip", ""))
    for candidate in candidates:
        candidate = candidate.strip()
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if candidate not in ips:
            ips.append(candidate)
    if request.client is not None and request.client.host and request.client.host not in ips:
        ips.append(request.client.host)
    return ips


def object_ref(info: RequestInfo, response: Response | None = None) -> dict[str, str] | None:
    if not info.is_resource:
        return None
    name = info.name or (_created_name(response) if info.verb == "create" else "")
    ref = {
        "resource": info.resource,
        "namespace": info.namespace,
        "name": name,
        "apiGroup": info.group,
        "apiVersion": info.version,
        "subresource": info.subresource,
    }
    # Like kube's omitempty: absent rather than empty (apiGroup "" is the core group, also omitted).
    return {k: v for k, v in ref.items() if v}


def _created_name(response: Response | None) -> str:
    """The name of a created object (a create's URL has none; kube takes it from the object)."""
    body = getattr(response, "body", b"") if response is not None and response.status_code < 300 else b""
    if not body or not body.startswith(b"{"):
        return ""
    try:
        metadata = orjson.loads(body).get("metadata") or {}
    except orjson.JSONDecodeError:
        return ""
    return str(metadata.get("name") or "")


def build_event(
    request: Request,
    info: RequestInfo | None,
    user: UserInfo | None,
    response: Response,
    seconds: float,
    impersonated: UserInfo | None = None,
) -> dict[str, Any]:
    now = time.time()
    code = response.status_code
    query = request.url.query
    verb = info.verb if info is not None else request.method.lower()
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": request.headers.get("audit-id") or str(uuid.uuid4()),
        "stage": "ResponseStarted" if verb == "watch" and code < 300 else "ResponseComplete",
        "requestURI": request.url.path + (f"?{query}" if query else ""),
        "verb": verb,
        "user": _user(user),
    }
    if impersonated is not None:
        event["impersonatedUser"] = _user(impersonated)
    event["sourceIPs"] = source_ips(request)
    agent = request.headers.get("user-agent")
    if agent:
        event["userAgent"] = agent
    ref = object_ref(info, response) if info is not None else None
    if ref:
        event["objectRef"] = ref
    event["responseStatus"] = {"metadata": {}, "code": code}
    event["requestReceivedTimestamp"] = _timestamp(now - seconds)
    event["stageTimestamp"] = _timestamp(now)
    event["latency"] = f"{seconds * 1000:.3f}ms"
    return event


class AuditLog:
    """Queues audit events and writes them from a background thread, rotating the file by size."""

    def __init__(self, path: str, max_size_mb: float = 100.0, max_backups: int = 0) -> None:
        self.path = path
        self.max_bytes = int(max_size_mb * 1024 * 1024)
        self.max_backups = max_backups
        self.dropped = 0
        self._queue: queue.Queue[object] = queue.Queue(QUEUE_SIZE)
        self._handle: IO[bytes] | None = None
        self._size = 0
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)

    def start(self) -> AuditLog:
        self._open()
        self._thread.start()
        return self

    def record(
        self,
        request: Request,
        info: RequestInfo | None,
        user: UserInfo | None,
        response: Response,
        seconds: float,
        impersonated: UserInfo | None = None,
    ) -> None:
        """Queue one request's event; never blocks the request (a full queue drops and counts)."""
        try:
            event = build_event(request, info, user, response, seconds, impersonated)
            self._queue.put_nowait(orjson.dumps(event) + b"\n")
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("audit log writer is behind: %d events dropped so far", self.dropped)
        except Exception:
            log.exception("could not build an audit event")

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        if self._handle is not None and self.path != "-":
            self._handle.close()
        self._handle = None

    # -- the writer thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            lines = [item]
            # Write everything already queued in one go, then flush once.
            while True:
                try:
                    lines.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(line is _STOP for line in lines)
            try:
                for line in lines:
                    if line is not _STOP:
                        self._write(line)  # type: ignore[arg-type]
                if self._handle is not None:
                    self._handle.flush()
            except OSError:
                log.exception("could not write the audit log %s", self.path)
            if stop:
                return

    def _open(self) -> None:
        if self.path == "-":
            self._handle = sys.stdout.buffer
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._handle = os.fdopen(fd, "ab")
        self._size = os.fstat(fd).st_size

    def _write(self, line: bytes) -> None:
        if self.path != "-" and self.max_bytes > 0 and self._size > 0 and self._size + len(line) > self.max_bytes:
            self._rotate()
        assert self._handle is not None
        self._handle.write(line)
        self._size += len(line)

    def _rotate(self) -> None:
        """PATH.(n-1) → PATH.n … PATH → PATH.1; the oldest beyond max_backups is removed."""
        assert self._handle is not None
        self._handle.close()
        existing = 0
        while os.path.exists(f"{self.path}.{existing + 1}"):
            existing += 1
        keep = self.max_backups if self.max_backups > 0 else existing + 1
        for index in range(existing, 0, -1):
            if index >= keep:
                os.remove(f"{self.path}.{index}")
            else:
                os.replace(f"{self.path}.{index}", f"{self.path}.{index + 1}")
        os.replace(self.path, f"{self.path}.1")
        self._open()
