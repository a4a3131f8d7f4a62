"""The identity provider Envoy trusts: its issuer, the audiences it accepts and where its signing keys come from
(a local JWKS file, the dev default of `make up`, or a JWKS URI fetched, cached and refreshed by Envoy).

Configured by `AOS_IDP_*` variables, the same ones the edge gate reads its claim names from. In Kubernetes the
gateway's config is rendered once from the protos, with the provider filled in when the pod starts:

    python -m gateway.identity IN.yaml OUT.yaml    rewrites IN's JWT provider from AOS_IDP_*, writes OUT
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.routes import EXT_AUTHZ

DEV_ISSUER = "aos-dev"
DEV_AUDIENCE = "aos"
PROVIDER = "idp"
# The verified payload, for the gate: dynamic metadata of jwt_authn under this key (ext_authz forwards it).
PAYLOAD_KEY = "jwt_payload"
# Where jwt_authn leaves a bad token's failure ({"code", "message"}) for the gate.
FAILED_STATUS_KEY = "jwt_failure"
JWT_FILTER = "envoy.filters.http.jwt_authn"
JWKS_CLUSTER = "idp_jwks"
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class IdentityProvider:
    issuer: str = DEV_ISSUER
    audiences: tuple[str, ...] = (DEV_AUDIENCE,)
    # Where the keys come from: the URI when set, else the file.
    jwks_path: str = ".aos/dev/jwks.json"
    jwks_uri: str = ""
    # How long fetched keys are trusted before Envoy fetches them again (in the background).
    jwks_cache_seconds: int = 300
    # CA bundle that verifies an https JWKS URI.
    jwks_ca_file: str = SYSTEM_CAS
    # Tokens whose exp lies further ahead are refused (the gate also bounds exp - iat by it).
    max_lifetime_seconds: int = 86_400

    def __post_init__(self) -> None:
        if not self.issuer or not self.audiences or not all(self.audiences):
            raise ValueError("the identity provider needs an issuer and at least one audience")
        if self.jwks_uri:
            url = urlsplit(self.jwks_uri)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"AOS_IDP_JWKS_URI must be an http(s) URL with a host, not {self.jwks_uri!r}")
        elif not self.jwks_path:
            raise ValueError("set AOS_IDP_JWKS_URI or AOS_IDP_JWKS_PATH")
        if self.jwks_cache_seconds < 1 or self.max_lifetime_seconds < 1:
            raise ValueError("AOS_IDP_JWKS_CACHE_SECONDS and AOS_IDP_MAX_LIFETIME_SECONDS must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **defaults: Any) -> IdentityProvider:
        """AOS_IDP_ISSUER, AOS_IDP_AUDIENCES (comma-separated), AOS_IDP_JWKS_URI or AOS_IDP_JWKS_PATH,
        AOS_IDP_JWKS_CACHE_SECONDS, AOS_IDP_JWKS_CA_FILE, AOS_IDP_MAX_LIFETIME_SECONDS; unset ones keep
        `defaults` (else the dev provider's)."""
        given: dict[str, Any] = dict(defaults)
        for name, field in cls.__dataclass_fields__.items():
            raw = env.get(f"AOS_IDP_{name.upper()}")
            if raw is None and name == "audiences":
                raw = env.get("AOS_IDP_AUDIENCE")
            if raw is None:
                continue
            if field.type == "tuple[str, ...]":
                given[name] = tuple(a.strip() for a in raw.split(",") if a.strip())
            else:
                given[name] = int(raw) if field.type == "int" else raw.strip()
        return cls(**given)


def jwt_authn(idp: IdentityProvider, gated: bool = True) -> dict[str, Any]:
    """jwt_authn's config: the token only from `Authorization: Bearer` (never ?access_token=), exp required,
    the verified payload handed to the gate as metadata, the token itself not forwarded.

    With the gate (`gated`), a bad token is not refused here but handed on with the reason it failed
    (FAILED_STATUS_KEY): the gate refuses it, so that it alone shapes every credential refusal (the legacy
    body, google.rpc.Status on /v1, or the veil's 404). Without the gate, jwt_authn refuses it itself."""
    provider: dict[str, Any] = {
        "issuer": idp.issuer,
        "audiences": list(idp.audiences),
        "require_expiration": True,
        "max_lifetime": f"{idp.max_lifetime_seconds}s",
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        "forward": False,
        "payload_in_metadata": PAYLOAD_KEY,
    }
    if gated:
        provider["failed_status_in_metadata"] = FAILED_STATUS_KEY
    if idp.jwks_uri:
        provider["remote_jwks"] = {
            "http_uri": {"uri": idp.jwks_uri, "cluster": JWKS_CLUSTER, "timeout": "5s"},
            "cache_duration": f"{idp.jwks_cache_seconds}s",
            # Fetched before the listener opens and refreshed in the background as the cache expires, so
            # rotated keys are picked up without a restart; a failed fetch is retried after a second.
            "async_fetch": {"failed_refetch_duration": "1s"},
            "retry_policy": {"num_retries": 2},
        }
    else:
        provider["local_jwks"] = {"filename": idp.jwks_path}
    # allow_missing: API-key callers carry no JWT. A present but bad token is refused with 401: by the gate when
    # there is one (allow_missing_or_failed lets it through to the gate), else here.
    allowed: dict[str, Any] = {"allow_missing_or_failed": {}} if gated else {"allow_missing": {}}
    requires = {"requires_any": {"requirements": [{"provider_name": PROVIDER}, allowed]}}
    return {"providers": {PROVIDER: provider}, "rules": [{"match": {"prefix": "/"}, "requires": requires}]}


def jwks_clusters(idp: IdentityProvider) -> list[dict[str, Any]]:
    """The cluster Envoy fetches a remote JWKS through (none for a local file)."""
    if not idp.jwks_uri:
        return []
    url = urlsplit(idp.jwks_uri)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    literal = host.replace(".", "").isdigit() or ":" in host
    cluster: dict[str, Any] = {
        "name": JWKS_CLUSTER,
        "type": "STATIC" if literal else "LOGICAL_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": JWKS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}
            ],
        },
    }
    if url.scheme == "https":
        tls = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": tls,
                "sni": host,
                "common_tls_context": {
                    "validation_context": {
                        "trusted_ca": {"filename": idp.jwks_ca_file},
                        "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": host}}],
                    }
                },
            },
        }
    return [cluster]


def apply(bootstrap: dict[str, Any], idp: IdentityProvider) -> dict[str, Any]:
    """`bootstrap` with every jwt_authn filter and the JWKS cluster rendered for `idp`."""
    resources = bootstrap["static_resources"]
    for listener in resources["listeners"]:
        for chain in listener["filter_chains"]:
            for network in chain["filters"]:
                filters = network["typed_config"].get("http_filters", [])
                gated = any(http["name"] == EXT_AUTHZ for http in filters)
                for http in filters:
                    if http["name"] == JWT_FILTER:
                        http["typed_config"] = {"@type": http["typed_config"]["@type"], **jwt_authn(idp, gated)}
    others = [c for c in resources.get("clusters", []) if c["name"] != JWKS_CLUSTER]
    resources["clusters"] = others + jwks_clusters(idp)
    return bootstrap


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, target = map(Path, argv)
    # No default here: a deployment names its own provider (no dev value can slip into production).
    idp = IdentityProvider.from_env(issuer="", audiences=(), jwks_path="")
    rendered = apply(yaml.safe_load(source.read_text()), idp)
    target.write_text(yaml.safe_dump(rendered, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
