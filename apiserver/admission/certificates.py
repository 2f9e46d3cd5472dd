"""Admission for CertificateSigningRequests.

- The requester: on create, spec.username, uid, groups and extra are set from the authenticated user,
  whatever the client sent, so an approver sees who really asked (kube-apiserver does the same).
- CertificateSubjectRestriction: a request to the kube-apiserver-client signer for the `system:masters`
  group is refused, since such a certificate would bypass authorization entirely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apiserver import certificates as csr_rules
from apiserver.auth.authn import AUTHENTICATED
from skiff.api.errors import ApiError
from skiff.pki import csr

if TYPE_CHECKING:
    from apiserver.http.context import RequestContext


class CertificateSigningRequestAdmission:
    async def admit(
        self, ctx: RequestContext, operation: str, new: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> None:
        if operation != "CREATE" or new is None or ctx.resource.kind != "CertificateSigningRequest":
            return
        if ctx.resource.group != "certificates.k8s.io":
            return
        spec = new.setdefault("spec", {})
        for stale in ("username", "uid", "groups", "extra"):
            spec.pop(stale, None)
        user = ctx.user
        groups = list(user.groups)
        if not user.is_anonymous and AUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
        spec.update(csr_rules.requester_fields(user.name, user.uid, groups, dict(user.extra)))
        if spec.get("signerName") == csr.KUBE_APISERVER_CLIENT:
            self._restrict_subject(new, spec)

    @staticmethod
    def _restrict_subject(obj: dict[str, Any], spec: dict[str, Any]) -> None:
        try:
            request = csr.decode_request(spec.get("request"))
        except csr.RequestError:
            return  # validation has already refused it
        _name, organizations = csr.subject_of(request)
        if csr.MASTERS_GROUP in organizations:
            name = (obj.get("metadata") or {}).get("name", "")
            raise ApiError(
                403,
                "Forbidden",
                f'certificatesigningrequests.certificates.k8s.io "{name}" is forbidden: use of '
                f"{csr.KUBE_APISERVER_CLIENT} signer with {csr.MASTERS_GROUP} group is not allowed",
                name,
                "certificates.k8s.io",
                "certificatesigningrequests",
            )
