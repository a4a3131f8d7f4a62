"""The gate's answers to Envoy: a refusal carries its status, JSON body and headers; an approval carries the
caller headers the services read.

A refusal's body is the legacy `{"error", "message", ...}` on legacy paths (SPEC 0.14) and `google.rpc.Status`
JSON with an ErrorInfo on the canonical /v1 paths (issue 14), the shape the transcoder gives the services'
own errors there. Under the veil (AOS_VEIL) a call without valid credentials is refused with NOT_FOUND, byte for
byte Envoy's answer to a path that does not exist (gateway/replies.py).

Invalid credentials are veiled too, not only missing ones (SPEC 2 says "unauthenticated/invalid"): a wrong key
or token that answered 401 where an unknown path answers 404 would tell a prober which routes exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

# What gRPC metadata keys may be (the services' gRPC server refuses a whole call carrying any other key).
_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    404: code_pb2.NOT_FOUND,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}
# A refusal whose gRPC code is not its HTTP status's usual one (STYLE 5: the gate's state violation).
_CODE_OF_ERROR = {"onboarding_state_violation": code_pb2.FAILED_PRECONDITION}
# What an edge refusal's ErrorInfo names as the domain that refused: the edge, whichever process answered.
DOMAIN = "aos.gateway"
# The legacy keys of a refusal's body that become ErrorInfo metadata on /v1, under their STYLE 5 names.
_METADATA = {"current_state": "currentState", "required_state": "requiredState", "endpoint": "endpoint"}
# Messages for the refusals whose legacy body has none (SPEC 3.6 fixes the violation's keys).
_MESSAGES = {
    "onboarding_state_violation": "{endpoint} requires onboarding state {required_state}; "
    "the tenant is at {current_state}"
}
# Refusals of the caller's credential (none, two kinds, or a bad one): what the veil hides (SPEC 2).
UNAUTHENTICATED = frozenset({"missing_auth", "mixed_auth", "api_key_invalid", "invalid_token"})
# Anything that may make a name of the joined list unfit: a character outside the metadata key set, a colon
# past a name's first character, an empty name. Conservative: a match only sends the list to the exact test.
_ANY_UNFIT = re.compile(r"[^0-9a-z_.:\n-]|[^\n]:|^$|\n\n|^\n|\n$")


class Denied(Exception):
    def __init__(self, status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("error", ""))
        self.status, self.body, self.headers = status, body, headers or {}


INVALID_KEY = Denied(401, {"error": "api_key_invalid", "message": "Invalid API key"})
# The veil's refusal, and that of internal RPCs: byte for byte Envoy's 404 of a path that does not exist
# (gateway/replies.py), which Envoy writes compact, keys sorted, with a newline.
NOT_FOUND = Denied(404, {"error": "not_found", "message": "not found"})


def invalid_token(message: str) -> Denied:
    return Denied(401, {"error": "invalid_token", "message": message})


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, value=value),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def canonical(path: str) -> bool:
    """Whether the client called a canonical /v1 path (whose refusals are google.rpc.Status)."""
    return path.startswith("/v1/")


def code(denied: Denied) -> int:
    return int(_CODE_OF_ERROR.get(denied.body.get("error", ""), _CODES.get(denied.status, code_pb2.PERMISSION_DENIED)))


def status_body(denied: Denied) -> dict[str, Any]:
    """The refusal as google.rpc.Status JSON: the legacy error name, upper-cased, is the ErrorInfo reason."""
    error = denied.body.get("error", "")
    info: dict[str, Any] = {"@type": ERROR_INFO, "reason": error.upper(), "domain": DOMAIN}
    metadata = {_METADATA[k]: str(v) for k, v in denied.body.items() if k in _METADATA}
    if metadata:
        info["metadata"] = metadata
    message = denied.body.get("message") or _MESSAGES.get(error, error).format(**denied.body)
    return {"code": code(denied), "message": message, "details": [info]}


def deny(denied: Denied, *, as_status: bool = False) -> external_auth_pb2.CheckResponse:
    headers = {"content-type": "application/json"} | denied.headers
    body = status_body(denied) if as_status else denied.body
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code(denied)),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=denied.status),
            headers=[_header(k, v) for k, v in headers.items()],
            body=json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n"
            if denied is NOT_FOUND
            else json.dumps(body),
        ),
    )


def allow(headers: dict[str, str], remove: list[str]) -> external_auth_pb2.CheckResponse:
    """Empty values are left out: a caller header is either meaningful or absent."""
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=external_auth_pb2.OkHttpResponse(
            headers=[_header(k, v) for k, v in headers.items() if v], headers_to_remove=remove
        ),
    )


def unfit(names: Iterable[str]) -> list[str]:
    """Header names HTTP allows but gRPC metadata does not (`a*b`, `o'c`): forwarded, they would make the
    service refuse the call (500), and no service reads them. Pseudo-headers (`:path`) are Envoy's."""
    names = list(names)
    if not _ANY_UNFIT.search("\n".join(names)):  # the usual request: one search instead of one per name
        return []
    return [name for name in names if not name.startswith(":") and not _METADATA_KEY.fullmatch(name)]
