"""The gateway's route table: the transcoded REST and native gRPC paths of every service it routes, what it
refuses itself (internal RPCs, plain HTTP to gRPC paths, unknown paths), and the larger-body REST routes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aos.gate.v1 import gate_pb2

if TYPE_CHECKING:
    from gateway.config import Gateway

BUFFER = "envoy.filters.http.buffer"
EXT_AUTHZ = "envoy.filters.http.ext_authz"
# The cluster serving envoy.service.auth.v3.Authorization/Check (the edge gate).
GATE_CLUSTER = "onboarding"


def table(gw: Gateway) -> list[dict[str, Any]]:
    refused = [
        {"match": {"path": m.path}, "direct_response": {"status": 404}}
        for m in gw.methods
        if m.rule.audience == gate_pb2.AUDIENCE_INTERNAL
    ]
    # gRPC only (transcoded REST is gRPC by then): a plain HTTP call to a gRPC path would be reset by the
    # service (a 503); it answers 415 instead. The services never see the REST path (x-envoy-original-path):
    # a long one would push their metadata over gRPC's limit.
    grpc = {"name": "content-type", "string_match": {"prefix": "application/grpc"}}
    routed = [
        {
            "match": {"prefix": f"/{service}/", "headers": [grpc]},
            "route": {"cluster": cluster, "timeout": "15s"},
            "request_headers_to_remove": ["x-envoy-original-path"],
            # Native gRPC streams through; its messages are bounded by the services (RESOURCE_EXHAUSTED).
            "typed_per_filter_config": {
                BUFFER: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}
            },
        }
        for service, cluster in sorted({(m.service, m.cluster) for m in gw.methods if m.cluster in gw.upstreams})
    ]
    not_grpc = [
        {"match": {"prefix": f"/{service}/"}, "direct_response": {"status": 415}}
        for service in sorted({m.service for m in gw.methods if m.cluster in gw.upstreams})
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
    if GATE_CLUSTER in gw.upstreams:  # public (policy.EXEMPT): the gate would only say yes, at the cost of a call
        openapi["typed_per_filter_config"] = {
            EXT_AUTHZ: {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
                "disabled": True,
            }
        }
    # Anything else (unknown REST paths, other tenants' EventLog streams) is simply not here. With the gate,
    # a last catch-all answers 404 itself: ext_authz skips requests that match no route, and the gate must
    # still see unknown paths (they need COMPLETE, SPEC 3.6).
    unknown = [{"match": {"prefix": "/"}, "direct_response": {"status": 404}}] if GATE_CLUSTER in gw.upstreams else []
    return [openapi, *refused, *routed, *not_grpc, *_larger_bodies(gw), *unknown]


def _larger_bodies(gw: Gateway) -> list[dict[str, Any]]:
    """The REST paths of RPCs whose rule allows a body above the default. The buffer filter reads its limit from
    the route of the REST path (before the transcoder rewrites it and routing starts over), so each such path
    gets a route of its own carrying the limit; it never answers itself, as the transcoder re-routes first,
    and a path the transcoder does not know answers 404 like any unknown one."""
    routes = []
    for m in sorted(gw.methods, key=lambda m: m.path):
        if m.rule.max_body_bytes <= 0 or m.cluster not in gw.upstreams:
            continue
        for verb, template in m.bindings:
            regex = "".join(
                "[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]*\})", template)
            )
            routes.append(
                {
                    "match": {
                        "safe_regex": {"regex": regex},
                        "headers": [{"name": ":method", "string_match": {"exact": verb.upper()}}],
                    },
                    "direct_response": {"status": 404},
                    "typed_per_filter_config": {
                        BUFFER: {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
                            "buffer": {"max_request_bytes": m.rule.max_body_bytes},
                        }
                    },
                }
            )
    return routes
