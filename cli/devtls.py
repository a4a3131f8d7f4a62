"""The local development PKI: a CA and one key pair per workload (each service and the gateway), each
certificate naming one identity (URI SAN spiffe://aos.local/<name>). Laid out as cert-manager mounts its
Secrets (<name>/tls.crt, tls.key, ca.crt), so a service reads the same files here and in Kubernetes."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.common import tls

VALID = datetime.timedelta(days=365)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    """Written beside and renamed over the old file: a reader sees the old or the new bytes, never half."""
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    if private:
        part.chmod(0o600)
    part.replace(path)


def _certificate(subject: str, public: ec.EllipticCurvePublicKey, issuer: x509.Name | None) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID)
    )


def _ca(tls_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = tls_dir / "ca.crt", tls_dir / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _certificate("aos dev CA", key.public_key(), None)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _pem_key(key), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def issue(tls_dir: Path, name: str) -> tls.Identity:
    """A new key pair and certificate for `name`, signed by the dev CA (made first if missing)."""
    ca, ca_key = _ca(tls_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [
        x509.UniformResourceIdentifier(tls.spiffe_id(name)),
        x509.DNSName(tls.server_name(name)),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = (
        _certificate(name, key.public_key(), ca.subject)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    found = identity(tls_dir, name)
    Path(found.cert_file).parent.mkdir(parents=True, exist_ok=True)
    _write(Path(found.ca_file), ca.public_bytes(serialization.Encoding.PEM))
    _write(Path(found.key_file), _pem_key(key), private=True)
    _write(Path(found.cert_file), cert.public_bytes(serialization.Encoding.PEM))
    return found


def identity(tls_dir: Path, name: str) -> tls.Identity:
    where = tls_dir / name
    return tls.Identity(name, str(where / "tls.crt"), str(where / "tls.key"), str(where / "ca.crt"))


def ensure(data_dir: Path, names: list[str]) -> Path:
    """The dev PKI under data_dir/dev/tls, made once (a missing workload gets its pair); returns its folder."""
    tls_dir = data_dir / "dev" / "tls"
    tls_dir.mkdir(parents=True, exist_ok=True)
    fresh = not ((tls_dir / "ca.crt").exists() and (tls_dir / "ca.key").exists())
    for name in names:
        if fresh or not Path(identity(tls_dir, name).cert_file).exists():
            issue(tls_dir, name)
    return tls_dir


def env(tls_dir: Path, name: str) -> dict[str, str]:
    """The `<SVC>_TLS_*` settings of a service process."""
    found, prefix = identity(tls_dir, name), name.upper()
    return {
        f"{prefix}_TLS_CERT_FILE": found.cert_file,
        f"{prefix}_TLS_KEY_FILE": found.key_file,
        f"{prefix}_TLS_CA_FILE": found.ca_file,
    }
