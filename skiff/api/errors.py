"""Kubernetes `Status` errors.

Every failure a client sees is one of these, rendered as a `meta.k8s.io/v1 Status` whose key order
matches kube-apiserver's (the official Python client's tests compare the body exactly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Cause:
    """One field-level reason behind a 422 (or a 400 under strict field validation)."""

    reason: str
    message: str
    field: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class ApiError(Exception):
    code: int
    reason: str
    message: str
    name: str | None = None
    group: str | None = None
    kind: str | None = None
    causes: list[Cause] = field(default_factory=list)
    retry_after_seconds: int | None = None
    uid: str | None = None

    def __str__(self) -> str:
        return self.message

    def status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.uid is not None:
            details["uid"] = self.uid
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after_seconds is not None:
            details["retryAfterSeconds"] = self.retry_after_seconds
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if details:
            body["details"] = details
        body["code"] = self.code
        return body


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found', name, group, resource)


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists', name, group, resource
    )


def conflict(resource: str, name: str, group: str, detail: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {detail}',
        name,
        group,
        resource,
    )


def stale_resource_version(resource: str, name: str, group: str = "") -> ApiError:
    return conflict(
        resource,
        name,
        group,
        "the object has been modified; please apply your changes to the latest version and try again",
    )


def invalid(kind: str, name: str, group: str, causes: list[Cause]) -> ApiError:
    return ApiError(422, "Invalid", _invalid_message(kind, name, group, causes), name, group, kind, causes)


def _invalid_message(kind: str, name: str, group: str, causes: list[Cause]) -> str:
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return f'{_qualified(kind, group)} "{name}" is invalid: {summary}'


def bad_request(message: str, causes: list[Cause] | None = None) -> ApiError:
    return ApiError(400, "BadRequest", message, causes=causes or [])


def unauthorized(message: str = "Unauthorized") -> ApiError:
    return ApiError(401, "Unauthorized", message)


def forbidden(user: str, verb: str, resource: str, group: str, name: str, namespace: str, why: str = "") -> ApiError:
    target = _qualified(resource, group)
    subject = f'{target} "{name}"' if name else target
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    message = f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{group}"'
    message += scope
    if why:
        message += f": {why}"
    return ApiError(403, "Forbidden", message, name or None, group, resource)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large(message: str = "Request entity too large: limit is 3145728") -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", message)


def not_acceptable(message: str) -> ApiError:
    return ApiError(406, "NotAcceptable", message)


def internal(message: str = "an internal error occurred") -> ApiError:
    return ApiError(500, "InternalError", message)


def timeout(message: str) -> ApiError:
    return ApiError(504, "Timeout", message)
