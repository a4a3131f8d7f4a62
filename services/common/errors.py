"""One error tree for every service; the shared ServiceInterceptor (interceptors.py) maps it to google.rpc.Status.

ServiceError
 ├── InvalidArgument      INVALID_ARGUMENT     (+ BadRequest field violations)
 ├── Unauthenticated      UNAUTHENTICATED
 ├── PermissionDenied     PERMISSION_DENIED
 ├── NotFound             NOT_FOUND            (also another tenant's id: no existence oracle)
 ├── AlreadyExists        ALREADY_EXISTS
 ├── FailedPrecondition   FAILED_PRECONDITION  (+ PreconditionFailure violations)
 ├── ResourceExhausted    RESOURCE_EXHAUSTED
 ├── Unavailable          UNAVAILABLE          (a dependency is down; names it)
 └── Internal             INTERNAL
"""

from __future__ import annotations

from typing import ClassVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2


class ServiceError(Exception):
    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    default_reason: ClassVar[str] = "INTERNAL"
    # An HTTP status for REST callers where the legacy API answered something other than the standard
    # mapping of `code` (e.g. 422 for validation); the gateway applies it. gRPC callers see `code`.
    http_status: int | None = None
    # The same, for the legacy REST paths only (the gateway ignores it on /v1/...): where the legacy API and
    # the canonical one disagree, e.g. 422 on legacy /integrations validation against 400 on /v1.
    legacy_http_status: int | None = None

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = metadata or {}

    def details(self) -> list[any_pb2.Any]:
        return []

    def to_status(self, domain: str) -> status_pb2.Status:
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=domain, metadata=self.metadata)
        details = [_pack(info), *self.details()]
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=details)


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self, field: str, description: str, *, reason: str | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(f"{field}: {description}", reason=reason, metadata={"field": field})
        self.violations = [(field, description)]
        self.http_status = http_status

    def details(self) -> list[any_pb2.Any]:
        violations = [error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in self.violations]
        return [_pack(error_details_pb2.BadRequest(field_violations=violations))]


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        violations: list[tuple[str, str, str]] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = violations or []  # (type, subject, description)

    def details(self) -> list[any_pb2.Any]:
        if not self.violations:
            return []
        failure = error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(type=t, subject=s, description=d)
                for t, s, d in self.violations
            ]
        )
        return [_pack(failure)]


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class Internal(ServiceError):
    pass


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed
