"""Admission: the checks and mutations between authorization and storage.

Plugins run in order for every write. Each sees the operation (CREATE, UPDATE, DELETE), the new object
(None for DELETE) and the old one (None for CREATE), and raises an ApiError to refuse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from apiserver.admission.certificates import CertificateSigningRequestAdmission
from apiserver.admission.default_tolerations import DefaultTolerationSeconds
from apiserver.admission.namespace_lifecycle import NamespaceLifecycle
from apiserver.admission.node_restriction import NodeRestriction
from apiserver.admission.rbac_escalation import RBACEscalation
from apiserver.admission.serviceaccount import ServiceAccountAdmission
from apiserver.admission.storage import StorageAdmission

if TYPE_CHECKING:
    from apiserver.http.context import RequestContext


class AdmissionPlugin(Protocol):
    async def admit(
        self, ctx: RequestContext, operation: str, new: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> None: ...


PLUGINS: list[AdmissionPlugin] = [
    NamespaceLifecycle(),
    NodeRestriction(),
    RBACEscalation(),
    ServiceAccountAdmission(),
    DefaultTolerationSeconds(),
    CertificateSigningRequestAdmission(),
    StorageAdmission(),
]


async def admit(ctx: RequestContext, operation: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
    for plugin in PLUGINS:
        await plugin.admit(ctx, operation, new, old)
    # Then the admission webhooks: mutating ones (the result validated again), validating ones last.
    webhooks = ctx.state.admission_webhooks
    if webhooks is not None:
        await webhooks.admit(ctx, operation, new, old)
