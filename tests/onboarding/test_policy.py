"""The pure rules: ladder, next actions, capabilities, the 16-case predicate and gate resolution."""

import itertools

import pytest

from aos.gate.v1 import gate_pb2
from services.common import events
from services.onboarding import policy
from services.onboarding.policy import State


def test_ladder_is_ordered_forward_only_and_named() -> None:
    assert [s.value for s in State] == [0, 1, 2, 3, 4]
    assert policy.is_advance(0, 1) and policy.is_advance(1, 4)
    assert not policy.is_advance(2, 2) and not policy.is_advance(3, 1)
    assert policy.name(3) == "SDK_CONNECTED" and policy.name(7) == "UNKNOWN_7"
    assert policy.parse("  sdk_connected ") is State.SDK_CONNECTED
    with pytest.raises(ValueError, match="valid: CREATED, IDENTITY_VERIFIED"):
        policy.parse("done")
    assert policy.from_gate(gate_pb2.ONBOARDING_STATE_UNSPECIFIED) is None
    assert policy.from_gate(gate_pb2.ONBOARDING_STATE_COMPLETE) is State.COMPLETE
    assert policy.from_gate(gate_pb2.ONBOARDING_STATE_CREATED) is State.CREATED


def test_next_action_per_state() -> None:
    assert policy.NEXT_ACTIONS == {
        State.CREATED: ("enter_console", "tenant_bootstrap"),
        State.IDENTITY_VERIFIED: ("create_api_key", "credential_setup"),
        State.API_KEY_CREATED: ("connect_sdk", "integration"),
        State.SDK_CONNECTED: ("complete_setup", "finalization"),
        State.COMPLETE: None,
    }


def test_capabilities_grow_with_the_state() -> None:
    assert policy.allowed(State.CREATED) == [] and len(policy.blocked(State.CREATED)) == 8
    assert policy.allowed(State.IDENTITY_VERIFIED) == ["api_key_management"]
    assert "sdk_connection" in policy.blocked(State.IDENTITY_VERIFIED)
    assert policy.allowed(State.API_KEY_CREATED) == ["api_key_management", "sdk_connection"]
    assert set(policy.allowed(State.SDK_CONNECTED)) == {
        "api_key_management",
        "sdk_connection",
        "policy_management",
        "agent_execution",
        "run_management",
        "guard_access",
    }
    assert policy.allowed(State.COMPLETE) == list(policy.CAPABILITIES) and policy.blocked(State.COMPLETE) == []


@pytest.mark.parametrize("evidence", list(itertools.product([False, True], repeat=4)))
def test_predicate_matrix(evidence: tuple[bool, bool, bool, bool]) -> None:
    verdict = policy.predicate(*evidence)
    names = ["project_ready", "key_ready", "connector_validated", "sdk_attested"]
    assert verdict.missing == [n for n, met in zip(names, evidence, strict=True) if not met]
    assert verdict.passed is all(evidence)


def test_failure_message_is_the_legacy_text() -> None:
    assert (
        policy.failure_message(["connector_validated"])
        == "Activation predicate failed: missing ['connector_validated']"
    )


@pytest.mark.parametrize(
    ("path", "state"),
    [
        ("/tenant", State.CREATED),
        ("/onboarding/status", State.CREATED),
        ("/api-keys", State.IDENTITY_VERIFIED),
        ("/api-keys/abc", State.IDENTITY_VERIFIED),
        ("/tenant/api-keys/abc/x", State.IDENTITY_VERIFIED),
        ("/integrations/1/enable", State.IDENTITY_VERIFIED),
        ("/accounts/projects", State.IDENTITY_VERIFIED),
        ("/sdk/handshake", State.API_KEY_CREATED),
        ("/runs", State.SDK_CONNECTED),
        ("/guard/keys/1/freeze", State.SDK_CONNECTED),
        ("/tenant/quota/runs", State.SDK_CONNECTED),
        ("/billing/invoices", State.COMPLETE),
        ("/cus/api_keys/list", State.COMPLETE),
        ("/fdr/onboarding/stalled", State.COMPLETE),
        ("/no/such/thing?x=1", State.COMPLETE),
        ("/runsx", State.COMPLETE),
    ],
)
def test_gate_resolution(path: str, state: State) -> None:
    assert policy.required_state(path) is state


def test_infra_paths_are_exempt() -> None:
    for path in ("/health", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/int/anything", "/metrics?x"):
        assert policy.exempt(path), path
    assert not policy.exempt("/healthcheck") and not policy.exempt("/runs")


def test_event_validator_rejects_bad_envelopes() -> None:
    good = {
        "event_id": "e",
        "event_type": "onboarding.state.transition",
        "tenant_id": "t",
        "project_id": "__system__",
        "actor_type": "system",
        "actor_id": "a",
        "decision_owner": "onboarding",
        "sequence_no": 0,
        "schema_version": "1.0.0",
    }
    assert events.validate(good) == []
    assert "missing: tenant_id" in events.validate({k: v for k, v in good.items() if k != "tenant_id"})
    assert any("actor_type" in p for p in events.validate(good | {"actor_type": "robot"}))
    assert any("sequence_no" in p for p in events.validate(good | {"sequence_no": -1}))
