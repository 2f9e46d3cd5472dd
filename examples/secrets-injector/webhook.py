"""The secrets injector: a mutating admission webhook in the Vault agent-injector pattern.

    python examples/secrets-injector/webhook.py --cert certs/tls.crt --key certs/tls.key --port 8443

Every pod annotated `vault.hashicorp.com/agent-inject: "true"` gets

- a memory-backed emptyDir volume `vault-secrets`, mounted at /vault/secrets in every container;
- a projected service-account token `vault-token`, bound to the pod, which the agent presents to the
  secrets service;
- an init container `vault-agent-init` that fetches the secrets before the app starts, and a sidecar
  `vault-agent` that keeps them fresh. Both run `agent.py`.

Which secrets: one annotation per file, `vault.hashicorp.com/agent-inject-secret-<file>: <secret>`;
the agent writes secret <secret> of the pod's namespace to /vault/secrets/<file>. The pod gets
`vault.hashicorp.com/agent-inject-status: injected`, and a pod that already has it is left alone.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("secrets-injector")

INJECT = "vault.hashicorp.com/agent-inject"
STATUS = "vault.hashicorp.com/agent-inject-status"
SECRET_PREFIX = "vault.hashicorp.com/agent-inject-secret-"
SERVICE = "vault.hashicorp.com/service"
SECRETS_VOLUME = "vault-secrets"
TOKEN_VOLUME = "vault-token"
SECRETS_PATH = "/vault/secrets"
TOKEN_PATH = "/var/run/secrets/skiff.dev/secrets-token"
AGENT_IMAGE = "skiff.dev/examples/secrets-agent:0.1"
SIM_INIT_EXIT = "sim.skiff.dev/vault-agent-init.exit-after"


def _escape(key: str) -> str:
    """A map key as one JSON pointer segment."""
    return key.replace("~", "~0").replace("/", "~1")


def wants_injection(pod: dict[str, Any]) -> bool:
    annotations = pod.get("metadata", {}).get("annotations") or {}
    return annotations.get(INJECT, "").lower() in ("true", "yes", "y", "on") and STATUS not in annotations


def secret_files(pod: dict[str, Any]) -> dict[str, str]:
    """File name → secret name, from the agent-inject-secret annotations."""
    annotations = pod.get("metadata", {}).get("annotations") or {}
    return {key[len(SECRET_PREFIX) :]: value for key, value in annotations.items() if key.startswith(SECRET_PREFIX)}


def _agent(name: str, pod: dict[str, Any], service_url: str, once: bool) -> dict[str, Any]:
    files = secret_files(pod)
    args = ["--service-url", service_url, "--token-file", f"{TOKEN_PATH}/token", "--out-dir", SECRETS_PATH]
    for file_name, secret in sorted(files.items()):
        args += ["--secret", f"{file_name}={secret}"]
    if once:
        args.append("--once")
    return {
        "name": name,
        "image": AGENT_IMAGE,
        "command": ["python", "/agent.py"],
        "args": args,
        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "volumeMounts": [
            {"name": SECRETS_VOLUME, "mountPath": SECRETS_PATH},
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_PATH, "readOnly": True},
        ],
    }


def injection_patch(pod: dict[str, Any], default_service_url: str) -> list[dict[str, Any]]:
    """The JSON patch that injects the agent into a pod (empty when the pod does not ask for it)."""
    if not wants_injection(pod):
        return []
    annotations = pod.get("metadata", {}).get("annotations") or {}
    service_url = annotations.get(SERVICE, default_service_url)
    spec = pod.get("spec") or {}
    ops: list[dict[str, Any]] = []
    mount = {"name": SECRETS_VOLUME, "mountPath": SECRETS_PATH}
    for list_name in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(list_name) or []):
            path = f"/spec/{list_name}/{index}/volumeMounts"
            if container.get("volumeMounts"):
                ops.append({"op": "add", "path": f"{path}/-", "value": mount})
            else:
                ops.append({"op": "add", "path": path, "value": [mount]})
    volumes = [
        {"name": SECRETS_VOLUME, "emptyDir": {"medium": "Memory"}},
        {
            "name": TOKEN_VOLUME,
            "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3600, "path": "token"}}]},
        },
    ]
    if spec.get("volumes"):
        ops += [{"op": "add", "path": "/spec/volumes/-", "value": volume} for volume in volumes]
    else:
        ops.append({"op": "add", "path": "/spec/volumes", "value": volumes})
    init = _agent("vault-agent-init", pod, service_url, once=True)
    if spec.get("initContainers"):
        # The agent runs first, so the app's own init containers already find the secrets.
        ops.append({"op": "add", "path": "/spec/initContainers/0", "value": init})
    else:
        ops.append({"op": "add", "path": "/spec/initContainers", "value": [init]})
    ops.append(
        {"op": "add", "path": "/spec/containers/-", "value": _agent("vault-agent", pod, service_url, once=False)}
    )
    ops.append({"op": "add", "path": f"/metadata/annotations/{_escape(STATUS)}", "value": "injected"})
    # On Skiff's simulated runtime a container runs until told to exit: the init agent finishes at once.
    ops.append({"op": "add", "path": f"/metadata/annotations/{_escape(SIM_INIT_EXIT)}", "value": "1s"})
    return ops


def review_response(review: dict[str, Any], default_service_url: str) -> dict[str, Any]:
    request = review.get("request") or {}
    response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
    pod = request.get("object") or {}
    if request.get("kind", {}).get("kind") == "Pod" and request.get("operation") == "CREATE":
        ops = injection_patch(pod, default_service_url)
        if ops:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
            log.info(
                "injecting the secrets agent into %s/%s", request.get("namespace"), pod.get("metadata", {}).get("name")
            )
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def make_handler(default_service_url: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/mutate":
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                review = json.loads(self.rfile.read(length))
                body = json.dumps(review_response(review, default_service_url)).encode()
            except (ValueError, AttributeError):
                self.send_error(400, "expected an AdmissionReview")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Handler


def serve(bind: str, port: int, cert: str, key: str, service_url: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((bind, port), make_handler(service_url))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="The secrets-injector mutating admission webhook.")
    parser.add_argument("--cert", required=True, help="serving certificate (PEM)")
    parser.add_argument("--key", required=True, help="its private key (PEM)")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument(
        "--secrets-url",
        default="https://secrets.secrets-injector.svc:8200",
        help="the secrets service the agent asks (a pod can override it with vault.hashicorp.com/service)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = serve(args.bind, args.port, args.cert, args.key, args.secrets_url)
    log.info("secrets injector listening on https://%s:%d/mutate", args.bind, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
