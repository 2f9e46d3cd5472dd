"""`skiff pki`: the cluster's certificate authority and the identities issued from it.

    skiff pki init --data-dir DIR [--server URL] [--tls-san NAME]   create (or keep) the cluster PKI
    skiff pki show --data-dir DIR                                   CA, serving and admin certificates
    skiff pki user NAME [--group G]... --data-dir DIR [--out FILE]  a client certificate and kubeconfig
    skiff pki components --data-dir DIR                             controller-manager, scheduler, proxy
    skiff pki node NAME --data-dir DIR                              a kubelet's identity

Kubeconfigs are written under DIR/kubeconfigs/ (mode 0600) unless --out says otherwise. The identities
are plain client certificates: the user is the subject's common name, the groups its organizations.
What each identity may do is up to authorization (RBAC), not to the certificate.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from skiff.pki import cluster as cluster_pki
from skiff.pki.kubeconfig import write_kubeconfig

DEFAULT_SERVER = "https://127.0.0.1:6443"
NODE_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"


@dataclass(frozen=True)
class Identity:
    file_name: str
    user: str
    groups: tuple[str, ...] = ()


# The control-plane components and the identities kube's default RBAC roles are bound to.
COMPONENTS: tuple[Identity, ...] = (
    Identity("controller-manager", "system:kube-controller-manager"),
    Identity("scheduler", "system:kube-scheduler"),
    Identity("proxy", "system:kube-proxy"),
)


def node_identity(name: str) -> Identity:
    return Identity(f"node-{name}", f"{NODE_USER_PREFIX}{name}", (NODE_GROUP,))


def kubeconfig_dir(data_dir: Path) -> Path:
    return data_dir / "kubeconfigs"


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _subject_text(name: x509.Name) -> str:
    common = [str(a.value) for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    text = f"CN={common[0]}" if common else "(no CN)"
    return text + "".join(f", O={org}" for org in orgs)


def _alt_names(cert: x509.Certificate) -> list[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n.value) for n in names]


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def existing_pki(data_dir: Path) -> cluster_pki.ClusterPki:
    pki = cluster_pki.ClusterPki.under(data_dir)
    if not (pki.ca_cert.exists() and pki.ca_key.exists()):
        raise SystemExit(
            f"skiff pki: no cluster CA under {pki.directory}; run `skiff pki init --data-dir {data_dir}` "
            "or start the API server once"
        )
    return pki


def server_of(pki: cluster_pki.ClusterPki, override: str | None) -> str:
    """The API server URL: --server, else the admin kubeconfig's, else the default local address."""
    if override:
        return override
    if pki.admin_kubeconfig.exists():
        document = yaml.safe_load(pki.admin_kubeconfig.read_text()) or {}
        for entry in document.get("clusters") or []:
            server = (entry.get("cluster") or {}).get("server")
            if server:
                return str(server)
    return DEFAULT_SERVER


def describe(pki: cluster_pki.ClusterPki) -> list[str]:
    ca = _load(pki.ca_cert)
    lines = [
        f"CA:          {_subject_text(ca.subject)}",
        f"  file:      {pki.ca_cert}",
        f"  sha256:    {fingerprint(ca)}",
        f"  expires:   {ca.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if pki.serving_cert.exists():
        serving = _load(pki.serving_cert)
        lines += [
            f"Serving:     {_subject_text(serving.subject)}",
            f"  sha256:    {fingerprint(serving)}",
            f"  expires:   {serving.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC",
            f"  SANs:      {', '.join(_alt_names(serving))}",
        ]
    if pki.admin_cert.exists():
        admin = _load(pki.admin_cert)
        lines += [
            f"Admin:       {_subject_text(admin.subject)}",
            f"  expires:   {admin.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC",
            f"  kubeconfig: {pki.admin_kubeconfig}",
        ]
    if pki.service_account_pub.exists():
        lines.append(f"SA signing:  {pki.service_account_pub}")
    return lines


def issue(
    pki: cluster_pki.ClusterPki,
    identity: Identity,
    server: str,
    out: Path | None = None,
    days: int = 365,
    force: bool = True,
) -> tuple[Path, bool]:
    """Write a kubeconfig for `identity`; returns (path, whether a new certificate was issued)."""
    path = out or kubeconfig_dir(pki.directory.parent) / f"{identity.file_name}.kubeconfig"
    if not force and path.exists():
        return path, False
    cert_pem, key_pem = cluster_pki.issue_client_certificate(pki, identity.user, list(identity.groups), days)
    write_kubeconfig(path, server, pki.ca_pem(), cert_pem=cert_pem, key_pem=key_pem, user=identity.user)
    return path, True


# -- commands -----------------------------------------------------------------------------------------
def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", required=True, type=Path, help="the cluster's data directory")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skiff pki", description="The cluster's CA and client identities.")
    commands = parser.add_subparsers(dest="command", required=True)

    init = commands.add_parser("init", help="create the cluster PKI, or keep and show the existing one")
    _data_dir(init)
    init.add_argument("--server", default=DEFAULT_SERVER, help="the API server URL for the admin kubeconfig")
    init.add_argument("--tls-san", action="append", default=[], help="extra serving-certificate name or IP")

    show = commands.add_parser("show", help="show the CA and certificates")
    _data_dir(show)

    user = commands.add_parser("user", help="issue a client certificate and kubeconfig for a user")
    user.add_argument("name")
    user.add_argument("--group", action="append", default=[], help="a group (certificate organization)")
    _data_dir(user)
    user.add_argument("--out", type=Path, default=None, help="kubeconfig path (default DIR/kubeconfigs/NAME)")
    user.add_argument("--server", default=None, help="API server URL (default: the admin kubeconfig's)")
    user.add_argument("--days", type=int, default=365, help="certificate lifetime")

    components = commands.add_parser("components", help="identities for controller-manager, scheduler, proxy")
    _data_dir(components)
    components.add_argument("--server", default=None)
    components.add_argument("--force", action="store_true", help="re-issue kubeconfigs that already exist")

    node = commands.add_parser("node", help="a kubelet's identity (system:node:NAME in system:nodes)")
    node.add_argument("name")
    _data_dir(node)
    node.add_argument("--server", default=None)
    node.add_argument("--force", action="store_true", help="re-issue when the kubeconfig already exists")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    data_dir: Path = args.data_dir
    if args.command == "init":
        existed = cluster_pki.ClusterPki.under(data_dir).ca_cert.exists()
        pki = cluster_pki.ensure_cluster_pki(data_dir, args.server, args.tls_san)
        print("Using the existing cluster PKI." if existed else f"Created the cluster PKI under {pki.directory}.")
        print("\n".join(describe(pki)))
        return
    pki = existing_pki(data_dir)
    if args.command == "show":
        print("\n".join(describe(pki)))
        return
    if args.command == "user":
        if args.name.startswith("system:") and not args.group:
            print(f"skiff pki: note: {args.name!r} is a system user name", file=sys.stderr)
        identity = Identity(args.name, args.name, tuple(args.group))
        path, _ = issue(pki, identity, server_of(pki, args.server), args.out, args.days)
        print(f"Issued a certificate for {args.name}" + (f" in {', '.join(args.group)}" if args.group else ""))
        print(f"kubeconfig: {path}")
        return
    identities = COMPONENTS if args.command == "components" else (node_identity(args.name),)
    server = server_of(pki, args.server)
    for identity in identities:
        path, issued = issue(pki, identity, server, force=args.force)
        state = "issued" if issued else "kept (exists; --force re-issues)"
        print(f"{identity.user:<32} {state:<34} {path}")


if __name__ == "__main__":
    main()
