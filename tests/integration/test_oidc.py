"""OIDC: the API server trusts ID tokens from an outside identity provider (`--oidc-*` flags).

The test runs its own provider over HTTPS, with its own CA, serving discovery and JWKS, and mints tokens.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support import ApiServer, free_port

CLIENT_ID = "skiff-cluster"


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a serving certificate for 127.0.0.1 issued by it: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test-idp-ca"))
        .issuer_name(_name("test-idp-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "idp-ca.pem", directory / "idp.pem", directory / "idp-key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem_key(key))
    return paths


class IdentityProvider:
    """Serves /.well-known/openid-configuration and /keys over HTTPS; mints ID tokens with its current key."""

    def __init__(self, directory: Path) -> None:
        self.ca, cert, key = make_tls_files(directory)
        self.port = free_port()
        self.issuer = f"https://127.0.0.1:{self.port}"
        self.signing_key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "key-1"
        self.algorithm = "RS256"
        self.jwks_requests = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body: Any = {
                        "issuer": provider.issuer,
                        "jwks_uri": f"{provider.issuer}/keys",
                        "response_types_supported": ["id_token"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                    }
                elif self.path == "/keys":
                    provider.jwks_requests += 1
                    body = provider.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def jwks(self) -> dict[str, Any]:
        algorithm = jwt.algorithms.RSAAlgorithm if self.algorithm == "RS256" else jwt.algorithms.ECAlgorithm
        jwk = json.loads(algorithm.to_jwk(self.signing_key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}]}

    def rotate(self, algorithm: str = "RS256") -> None:
        if algorithm == "RS256":
            self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.signing_key = ec.generate_private_key(ec.SECP256R1())
        self.algorithm = algorithm
        self.kid = f"key-{uuid.uuid4().hex[:6]}"

    def mint(self, key: Any = None, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "aud": CLIENT_ID, "sub": "alice", "iat": now, "exp": now + 600, **claims}
        return jwt.encode(body, key or self.signing_key, algorithm=self.algorithm, headers={"kid": kid or self.kid})


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityProvider]:
    provider = IdentityProvider(tmp_path_factory.mktemp("idp"))
    provider.thread.start()
    yield provider
    provider.httpd.shutdown()


@pytest.fixture(scope="module")
def server(idp: IdentityProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    extra = [
        "--oidc-issuer-url", idp.issuer,
        "--oidc-client-id", CLIENT_ID,
        "--oidc-ca-file", str(idp.ca),
        "--oidc-groups-claim", "groups",
        "--oidc-groups-prefix", "oidc:",
    ]  # fmt: skip
    api = ApiServer(tmp_path_factory.mktemp("oidc"), free_port(), extra_args=extra).start()
    yield api
    api.stop()


def identity(server: ApiServer, token: str) -> dict[str, Any] | None:
    """The user the server takes the bearer of `token` to be (a SelfSubjectReview), or None on 401."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    with server.anonymous_client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json=review)
    if response.status_code == 401:
        return None
    assert response.status_code == 201, response.text
    return response.json()["status"]["userInfo"]


def test_valid_id_token_authenticates_with_prefixed_name_and_groups(server: ApiServer, idp: IdentityProvider) -> None:
    user = identity(server, idp.mint(groups=["dev", "ops"]))
    assert user is not None
    assert user["username"] == f"{idp.issuer}#alice"
    assert user["groups"] == ["oidc:dev", "oidc:ops", "system:authenticated"]


def test_tokens_that_fail_verification_get_401(server: ApiServer, idp: IdentityProvider) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "wrong audience": idp.mint(aud="some-other-app"),
        "wrong issuer": idp.mint(iss="https://127.0.0.1:1"),
        "expired": idp.mint(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
        "not yet valid": idp.mint(nbf=int(time.time()) + 3600),
        "unknown key": idp.mint(key=stranger, kid="not-published"),
        "known kid, wrong key": idp.mint(key=stranger),
    }
    for label, token in refused.items():
        with server.anonymous_client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
            response = client.get("/api/v1/namespaces/default/configmaps")
        assert response.status_code == 401, (label, response.text)
    log = server.log_path.read_text(errors="replace")
    assert not any(token.split(".")[1] in log for token in refused.values())


def test_rotated_provider_key_is_picked_up(server: ApiServer, idp: IdentityProvider) -> None:
    assert identity(server, idp.mint()) is not None
    old_token = idp.mint(sub="before-rotation")
    idp.rotate("ES256")
    fresh = idp.mint(sub="bob")
    deadline = time.monotonic() + 10
    user = identity(server, fresh)
    while user is None and time.monotonic() < deadline:  # the server refetches keys at most every few seconds
        time.sleep(0.5)
        user = identity(server, fresh)
    assert user is not None and user["username"] == f"{idp.issuer}#bob"
    # The old key is no longer published: tokens signed with it stop working once seen anew.
    assert identity(server, old_token) is None


def test_untrusted_provider_certificate_means_401_not_500(idp: IdentityProvider, tmp_path: Path) -> None:
    # Without --oidc-ca-file the provider's certificate is not trusted, so no key can be fetched.
    extra = ["--oidc-issuer-url", idp.issuer, "--oidc-client-id", CLIENT_ID]
    api = ApiServer(tmp_path / "untrusting", free_port(), extra_args=extra).start()
    try:
        with api.anonymous_client(timeout=10, headers={"Authorization": f"Bearer {idp.mint()}"}) as client:
            assert client.get("/api/v1/namespaces/default/configmaps").status_code == 401
        with api.client(timeout=10) as admin:
            assert admin.get("/api/v1/namespaces/default/configmaps").status_code == 200
    finally:
        api.stop()
