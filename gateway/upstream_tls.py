"""Envoy's mutual TLS to the services: its own certificate on every cluster (health checks and the ext_authz
gate included), and only the cluster's own identity accepted from the other side. The certificate and the
CA reach Envoy by file-based SDS, which re-reads them when their folder changes, so a renewal is used
without a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.common import tls

SDS_CERT, SDS_CA = "gateway-cert", "gateway-ca"
_SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def _sds(sds_dir: str, secret: str) -> dict[str, Any]:
    return {
        "name": secret,
        "sds_config": {"path_config_source": {"path": f"{sds_dir}/{secret}.yaml"}, "resource_api_version": "V3"},
    }


def transport_socket(cluster: str, sds_dir: str) -> dict[str, Any]:
    """The cluster's UpstreamTlsContext: Envoy's certificate, and spiffe://aos.local/<cluster> required of a
    certificate of our CA."""
    peer = {"san_type": "URI", "matcher": {"exact": tls.spiffe_id(cluster)}}
    context = {
        "tls_certificate_sds_secret_configs": [_sds(sds_dir, SDS_CERT)],
        "combined_validation_context": {
            "default_validation_context": {"match_typed_subject_alt_names": [peer]},
            "validation_context_sds_secret_config": _sds(sds_dir, SDS_CA),
        },
        "alpn_protocols": ["h2"],
    }
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": context,
        },
    }


def sds_files(cert_file: str, key_file: str, ca_file: str) -> dict[str, dict[str, Any]]:
    """The two SDS files (name → content). Each watches the folder of its files: a renewal there (a rename, or
    Kubernetes swapping a mounted Secret's ..data link) is re-read at once."""
    cert = {
        "certificate_chain": {"filename": cert_file},
        "private_key": {"filename": key_file},
        "watched_directory": {"path": str(Path(cert_file).parent)},
    }
    ca = {"trusted_ca": {"filename": ca_file}, "watched_directory": {"path": str(Path(ca_file).parent)}}
    return {
        f"{SDS_CERT}.yaml": {"resources": [{"@type": _SECRET, "name": SDS_CERT, "tls_certificate": cert}]},
        f"{SDS_CA}.yaml": {"resources": [{"@type": _SECRET, "name": SDS_CA, "validation_context": ca}]},
    }
