from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from aos.onboarding.v1 import onboarding_pb2 as pb
from aos.onboarding.v1 import onboarding_service_pb2 as rpc
from aos.onboarding.v1 import onboarding_service_pb2_grpc
from services.common import validation
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.interceptors import request_id
from services.common.principal import caller
from services.onboarding import policy, repository
from services.onboarding.machine import Actor, Evaluation, Machine
from services.onboarding.policy import State
from services.onboarding.settings import Settings

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
SERVER_VERSION = "1.0.0"
EXAMPLE = """from aos_sdk import Client

client = Client(api_key="<your key>", base_url="{base}")
client.handshake()
"""


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def _meta() -> pb.Meta:
    return pb.Meta(timestamp=_now(), request_id=request_id.get())


def _next_action(state: State) -> struct_pb2.Value:
    action = policy.NEXT_ACTIONS[state]
    value = struct_pb2.Value()
    if action is None:
        value.null_value = struct_pb2.NULL_VALUE
    else:
        value.struct_value.update({"action_id": action[0], "action_type": action[1]})
    return value


def _requirements(evaluation: Evaluation | None) -> list[pb.Requirement]:
    if evaluation is None:
        return []
    return [pb.Requirement(name=n, status=s, source=src) for n, s, src in evaluation.requirements]


def _actor(context: Context) -> tuple[str, Actor]:
    who = caller(context)
    return who.tenant(), Actor(who.actor_type, who.actor_id)


def _unprocessable(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(field, description, http_status=422)


class OnboardingServicer(onboarding_service_pb2_grpc.OnboardingServiceServicer):
    def __init__(self, machine: Machine, settings: Settings, forget_key: Callable[[str], None]) -> None:
        self._machine, self._settings, self._forget_key = machine, settings, forget_key

    async def GetOnboardingStatus(
        self, request: rpc.GetOnboardingStatusRequest, context: Context
    ) -> rpc.GetOnboardingStatusResponse:
        tenant_id = caller(context).tenant()
        state = await self._machine.state(tenant_id)
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
            timestamp=_now(),
        )

    async def VerifyIdentity(self, request: rpc.VerifyIdentityRequest, context: Context) -> rpc.VerifyIdentityResponse:
        who = caller(context)
        tenant_id = who.tenant()
        if not who.email_verified:
            state = await self._machine.state(tenant_id)
            return rpc.VerifyIdentityResponse(
                verified=False, tenant_id=tenant_id, current_state=state.name, message="Email address is not verified"
            )
        result = await self._machine.advance(
            tenant_id, State.IDENTITY_VERIFIED, "first_human_auth", Actor(who.actor_type, who.actor_id)
        )
        return rpc.VerifyIdentityResponse(
            verified=True,
            tenant_id=tenant_id,
            current_state=result.to_state.name,
            message="Identity verified successfully",
        )

    async def AdvanceApiKey(self, request: rpc.AdvanceApiKeyRequest, context: Context) -> rpc.AdvanceApiKeyResponse:
        tenant_id, actor = _actor(context)
        if not (await self._machine.clients.key_evidence(tenant_id)).has_valid_key:
            raise FailedPrecondition("the tenant has no valid API key", reason="KEY_REQUIRED")
        result = await self._machine.advance(tenant_id, State.API_KEY_CREATED, "first_api_key_created", actor)
        data = pb.AdvanceResult(
            success=True, from_state=result.from_state.name, to_state=result.to_state.name, was_no_op=result.was_no_op
        )
        return rpc.AdvanceApiKeyResponse(success=True, data=data, meta=_meta())

    async def CompleteOnboarding(
        self, request: rpc.CompleteOnboardingRequest, context: Context
    ) -> rpc.CompleteOnboardingResponse:
        tenant_id, actor = _actor(context)
        result, evaluation = await self._machine.finalize(tenant_id, actor)
        return rpc.CompleteOnboardingResponse(
            success=True,
            tenant_id=tenant_id,
            from_state=result.from_state.name,
            to_state=result.to_state.name,
            was_no_op=result.was_no_op,
            requirements=_requirements(evaluation),
        )

    async def SdkHandshake(self, request: rpc.SdkHandshakeRequest, context: Context) -> rpc.SdkHandshakeResponse:
        tenant_id, actor = _actor(context)
        for field in ("sdk_version", "sdk_language"):
            if not getattr(request, field).strip():
                raise _unprocessable(field, "is required")
        # The attestation first (account owns it), then the transition; either failing fails the request.
        await self._machine.clients.record_attestation(
            tenant_id, request.sdk_version.strip(), request.sdk_language.strip(), request.client_id.strip()
        )
        await self._machine.advance(tenant_id, State.SDK_CONNECTED, "first_sdk_handshake", actor)
        await self._machine.promote(tenant_id)
        state = await self._machine.state(tenant_id)
        return rpc.SdkHandshakeResponse(
            success=True,
            message="SDK handshake successful",
            server_version=SERVER_VERSION,
            tenant_id=tenant_id,
            onboarding_state=state.name,
            timestamp=_now(),
        )

    async def GetSdkInstructions(
        self, request: rpc.GetSdkInstructionsRequest, context: Context
    ) -> rpc.GetSdkInstructionsResponse:
        tenant_id = caller(context).tenant()
        base = self._settings.api_base_url
        return rpc.GetSdkInstructionsResponse(
            tenant_id=tenant_id,
            api_base_url=base,
            websocket_url=struct_pb2.Value(null_value=struct_pb2.NULL_VALUE),
            docs_url=self._settings.docs_url,
            example_code=EXAMPLE.format(base=base),
        )

    async def ForceComplete(self, request: rpc.ForceCompleteRequest, context: Context) -> rpc.ForceCompleteResponse:
        who = caller(context)  # an operator: the gate rule admits no other kind
        tenant_id = request.tenant_id.strip()
        if not tenant_id:
            raise _unprocessable("tenant_id", "is required")
        reason = request.reason.strip()
        if not 10 <= len(reason) <= 500:
            raise _unprocessable("reason", f"must be 10..500 characters, got {len(reason)}")
        result, audit_id = await self._machine.force_complete(
            tenant_id, reason, Actor("founder", who.actor_id), who.email
        )
        return rpc.ForceCompleteResponse(
            success=True,
            tenant_id=tenant_id,
            from_state=result.from_state.name,
            to_state=result.to_state.name,
            reason=reason,
            actor_email=who.email,
            timestamp=_now(),
            audit_id=audit_id,
        )

    async def ListStalled(self, request: rpc.ListStalledRequest, context: Context) -> rpc.ListStalledResponse:
        hours = validation.between("threshold_hours", request.threshold_hours or 24, 1, 24 * 365)
        now = datetime.now(UTC)
        async with self._machine.sessions() as session:
            rows = await repository.stalled(session, now - timedelta(hours=hours))
        tenants = []
        for row in rows:
            created = timestamp_pb2.Timestamp()
            created.FromDatetime(row.tenant_created_at)
            tenants.append(
                pb.StalledTenant(
                    tenant_id=row.tenant_id,
                    current_state=policy.name(row.state),
                    hours_stalled=round((now - row.tenant_created_at).total_seconds() / 3600, 1),
                    created_at=created,
                )
            )
        page = pb.StalledPage(stalled_count=len(tenants), threshold_hours=hours, tenants=tenants)
        return rpc.ListStalledResponse(success=True, data=page, meta=_meta())

    async def NotifyEvidence(self, request: rpc.NotifyEvidenceRequest, context: Context) -> rpc.NotifyEvidenceResponse:
        caller(context)
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 64)
        if request.kind == pb.EVIDENCE_KIND_UNSPECIFIED:
            raise InvalidArgument("kind", "is required")
        transitioned = await apply(self._machine, self._forget_key, tenant_id, request.kind, request.key_id)
        state = await self._machine.state(tenant_id)
        return rpc.NotifyEvidenceResponse(current_state=state.name, transitioned=transitioned)

    async def GetOnboardingState(
        self, request: rpc.GetOnboardingStateRequest, context: Context
    ) -> rpc.GetOnboardingStateResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 64)
        state = await self._machine.state(tenant_id)
        return rpc.GetOnboardingStateResponse(tenant_id=tenant_id, current_state=state.name, state_value=int(state))

    async def EvaluateActivation(
        self, request: rpc.EvaluateActivationRequest, context: Context
    ) -> rpc.EvaluateActivationResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 64)
        evaluation = await self._machine.evaluate(tenant_id)
        return rpc.EvaluateActivationResponse(
            passed=evaluation.verdict.passed, missing=evaluation.verdict.missing, requirements=_requirements(evaluation)
        )


async def apply(machine: Machine, forget_key: Callable[[str], None], tenant_id: str, kind: int, key_id: str) -> bool:
    """Applies one piece of evidence (a producer's notification or an event); idempotent."""
    moved = False
    if kind == pb.EVIDENCE_KIND_API_KEY_CREATED:
        result = await machine.advance(
            tenant_id, State.API_KEY_CREATED, "first_api_key_created", Actor("system", "first_api_key_created")
        )
        moved = not result.was_no_op
    elif kind == pb.EVIDENCE_KIND_API_KEY_CHANGED and key_id:
        forget_key(key_id)
    return await machine.promote(tenant_id) or moved
