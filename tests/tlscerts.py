"""Throwaway X.509 certificates for the TLS tests (a CA, a server and a client)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    name: str, ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, is_ca: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_name if not is_ca else _name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    signer = key if is_ca else ca_key
    return builder.sign(signer, hashes.SHA256()), key


def make_pki(directory: Path, name: str = "ca") -> Pki:
    """A CA and a server (127.0.0.1) and client certificate signed by it."""
    ca_cert, ca_key = _issue(f"aiopushy test {name}", None, _name(name), is_ca=True)  # type: ignore[arg-type]
    files = {}
    for role in ("server", "client"):
        cert, key = _issue(f"aiopushy {role}", ca_key, ca_cert.subject)
        files[role] = (directory / f"{name}-{role}.pem", directory / f"{name}-{role}.key")
        files[role][0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, files[role][1])
    ca_path = directory / f"{name}.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return Pki(ca_path, *files["server"], *files["client"])
