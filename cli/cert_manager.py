"""Workload certificates in Kubernetes: cert-manager issues each service and the gateway a certificate naming
its identity (URI SAN spiffe://aos.local/<name>) from a CA Issuer, into a Secret mounted as files
(tls.crt, tls.key, ca.crt, as `aos up` lays out its dev PKI). cert-manager renews them before they expire;
the services and Envoy re-read the files when the kubelet swaps the mounted Secret, without a restart.

The CA is bootstrapped in the namespace (a self-signed Issuer signs the CA certificate); a platform with its
own CA replaces the `aos-ca` Issuer (for example with a Vault or an external CA issuer of the same name)."""

from __future__ import annotations

from typing import Any

from services.common import tls

API = "cert-manager.io/v1"
CA_ISSUER = "aos-ca"
TLS_DIR = "/etc/aos/tls"
# Renewed a third of their life before they expire; every key pair is new at each renewal.
DURATION, RENEW_BEFORE = "2160h", "720h"


def secret(workload: str) -> str:
    return f"aos-{tls.server_name(workload)}-tls"


def _certificate(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Certificate", "metadata": {"name": name}, "spec": spec}


def _issuer(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Issuer", "metadata": {"name": name}, "spec": spec}


def workload_certificate(workload: str) -> dict[str, Any]:
    """One identity: its SPIFFE URI, and its Service's DNS name (what its callers check)."""
    return _certificate(
        secret(workload),
        {
            "secretName": secret(workload),
            "commonName": workload,
            "uris": [tls.spiffe_id(workload)],
            "dnsNames": [tls.server_name(workload)],
            "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "duration": DURATION,
            "renewBefore": RENEW_BEFORE,
            "issuerRef": {"name": CA_ISSUER, "kind": "Issuer", "group": "cert-manager.io"},
        },
    )


def documents(workloads: list[str]) -> list[dict[str, Any]]:
    """The CA Issuer (bootstrapped from a self-signed one) and a Certificate per workload."""
    return [
        _issuer("aos-selfsigned", {"selfSigned": {}}),
        _certificate(
            CA_ISSUER,
            {
                "secretName": CA_ISSUER,
                "isCA": True,
                "commonName": "aos CA",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "duration": "87600h",
                "renewBefore": "8760h",
                "issuerRef": {"name": "aos-selfsigned", "kind": "Issuer", "group": "cert-manager.io"},
            },
        ),
        _issuer(CA_ISSUER, {"ca": {"secretName": CA_ISSUER}}),
        *(workload_certificate(w) for w in workloads),
    ]


def volume(workload: str) -> dict[str, Any]:
    # Readable by the pod's group only (fsGroup): the private key is in it.
    return {"name": "tls", "secret": {"secretName": secret(workload), "defaultMode": 0o440}}


MOUNT = {"name": "tls", "mountPath": TLS_DIR, "readOnly": True}
FILES = {"cert": f"{TLS_DIR}/tls.crt", "key": f"{TLS_DIR}/tls.key", "ca": f"{TLS_DIR}/ca.crt"}


def env(svc: str) -> list[dict[str, Any]]:
    """A service's `<SVC>_TLS_*` settings: the mounted files."""
    return [{"name": f"{svc.upper()}_TLS_{part.upper()}_FILE", "value": path} for part, path in FILES.items()]
