"""Renders Envoy's configuration from the descriptor set and the gate rules.

Nothing in the generated config is hand-maintained: routes, the transcoder's service list and the
refusal of internal RPCs all come from the protos, so a new RPC is routed (or refused) by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import identity, replies, routes, upstream_tls
from gateway.identity import IdentityProvider
from gateway.routes import BUFFER, EXT_AUTHZ, GATE_CLUSTER
from gateway.rules import Method, load_methods, raw_query_paths
from services.common import tls

# Caller headers only the gateway may set. Stripped from every client request before any other filter
# runs; X-AOS-Key is the API-key credential itself and is deliberately not in this list.
CALLER_HEADERS = (
    "x-aos-tenant-id",
    "x-aos-actor-type",
    "x-aos-actor-id",
    "x-aos-email",
    "x-aos-email-verified",
    "x-aos-role",
    "x-aos-scopes",
    "x-aos-request-id",
    "x-aos-org-id",
    # Set by the gate for API-key callers (the key's display prefix) and integration-key callers.
    "x-aos-key-prefix",
    "x-aos-integration-id",
)

# The transcoder answers 200 on every success and the standard mapping of each gRPC code on errors; where
# the legacy API answered otherwise (201 on create, 422 on validation) the service sends this header, which
# the Lua filter applies to transcoded JSON responses only (never to native gRPC).
STATUS_HINT = Path(__file__).with_name("status_hint.lua")
RAW_QUERY = Path(__file__).with_name("raw_query.lua")


@dataclass
class Gateway:
    descriptor_path: str
    # service → its address, or the addresses of its replicas (Envoy balances and health-checks each)
    upstreams: dict[str, tuple[str, int] | list[tuple[str, int]]]
    listen_port: int = 8080
    identity: IdentityProvider = field(default_factory=IdentityProvider)
    openapi_path: str = "gateway/openapi.json"
    admin_port: int = 0
    methods: list[Method] = field(default_factory=list)
    # REST paths whose RPC parses the query string itself (rules.RAW_QUERY).
    raw_query_paths: list[str] = field(default_factory=list)
    # REST bodies above this answer 413 (the services take gRPC messages up to 4 MiB).
    max_body_bytes: int = 1024 * 1024
    # Request headers (the URL included) above this answer 431. What reaches a service must stay under
    # gRPC's 8 KiB metadata limit, which refuses with RESOURCE_EXHAUSTED, a 429 to a REST client.
    max_header_kb: int = 6
    # Proxies in front of Envoy whose X-Forwarded-For entries are trusted (0: the peer is the client).
    xff_trusted_hops: int = 0
    # Envoy's own certificate and key (spiffe://aos.local/gateway), presented to every upstream, and the CA
    # the upstreams' certificates must chain to. Handed to Envoy by file-based SDS from `sds_dir` (see sds()),
    # which re-reads them when their folder changes: a renewed certificate is used without a restart.
    tls_cert_file: str = ".aos/dev/tls/gateway/tls.crt"
    tls_key_file: str = ".aos/dev/tls/gateway/tls.key"
    tls_ca_file: str = ".aos/dev/tls/gateway/ca.crt"
    sds_dir: str = ".aos/run"


def render(gw: Gateway) -> dict[str, Any]:
    services = sorted({m.service for m in gw.methods if m.cluster in gw.upstreams})
    return {
        "node": {"id": tls.GATEWAY, "cluster": tls.GATEWAY},  # SDS (the certificate files) requires both
        "admin": {"address": _addr(gw.admin_port)},
        "static_resources": {
            "listeners": [_listener(gw, services)],
            "clusters": [
                *(
                    _cluster(name, ends if isinstance(ends, list) else [ends], gw)
                    for name, ends in sorted(gw.upstreams.items())
                ),
                *identity.jwks_clusters(gw.identity),
            ],
        },
    }


def _addr(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _listener(gw: Gateway, services: list[str]) -> dict[str, Any]:
    filters = [
        _filter(
            "envoy.filters.http.header_mutation",
            "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            {"mutations": {"request_mutations": [{"remove": h} for h in CALLER_HEADERS]}},
        ),
        _filter(
            "aos.request_id",
            "envoy.extensions.filters.http.lua.v3.Lua",
            {"default_source_code": {"inline_string": replies.REQUEST_ID.read_text()}},
        ),
        _filter(
            identity.JWT_FILTER,
            "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            identity.jwt_authn(gw.identity, gated=GATE_CLUSTER in gw.upstreams),
        ),
        _filter(
            "envoy.filters.http.lua",
            "envoy.extensions.filters.http.lua.v3.Lua",
            {"default_source_code": {"inline_string": STATUS_HINT.read_text()}},
        ),
        *_raw_query(gw),
        # REST bodies are read whole before transcoding (the route is still the REST path's then): over the
        # limit, 413 before anything is decoded or sent on.
        _filter(BUFFER, "envoy.extensions.filters.http.buffer.v3.Buffer", {"max_request_bytes": gw.max_body_bytes}),
        _filter(
            "envoy.filters.http.grpc_json_transcoder",
            "envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
            {
                "proto_descriptor": gw.descriptor_path,
                "services": services,
                "convert_grpc_status": True,
                "print_options": {"preserve_proto_field_names": True, "always_print_primitive_fields": True},
                # Unknown query parameters are refused (400) rather than silently ignored.
                "request_validation_options": {"reject_unknown_method": False, "reject_unknown_query_parameters": True},
            },
        ),
        *_ext_authz(gw),
        _filter("envoy.filters.http.router", "envoy.extensions.filters.http.router.v3.Router", {}),
    ]
    hcm = {
        "stat_prefix": "aos",
        "codec_type": "AUTO",
        # The edge: the client is the connection's peer (or the hop xff_trusted_hops names), never an address
        # a client wrote into X-Forwarded-For; the gate limits failed key checks per client address.
        "use_remote_address": True,
        "xff_num_trusted_hops": gw.xff_trusted_hops,
        "max_request_headers_kb": gw.max_header_kb,
        "generate_request_id": True,
        "always_set_request_id_in_response": True,  # the id the services logged, for the client's bug report
        # Envoy always generates an id (the client's is taken away first and kept aside); request_id.lua puts
        # the client's back only when it has the strict form.
        "early_header_mutation_extensions": [replies.request_id_aside()],
        "route_config": {
            "name": "aos",
            "max_direct_response_body_size_bytes": 4 * 1024 * 1024,
            "virtual_hosts": [{"name": "aos", "domains": ["*"], "routes": routes.table(gw)}],
        },
        "http_filters": filters,
        "local_reply_config": replies.local_replies(),
    }
    return {
        "name": "gateway",
        "address": _addr(gw.listen_port),
        "filter_chains": [
            {
                "filters": [
                    _filter(
                        "envoy.filters.network.http_connection_manager",
                        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        hcm,
                    )
                ]
            }
        ],
    }


def _raw_query(gw: Gateway) -> list[dict[str, Any]]:
    """Before the transcoder: the query of the raw_query paths becomes the one parameter the RPC declares."""
    if not gw.raw_query_paths:
        return []
    table = "local RAW_QUERY_PATHS = {" + ", ".join(f'["{p}"] = true' for p in gw.raw_query_paths) + "}\n"
    source = {"inline_string": table + RAW_QUERY.read_text()}
    return [_filter("aos.raw_query", "envoy.extensions.filters.http.lua.v3.Lua", {"default_source_code": source})]


def _ext_authz(gw: Gateway) -> list[dict[str, Any]]:
    """The gate, after the transcoder (placed before it, Envoy skips the check for transcoded REST calls)
    and before the router; only in a stack that runs onboarding, so a smaller stack still renders."""
    if GATE_CLUSTER not in gw.upstreams:
        return []
    return [
        _filter(
            EXT_AUTHZ,
            "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            {
                "grpc_service": {"envoy_grpc": {"cluster_name": GATE_CLUSTER}, "timeout": "3s"},
                "transport_api_version": "V3",
                # Fail closed: when the gate cannot answer, nothing passes.
                "failure_mode_allow": False,
                "status_on_error": {"code": "ServiceUnavailable"},
                # The verified JWT payload, which the gate reads claims from (nothing else carries them).
                "metadata_context_namespaces": [identity.JWT_FILTER],
            },
        )
    ]


def _cluster(name: str, endpoints: list[tuple[str, int]], gw: Gateway) -> dict[str, Any]:
    return {
        "name": name,
        "transport_socket": upstream_tls.transport_socket(name, gw.sds_dir),
        "type": "STRICT_DNS" if not endpoints[0][0][0].isdigit() else "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _addr(port, host)}} for host, port in endpoints]}],
        },
        "health_checks": [
            {
                "timeout": "1s",
                "interval": "2s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {},
            }
        ],
    }


def sds(gw: Gateway) -> dict[str, dict[str, Any]]:
    """The SDS files the config names (file name in `gw.sds_dir` → content): Envoy's certificate and the CA."""
    return upstream_tls.sds_files(gw.tls_cert_file, gw.tls_key_file, gw.tls_ca_file)


def _filter(name: str, type_name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "typed_config": {"@type": f"type.googleapis.com/{type_name}", **config}}


def from_descriptor(path: Path, **kwargs: Any) -> Gateway:
    descriptor = path.read_bytes()
    return Gateway(
        descriptor_path=str(path),
        methods=load_methods(descriptor),
        raw_query_paths=raw_query_paths(descriptor),
        **kwargs,
    )
