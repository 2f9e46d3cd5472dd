"""Create a small CA and a serving certificate for the example's HTTPS servers.

    python examples/secrets-injector/gencerts.py --out certs --dns secrets-injector.secrets-injector.svc

writes ca.crt, tls.crt and tls.key under --out. The certificate names every --dns and --ip given, plus
localhost and 127.0.0.1. `ca.crt`, base64-encoded, is the webhook configuration's caBundle.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def generate(out: Path, dns_names: list[str], ips: list[str], days: int = 365) -> None:
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("secrets-injector-ca"))
        .issuer_name(_name("secrets-injector-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys([*dns_names, "localhost"])]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys([*ips, "127.0.0.1"])]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_names[0] if dns_names else "localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (out / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (out / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (out / "tls.key").write_bytes(key_pem)
    (out / "tls.key").chmod(0o600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dns", action="append", default=[], help="a DNS name for the certificate (repeatable)")
    parser.add_argument("--ip", action="append", default=[], help="an IP address for the certificate (repeatable)")
    args = parser.parse_args()
    generate(args.out, args.dns, args.ip)
    print(f"wrote {args.out}/ca.crt, tls.crt, tls.key")


if __name__ == "__main__":
    main()
