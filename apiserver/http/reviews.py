"""The review APIs: ask the server who you are and what you (or someone else) may do.

- authorization.k8s.io/v1 SelfSubjectAccessReview (`kubectl auth can-i`), SelfSubjectRulesReview
  (`kubectl auth can-i --list`), SubjectAccessReview and the namespaced LocalSubjectAccessReview;
- authentication.k8s.io/v1 (v1beta1, v1alpha1) SelfSubjectReview (`kubectl auth whoami`) and v1 TokenReview.

Nothing is stored: each POST is answered with the request object and its `status` filled in (201).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from apiserver.auth.authn import UserInfo
from apiserver.auth.node_authz import node_name_of
from apiserver.auth.rbac_rules import Rule
from apiserver.http.codec import decode_object
from apiserver.http.requestinfo import RequestInfo
from apiserver.http.responses import value_response
from skiff.api.errors import ApiError, Cause, bad_request, invalid

if TYPE_CHECKING:
    from apiserver.http.context import RequestContext
    from apiserver.http.server_state import ServerState

AUTHORIZATION = "authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"
Obj = dict[str, Any]


async def _read(ctx: RequestContext) -> Obj:
    body = decode_object(await ctx.body(), ctx.request.headers.get("content-type"))
    kind = body.get("kind")
    if kind and kind != ctx.resource.kind:
        raise bad_request(f"the body is a {kind}, not a {ctx.resource.kind}")
    return body


def _answer(ctx: RequestContext, body: Obj, status: Obj, spec: Obj | None = None) -> Response:
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    value: Obj = {"kind": ctx.resource.kind, "apiVersion": ctx.resource.api_version, "metadata": metadata}
    if spec is not None:
        value["spec"] = spec
    value["status"] = status
    return value_response(ctx, value, 201)


def attributes_of(spec: Obj) -> RequestInfo:
    """The request attributes a review asks about (resourceAttributes or nonResourceAttributes)."""
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if isinstance(resource, dict):
        return RequestInfo(
            True,
            "",
            str(resource.get("verb") or ""),
            str(resource.get("group") or ""),
            str(resource.get("version") or ""),
            str(resource.get("resource") or ""),
            str(resource.get("subresource") or ""),
            str(resource.get("namespace") or ""),
            str(resource.get("name") or ""),
        )
    if isinstance(non_resource, dict):
        return RequestInfo(False, str(non_resource.get("path") or ""), str(non_resource.get("verb") or ""))
    raise invalid(
        "SubjectAccessReview",
        "",
        AUTHORIZATION,
        [
            Cause(
                "FieldValueRequired",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                "spec.resourceAttributes",
            )
        ],
    )


async def _access_status(ctx: RequestContext, user: UserInfo, spec: Obj) -> Obj:
    decision = await ctx.state.authz.authorize(user, attributes_of(spec))
    status: Obj = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status


async def self_subject_access_review(ctx: RequestContext) -> Response:
    body = await _read(ctx)
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    return _answer(ctx, body, await _access_status(ctx, ctx.user, spec), spec)


def _subject_of(spec: Obj, kind: str) -> UserInfo:
    user = str(spec.get("user") or "")
    groups = tuple(str(g) for g in spec.get("groups") or ())
    if not user and not groups:
        raise invalid(
            kind,
            "",
            AUTHORIZATION,
            [
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: "": at least one of user or group must be specified',
                    "spec.user",
                )
            ],
        )
    extra = {str(k): tuple(str(x) for x in v or ()) for k, v in (spec.get("extra") or {}).items()}
    return UserInfo(user, groups, str(spec.get("uid") or ""), extra)


async def subject_access_review(ctx: RequestContext) -> Response:
    body = await _read(ctx)
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    return _answer(ctx, body, await _access_status(ctx, _subject_of(spec, "SubjectAccessReview"), spec), spec)


async def local_subject_access_review(ctx: RequestContext) -> Response:
    body = await _read(ctx)
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    namespace = ctx.info.namespace
    metadata = body.setdefault("metadata", {}) if isinstance(body.get("metadata"), dict) else {}
    if metadata.get("namespace") and metadata["namespace"] != namespace:
        raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
    metadata["namespace"] = namespace
    body["metadata"] = metadata
    attributes = spec.get("resourceAttributes")
    if spec.get("nonResourceAttributes") is not None:
        raise invalid(
            "LocalSubjectAccessReview",
            "",
            AUTHORIZATION,
            [Cause("FieldValueInvalid", "disallowed on this kind of request", "spec.nonResourceAttributes")],
        )
    if isinstance(attributes, dict):
        if attributes.get("namespace") and attributes["namespace"] != namespace:
            raise invalid(
                "LocalSubjectAccessReview",
                "",
                AUTHORIZATION,
                [
                    Cause(
                        "FieldValueInvalid",
                        f'Invalid value: "{attributes["namespace"]}": must match metadata.namespace',
                        "spec.resourceAttributes.namespace",
                    )
                ],
            )
        attributes["namespace"] = namespace
    user = _subject_of(spec, "LocalSubjectAccessReview")
    return _answer(ctx, body, await _access_status(ctx, user, spec), spec)


async def self_subject_rules_review(ctx: RequestContext) -> Response:
    body = await _read(ctx)
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    namespace = str(spec.get("namespace") or "")
    policy = ctx.state.rbac_policy
    rules: list[Rule] = policy.rules_for(ctx.user, namespace) if policy is not None else []
    status: Obj = {
        "resourceRules": [_resource_rule(r) for r in rules if not r.non_resource_urls],
        "nonResourceRules": [
            {"verbs": list(r.verbs), "nonResourceURLs": list(r.non_resource_urls)} for r in rules if r.non_resource_urls
        ],
        "incomplete": False,
    }
    if policy is None:
        # Without RBAC (AlwaysAllow) every request is allowed; say so the way kube's always-allow rules do.
        status["resourceRules"] = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
        status["nonResourceRules"] = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
    elif node_name_of(ctx.user) is not None:
        status["incomplete"] = True
        status["evaluationError"] = "node authorizer does not support user rule resolution"
    return _answer(ctx, body, status, spec)


def _resource_rule(rule: Rule) -> Obj:
    out: Obj = {"verbs": list(rule.verbs), "apiGroups": list(rule.api_groups), "resources": list(rule.resources)}
    if rule.resource_names:
        out["resourceNames"] = list(rule.resource_names)
    return out


async def self_subject_review(ctx: RequestContext) -> Response:
    body = await _read(ctx)
    return _answer(ctx, body, {"userInfo": ctx.user.to_dict()})


async def token_review(ctx: RequestContext) -> Response:
    body = await _read(ctx)
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    token = str(spec.get("token") or "")
    status: Obj = {"user": {}}
    user = None
    audiences = [str(a) for a in spec.get("audiences") or []]
    if token and audiences:
        return _answer(ctx, body, await _review_for_audiences(ctx, token, audiences), spec)
    if token:
        # Only the bearer-token authenticators can recognise it: the scope carries no client certificate.
        scope: dict[str, Any] = {"type": "http", "headers": [], "extensions": {}}
        try:
            user = await ctx.state.authn.authenticate(scope, f"Bearer {token}")
        except ApiError as error:
            status["error"] = error.message
    if user is not None:
        status = {"authenticated": True, "user": user.to_dict()}
    return _answer(ctx, body, status, spec)


async def _review_for_audiences(ctx: RequestContext, token: str, audiences: list[str]) -> Obj:
    """A token is authenticated for the reviewer's audiences only if it was issued for one of them."""
    for authenticator in ctx.state.authn.authenticators:
        review = getattr(authenticator, "review", None)
        if review is None:
            continue
        reviewed = await review(token, audiences)
        if reviewed is not None:
            user, matched = reviewed
            return {"authenticated": True, "user": user.to_dict(), "audiences": matched}
    return {"user": {}, "error": "token audiences are invalid for the target audiences"}


Handler = Callable[["RequestContext"], Awaitable[Response]]

REVIEW_HANDLERS: dict[tuple[str, str], Handler] = {
    (AUTHORIZATION, "selfsubjectaccessreviews"): self_subject_access_review,
    (AUTHORIZATION, "selfsubjectrulesreviews"): self_subject_rules_review,
    (AUTHORIZATION, "subjectaccessreviews"): subject_access_review,
    (AUTHORIZATION, "localsubjectaccessreviews"): local_subject_access_review,
    (AUTHENTICATION, "selfsubjectreviews"): self_subject_review,
    (AUTHENTICATION, "tokenreviews"): token_review,
}


def install_reviews(state: ServerState) -> None:
    state.extra_resources.update(REVIEW_HANDLERS)
