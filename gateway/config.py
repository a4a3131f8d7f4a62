"""Renders Envoy's configuration from the descriptor set and the gate rules.

Nothing in the generated config is hand-maintained: routes, the transcoder's service list and the
refusal of internal RPCs all come from the protos, so a new RPC is routed (or refused) by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aos.gate.v1 import gate_pb2
from gateway.rules import Method, load_methods

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
    # Set by the gate for API-key callers (the key's display prefix) and integration-key callers.
    "x-aos-key-prefix",
    "x-aos-integration-id",
)

# Verified JWT claims → caller headers (jwt_authn `claim_to_headers`).
CLAIM_HEADERS = {
    "sub": "x-aos-actor-id",
    "org_id": "x-aos-tenant-id",
    "aos_kind": "x-aos-actor-type",
    "email": "x-aos-email",
    "email_verified": "x-aos-email-verified",
    "role": "x-aos-role",
}

JWT_ISSUER = "aos-dev"
JWT_AUDIENCE = "aos"

# The transcoder answers 200 on every success and the standard mapping of each gRPC code on errors; where
# the legacy API answered otherwise (201 on create, 422 on validation) the service sends this header, which
# the Lua filter applies to transcoded JSON responses only (never to native gRPC).
STATUS_HINT = Path(__file__).with_name("status_hint.lua")


@dataclass
class Gateway:
    descriptor_path: str
    # service → its address, or the addresses of its replicas (Envoy balances and health-checks each)
    upstreams: dict[str, tuple[str, int] | list[tuple[str, int]]]
    listen_port: int = 8080
    jwks_path: str = ".aos/dev/jwks.json"
    openapi_path: str = "gateway/openapi.json"
    admin_port: int = 0
    methods: list[Method] = field(default_factory=list)


def render(gw: Gateway) -> dict[str, Any]:
    services = sorted({m.service for m in gw.methods if m.cluster in gw.upstreams})
    return {
        "admin": {"address": _addr(gw.admin_port)},
        "static_resources": {
            "listeners": [_listener(gw, services)],
            "clusters": [
                _cluster(name, ends if isinstance(ends, list) else [ends])
                for name, ends in sorted(gw.upstreams.items())
            ],
        },
    }


def _addr(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _routes(gw: Gateway) -> list[dict[str, Any]]:
    refused = [
        {"match": {"path": m.path}, "direct_response": {"status": 404}}
        for m in gw.methods
        if m.rule.audience == gate_pb2.AUDIENCE_INTERNAL
    ]
    routed = [
        {"match": {"prefix": f"/{service}/"}, "route": {"cluster": cluster, "timeout": "15s"}}
        for service, cluster in sorted({(m.service, m.cluster) for m in gw.methods if m.cluster in gw.upstreams})
    ]
    # The published API document, generated beside the descriptor set.
    openapi = {
        "match": {"path": "/openapi.json"},
        "direct_response": {"status": 200, "body": {"filename": gw.openapi_path}},
        "response_headers_to_add": [
            {
                "header": {"key": "content-type", "value": "application/json"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
    }
    # Anything else (unknown REST paths, other tenants' EventLog streams) is simply not here. With the gate,
    # a last catch-all answers 404 itself: ext_authz skips requests that match no route, and the gate must
    # still see unknown paths (they need COMPLETE, SPEC 3.6).
    unknown = [{"match": {"prefix": "/"}, "direct_response": {"status": 404}}] if GATE_CLUSTER in gw.upstreams else []
    return [openapi, *refused, *routed, *unknown]


def _listener(gw: Gateway, services: list[str]) -> dict[str, Any]:
    filters = [
        _filter(
            "envoy.filters.http.header_mutation",
            "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            {"mutations": {"request_mutations": [{"remove": h} for h in CALLER_HEADERS]}},
        ),
        _filter(
            "envoy.filters.http.jwt_authn", "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication", _jwt(gw)
        ),
        _filter(
            "envoy.filters.http.lua",
            "envoy.extensions.filters.http.lua.v3.Lua",
            {"default_source_code": {"inline_string": STATUS_HINT.read_text()}},
        ),
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
        "generate_request_id": True,
        "route_config": {
            "name": "aos",
            "max_direct_response_body_size_bytes": 4 * 1024 * 1024,
            "virtual_hosts": [{"name": "aos", "domains": ["*"], "routes": _routes(gw)}],
        },
        "http_filters": filters,
        "local_reply_config": _local_replies(),
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


# The cluster serving envoy.service.auth.v3.Authorization/Check (the edge gate).
GATE_CLUSTER = "onboarding"


def _ext_authz(gw: Gateway) -> list[dict[str, Any]]:
    """The gate, after the transcoder (placed before it, Envoy skips the check for transcoded REST calls)
    and before the router; only in a stack that runs onboarding, so a smaller stack still renders."""
    if GATE_CLUSTER not in gw.upstreams:
        return []
    return [
        _filter(
            "envoy.filters.http.ext_authz",
            "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            {
                "grpc_service": {"envoy_grpc": {"cluster_name": GATE_CLUSTER}, "timeout": "3s"},
                "transport_api_version": "V3",
                # Fail closed: when the gate cannot answer, nothing passes.
                "failure_mode_allow": False,
                "status_on_error": {"code": "ServiceUnavailable"},
            },
        )
    ]


# Envoy's own refusals, by status, in the legacy {"error", "message"} body.
LOCAL_REPLY_ERRORS = {
    400: "invalid_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    503: "unavailable",
}


def _local_replies() -> dict[str, Any]:
    """Envoy's own refusals (bad token, malformed JSON, unknown route) as JSON for REST callers; native
    gRPC callers keep the grpc-status Envoy sends them."""
    rest = {
        "header_filter": {
            "header": {
                "name": "content-type",
                "string_match": {"prefix": "application/grpc"},
                "invert_match": True,
                "treat_missing_header_as_empty": True,
            }
        }
    }

    def mapper(op: str, status: int, error: str) -> dict[str, Any]:
        code = {"comparison": {"op": op, "value": {"default_value": status, "runtime_key": f"aos.reply_{op}{status}"}}}
        return {
            "filter": {"and_filter": {"filters": [rest, {"status_code_filter": code}]}},
            "body_format_override": {"json_format": {"error": error, "message": "%LOCAL_REPLY_BODY%"}},
        }

    # The gate's denials already carry their legacy JSON body: the first mapper matches them and keeps it.
    # Then exact statuses; then any other error. Successful direct responses (/openapi.json) pass untouched.
    gate = {"filter": {"response_flag_filter": {"flags": ["UAEX"]}}}
    mappers = [mapper("EQ", status, error) for status, error in LOCAL_REPLY_ERRORS.items()]
    return {"mappers": [gate, *mappers, mapper("GE", 400, "%RESPONSE_CODE_DETAILS%")]}


def _jwt(gw: Gateway) -> dict[str, Any]:
    provider = {
        "issuer": JWT_ISSUER,
        "audiences": [JWT_AUDIENCE],
        "local_jwks": {"filename": gw.jwks_path},
        "claim_to_headers": [{"header_name": h, "claim_name": c} for c, h in CLAIM_HEADERS.items()],
    }
    # allow_missing: API-key callers carry no JWT; a present but bad token is still refused with 401.
    requires = {"requires_any": {"requirements": [{"provider_name": "aos"}, {"allow_missing": {}}]}}
    return {"providers": {"aos": provider}, "rules": [{"match": {"prefix": "/"}, "requires": requires}]}


def _cluster(name: str, endpoints: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "name": name,
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


def _filter(name: str, type_name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "typed_config": {"@type": f"type.googleapis.com/{type_name}", **config}}


def from_descriptor(path: Path, **kwargs: Any) -> Gateway:
    return Gateway(descriptor_path=str(path), methods=load_methods(path.read_bytes()), **kwargs)
