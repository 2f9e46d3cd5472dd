"""A tiny secrets service that trusts only Kubernetes service-account tokens.

    python examples/secrets-injector/secrets_service.py --kubeconfig K --secrets secrets.json \
        --cert certs/tls.crt --key certs/tls.key --port 8200

`GET /v1/secrets/<namespace>/<name>` with `Authorization: Bearer <service-account token>` answers the
secret when the API server's TokenReview says the token is valid and belongs to a service account of
<namespace> (and, for a pod-bound token, that its pod still exists): 401 for a forged or expired token, 403 for
a token from another namespace (or a service account the secret does not list), 404 for an unknown
secret. The secrets file maps namespaces to secrets:

    {"team-a": {"db-password": "s3cr3t", "api-key": {"value": "k", "serviceAccounts": ["web"]}}}
"""

from __future__ import annotations

import argparse
import json
import logging
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from skiff.client.kubeconfig import load_kubeconfig

log = logging.getLogger("secrets-service")
# Skiff's TokenReview checks tokens against the API server's own audiences, so by default the service
# asks for no other; with --audience it asks for that one.
AUDIENCE = ""
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


class TokenReviewer:
    """Asks the API server who a token belongs to (authentication.k8s.io/v1 TokenReview)."""

    def __init__(self, kubeconfig: str, audience: str) -> None:
        config = load_kubeconfig(kubeconfig)
        headers = {"Authorization": f"Bearer {config.bearer_token()}"} if config.bearer_token() else {}
        self.client = httpx.Client(base_url=config.server, verify=config.ssl_context(), headers=headers, timeout=10)
        self.audience = audience

    def review(self, token: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"token": token}
        if self.audience:
            spec["audiences"] = [self.audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        response = self.client.post("/apis/authentication.k8s.io/v1/tokenreviews", json=body)
        response.raise_for_status()
        return response.json().get("status") or {}


def decide(status: dict[str, Any], namespace: str, name: str, secrets: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The answer to one request, given the TokenReview status of its token."""
    if not status.get("authenticated"):
        return 401, {"error": "unauthorized", "reason": status.get("error") or "the token is not valid"}
    username = (status.get("user") or {}).get("username", "")
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return 403, {"error": "forbidden", "reason": f"{username} is not a service account"}
    caller_namespace, _, account = username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    if caller_namespace != namespace:
        return 403, {"error": "forbidden", "reason": f"{username} may not read secrets of namespace {namespace}"}
    entry = (secrets.get(namespace) or {}).get(name)
    if entry is None:
        return 404, {"error": "not found", "reason": f"no secret {namespace}/{name}"}
    if isinstance(entry, dict):
        allowed = entry.get("serviceAccounts")
        if allowed is not None and account not in allowed:
            return 403, {"error": "forbidden", "reason": f"{username} is not allowed to read {namespace}/{name}"}
        value = entry.get("value", "")
    else:
        value = str(entry)
    log.info("%s read %s/%s", username, namespace, name)
    return 200, {"namespace": namespace, "name": name, "value": value}


def make_handler(reviewer: TokenReviewer, secrets: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
            if len(parts) != 4 or parts[:2] != ["v1", "secrets"]:
                self._reply(404, {"error": "not found"})
                return
            header = self.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                self._reply(401, {"error": "unauthorized", "reason": "a bearer token is required"})
                return
            try:
                status = reviewer.review(header[len("Bearer ") :].strip())
            except httpx.HTTPError as error:
                log.warning("TokenReview failed: %s", error)
                self._reply(503, {"error": "the API server could not review the token"})
                return
            self._reply(*decide(status, parts[2], parts[3], secrets))

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Handler


def serve(
    bind: str, port: int, cert: str, key: str, kubeconfig: str, secrets_file: Path, audience: str = AUDIENCE
) -> ThreadingHTTPServer:
    secrets = json.loads(secrets_file.read_text())
    server = ThreadingHTTPServer((bind, port), make_handler(TokenReviewer(kubeconfig, audience), secrets))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="A secrets service that authenticates service-account tokens.")
    parser.add_argument("--kubeconfig", required=True, help="credentials allowed to create TokenReviews")
    parser.add_argument("--secrets", type=Path, required=True, help="JSON file: namespace → name → value")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--audience", default=AUDIENCE, help="a token audience to ask the TokenReview for")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = serve(args.bind, args.port, args.cert, args.key, args.kubeconfig, args.secrets, args.audience)
    log.info("secrets service listening on https://%s:%d", args.bind, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
