"""Loading client configuration the way kubectl does: merged kubeconfigs, contexts, files, in-cluster."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from skiff.client import kubeconfig as kubeconfig_module
from skiff.client.kubeconfig import (
    ClientConfig,
    KubeconfigError,
    in_cluster_config,
    load_kubeconfig,
)
from skiff.pki.cluster import ClusterPki, ensure_cluster_pki, identity_from_certificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPki:
    return ensure_cluster_pki(tmp_path_factory.mktemp("data"), "https://127.0.0.1:6443")


def write_yaml(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def config_file(
    clusters: dict[str, dict[str, Any]],
    users: dict[str, dict[str, Any]],
    contexts: dict[str, dict[str, Any]],
    current: str | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in users.items()],
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current:
        document["current-context"] = current
    return document


def peer_identity(pki: ClusterPki, context: ssl.SSLContext) -> tuple[str, list[str]]:
    """Handshake with a server using the cluster's serving certificate; return who the server saw."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki.serving_cert, pki.serving_key)
    server_context.load_verify_locations(pki.ca_cert)
    server_context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with server_context.wrap_socket(connection, server_side=True) as tls:
                seen.append(tls.getpeercert(binary_form=True) or b"")
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError):
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname()) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.recv(2) == b"ok"
    finally:
        thread.join(5)
        listener.close()
    return identity_from_certificate(seen[0])


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


# --- the generated admin kubeconfig


def test_admin_kubeconfig_authenticates_as_admin_over_tls(pki: ClusterPki) -> None:
    config = load_kubeconfig(str(pki.admin_kubeconfig))
    assert config.server == "https://127.0.0.1:6443"
    assert config.namespace == "default"
    assert peer_identity(pki, config.ssl_context()) == ("skiff-admin", ["system:masters"])


def test_staged_client_key_files_do_not_outlive_the_context(
    pki: ClusterPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging_root = tmp_path / "tmp"
    staging_root.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(staging_root))
    load_kubeconfig(str(pki.admin_kubeconfig)).ssl_context()
    assert list(staging_root.iterdir()) == []


def test_secrets_stay_out_of_the_config_repr(pki: ClusterPki) -> None:
    config = load_kubeconfig(str(pki.admin_kubeconfig))
    config.token = "s3cr3t-token"
    shown = repr(config)
    assert "s3cr3t-token" not in shown
    assert "PRIVATE KEY" not in shown
    assert "127.0.0.1:6443" in shown


# --- files, relative paths and tokens


def test_relative_files_resolve_against_the_kubeconfig_directory(
    pki: ClusterPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "conf"
    home.mkdir()
    (home / "ca.crt").write_bytes(pki.ca_pem())
    (home / "me.crt").write_bytes(pki.admin_cert.read_bytes())
    (home / "me.key").write_bytes(pki.admin_key.read_bytes())
    document = config_file(
        {"c": {"server": "https://localhost:6443", "certificate-authority": "ca.crt"}},
        {"me": {"client-certificate": "me.crt", "client-key": "me.key"}},
        {"ctx": {"cluster": "c", "user": "me", "namespace": "team-a"}},
        current="ctx",
    )
    path = write_yaml(home / "config", document)
    monkeypatch.chdir(tmp_path)
    config = load_kubeconfig(str(path))
    assert config.ca_file == str(home / "ca.crt")
    assert config.namespace == "team-a"
    assert peer_identity(pki, config.ssl_context()) == ("skiff-admin", ["system:masters"])


def test_token_file_is_read_and_rotation_is_picked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("first\n")
    document = config_file(
        {"c": {"server": "https://h:1"}},
        {"u": {"tokenFile": "token"}},
        {"x": {"cluster": "c", "user": "u"}},
        "x",
    )
    config = load_kubeconfig(str(write_yaml(tmp_path / "config", document)))
    assert config.bearer_token() == "first"
    (tmp_path / "token").write_text("second\n")
    assert config.bearer_token() == "first", "a token file is cached between refreshes"
    monkeypatch.setattr(kubeconfig_module, "TOKEN_FILE_REFRESH_SECONDS", -1.0)
    assert config.bearer_token() == "second"


def test_inline_token_and_insecure_skip_verify(tmp_path: Path) -> None:
    document = config_file(
        {"c": {"server": "https://h:1/", "insecure-skip-tls-verify": True}},
        {"u": {"token": "abc"}},
        {"x": {"cluster": "c", "user": "u"}},
        "x",
    )
    config = load_kubeconfig(str(write_yaml(tmp_path / "config", document)))
    assert config.server == "https://h:1"
    assert config.bearer_token() == "abc"
    context = config.ssl_context()
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


def test_with_a_ca_only_that_ca_is_trusted(pki: ClusterPki, tmp_path: Path) -> None:
    other = ensure_cluster_pki(tmp_path / "other", "https://127.0.0.1:6443")
    config = ClientConfig(server="https://localhost:6443", ca_data=other.ca_pem())
    with pytest.raises(ssl.SSLCertVerificationError):
        peer_identity(pki, config.ssl_context())


def test_certificate_without_key_is_an_error(pki: ClusterPki) -> None:
    config = ClientConfig(server="https://h:1", ca_data=pki.ca_pem(), cert_data=pki.admin_cert.read_bytes())
    with pytest.raises(KubeconfigError, match="both a certificate and a key"):
        config.ssl_context()


# --- merging and contexts


def test_kubeconfig_list_merges_with_first_definition_winning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = config_file(
        {"shared": {"server": "https://first:6443"}},
        {"alice": {"token": "alice-token"}},
        {"a": {"cluster": "shared", "user": "alice"}},
        current="a",
    )
    second = config_file(
        {"shared": {"server": "https://second:6443"}, "lab": {"server": "https://lab:6443"}},
        {"bob": {"token": "bob-token"}},
        {"b": {"cluster": "lab", "user": "bob", "namespace": "lab-ns"}},
        current="b",
    )
    paths = [write_yaml(tmp_path / "one", first), tmp_path / "missing", write_yaml(tmp_path / "two", second)]
    monkeypatch.setenv("KUBECONFIG", ":".join(str(p) for p in paths) + ":")

    current = load_kubeconfig()
    assert (current.server, current.bearer_token(), current.namespace) == (
        "https://first:6443",
        "alice-token",
        "default",
    )
    lab = load_kubeconfig(context="b")
    assert (lab.server, lab.bearer_token(), lab.namespace) == ("https://lab:6443", "bob-token", "lab-ns")


def test_relative_paths_follow_the_file_that_defined_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "token").write_text("from-b")
    write_yaml(tmp_path / "a" / "config", config_file({"c": {"server": "https://h:1"}}, {}, {}, "x"))
    write_yaml(
        tmp_path / "b" / "config",
        config_file({}, {"u": {"tokenFile": "token"}}, {"x": {"cluster": "c", "user": "u"}}),
    )
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'a' / 'config'}:{tmp_path / 'b' / 'config'}")
    assert load_kubeconfig().bearer_token() == "from-b"


