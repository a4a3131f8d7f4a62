"""Envoy's own answers (its refusals as legacy JSON bodies) and the request id it hands on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Keeps a client's x-request-id only in a strict form; otherwise the one Envoy generated stands.
REQUEST_ID = Path(__file__).with_name("request_id.lua")
CLIENT_REQUEST_ID = "x-aos-client-request-id"


def request_id_aside() -> dict[str, Any]:
    mutation = "envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation"
    aside = {"key": CLIENT_REQUEST_ID, "value": "%REQ(x-request-id)%"}
    return {
        "name": "envoy.http.early_header_mutation.header_mutation",
        "typed_config": {
            "@type": f"type.googleapis.com/{mutation}",
            "mutations": [
                {"remove": CLIENT_REQUEST_ID},
                {"append": {"header": aside, "append_action": "ADD_IF_ABSENT"}},
                {"remove": "x-request-id"},
            ],
        },
    }


# Envoy's own refusals, by status: the legacy {"error", "message"} body's error, and the gRPC code of the
# google.rpc.Status body canonical /v1 paths get (issue 14; the transcoder's shape for the services' errors).
LOCAL_REPLY_ERRORS = {
    400: ("invalid_request", 3),  # INVALID_ARGUMENT
    401: ("invalid_token", 16),  # UNAUTHENTICATED
    403: ("forbidden", 7),  # PERMISSION_DENIED
    404: ("not_found", 5),  # NOT_FOUND
    413: ("payload_too_large", 8),  # RESOURCE_EXHAUSTED: a size limit
    415: ("unsupported_media_type", 3),  # INVALID_ARGUMENT
    431: ("headers_too_large", 8),  # RESOURCE_EXHAUSTED
    503: ("unavailable", 14),  # UNAVAILABLE
}
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
# The domain an edge refusal's ErrorInfo names (the gate's refusals name it too: services/onboarding/edge.py).
DOMAIN = "aos.gateway"
CANONICAL_PREFIX = "/v1/"


def _prefix(header: str, prefix: str) -> dict[str, Any]:
    return {"header_filter": {"header": {"name": header, "string_match": {"prefix": prefix}}}}


def local_replies() -> dict[str, Any]:
    """Envoy's own refusals (bad token, malformed JSON, unknown route) as JSON for REST callers: google.rpc.Status
    on the canonical /v1 paths, the legacy body elsewhere; native gRPC callers keep the grpc-status Envoy sends.

    The gate's refusals already carry their body and pass untouched."""
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
    # The path the client called: a transcoded request's :path is the gRPC method's by now.
    canonical = {
        "or_filter": {
            "filters": [_prefix(":path", CANONICAL_PREFIX), _prefix("x-envoy-original-path", CANONICAL_PREFIX)]
        }
    }

    def status(op: str, value: int) -> dict[str, Any]:
        runtime_key = f"aos.reply_{op}{value}"
        return {
            "status_code_filter": {
                "comparison": {"op": op, "value": {"default_value": value, "runtime_key": runtime_key}}
            }
        }

    def mappers(op: str, value: int, error: str, code: int, reason: str) -> list[dict[str, Any]]:
        # A 404's own text would tell the gate's (the veil's) from the router's: both say the same.
        message = "not found" if (op, value) == ("EQ", 404) else "%LOCAL_REPLY_BODY%"
        as_status = {
            "code": code,
            "message": message,
            "details": [{"@type": ERROR_INFO, "reason": reason, "domain": DOMAIN}],
        }
        return [
            {
                "filter": {"and_filter": {"filters": [rest, canonical, status(op, value)]}},
                "body_format_override": {"json_format": as_status},
            },
            {
                "filter": {"and_filter": {"filters": [rest, status(op, value)]}},
                "body_format_override": {"json_format": {"error": error, "message": message}},
            },
        ]

    # The gate's refusals already carry their body (its 404s byte for byte the one below: the veil must not be
    # told from an unknown path); the first mapper matches them and keeps it.
    gate = {"filter": {"response_flag_filter": {"flags": ["UAEX"]}}}
    exact = [
        m
        for value, (error, code) in LOCAL_REPLY_ERRORS.items()
        for m in mappers("EQ", value, error, code, error.upper())
    ]
    # Then any other error (code 2, UNKNOWN). Successful direct responses (/openapi.json) pass untouched.
    other = mappers("GE", 400, "%RESPONSE_CODE_DETAILS%", 2, "%RESPONSE_CODE_DETAILS%")
    return {"mappers": [gate, *exact, *other]}
