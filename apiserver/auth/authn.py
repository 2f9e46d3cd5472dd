"""Authentication: who is making a request.

Identities come only from things a client cannot forge: a client certificate verified in the TLS
handshake, or (with the identity features) a signed token. Authenticators are tried in order; the
first that recognises the credential decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from cryptography import x509
from cryptography.x509.oid import NameOID

from apiserver.http.tls import client_certificate

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_anonymous(self) -> bool:
        return self.name == ANONYMOUS

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


class Authenticator(Protocol):
    async def authenticate(self, scope: dict[str, Any], authorization: str | None) -> UserInfo | None: ...


@lru_cache(maxsize=4096)
def identity_from_der(der: bytes) -> UserInfo:
    """CN is the user name and each O a group, as kube-apiserver reads client certificates."""
    cert = x509.load_der_x509_certificate(der)
    subject = cert.subject
    common_names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(common_names[0].value) if common_names else ""
    groups = tuple(str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return UserInfo(name, (*groups, AUTHENTICATED))


class ClientCertificateAuthenticator:
    async def authenticate(self, scope: dict[str, Any], authorization: str | None) -> UserInfo | None:
        der = client_certificate(scope)
        if not der:
            return None
        user = identity_from_der(der)
        return user if user.name else None


class AuthenticatorChain:
    def __init__(self, authenticators: list[Authenticator]) -> None:
        self.authenticators = authenticators

    async def authenticate(self, scope: dict[str, Any], authorization: str | None) -> UserInfo | None:
        for authenticator in self.authenticators:
            user = await authenticator.authenticate(scope, authorization)
            if user is not None:
                return user
        return None
