"""Onboarding rules with no I/O: the forward-only ladder, next actions, capabilities, the activation
predicate, and the edge gate's resolution of a path to its minimum state (SPEC 2.1, 3, 4)."""

from __future__ import annotations

import re
from enum import IntEnum
from typing import NamedTuple

from aos.gate.v1 import gate_pb2


class State(IntEnum):
    CREATED = 0
    IDENTITY_VERIFIED = 1
    API_KEY_CREATED = 2
    SDK_CONNECTED = 3
    COMPLETE = 4


TOTAL_STEPS = len(State)


def name(value: int) -> str:
    """SPEC 3.1: an unknown integer renders as UNKNOWN_<n>."""
    return State(value).name if value in State._value2member_map_ else f"UNKNOWN_{value}"


def parse(text: str) -> State:
    """Case-insensitive, trimmed; an unknown name lists the valid ones."""
    try:
        return State[text.strip().upper()]
    except KeyError:
        raise ValueError(f"unknown onboarding state {text!r}; valid: {', '.join(s.name for s in State)}") from None


def is_advance(current: int, target: int) -> bool:
    """Forward-only: a lower or equal target is a no-op."""
    return target > current


def reached(current: State, target: State | None) -> State:
    """The state a move to `target` (None: no move) leaves a tenant at `current` in."""
    return target if target is not None and is_advance(current, target) else current


class Move(NamedTuple):
    from_state: State
    to_state: State
    was_no_op: bool


def from_gate(value: int) -> State | None:
    """The gate option's enum (UNSPECIFIED = no requirement, CREATED = 1, ...) as a ladder state."""
    return None if value == gate_pb2.ONBOARDING_STATE_UNSPECIFIED else State(value - 1)


NEXT_ACTIONS: dict[State, tuple[str, str] | None] = {
    State.CREATED: ("enter_console", "tenant_bootstrap"),
    State.IDENTITY_VERIFIED: ("create_api_key", "credential_setup"),
    State.API_KEY_CREATED: ("connect_sdk", "integration"),
    State.SDK_CONNECTED: ("complete_setup", "finalization"),
    State.COMPLETE: None,
}

CAPABILITIES = (
    "api_key_management",
    "policy_management",
    "agent_execution",
    "run_management",
    "sdk_connection",
    "guard_access",
    "billing",
    "limits",
)
_UNLOCKED: dict[State, tuple[str, ...]] = {
    State.CREATED: (),
    State.IDENTITY_VERIFIED: ("api_key_management",),
    State.API_KEY_CREATED: ("sdk_connection",),
    State.SDK_CONNECTED: ("policy_management", "agent_execution", "run_management", "guard_access"),
    State.COMPLETE: ("billing", "limits"),
}


def allowed(state: State) -> list[str]:
    unlocked = {c for s, caps in _UNLOCKED.items() if s <= state for c in caps}
    return [c for c in CAPABILITIES if c in unlocked]


def blocked(state: State) -> list[str]:
    return [c for c in CAPABILITIES if c not in allowed(state)]


# The predicate's conditions in their fixed order (SPEC 4), each with the service holding its evidence.
REQUIREMENTS = (
    ("project_ready", "account"),
    ("key_ready", "api_keys"),
    ("connector_validated", "integrations"),
    ("sdk_attested", "account"),
)


class Verdict(NamedTuple):
    passed: bool
    missing: list[str]


def predicate(project_ready: bool, key_ready: bool, connector_validated: bool, sdk_attested: bool) -> Verdict:
    evidence = (project_ready, key_ready, connector_validated, sdk_attested)
    missing = [req for (req, _), met in zip(REQUIREMENTS, evidence, strict=True) if not met]
    return Verdict(not missing, missing)


class Evaluation(NamedTuple):
    verdict: Verdict
    requirements: list[tuple[str, str, str]]  # (name, met|missing|unknown, source)


class Skipped(NamedTuple):
    """What the founder override skips: the requirements known to be missing, and those whose source did not
    answer (unknown: neither met nor missing)."""

    missing: list[str]
    unknown: list[str]


def evaluate(evidence: dict[str, bool | None]) -> Evaluation:
    """The predicate over each requirement's evidence; None means its source did not answer ("unknown")."""
    requirements = [
        (req, "unknown" if evidence[req] is None else ("met" if evidence[req] else "missing"), source)
        for req, source in REQUIREMENTS
    ]
    return Evaluation(predicate(*(bool(evidence[req]) for req, _ in REQUIREMENTS)), requirements)


def failure_message(missing: list[str]) -> str:
    return f"Activation predicate failed: missing {missing}"


# The edge gate for paths no RPC declares (SPEC 3.6): infra exempt, then the legacy tables, else COMPLETE.
EXEMPT = frozenset({"/health", "/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json"})
_EXACT = {
    "/tenant": State.CREATED,
    "/tenant/health": State.CREATED,
    "/tenants/self": State.CREATED,
    "/tenants/self/status": State.CREATED,
    "/onboarding/status": State.CREATED,
    "/onboarding/verify": State.CREATED,
    "/api-keys": State.IDENTITY_VERIFIED,
    "/tenant/api-keys": State.IDENTITY_VERIFIED,
    "/sdk/instructions": State.IDENTITY_VERIFIED,
    "/onboarding/advance/api-key": State.IDENTITY_VERIFIED,
    "/sdk/handshake": State.API_KEY_CREATED,
    "/sdk/register": State.API_KEY_CREATED,
}
_SDK_PREFIXES = [
    "guard",
    "customer",
    "policies",
    "policy",
    "policy-layer",
    "policy-proposals",
    "costsim",
    "incidents",
    "traces",
    "activity",
    "runs",
    "agents",
    "workers",
    "runtime",
    "replay",
    "feedback",
    "predictions",
    "discovery",
    "embedding",
    "memory",
    "cost",
]
_PATTERNS = [
    (re.compile(r"^/api-keys/[^/]+$"), State.IDENTITY_VERIFIED),
    (re.compile(r"^/tenant/api-keys(/.*)?$"), State.IDENTITY_VERIFIED),
    # /integrations*, /accounts/projects* (SPEC 0.5: no gate deadlock) and the legacy connector paths.
    (re.compile(r"^/(integrations|connectors|datasources|accounts/projects)(/.*)?$"), State.IDENTITY_VERIFIED),
    (re.compile(rf"^/({'|'.join(map(re.escape, _SDK_PREFIXES))})(/.*)?$"), State.SDK_CONNECTED),
    (re.compile(r"^/tenant/(usage|quota(/.*)?)$"), State.SDK_CONNECTED),
    (re.compile(r"^/(billing|limits|org/users|roles|support|rbac)(/.*)?$"), State.COMPLETE),
]


def exempt(path: str) -> bool:
    path = path.split("?", 1)[0]
    return path in EXEMPT or path.startswith("/int/")


def required_state(path: str) -> State:
    """Minimum state of a path no RPC declares; method-agnostic; unlisted paths need COMPLETE."""
    path = path.split("?", 1)[0]
    if path in _EXACT:
        return _EXACT[path]
    for pattern, state in _PATTERNS:
        if pattern.match(path):
            return state
    return State.COMPLETE
