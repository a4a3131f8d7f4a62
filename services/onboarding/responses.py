"""The response shapes, built from states, moves and evaluations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf import struct_pb2, timestamp_pb2

from aos.onboarding.v1 import onboarding_pb2 as pb
from aos.onboarding.v1 import onboarding_service_pb2 as rpc
from services.common.interceptors import request_id
from services.onboarding import policy
from services.onboarding.models import OnboardingState
from services.onboarding.policy import Evaluation, Move, State

SERVER_VERSION = "1.0.0"
EXAMPLE = """from aos_sdk import Client

client = Client(api_key="<your key>", base_url="{base}")
client.handshake()
"""


def now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def meta() -> pb.Meta:
    return pb.Meta(timestamp=now(), request_id=request_id.get())


def _next_action(state: State) -> struct_pb2.Value:
    action = policy.NEXT_ACTIONS[state]
    value = struct_pb2.Value()
    if action is None:
        value.null_value = struct_pb2.NULL_VALUE
    else:
        value.struct_value.update({"action_id": action[0], "action_type": action[1]})
    return value


def requirements(evaluation: Evaluation | None) -> list[pb.Requirement]:
    if evaluation is None:
        return []
    return [pb.Requirement(name=n, status=s, source=src) for n, s, src in evaluation.requirements]


def status(tenant_id: str, state: State) -> rpc.GetOnboardingStatusResponse:
    return rpc.GetOnboardingStatusResponse(
        tenant_id=tenant_id,
        current_state=state.name,
        state_value=int(state),
        is_complete=state >= State.COMPLETE,
        step_index=int(state),
        total_steps=policy.TOTAL_STEPS,
        next_action=_next_action(state),
        allowed_capabilities=policy.allowed(state),
        blocked_capabilities=policy.blocked(state),
        timestamp=now(),
    )


def verified(tenant_id: str, state: State, verified: bool) -> rpc.VerifyIdentityResponse:
    message = "Identity verified successfully" if verified else "Email address is not verified"
    return rpc.VerifyIdentityResponse(verified=verified, tenant_id=tenant_id, current_state=state.name, message=message)


def advanced(move: Move) -> rpc.AdvanceApiKeyResponse:
    data = pb.AdvanceResult(
        success=True, from_state=move.from_state.name, to_state=move.to_state.name, was_no_op=move.was_no_op
    )
    return rpc.AdvanceApiKeyResponse(success=True, data=data, meta=meta())


def completed(tenant_id: str, move: Move, evaluation: Evaluation | None) -> rpc.CompleteOnboardingResponse:
    return rpc.CompleteOnboardingResponse(
        success=True,
        tenant_id=tenant_id,
        from_state=move.from_state.name,
        to_state=move.to_state.name,
        was_no_op=move.was_no_op,
        requirements=requirements(evaluation),
    )


def handshake(tenant_id: str, state: State) -> rpc.SdkHandshakeResponse:
    return rpc.SdkHandshakeResponse(
        success=True,
        message="SDK handshake successful",
        server_version=SERVER_VERSION,
        tenant_id=tenant_id,
        onboarding_state=state.name,
        timestamp=now(),
    )


def instructions(tenant_id: str, base: str, docs_url: str) -> rpc.GetSdkInstructionsResponse:
    return rpc.GetSdkInstructionsResponse(
        tenant_id=tenant_id,
        api_base_url=base,
        websocket_url=struct_pb2.Value(null_value=struct_pb2.NULL_VALUE),
        docs_url=docs_url,
        example_code=EXAMPLE.format(base=base),
    )


def force_completed(tenant_id: str, move: Move, reason: str, email: str, audit_id: str) -> rpc.ForceCompleteResponse:
    return rpc.ForceCompleteResponse(
        success=True,
        tenant_id=tenant_id,
        from_state=move.from_state.name,
        to_state=move.to_state.name,
        reason=reason,
        actor_email=email,
        timestamp=now(),
        audit_id=audit_id,
    )


def stalled(rows: Sequence[OnboardingState], hours: int, at: datetime) -> rpc.ListStalledResponse:
    tenants = []
    for row in rows:
        created = timestamp_pb2.Timestamp()
        created.FromDatetime(row.tenant_created_at)
        tenants.append(
            pb.StalledTenant(
                tenant_id=row.tenant_id,
                current_state=policy.name(row.state),
                hours_stalled=round((at - row.tenant_created_at).total_seconds() / 3600, 1),
                created_at=created,
            )
        )
    page = pb.StalledPage(stalled_count=len(tenants), threshold_hours=hours, tenants=tenants)
    return rpc.ListStalledResponse(success=True, data=page, meta=meta())
