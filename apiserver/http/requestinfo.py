"""Turn a request path and method into Kubernetes request attributes (verb, resource, namespace, name).

The same attributes drive routing, authorization, admission, audit and metrics, as in kube-apiserver.
"""

from __future__ import annotations

from dataclasses import dataclass

from skiff.api.errors import ApiError

NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_VERBS_WITH_NAME = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "POST": "create"}
_VERBS_WITHOUT_NAME = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}


@dataclass(slots=True)
class RequestInfo:
    is_resource: bool
    path: str
    verb: str
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def parse_request(method: str, path: str, watch: bool) -> RequestInfo:
    """Parse `/api/v1/...` and `/apis/<group>/<version>/...` paths; anything else is non-resource."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return RequestInfo(False, path, method.lower())
    if not rest:
        return RequestInfo(False, path, method.lower())
    info = RequestInfo(True, path, "", group, version)
    if rest[0] == "namespaces" and len(rest) > 1:
        # /namespaces/{ns}/{resource}/... is namespaced, except the namespace's own subresources.
        info.namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    info.resource = rest[0]
    info.name = rest[1] if len(rest) > 1 else ""
    info.subresource = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3 and info.subresource != "proxy":
        raise not_found_path()
    if info.resource == "namespaces" and not group:
        info.namespace = ""
    info.verb = _verb(method, info, watch)
    return info


def _verb(method: str, info: RequestInfo, watch: bool) -> str:
    verbs = _VERBS_WITH_NAME if info.name else _VERBS_WITHOUT_NAME
    verb = verbs.get(method, "")
    if verb in ("get", "list") and watch:
        return "watch"
    return verb or method.lower()


def not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")
