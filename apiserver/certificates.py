"""CertificateSigningRequest rules of the API server: approval and status updates, condition and
certificate validation, and the requester fields filled in at create.

What signers share with the server (decoding, conditions, signing) lives in `skiff.pki.csr`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

from cryptography import x509

from skiff.pki.csr import (
    APPROVAL_TYPES,
    APPROVED,
    DENIED,
    TERMINAL_TYPES,
    Obj,
    certificate_pem,
    conditions,
    has_condition,
    now_rfc3339,
)


def merge_approval(new: Obj, old: Obj, now: str | None = None) -> None:
    """An update through /approval changes only the conditions; spec, certificate and the rest stay."""
    new_conditions = conditions(new)
    for key, value in old.items():
        if key not in ("metadata", "status"):
            new[key] = value
    status = dict(old.get("status") or {})
    status["conditions"] = new_conditions
    if not new_conditions:
        status.pop("conditions")
    new["status"] = status
    stamp_conditions(new, old, now)
    if not new["status"]:
        new.pop("status")


def keep_approval(new: Obj, old: Obj) -> None:
    """An update through /status may not add, change or drop the Approved and Denied conditions."""
    kept = [c for c in conditions(new) if c.get("type") not in APPROVAL_TYPES]
    approval = [c for c in conditions(old) if c.get("type") in APPROVAL_TYPES]
    status = new.setdefault("status", {})
    if kept or approval:
        status["conditions"] = approval + kept
    else:
        status.pop("conditions", None)
    stamp_conditions(new, old)


def stamp_conditions(new: Obj, old: Obj, now: str | None = None) -> None:
    """Fill in condition timestamps the client left out, as kube-apiserver does."""
    stamp = now or now_rfc3339()
    previous = {c.get("type"): c for c in conditions(old)}
    for item in (new.get("status") or {}).get("conditions") or []:
        before = previous.get(item.get("type"))
        if not item.get("lastUpdateTime"):
            item["lastUpdateTime"] = stamp
        if not item.get("lastTransitionTime"):
            unchanged = before is not None and before.get("status") == item.get("status")
            item["lastTransitionTime"] = before.get("lastTransitionTime") if unchanged and before else stamp
            if not item["lastTransitionTime"]:
                item["lastTransitionTime"] = stamp


def condition_problems(new: Obj, old: Obj | None) -> list[tuple[str, str]]:
    """(field path, problem) pairs for the status conditions of an update or create."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, item in enumerate(conditions(new)):
        path = f"status.conditions[{index}]"
        kind = item.get("type")
        if not kind:
            problems.append((f"{path}.type", "required"))
            continue
        if kind in seen:
            problems.append((f"{path}.type", f"duplicate condition type {kind!r}"))
        seen.add(kind)
        if kind in TERMINAL_TYPES and item.get("status", "True") != "True":
            problems.append((f"{path}.status", f'a condition of type "{kind}" must have status "True"'))
    if APPROVED in seen and DENIED in seen:
        problems.append(("status.conditions", "Approved and Denied conditions are mutually exclusive"))
    if old is not None:
        for kind in sorted(TERMINAL_TYPES):
            if has_condition(old, kind) and kind not in seen:
                problems.append(("status.conditions", f'updates may not remove a condition of type "{kind}"'))
    return problems


def certificate_problem(new: Obj, old: Obj) -> str | None:
    """An issued certificate is never replaced, and what is stored must be PEM certificates."""
    before, after = certificate_pem(old), (new.get("status") or {}).get("certificate") or ""
    if before and base64.b64encode(before).decode() != after:
        return "updates may not modify existing certificate content"
    if after and not before:
        try:
            x509.load_pem_x509_certificates(base64.b64decode(after))
        except (ValueError, binascii.Error):
            return "must contain one or more PEM-encoded CERTIFICATE blocks"
    return None


def requester_fields(username: str, uid: str, groups: Iterable[str], extra: dict[str, Any]) -> Obj:
    """The spec fields kube-apiserver fills from the authenticated user at create time."""
    fields: Obj = {"username": username, "groups": list(groups)}
    if uid:
        fields["uid"] = uid
    if extra:
        fields["extra"] = {k: list(v) for k, v in extra.items()}
    return fields
