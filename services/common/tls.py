"""Workload identity over mutual TLS. Every service and the gateway hold a certificate from one CA that
names them in a URI SAN, spiffe://aos.local/<name>; servers require such a certificate from every caller
and reload their files when they change, so a renewed certificate is served without a restart."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger("aos.tls")

TRUST_DOMAIN = "spiffe://aos.local/"
_TRUST_DOMAIN = TRUST_DOMAIN.encode()
GATEWAY = "gateway"  # Envoy's identity: the only one whose customer caller metadata is believed


def spiffe_id(name: str) -> str:
    return TRUST_DOMAIN + name


def server_name(name: str) -> str:
    """The DNS SAN a peer checks on this identity's server certificate (also its Kubernetes Service name)."""
    return name.replace("_", "-")


def peer(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The verified identity of the caller: the name in its certificate's one URI SAN when that is in our trust
    domain, else "". Read from the SAN list (~1 µs) rather than auth_context() (~8 µs: it copies every
    property, the PEM included), on every call."""
    uris = [san for san in context.peer_identities() or () if b"://" in san]  # DNS and IP SANs have no scheme
    if len(uris) == 1 and uris[0].startswith(_TRUST_DOMAIN):
        return uris[0][len(_TRUST_DOMAIN) :].decode()
    return ""


@dataclass(frozen=True)
class Identity:
    """This workload's name and the PEM files of its certificate, private key and the CA it trusts."""

    name: str
    cert_file: str
    key_file: str
    ca_file: str

    def stamp(self) -> tuple[int, ...]:
        """When the files last changed: a new stamp means a renewal to re-read."""
        return tuple(os.stat(path).st_mtime_ns for path in (self.cert_file, self.key_file, self.ca_file))

    def load(self) -> tuple[bytes, bytes, bytes]:
        """(certificate, key, CA) in PEM; ValueError when the certificate is not the key's (mid-rewrite)."""
        cert, key = Path(self.cert_file).read_bytes(), Path(self.key_file).read_bytes()
        _check_pair(cert, key)
        return cert, key, Path(self.ca_file).read_bytes()

    def channel_credentials(self, files: tuple[bytes, bytes, bytes] | None = None) -> grpc.ChannelCredentials:
        cert, key, ca = files or self.load()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Requires a client certificate from the CA; re-reads the files at the next handshake after they
        change (a new key pair or CA)."""
        watch = Watch(self)

        def configuration(files: tuple[bytes, bytes, bytes]) -> Any:
            cert, key, ca = files
            return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

        def fetch() -> Any:
            files = watch.changed()
            return configuration(files) if files else None

        return grpc.dynamic_ssl_server_credentials(
            configuration(self.load()), fetch, require_client_authentication=True
        )


class Watch:
    """Tells when an identity's files changed, and reads them then; files caught mid-rewrite (a certificate
    that is not the key's) are skipped, so the previous ones stay in use until the next look."""

    def __init__(self, identity: Identity) -> None:
        self.identity, self._stamp = identity, identity.stamp()

    def changed(self) -> tuple[bytes, bytes, bytes] | None:
        stamp = self.identity.stamp()
        if stamp == self._stamp:
            return None
        try:
            files = self.identity.load()
        except (OSError, ValueError) as exc:
            log.warning("TLS files of %s not reloaded: %s", self.identity.name, exc)
            return None
        self._stamp = stamp
        log.info("TLS certificate of %s reloaded", self.identity.name)
        return files


def _check_pair(cert: bytes, key: bytes) -> None:
    # Imported here: the Kubernetes probe imports this module and should start fast.
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    public = x509.load_pem_x509_certificate(cert).public_key()
    private = serialization.load_pem_private_key(key, password=None)
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if public.public_bytes(*raw) != private.public_key().public_bytes(*raw):
        raise ValueError("the certificate does not match the private key")
