"""The edge's pure rules: what a verified token may still be refused for, who is an operator, how claims are
named; the failed-key budgets; the identity provider's settings and the Envoy config rendered from them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aos.gate.v1 import gate_pb2
from gateway import config, identity
from gateway.identity import IdentityProvider
from services.common.principal import Kind, Principal
from services.onboarding import edge
from services.onboarding import identity as gate_identity
from services.onboarding.edge import Denied
from services.onboarding.gate import CREDENTIAL_HEADERS, Gate, IntegrationKey, _integration_key
from services.onboarding.keyguard import Buckets, client_bucket

NOW = 1_800_000_000
NAMES = gate_identity.Claims()


def claims(**extra: object) -> dict[str, object]:
    return {"sub": "alice", "iat": NOW, "exp": NOW + 600} | extra


def refused(payload: dict[str, object], names: gate_identity.Claims = NAMES) -> str:
    with pytest.raises(Denied) as caught:
        gate_identity.read(payload, names, NOW)
    assert caught.value.status == 401 and caught.value.body["error"] == "invalid_token"
    return caught.value.body["message"]


def test_iat_more_than_a_minute_ahead_is_refused() -> None:
    assert "future" in refused(claims(iat=NOW + 365 * 86400, exp=NOW + 365 * 86400 + 600))
    assert "future" in refused(claims(iat=NOW + 61, exp=NOW + 600))
    assert gate_identity.read(claims(iat=NOW + 59), NAMES, NOW).subject == "alice"  # clock skew


def test_a_lifetime_above_the_maximum_is_refused_even_when_little_is_left() -> None:
    # Envoy's max_lifetime bounds exp - now only: this token has 22 h left of a 25 h life.
    assert "lifetime" in refused(claims(iat=NOW - 3 * 3600, exp=NOW + 22 * 3600))
    assert gate_identity.read(claims(iat=NOW, exp=NOW + 24 * 3600), NAMES, NOW).kind is Kind.HUMAN
    short = gate_identity.Claims(max_lifetime_seconds=300)
    assert "300" in refused(claims(), short)


def test_a_token_without_subject_is_refused() -> None:
    refused({"iat": NOW, "exp": NOW + 60})
    refused(claims(sub=""))


def test_operators_are_recognised_by_the_configured_group_not_by_our_own_claim() -> None:
    assert gate_identity.read(claims(groups=["staff", "aos-operators"]), NAMES, NOW).kind is Kind.OPERATOR
    assert gate_identity.read(claims(aos_kind="operator"), NAMES, NOW).kind is Kind.HUMAN
    assert gate_identity.read(claims(groups="aos-operators"), NAMES, NOW).kind is Kind.OPERATOR
    custom = gate_identity.Claims(operator_claim="https://aos/roles", operator_value="founder")
    assert gate_identity.read(claims(**{"https://aos/roles": ["founder"]}), custom, NOW).kind is Kind.OPERATOR
    assert gate_identity.read(claims(groups=["aos-operators"]), custom, NOW).kind is Kind.HUMAN


def test_claim_names_are_the_providers() -> None:
    names = gate_identity.Claims(org_claim="https://aos/org", email_claim="mail", email_verified_claim="mail_ok")
    token = gate_identity.read(
        claims(**{"https://aos/org": "org_42", "mail": "a@x.test", "mail_ok": "true", "org_id": "ignored"}), names, NOW
    )
    assert (token.org, token.email, token.email_verified) == ("org_42", "a@x.test", True)
    default = gate_identity.read(claims(org_id=["not", "a", "string"], email_verified="yes"), NAMES, NOW)
    assert default.org == "" and default.email_verified is False


def test_the_gate_reads_the_payload_where_envoy_puts_it() -> None:
    assert gate_identity.PAYLOAD_KEY == identity.PAYLOAD_KEY
    assert gate_identity.JWT_METADATA == identity.JWT_FILTER


def test_buckets_allow_a_burst_then_the_rate() -> None:
    now = [0.0]
    buckets = Buckets(per_second=2.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        assert buckets.wait(["a"]) == 0
        buckets.spend(["a"])
    assert buckets.wait(["a"]) == pytest.approx(0.5)
    assert buckets.wait(["b"]) == 0 and buckets.wait(["a", "b"]) == pytest.approx(0.5)
    now[0] = 0.5
    assert buckets.wait(["a"]) == 0
    now[0] = 100.0
    buckets.spend(["a"])
    assert buckets.wait(["a"]) == 0  # refilled to the burst, not beyond it


def test_buckets_are_bounded() -> None:
    buckets = Buckets(per_second=0.001, burst=1, size=10)
    for i in range(1000):
        buckets.spend([f"k{i}"])
    assert len(buckets._levels) == 10


def test_an_ipv6_client_is_its_64() -> None:
    assert client_bucket("2001:db8:1:2:aaaa::1") == client_bucket("2001:db8:1:2:bbbb::2") == "addr:2001:db8:1:2::/64"
    assert client_bucket("2001:db8:1:3::1") != client_bucket("2001:db8:1:2::1")
    assert client_bucket("::ffff:192.0.2.7") == client_bucket("192.0.2.7") == "addr:192.0.2.7"
    assert client_bucket("") == "addr:"


def test_identity_provider_from_the_environment() -> None:
    idp = IdentityProvider.from_env(
        {
            "AOS_IDP_ISSUER": "https://login.example.test/",
            "AOS_IDP_AUDIENCES": "aos-api, aos-console",
            "AOS_IDP_JWKS_URI": "https://login.example.test/keys",
            "AOS_IDP_JWKS_CACHE_SECONDS": "60",
            "AOS_IDP_MAX_LIFETIME_SECONDS": "3600",
        }
    )
    assert idp.audiences == ("aos-api", "aos-console") and idp.jwks_cache_seconds == 60
    assert IdentityProvider.from_env({}) == IdentityProvider()  # the dev provider of `make up`
    for bad in (
        {"AOS_IDP_JWKS_URI": "file:///etc/passwd"},
        {"AOS_IDP_JWKS_URI": "https:///nohost"},
        {"AOS_IDP_AUDIENCES": " , "},
        {"AOS_IDP_MAX_LIFETIME_SECONDS": "0"},
    ):
        with pytest.raises(ValueError):
            IdentityProvider.from_env(bad)
    with pytest.raises(ValueError, match="issuer"):  # what the pod's init container runs: no dev fallback
        IdentityProvider.from_env({}, issuer="", audiences=(), jwks_path="")


def _provider(gw: config.Gateway) -> tuple[dict[str, object], list[dict[str, object]]]:
    rendered = config.render(gw)
    hcm = rendered["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    (jwt,) = [f["typed_config"] for f in hcm["http_filters"] if f["name"] == identity.JWT_FILTER]
    return jwt["providers"][identity.PROVIDER], rendered["static_resources"]["clusters"]


def test_tokens_only_from_the_authorization_header_with_exp_required() -> None:
    gw = config.from_descriptor(Path(config.__file__).with_name("aos.binpb"), upstreams={})
    provider, clusters = _provider(gw)
    assert provider["from_headers"] == [{"name": "authorization", "value_prefix": "Bearer "}]
    assert "from_params" not in provider and "claim_to_headers" not in provider
    assert provider["require_expiration"] is True and provider["max_lifetime"] == "86400s"
    assert provider["payload_in_metadata"] == identity.PAYLOAD_KEY and provider["forward"] is False
    assert provider["local_jwks"] == {"filename": ".aos/dev/jwks.json"} and clusters == []


def test_a_remote_jwks_is_cached_refreshed_and_fetched_through_its_own_cluster() -> None:
    idp = IdentityProvider(issuer="https://login.example.test/", jwks_uri="https://login.example.test/keys")
    gw = config.from_descriptor(Path(config.__file__).with_name("aos.binpb"), upstreams={}, identity=idp)
    provider, clusters = _provider(gw)
    remote = provider["remote_jwks"]
    assert remote["http_uri"] == {"uri": idp.jwks_uri, "cluster": identity.JWKS_CLUSTER, "timeout": "5s"}
    assert remote["cache_duration"] == "300s" and "async_fetch" in remote and "local_jwks" not in provider
    (cluster,) = clusters
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert endpoint["socket_address"] == {"address": "login.example.test", "port_value": 443}
    tls = cluster["transport_socket"]["typed_config"]
    assert tls["sni"] == "login.example.test"
    assert tls["common_tls_context"]["validation_context"]["trusted_ca"] == {"filename": identity.SYSTEM_CAS}


def test_the_gateway_strips_every_caller_header_the_gate_sets() -> None:
    everything = Principal(Kind.HUMAN, "u", "t", "u@x.test", True, "owner", ("a:b",), "org")
    key = IntegrationKey("t", "i", "aos_0123456789abcdef")
    assert set(Gate._caller_headers(everything, {"x-request-id": "r1234567"}, key)) <= set(config.CALLER_HEADERS)


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("t1:i1:aos_secret", ("t1", "i1", "aos_secret")),
        (" t1:i1:aos:with:colons ", ("t1", "i1", "aos:with:colons")),  # the secret keeps its colons
        ("t1:i1", None),
        ("t1::aos_secret", None),
        (":i1:aos_secret", None),
        ("t1:i1: ", None),
        ("", None),
    ],
)
def test_the_integration_key_has_three_non_empty_parts(header: str, parsed: tuple[str, str, str] | None) -> None:
    """MONITORING.md decision 5; a malformed header is refused like a wrong key (tested through the gateway)."""
    assert _integration_key({"x-cus-integration-key": header}) == parsed
    assert _integration_key({}) is None


def test_an_integration_key_caller_gets_its_integration_and_key_prefix() -> None:
    """x-aos-key-prefix for every key, whichever header carried it; x-aos-integration-id only for the
    integration key (the credential headers themselves never pass the gate)."""
    key = Principal(Kind.API_KEY, "key-1", "t1", scopes=("telemetry:write",))
    secret = "aos_0123456789abcdef"
    by_integration = Gate._caller_headers(key, {}, IntegrationKey("t1", "i1", secret))
    assert (by_integration["x-aos-key-prefix"], by_integration["x-aos-integration-id"]) == (secret[:12], "i1")
    by_key = Gate._caller_headers(key, {"x-aos-key": secret}, None)
    assert (by_key["x-aos-key-prefix"], by_key["x-aos-integration-id"]) == (secret[:12], "")
    assert set(CREDENTIAL_HEADERS) == {"x-aos-key", "x-cus-integration-key"}


def test_the_gate_knows_the_rules_of_services_its_process_never_calls() -> None:
    """Onboarding's own process imports only the APIs it calls; the gate must still find monitoring's rules
    (SDK_CONNECTED and telemetry:write for ingest), not fall back to the path table's COMPLETE."""
    root = Path(__file__).resolve().parents[2]
    code = (
        "from services.onboarding import gate\n"
        "from services.common.interceptors import gate_rule\n"
        "m = '/aos.monitoring.v1.TelemetryService/IngestUsage'\n"
        "assert gate_rule(m) is None\n"
        "gate.load_rules()\n"
        "print(gate_rule(m).scope, gate_rule(m).min_state)\n"
    )
    env = os.environ | {"PYTHONPATH": f"{root}{os.pathsep}{root / 'protos'}"}
    ran = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["telemetry:write", str(gate_pb2.ONBOARDING_STATE_SDK_CONNECTED)]


