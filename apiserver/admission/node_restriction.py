"""NodeRestriction: a kubelet changes only its own Node, its own lease and the pods bound to it.

Applies to node identities (`system:node:<name>` in `system:nodes`), after the Node authorizer. A
kubelet cannot modify another Node, cannot set or change `node-restriction.kubernetes.io/` labels on
its own, creates only mirror pods bound to itself, and updates the status of or deletes only pods
bound to its node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apiserver.auth.node_authz import NODE_LEASE_NAMESPACE, node_name_of
from skiff.api.errors import ApiError

if TYPE_CHECKING:
    from apiserver.http.context import RequestContext

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
RESTRICTED_LABEL_DOMAIN = "node-restriction.kubernetes.io"


def is_restricted_label(key: str) -> bool:
    prefix, slash, _ = key.partition("/")
    if not slash:
        return False
    return prefix == RESTRICTED_LABEL_DOMAIN or prefix.endswith("." + RESTRICTED_LABEL_DOMAIN)


class NodeRestriction:
    async def admit(
        self, ctx: RequestContext, operation: str, new: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> None:
        node = node_name_of(ctx.user)
        if node is None:
            return
        resource = ctx.resource
        if resource.group == "" and resource.kind == "Pod":
            self._admit_pod(ctx, node, operation, new, old)
        elif resource.group == "" and resource.kind == "Node":
            self._admit_node(ctx, node, operation, new, old)
        elif resource.group == "coordination.k8s.io" and resource.kind == "Lease":
            name = _name(new or old)
            if ctx.namespace != NODE_LEASE_NAMESPACE or name != node:
                raise _forbidden(ctx, name, "can only access node lease with the same name as the requesting node")

    @staticmethod
    def _admit_pod(
        ctx: RequestContext, node: str, operation: str, new: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> None:
        subresource = ctx.info.subresource
        name = _name(new or old)
        if subresource == "status":
            if (old or {}).get("spec", {}).get("nodeName") != node:
                raise _forbidden(
                    ctx, name, f'node "{node}" can only update pod status for pods with spec.nodeName set to itself'
                )
            return
        if subresource:
            return
        if operation == "CREATE":
            pod = new or {}
            annotations = (pod.get("metadata") or {}).get("annotations") or {}
            if MIRROR_ANNOTATION not in annotations:
                raise _forbidden(
                    ctx,
                    name,
                    f'pod does not have "{MIRROR_ANNOTATION}" annotation, node "{node}" can only create mirror pods',
                )
            spec = pod.get("spec") or {}
            if spec.get("nodeName") != node:
                raise _forbidden(ctx, name, f'node "{node}" can only create pods with spec.nodeName set to itself')
            if spec.get("serviceAccountName"):
                raise _forbidden(ctx, name, f'node "{node}" can not create pods that use service accounts')
            for volume in spec.get("volumes") or ():
                for kind, what in (
                    ("secret", "secrets"),
                    ("configMap", "configmaps"),
                    ("persistentVolumeClaim", "persistentvolumeclaims"),
                ):
                    if (volume or {}).get(kind) is not None:
                        raise _forbidden(ctx, name, f'node "{node}" can not create pods that reference {what}')
        elif operation == "DELETE":
            if (old or {}).get("spec", {}).get("nodeName") != node:
                raise _forbidden(ctx, name, f'node "{node}" can only delete pods with spec.nodeName set to itself')
        elif operation == "UPDATE":
            raise _forbidden(
                ctx, name, f'unexpected operation "UPDATE", node "{node}" can only create and delete mirror pods'
            )

    @staticmethod
    def _admit_node(
        ctx: RequestContext, node: str, operation: str, new: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> None:
        name = _name(new or old) or ctx.info.name
        if name != node:
            raise _forbidden(ctx, name, f'node "{node}" is not allowed to modify node "{name}"')
        if operation == "CREATE":
            labels = (new or {}).get("metadata", {}).get("labels") or {}
            restricted = sorted(k for k in labels if is_restricted_label(k))
            if restricted:
                raise _forbidden(
                    ctx, name, f'node "{node}" is not allowed to set the following labels: {", ".join(restricted)}'
                )
        elif operation == "UPDATE":
            new_labels = (new or {}).get("metadata", {}).get("labels") or {}
            old_labels = (old or {}).get("metadata", {}).get("labels") or {}
            changed = sorted(
                k
                for k in set(new_labels) | set(old_labels)
                if is_restricted_label(k) and new_labels.get(k) != old_labels.get(k)
            )
            if changed:
                raise _forbidden(ctx, name, f'node "{node}" is not allowed to modify labels: {", ".join(changed)}')


def _name(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("name") or "")


def _forbidden(ctx: RequestContext, name: str, detail: str) -> ApiError:
    resource = ctx.resource
    qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    return ApiError(
        403, "Forbidden", f'{qualified} "{name}" is forbidden: {detail}', name, resource.group, resource.plural
    )
