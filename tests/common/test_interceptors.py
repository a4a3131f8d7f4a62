import asyncpg
import pytest
import sqlalchemy.exc

from aos.gate.v1 import gate_pb2
from services.common import interceptors, tls
from services.common.errors import PermissionDenied, Unauthenticated
from services.common.principal import Kind, from_metadata
from tests.conftest import human, operator, service

GATEWAY = tls.GATEWAY
CHECK = "/envoy.service.auth.v3.Authorization/Check"  # Envoy's ext_authz: no gate rule, the gateway's alone
INTERNAL = gate_pb2.Rule(
    audience=gate_pb2.AUDIENCE_INTERNAL, principals=[gate_pb2.PRINCIPAL_KIND_SERVICE], callers=["onboarding"]
)
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
    interceptors.check(RULE, human("t"), GATEWAY)
    interceptors.check(RULE, key(scopes="projects:*"), GATEWAY)
    interceptors.check(RULE, key(scopes="*"), GATEWAY)
    with pytest.raises(Unauthenticated):
        interceptors.check(RULE, (), GATEWAY)
    with pytest.raises(PermissionDenied, match="scope projects:write"):
        interceptors.check(RULE, key(scopes="projects:read,run:*"), GATEWAY)
    with pytest.raises(PermissionDenied, match="operator callers"):
        interceptors.check(RULE, operator(), GATEWAY)
    with pytest.raises(PermissionDenied, match="no tenant"):
        interceptors.check(RULE, human(), GATEWAY)
    tenantless = gate_pb2.Rule(principals=[gate_pb2.PRINCIPAL_KIND_HUMAN], tenantless=True)
    interceptors.check(tenantless, human(), GATEWAY)
    interceptors.check(INTERNAL, service(), "onboarding")
    with pytest.raises(PermissionDenied):
        interceptors.check(INTERNAL, human("t"), GATEWAY)


def test_who_may_call_follows_the_peer_certificate() -> None:
    """Customer metadata only from the gateway; a service only as its own certificate's identity and only
    where the rule names it; methods without a rule: health and reflection for any peer, else the gateway."""
    with pytest.raises(PermissionDenied, match="only from the gateway"):  # a service forging a customer
        interceptors.check(RULE, human("victim", role="owner"), "integrations")
    with pytest.raises(PermissionDenied, match="only from the gateway"):
        interceptors.check(RULE, operator(), "onboarding")
    with pytest.raises(PermissionDenied, match="only from the gateway"):  # a certificate naming no identity
        interceptors.check(RULE, human("t"), "")
    with pytest.raises(PermissionDenied, match="not the peer's certificate"):  # integrations claiming onboarding
        interceptors.check(INTERNAL, service("onboarding"), "integrations")
    with pytest.raises(PermissionDenied, match="may not call"):  # itself, but not a named caller
        interceptors.check(INTERNAL, service("integrations"), "integrations")
    with pytest.raises(PermissionDenied, match="may not call"):  # the gateway acting as a service
        interceptors.check(INTERNAL, service(GATEWAY), GATEWAY)
    for peer in ("account", GATEWAY, ""):
        interceptors.check(None, (), peer, "/grpc.health.v1.Health/Check")
        interceptors.check(None, (), peer, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    interceptors.check(None, (), GATEWAY, CHECK)
    with pytest.raises(PermissionDenied, match="only the gateway"):
        interceptors.check(None, (), "onboarding", CHECK)


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
