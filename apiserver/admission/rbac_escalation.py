"""RBAC escalation prevention: nobody grants permissions they do not hold.

Creating or changing a Role or ClusterRole needs every permission it grants (in the request's
namespace, or cluster-wide for a ClusterRole) or the `escalate` verb on that role; setting an
aggregationRule needs cluster-admin's full authority. Creating or changing a binding needs the
referenced role's permissions or the `bind` verb on it. `system:masters` is exempt, as in Kubernetes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apiserver.auth.rbac_rules import RBAC_GROUP, SYSTEM_MASTERS, Rule, go_quote_list, missing_rules, rules_of
from apiserver.http.requestinfo import RequestInfo
from skiff.api.errors import ApiError, not_found

if TYPE_CHECKING:
    from apiserver.http.context import RequestContext

FULL_AUTHORITY = (Rule(("*",), ("*",), ("*",)), Rule(("*",), non_resource_urls=("*",)))
_ROLE_PLURALS = {"Role": "roles", "ClusterRole": "clusterroles"}
# Fields the garbage collector changes on objects being deleted; changing only these is no escalation.
_GC_FIELDS = ("finalizers", "ownerReferences", "resourceVersion", "managedFields", "generation")


class RBACEscalation:
    async def admit(
        self, ctx: RequestContext, operation: str, new: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> None:
        resource = ctx.resource
        if resource.group != RBAC_GROUP or operation not in ("CREATE", "UPDATE") or new is None:
            return
        if SYSTEM_MASTERS in ctx.user.groups:
            return
        policy = getattr(ctx.state, "rbac_policy", None)
        if policy is None:
            return  # RBAC is not in the authorization chain
        name = (new.get("metadata") or {}).get("name", "")
        if resource.kind in _ROLE_PLURALS:
            await self._admit_role(ctx, policy, name, new, old)
        elif resource.kind in ("RoleBinding", "ClusterRoleBinding"):
            await self._admit_binding(ctx, policy, name, new, old)

    async def _admit_role(
        self, ctx: RequestContext, policy: Any, name: str, new: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        rules_changed = old is None or new.get("rules") != old.get("rules")
        aggregation = new.get("aggregationRule")
        aggregation_changed = aggregation is not None and (old is None or aggregation != old.get("aggregationRule"))
        if not rules_changed and not aggregation_changed:
            return
        if await _authorized(ctx, "escalate", ctx.resource.plural, name):
            return
        owned = policy.rules_for(ctx.user, ctx.namespace)
        if rules_changed:
            missing = missing_rules(owned, rules_of(new))
            if missing:
                raise _escalation(ctx, ctx.resource.plural, name, missing)
        if aggregation_changed and missing_rules(owned, FULL_AUTHORITY):
            raise _forbidden(ctx.resource.plural, name, "must have cluster-admin privileges to use the aggregationRule")

    async def _admit_binding(
        self, ctx: RequestContext, policy: Any, name: str, new: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        if old is not None and _only_gc_fields_changed(new, old):
            return
        ref = new.get("roleRef") or {}
        kind, role = str(ref.get("kind") or ""), str(ref.get("name") or "")
        plural = _ROLE_PLURALS.get(kind)
        if plural is None:
            return  # validation has refused it already
        if await _authorized(ctx, "bind", plural, role):
            return
        rules = policy.role_ref_rules(kind, role, ctx.namespace)
        if rules is None:
            raise not_found(plural, role, RBAC_GROUP)
        missing = missing_rules(policy.rules_for(ctx.user, ctx.namespace), rules)
        if missing:
            raise _escalation(ctx, ctx.resource.plural, name, missing)


async def _authorized(ctx: RequestContext, verb: str, plural: str, name: str) -> bool:
    info = RequestInfo(True, "", verb, RBAC_GROUP, "v1", plural, "", ctx.namespace, name)
    return (await ctx.state.authz.authorize(ctx.user, info)).allowed


def _only_gc_fields_changed(new: dict[str, Any], old: dict[str, Any]) -> bool:
    def stripped(obj: dict[str, Any]) -> dict[str, Any]:
        metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _GC_FIELDS}
        return {**obj, "metadata": metadata}

    return stripped(new) == stripped(old)


def _escalation(ctx: RequestContext, plural: str, name: str, missing: list[Rule]) -> ApiError:
    user = ctx.user
    detail = (
        f"user {_go_quote(user.name)} (groups={go_quote_list(user.groups)}) is attempting to grant RBAC "
        "permissions not currently held:\n" + "\n".join(rule.compact_string() for rule in missing)
    )
    return _forbidden(plural, name, detail)


def _forbidden(plural: str, name: str, detail: str) -> ApiError:
    return ApiError(
        403, "Forbidden", f'{plural}.{RBAC_GROUP} "{name}" is forbidden: {detail}', name, RBAC_GROUP, plural
    )


def _go_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
