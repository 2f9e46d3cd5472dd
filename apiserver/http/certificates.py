"""The `approval` subresource of CertificateSigningRequests (what `kubectl certificate approve|deny` uses).

It reads and writes the whole object like `status`, but with its own update rules: only the Approved and
Denied conditions change, everything else is kept from the stored object.
"""

from __future__ import annotations

import dataclasses

from starlette.responses import Response

from apiserver.http.context import RequestContext
from apiserver.http.reads import handle_get
from apiserver.http.server_state import ServerState
from apiserver.http.writes import handle_patch, handle_update
from apiserver.registry.certificates import CertificateSigningRequestApprovalStrategy
from skiff.api.errors import method_not_allowed

_HANDLERS = {"get": handle_get, "update": handle_update, "patch": handle_patch}


async def serve_approval(ctx: RequestContext) -> Response:
    handler = _HANDLERS.get(ctx.info.verb)
    if handler is None:
        raise method_not_allowed()
    approval = dataclasses.replace(ctx, strategy=CertificateSigningRequestApprovalStrategy(ctx.resource))
    return await handler(approval)


def register_certificate_handlers(state: ServerState) -> None:
    state.extra_subresources[("CertificateSigningRequest", "approval")] = serve_approval
