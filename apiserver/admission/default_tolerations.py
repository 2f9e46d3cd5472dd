"""DefaultTolerationSeconds admission: every new pod tolerates a lost or not-ready node for a while.

As kube-apiserver's plugin of the same name: on pod CREATE, a pod without a toleration for the
`node.kubernetes.io/not-ready:NoExecute` taint gets one with `tolerationSeconds` =
`--default-not-ready-toleration-seconds` (300 by default), and likewise for
`node.kubernetes.io/unreachable:NoExecute` with `--default-unreachable-toleration-seconds`. The node
lifecycle controller's taint manager evicts a pod once its tolerations of those taints run out, so these
defaults are how long a pod stays bound to a node that stopped reporting before it is replaced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apiserver.http.context import RequestContext

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
NO_EXECUTE = "NoExecute"
Obj = dict[str, Any]


def tolerates(tolerations: list[Obj], key: str) -> bool:
    """Whether some toleration already covers `key:NoExecute` (an empty key or effect matches any)."""
    return any(t.get("key", "") in (key, "") and t.get("effect", "") in (NO_EXECUTE, "") for t in tolerations)


def add_default_tolerations(spec: Obj, not_ready_seconds: int, unreachable_seconds: int) -> None:
    tolerations: list[Obj] = list(spec.get("tolerations") or [])
    added = False
    for key, seconds in ((NOT_READY, not_ready_seconds), (UNREACHABLE, unreachable_seconds)):
        if not tolerates(tolerations, key):
            tolerations.append({"key": key, "operator": "Exists", "effect": NO_EXECUTE, "tolerationSeconds": seconds})
            added = True
    if added:
        spec["tolerations"] = tolerations


class DefaultTolerationSeconds:
    async def admit(self, ctx: RequestContext, operation: str, new: Obj | None, old: Obj | None) -> None:
        resource = ctx.resource
        if operation != "CREATE" or resource.group or resource.kind != "Pod" or ctx.info.subresource or new is None:
            return
        config = ctx.state.config
        add_default_tolerations(
            new.setdefault("spec", {}),
            config.default_not_ready_toleration_seconds,
            config.default_unreachable_toleration_seconds,
        )
