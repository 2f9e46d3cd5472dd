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


class AlwaysAllow:
    """`--authorization-mode=AlwaysAllow`: every authenticated user may do everything (benchmarks)."""

    async def authorize(self, user: UserInfo, info: RequestInfo) -> Decision:
        return Decision(not user.is_anonymous, "")


class AuthorizerChain:
    """Asks each authorizer in turn; the first that allows decides. A denial carries every reason given,
    one per line, as kube-apiserver's union authorizer does."""

    def __init__(self, authorizers: list[Authorizer]) -> None:
        self.authorizers = authorizers

    async def authorize(self, user: UserInfo, info: RequestInfo) -> Decision:
        reasons: list[str] = []
        for authorizer in self.authorizers:
            decision = await authorizer.authorize(user, info)
            if decision.allowed:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        return Decision(False, "\n".join(reasons))
