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


# Envoy's own refusals, by status, in the legacy {"error", "message"} body.
LOCAL_REPLY_ERRORS = {
    400: "invalid_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
    503: "unavailable",
}


def local_replies() -> dict[str, Any]:
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
