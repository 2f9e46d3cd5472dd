"""CertificateSigningRequests."""

from __future__ import annotations

from typing import Any

from apiserver import certificates as csr_rules
from apiserver.registry import printing as p
from apiserver.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Obj, Strategy, age_of
from skiff.api import validation as v
from skiff.api.errors import Cause
from skiff.api.timefmt import human_duration
from skiff.pki import csr

MIN_EXPIRATION_SECONDS = csr.MIN_EXPIRATION_SECONDS


class CertificateSigningRequestStrategy(Strategy):
    status_subresource = True
    # Kubernetes accepts any name for a signing request.
    name_rule = staticmethod(v.name_is_anything)

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes: list[Cause] = []
        if not spec.get("request"):
            causes.append(v.required("spec.request"))
        else:
            try:
                csr.decode_request(spec["request"])
            except csr.RequestError as error:
                causes.append(v.invalid("spec.request", "<request>", str(error)))
        signer = spec.get("signerName") or ""
        if not signer:
            causes.append(v.required("spec.signerName"))
        elif "/" not in signer:
            detail = "must be a fully qualified domain and path of the form 'example.com/signer-name'"
            causes.append(v.invalid("spec.signerName", signer, detail))
        usages = spec.get("usages")
        if not usages:
            causes.append(v.required("spec.usages"))
        elif isinstance(usages, list):
            for index, usage in enumerate(usages):
                if usage not in csr.KEY_USAGES:
                    causes.append(v.not_supported(f"spec.usages[{index}]", usage, csr.KEY_USAGES))
        expiration = spec.get("expirationSeconds")
        if isinstance(expiration, int) and expiration < MIN_EXPIRATION_SECONDS:
            detail = "may not specify a duration less than 600 seconds (10 minutes)"
            causes.append(v.invalid("spec.expirationSeconds", expiration, detail))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        if p.spec(new) != p.spec(old):
            return [v.immutable("spec", p.spec(new))]
        causes = [v.invalid(path, "conditions", problem) for path, problem in csr_rules.condition_problems(new, old)]
        problem = csr_rules.certificate_problem(new, old)
        if problem is not None:
            causes.append(v.forbidden("status.certificate", problem))
        return causes

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        # The signer writes the certificate and Failed conditions; approval goes through /approval only.
        super().prepare_for_status_update(new, old)
        csr_rules.keep_approval(new, old)

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            AGE_COLUMN,
            p.column("SignerName", description="The signer asked to issue the certificate."),
            p.column("Requestor", description="The user who created the request."),
            p.column("RequestedDuration", description="The validity period asked for."),
            p.column("Condition", description="Whether the request is approved, denied or issued."),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        spec = p.spec(obj)
        expiration = spec.get("expirationSeconds")
        duration = human_duration(expiration) if isinstance(expiration, int) else p.NONE
        return [
            p.name(obj),
            age_of(obj),
            spec.get("signerName", ""),
            spec.get("username", ""),
            duration,
            csr_condition(obj),
        ]

    def field_selectors(self) -> dict[str, Any]:
        return {"spec.signerName": lambda o: p.spec(o).get("signerName", "")}


class CertificateSigningRequestApprovalStrategy(CertificateSigningRequestStrategy):
    """Updates through /approval: only the Approved and Denied conditions change."""

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        csr_rules.merge_approval(new, old)


def csr_condition(obj: Obj) -> str:
    status = p.status(obj)
    types = {c.get("type") for c in status.get("conditions") or []}
    parts = [t for t in ("Approved", "Denied", "Failed") if t in types]
    if status.get("certificate"):
        parts.append("Issued")
    return ",".join(parts) or "Pending"
