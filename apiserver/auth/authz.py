"""Authorization: may this user do this to that?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from apiserver.auth.authn import UserInfo
from apiserver.http.requestinfo import RequestInfo


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


class Authorizer(Protocol):
    async def authorize(self, user: UserInfo, info: RequestInfo) -> Decision: ...


class AllowAuthenticated:
    """Every authenticated user may do everything (until RBAC is configured)."""

    async def authorize(self, user: UserInfo, info: RequestInfo) -> Decision:
        return Decision(not user.is_anonymous, "")
