"""CSR signing controller (`csrsigning`): issues client certificates for approved CertificateSigningRequests.

It implements the signers `kubernetes.io/kube-apiserver-client` and
`kubernetes.io/kube-apiserver-client-kubelet` (the latter only for subjects `system:node:<name>` in
`system:nodes`). For each request that is Approved, not Denied or Failed and has no certificate yet, it
signs with the cluster CA (`--cluster-signing-cert-file`, `--cluster-signing-key-file`) and writes
`status.certificate` through the `status` subresource; a request its signer refuses gets a `Failed`
condition instead. Requests for other signers are left alone. Certificates live no longer than
`--cluster-signing-duration`, or less when the request's `expirationSeconds` asks for less.

Level-triggered: every informer event re-reads a request's current state, so a restart or a missed
event loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from controllers.base import ControllerContext
from skiff.api.errors import ApiError
from skiff.pki import csr
from skiff.pki.cluster import ClusterPki
from skiff.runtime import Controller, Informer, object_key

log = logging.getLogger("skiff.controller.csrsigning")

CSRS = ("certificates.k8s.io/v1", "CertificateSigningRequest")


class CsrSigningController:
    def __init__(self, ctx: ControllerContext, pki: ClusterPki) -> None:
        self.ctx = ctx
        self.pki = pki
        self.max_seconds = int(ctx.options.cluster_signing_duration)
        self.informer: Informer = ctx.informers.informer(CSRS)
        self.controller: Controller[str] = Controller(
            "csrsigning", self.reconcile, workers=ctx.options.concurrent_syncs, wait_for=[self.informer]
        )
        self.informer.add_event_handler(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))

    def _enqueue(self, obj: dict[str, Any]) -> None:
        if csr.should_sign(obj):
            self.controller.enqueue(object_key(obj))

    async def reconcile(self, name: str) -> None:
        obj = self.informer.get(None, name)
        if obj is None or not csr.should_sign(obj):
            return
        # Signing reads the CA key from disk and is CPU-bound: keep it off the event loop.
        outcome = await asyncio.to_thread(csr.sign, obj, self.pki, self.max_seconds)
        if outcome.certificate:
            updated = csr.with_certificate(obj, outcome.certificate)
        else:
            updated = csr.with_condition(obj, csr.condition(csr.FAILED, "SignerValidationFailure", outcome.failure))
        try:
            # The cached resourceVersion is the precondition: a stale cache gets 409 and a retry.
            await self.ctx.client.update(updated, subresource="status")
        except ApiError as error:
            if error.code == 404:
                return
            raise
        spec = obj.get("spec") or {}
        if outcome.certificate:
            log.info("signed %s for %s (%s)", name, spec.get("username", ""), spec.get("signerName", ""))
        else:
            log.info("refused %s: %s", name, outcome.failure)


def signing_pki(ctx: ControllerContext) -> ClusterPki | None:
    """The CA to sign with, from the flags; None (and a log line) when they are not given or missing."""
    cert, key = ctx.options.cluster_signing_cert_file, ctx.options.cluster_signing_key_file
    if not cert or not key:
        log.warning("no --cluster-signing-cert-file/--cluster-signing-key-file: certificates will not be signed")
        return None
    for path in (cert, key):
        if not Path(path).is_file():
            raise SystemExit(f"csrsigning: {path} does not exist")
    return csr.ca_files(Path(cert), Path(key))


async def start(ctx: ControllerContext) -> None:
    pki = signing_pki(ctx)
    if pki is None:
        return
    log.info("signing %s requests", ", ".join(sorted(csr.BUILTIN_SIGNERS)))
    await CsrSigningController(ctx, pki).controller.run()
