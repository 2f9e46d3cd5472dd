"""The per-request context handed to the REST handlers, and the server state they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.datastructures import QueryParams
from starlette.requests import Request

from apiserver.auth.authn import UserInfo
from apiserver.http.codec import MAX_BODY_BYTES
from apiserver.http.requestinfo import RequestInfo
from apiserver.registry.base import Strategy
from skiff.api.errors import bad_request, too_large
from skiff.api.kinds import ResourceType

if TYPE_CHECKING:
    from apiserver.http.server_state import ServerState


@dataclass
class RequestContext:
    request: Request
    info: RequestInfo
    user: UserInfo
    resource: ResourceType
    strategy: Strategy
    state: ServerState
    warnings: list[str] = field(default_factory=list)
    body_dry_run: bool = False

    @property
    def query(self) -> QueryParams:
        return self.request.query_params

    @property
    def namespace(self) -> str:
        return self.info.namespace if self.resource.namespaced else ""

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("true", "1")

    @property
    def dry_run(self) -> bool:
        values = self.query.getlist("dryRun")
        for value in values:
            if value != "All":
                raise bad_request(f"unsupported dry run value: {value!r} (only All is supported)")
        return self.body_dry_run or bool(values)

    @property
    def field_manager(self) -> str:
        manager = self.query.get("fieldManager")
        if manager:
            if len(manager) > 128:
                raise bad_request("fieldManager: Too long: may not be longer than 128")
            return manager
        agent = self.request.headers.get("user-agent", "unknown")
        return agent.split("/", 1)[0][:128] or "unknown"

    @property
    def field_validation(self) -> str:
        value = self.query.get("fieldValidation", "")
        if value not in ("", "Strict", "Warn", "Ignore"):
            raise bad_request(
                f'fieldValidation: Invalid value: "{value}": fieldValidation must be one of "Ignore", "Warn", "Strict"'
            )
        return value or "Warn"

    async def body(self) -> bytes:
        declared = self.request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise too_large()
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def storage_key(self) -> str:
        return self.resource.storage_key
