import asyncpg
import pytest
import sqlalchemy.exc

from aos.gate.v1 import gate_pb2
from services.common import interceptors
from services.common.errors import PermissionDenied, Unauthenticated
from services.common.principal import Kind, from_metadata
from tests.conftest import human, operator, service

RULE = gate_pb2.Rule(
    audience=gate_pb2.AUDIENCE_CUSTOMER,
    principals=[gate_pb2.PRINCIPAL_KIND_HUMAN, gate_pb2.PRINCIPAL_KIND_API_KEY],
    scope="projects:write",
)


def key(tenant: str = "t", scopes: str = "run:*") -> tuple[tuple[str, str], ...]:
    return (
        ("x-aos-actor-type", "api_key"),
        ("x-aos-actor-id", "k1"),
        ("x-aos-tenant-id", tenant),
        ("x-aos-scopes", scopes),
    )


def test_gate_rules_come_from_the_descriptors() -> None:
    rule = interceptors.gate_rule("/aos.account.v1.AccountService/CreateProject")
    assert rule is not None and rule.min_state == gate_pb2.ONBOARDING_STATE_IDENTITY_VERIFIED
    internal = interceptors.gate_rule("/aos.account.v1.AccountService/GetActivationEvidence")
    assert internal is not None and internal.audience == gate_pb2.AUDIENCE_INTERNAL
    assert interceptors.gate_rule("/grpc.health.v1.Health/Check") is None
    assert interceptors.gate_rule("/no.such.Service/Method") is None


def test_the_principal_part_of_a_rule() -> None:
    interceptors.check(RULE, human("t"))
    interceptors.check(RULE, key(scopes="projects:*"))
    interceptors.check(RULE, key(scopes="*"))
    interceptors.check(None, ())  # health, reflection
    with pytest.raises(Unauthenticated):
        interceptors.check(RULE, ())
    with pytest.raises(PermissionDenied, match="scope projects:write"):
        interceptors.check(RULE, key(scopes="projects:read,run:*"))
    with pytest.raises(PermissionDenied, match="operator callers"):
        interceptors.check(RULE, operator())
    with pytest.raises(PermissionDenied, match="no tenant"):
        interceptors.check(RULE, human())
    tenantless = gate_pb2.Rule(principals=[gate_pb2.PRINCIPAL_KIND_HUMAN], tenantless=True)
    interceptors.check(tenantless, human())
    internal = gate_pb2.Rule(principals=[gate_pb2.PRINCIPAL_KIND_SERVICE])
    interceptors.check(internal, service())
    with pytest.raises(PermissionDenied):
        interceptors.check(internal, human("t"))


def test_principal_parsing() -> None:
    assert from_metadata((("x-aos-actor-type", "wizard"), ("x-aos-actor-id", "x"))) is None
    assert from_metadata((("x-aos-actor-type", "human"),)) is None
    caller = from_metadata(human("t", user="u", role="viewer"))
    assert caller is not None and (caller.kind, caller.tenant_id, caller.role, caller.actor_type) == (
        Kind.HUMAN,
        "t",
        "viewer",
        "user",
    )
    assert caller.email_verified


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        TimeoutError(),
        asyncpg.CannotConnectNowError("starting"),
        sqlalchemy.exc.TimeoutError("pool"),
    ],
)
def test_database_outages_are_recognised(exc: BaseException) -> None:
    assert interceptors._unavailable(exc)


def test_chained_outage_and_ordinary_errors() -> None:
    try:
        try:
            raise ConnectionResetError()
        except ConnectionResetError as inner:
            raise ValueError("wrapped") from inner
    except ValueError as outer:
        assert interceptors._unavailable(outer)
    assert not interceptors._unavailable(ValueError("a bug"))