def test_header_names_grpc_metadata_cannot_carry_are_named_for_removal() -> None:
    """HTTP's token characters beyond gRPC's [0-9a-z_.-] would make a service refuse the call; Envoy's
    pseudo-headers are not the client's and stay."""
    names = [":path", ":authority", "x-aos-key", "user-agent", "x_y.z-1", "a*b", "o'c", "t~d", "q#"]
    assert edge.unfit(names) == ["a*b", "o'c", "t~d", "q#"]


def test_edge_refusals_on_v1_are_google_rpc_status_in_the_gateways_domain() -> None:
    from gateway import replies

    assert (edge.DOMAIN, edge.ERROR_INFO) == (replies.DOMAIN, replies.ERROR_INFO)
    violation = Denied(
        403,
        {
            "error": "onboarding_state_violation",
            "current_state": "CREATED",
            "required_state": "COMPLETE",
            "endpoint": "/v1/x",
        },
    )
    body = edge.status_body(violation)
    assert body["code"] == 9 and body["message"] == "/v1/x requires onboarding state COMPLETE; the tenant is at CREATED"
    assert body["details"] == [
        {
            "@type": edge.ERROR_INFO,
            "reason": "ONBOARDING_STATE_VIOLATION",
            "domain": "aos.gateway",
            "metadata": {"currentState": "CREATED", "requiredState": "COMPLETE", "endpoint": "/v1/x"},
        }
    ]
    assert edge.status_body(edge.INVALID_KEY) == {
        "code": 16,
        "message": "Invalid API key",
        "details": [{"@type": edge.ERROR_INFO, "reason": "API_KEY_INVALID", "domain": "aos.gateway"}],
    }
    # Envoy's 404 exactly (compact, sorted, a newline): the veil cannot be told from an unknown path.
    legacy = edge.deny(edge.NOT_FOUND).denied_response.body
    assert legacy == '{"error":"not_found","message":"not found"}\n'
    assert {"missing_auth", "mixed_auth", "api_key_invalid", "invalid_token"} == edge.UNAUTHENTICATED