def test_home_kube_config_is_the_default(tmp_path: Path) -> None:
    kube = tmp_path / "home" / ".kube"
    kube.mkdir(parents=True)
    write_yaml(kube / "config", config_file({"c": {"server": "https://home:6443"}}, {}, {"x": {"cluster": "c"}}, "x"))
    assert load_kubeconfig().server == "https://home:6443"


@pytest.mark.parametrize(
    ("context", "current", "message"),
    [
        ("nope", "x", 'context "nope" does not exist'),
        (None, None, "no current-context"),
        ("dangling", "x", 'names cluster "gone", which does not exist'),
        ("stranger", "x", 'user "ghost" does not exist'),
    ],
)
def test_broken_choices_are_clear_errors(
    tmp_path: Path, context: str | None, current: str | None, message: str
) -> None:
    document = config_file(
        {"c": {"server": "https://h:1"}},
        {},
        {
            "x": {"cluster": "c"},
            "dangling": {"cluster": "gone"},
            "stranger": {"cluster": "c", "user": "ghost"},
        },
        current,
    )
    with pytest.raises(KubeconfigError, match=message):
        load_kubeconfig(str(write_yaml(tmp_path / "config", document)), context)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="no kubeconfig found"):
        load_kubeconfig(str(tmp_path / "absent"))


def test_malformed_base64_is_an_error(tmp_path: Path) -> None:
    document = config_file(
        {"c": {"server": "https://h:1", "certificate-authority-data": "!!not base64!!"}},
        {},
        {"x": {"cluster": "c"}},
        "x",
    )
    with pytest.raises(KubeconfigError, match="certificate-authority-data"):
        load_kubeconfig(str(write_yaml(tmp_path / "config", document)))


def test_embedded_data_round_trips(pki: ClusterPki, tmp_path: Path) -> None:
    document = config_file(
        {
            "c": {
                "server": "https://h:1",
                "certificate-authority-data": base64.b64encode(pki.ca_pem()).decode(),
            }
        },
        {},
        {"x": {"cluster": "c"}},
        "x",
    )
    assert load_kubeconfig(str(write_yaml(tmp_path / "config", document))).ca_data == pki.ca_pem()


# --- in-cluster


def simulated_pod(tmp_path: Path, pki: ClusterPki, namespace: str | None = "apps") -> Path:
    root = tmp_path / "serviceaccount"
    root.mkdir()
    (root / "token").write_text("pod-token")
    (root / "ca.crt").write_bytes(pki.ca_pem())
    if namespace:
        (root / "namespace").write_text(namespace)
    return root


def test_in_cluster_config_from_a_pod_directory(pki: ClusterPki, tmp_path: Path) -> None:
    root = simulated_pod(tmp_path, pki)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    config = in_cluster_config(root, env)
    assert config.server == "https://10.96.0.1:443"
    assert config.namespace == "apps"
    assert config.bearer_token() == "pod-token"
    assert config.ca_file == str(root / "ca.crt")
    config.ssl_context()  # the mounted CA loads


def test_in_cluster_ipv6_host_and_default_namespace(pki: ClusterPki, tmp_path: Path) -> None:
    root = simulated_pod(tmp_path, pki, namespace=None)
    config = in_cluster_config(root, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"})
    assert config.server == "https://[fd00::1]:6443"
    assert config.namespace == "default"


def test_outside_a_cluster_is_a_clear_error(pki: ClusterPki, tmp_path: Path) -> None:
    root = simulated_pod(tmp_path, pki)
    with pytest.raises(KubeconfigError, match="not in a cluster"):
        in_cluster_config(root, {})
    with pytest.raises(KubeconfigError, match="not in a cluster"):
        in_cluster_config(tmp_path / "nowhere", {"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"})
