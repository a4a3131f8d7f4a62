import grpc
from google.rpc import error_details_pb2

from services.common import errors


def unpack(status: object, kind: type) -> list[object]:
    found = []
    for detail in status.details:  # type: ignore[attr-defined]
        if detail.Is(kind.DESCRIPTOR):  # type: ignore[attr-defined]
            message = kind()
            detail.Unpack(message)
            found.append(message)
    return found


def test_every_error_carries_error_info() -> None:
    status = errors.NotFound("project not found", reason="PROJECT_NOT_FOUND").to_status("aos.account")
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0] and status.message == "project not found"
    [info] = unpack(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("PROJECT_NOT_FOUND", "aos.account")  # type: ignore[attr-defined]


def test_invalid_argument_names_the_field() -> None:
    error = errors.InvalidArgument("name", "must be 1..200 characters, got 0")
    status = error.to_status("aos.account")
    assert status.message == "name: must be 1..200 characters, got 0"
    [bad] = unpack(status, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [  # type: ignore[attr-defined]
        ("name", "must be 1..200 characters, got 0")
    ]
    assert error.http_status is None
    assert errors.InvalidArgument("name", "x", http_status=422).http_status == 422


def test_precondition_failure_keeps_the_order_of_violations() -> None:
    error = errors.FailedPrecondition(
        "Activation predicate failed: missing [key_ready, sdk_attested]",
        reason="ACTIVATION_INCOMPLETE",
        violations=[("ACTIVATION", "key_ready", "no valid key"), ("ACTIVATION", "sdk_attested", "no handshake")],
    )
    [failure] = unpack(error.to_status("aos.onboarding"), error_details_pb2.PreconditionFailure)
    assert [v.subject for v in failure.violations] == ["key_ready", "sdk_attested"]  # type: ignore[attr-defined]


def test_codes() -> None:
    assert errors.Unavailable("db").code is grpc.StatusCode.UNAVAILABLE
    assert errors.ResourceExhausted("quota").code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert errors.Internal("boom").to_status("d").code == grpc.StatusCode.INTERNAL.value[0]
    assert errors.FailedPrecondition("x").details() == []
