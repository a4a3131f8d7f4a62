"""The gate's answers to Envoy: a refusal carries its status, legacy JSON body and headers (SPEC 0.14); an
approval carries the caller headers the services read."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

# What gRPC metadata keys may be (the services' gRPC server refuses a whole call carrying any other key).
_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")
# Anything that may make a name of the joined list unfit: a character outside the metadata key set, a colon
# past a name's first character, an empty name. Conservative: a match only sends the list to the exact test.
_ANY_UNFIT = re.compile(r"[^0-9a-z_.:\n-]|[^\n]:|^$|\n\n|^\n|\n$")
_CODES = {401: code_pb2.UNAUTHENTICATED, 429: code_pb2.RESOURCE_EXHAUSTED, 503: code_pb2.UNAVAILABLE}


class Denied(Exception):
    def __init__(self, status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("error", ""))
        self.status, self.body, self.headers = status, body, headers or {}


INVALID_KEY = Denied(401, {"error": "api_key_invalid", "message": "Invalid API key"})


def invalid_token(message: str) -> Denied:
    return Denied(401, {"error": "invalid_token", "message": message})


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, value=value),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def deny(denied: Denied) -> external_auth_pb2.CheckResponse:
    headers = {"content-type": "application/json"} | denied.headers
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=_CODES.get(denied.status, code_pb2.PERMISSION_DENIED)),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=denied.status),
            headers=[_header(k, v) for k, v in headers.items()],
            body=json.dumps(denied.body),
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
