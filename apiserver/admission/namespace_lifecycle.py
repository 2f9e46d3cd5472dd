"""NamespaceLifecycle: no new content in a namespace that is missing or being deleted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skiff.api.errors import ApiError, not_found

if TYPE_CHECKING:
    from apiserver.http.context import RequestContext

IMMORTAL = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


class NamespaceLifecycle:
    async def admit(
        self, ctx: RequestContext, operation: str, new: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> None:
        resource = ctx.resource
        if operation == "DELETE" and resource.kind == "Namespace" and ctx.info.name in IMMORTAL:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{ctx.info.name}" is forbidden: this namespace may not be deleted',
                ctx.info.name,
                "",
                "namespaces",
            )
        if operation != "CREATE" or not resource.namespaced:
            return
        phase = await self._phase(ctx, ctx.namespace)
        if phase is None:
            raise not_found("namespaces", ctx.namespace)
        if phase == "Terminating":
            name = (new or {}).get("metadata", {}).get("name", "")
            raise ApiError(
                403,
                "Forbidden",
                f'{resource.plural} "{name}" is forbidden: unable to create new content in namespace '
                f"{ctx.namespace} because it is being terminated",
                name,
                resource.group,
                resource.plural,
            )

    @staticmethod
    async def _phase(ctx: RequestContext, namespace: str) -> str | None:
        phases = ctx.state.namespaces.phases
        if namespace in phases:
            return phases[namespace]
        stored = await ctx.state.store.get("core/namespaces", "", namespace)
        if stored is None:
            return None
        obj = stored.obj()
        phase = "Terminating" if obj.get("metadata", {}).get("deletionTimestamp") else "Active"
        phases[namespace] = phase
        return phase
