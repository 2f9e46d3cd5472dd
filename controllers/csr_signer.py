"""The CSR signer: issues client certificates for approved CertificateSigningRequests.

It implements the signers `kubernetes.io/kube-apiserver-client` and
`kubernetes.io/kube-apiserver-client-kubelet` (the latter only for subjects `system:node:<name>` in
`system:nodes`). For each request that is Approved, not Denied or Failed and has no certificate yet, it
signs with the cluster CA and writes `status.certificate` through the `status` subresource; a request
its signer refuses gets a `Failed` condition instead. Requests for other signers are left alone.

Level-triggered: every event (and the list at start and after each watch ends) re-reads a request's
current state, so a restart or a missed event loses nothing.

    python -m controllers.csr_signer --kubeconfig K --ca-cert ca.crt --ca-key ca.key
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from apiserver import certificates as csr
from apiserver.auth.pki import ClusterPki
from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS, ResourceType
from skiff.client.kubeconfig import default_config
from skiff.client.rest import AsyncClient, default_user_agent

log = logging.getLogger("skiff.csr-signer")

CSR_API_VERSION = "certificates.k8s.io/v1"
CSR_KIND = "CertificateSigningRequest"
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0
WATCH_TIMEOUT_SECONDS = 300


def csr_resource() -> ResourceType:
    found = BUILTINS.by_api_version(CSR_API_VERSION, CSR_KIND)
    assert found is not None
    return found


class CsrSigner:
    def __init__(self, client: AsyncClient, pki: ClusterPki, max_seconds: int = csr.DEFAULT_SIGNING_SECONDS) -> None:
        self.client = client
        self.pki = pki
        self.max_seconds = max_seconds
        self.resource = csr_resource()

    async def handle(self, obj: dict[str, Any]) -> None:
        """Bring one request to its signed (or failed) state; conflicts re-read and try again."""
        for _attempt in range(5):
            if not csr.should_sign(obj):
                return
            name = obj["metadata"]["name"]
            # Signing reads the CA key from disk and is CPU-bound: keep it off the event loop.
            outcome = await asyncio.to_thread(csr.sign, obj, self.pki, self.max_seconds)
            if outcome.certificate:
                updated = csr.with_certificate(obj, outcome.certificate)
            else:
                failed = csr.condition(csr.FAILED, "SignerValidationFailure", outcome.failure)
                updated = csr.with_condition(obj, failed)
            try:
                await self.client.update(updated, subresource="status")
            except ApiError as error:
                if error.code == 409:
                    obj = await self.client.get(self.resource, name)
                    continue
                if error.code == 404:
                    return
                raise
            if outcome.certificate:
                log.info("signed %s for %s (%s)", name, obj["spec"].get("username", ""), obj["spec"]["signerName"])
            else:
                log.info("refused %s: %s", name, outcome.failure)
            return

    async def run(self) -> None:
        delay = RETRY_SECONDS
        while True:
            try:
                listed = await self.client.list_all(self.resource)
                for item in listed.get("items") or []:
                    await self._handle_logged(item)
                delay = RETRY_SECONDS
                version = (listed.get("metadata") or {}).get("resourceVersion")
                stream = await self.client.watch(
                    self.resource, resource_version=version, timeout_seconds=WATCH_TIMEOUT_SECONDS
                )
                async with stream:
                    async for event_type, obj in stream:
                        if event_type in ("ADDED", "MODIFIED"):
                            await self._handle_logged(obj)
            except ApiError as error:
                if error.code != 410:
                    log.warning("listing or watching CSRs failed: %s; retrying", error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_RETRY_SECONDS)
            except (OSError, ValueError) as error:
                log.warning("connection to the API server failed: %s; retrying in %.0fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
            except Exception as error:  # httpx transport errors and the like
                log.warning("CSR watch ended: %s; retrying in %.0fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)

    async def _handle_logged(self, obj: dict[str, Any]) -> None:
        try:
            await self.handle(obj)
        except Exception:
            log.exception("signing %s failed", (obj.get("metadata") or {}).get("name", ""))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="csr-signer", description="Sign approved CertificateSigningRequests with the cluster CA."
    )
    parser.add_argument("--kubeconfig", default=None, help="how to reach the API server")
    parser.add_argument("--ca-cert", required=True, type=Path, help="the cluster CA certificate (PEM)")
    parser.add_argument("--ca-key", required=True, type=Path, help="the cluster CA private key (PEM)")
    parser.add_argument(
        "--cluster-signing-duration",
        type=int,
        default=csr.DEFAULT_SIGNING_SECONDS,
        help="longest certificate lifetime in seconds (a request's expirationSeconds may ask for less)",
    )
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    for path in (args.ca_cert, args.ca_key):
        if not path.is_file():
            raise SystemExit(f"csr-signer: {path} does not exist")
    config = default_config(args.kubeconfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncClient(config, user_agent=default_user_agent("csr-signer")) as client:
        signer = CsrSigner(client, csr.ca_files(args.ca_cert, args.ca_key), args.cluster_signing_duration)
        log.info("signing %s requests", ", ".join(sorted(csr.BUILTIN_SIGNERS)))
        task = asyncio.create_task(signer.run(), name="csr-signer")
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
