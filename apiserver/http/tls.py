"""Expose the verified TLS client certificate to the application.

uvicorn verifies client certificates against the CA but does not hand them to the ASGI app. This
protocol puts the peer certificate into the ASGI TLS extension (`scope["extensions"]["tls"]`), taken
from the connection's own SSL object after the handshake — so an identity can only come from the
verified handshake, never from anything a client writes into a request.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def peer_certificate(transport: asyncio.BaseTransport) -> bytes | None:
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    # With CERT_OPTIONAL the handshake fails for a certificate that does not verify, so a certificate
    # present here has been verified against the cluster CA.
    return ssl_object.getpeercert(binary_form=True)


class CertificateHttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        der = peer_certificate(transport)
        self._tls_extension: dict[str, Any] | None = (
            {"client_cert_der": der, "client_cert_chain": [der] if der else []} if self.scheme == "https" else None
        )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls_extension is not None:
            self.scope["extensions"] = {"tls": self._tls_extension}  # type: ignore[typeddict-unknown-key]


def client_certificate(scope: dict[str, Any]) -> bytes | None:
    tls = scope.get("extensions", {}).get("tls")
    return tls.get("client_cert_der") if tls else None
