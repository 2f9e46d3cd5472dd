"""User impersonation: `Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`, `Impersonate-Extra-<key>`.

The authenticated user must be allowed the `impersonate` verb on each thing it asks to act as: users
(or serviceaccounts, for `system:serviceaccount:<ns>:<name>`) and groups in the core group, uids and
userextras/<key> in authentication.k8s.io. The request then runs as the impersonated user, who is also
in `system:authenticated` (and, for a service account, in its service-account groups) as in Kubernetes.
"""

from __future__ import annotations

from urllib.parse import unquote

from apiserver.auth.authn import ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, UserInfo
from apiserver.auth.authz import Authorizer
from apiserver.auth.rbac_rules import SERVICE_ACCOUNT_PREFIX, forbidden_error
from apiserver.http.requestinfo import RequestInfo
from skiff.api.errors import bad_request

USER_HEADER = "impersonate-user"
GROUP_HEADER = "impersonate-group"
UID_HEADER = "impersonate-uid"
EXTRA_PREFIX = "impersonate-extra-"
AUTHENTICATION_GROUP = "authentication.k8s.io"


def wants_impersonation(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    # Raw ASGI header names are already lower-case bytes: checking them costs nothing per request.
    return any(key.startswith(b"impersonate-") for key, _ in raw_headers)


async def impersonate(authz: Authorizer, requester: UserInfo, raw_headers: list[tuple[bytes, bytes]]) -> UserInfo:
    """The user a request acts as; raises 403 when `requester` may not impersonate what it asks for."""
    name = ""
    groups: list[str] = []
    uid = ""
    extra: dict[str, list[str]] = {}
    for raw_key, raw_value in raw_headers:
        key = raw_key.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if key == USER_HEADER:
            name = value
        elif key == GROUP_HEADER:
            groups.append(value)
        elif key == UID_HEADER:
            uid = value
        elif key.startswith(EXTRA_PREFIX):
            extra.setdefault(unquote(key[len(EXTRA_PREFIX) :]), []).append(value)
    if not name:
        if groups or uid or extra:
            raise bad_request("requested impersonation of groups, a uid or extra fields without impersonating a user")
        return requester

    checks: list[RequestInfo] = []
    service_account = _service_account(name)
    if service_account is not None:
        namespace, sa_name = service_account
        checks.append(_check("", "serviceaccounts", sa_name, namespace=namespace))
    else:
        checks.append(_check("", "users", name))
    checks += [_check("", "groups", group) for group in groups]
    if uid:
        checks.append(_check(AUTHENTICATION_GROUP, "uids", uid))
    for key, values in extra.items():
        checks += [_check(AUTHENTICATION_GROUP, "userextras", value, subresource=key) for value in values]
    for info in checks:
        decision = await authz.authorize(requester, info)
        if not decision.allowed:
            raise forbidden_error(requester, info, decision.reason)

    all_groups = list(dict.fromkeys(groups))
    if service_account is not None and not groups:
        all_groups += ["system:serviceaccounts", f"system:serviceaccounts:{service_account[0]}"]
    if name == ANONYMOUS:
        if UNAUTHENTICATED not in all_groups:
            all_groups.append(UNAUTHENTICATED)
    elif AUTHENTICATED not in all_groups:
        all_groups.append(AUTHENTICATED)
    return UserInfo(name, tuple(all_groups), uid, {k: tuple(v) for k, v in extra.items()})


def _service_account(name: str) -> tuple[str, str] | None:
    if not name.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, _, sa_name = name[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    return (namespace, sa_name) if namespace and sa_name else None


def _check(group: str, resource: str, name: str, namespace: str = "", subresource: str = "") -> RequestInfo:
    return RequestInfo(True, "", "impersonate", group, "v1", resource, subresource, namespace, name)
