from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.onboarding.v1 import onboarding_pb2 as pb
from aos.onboarding.v1 import onboarding_service_pb2 as rpc
from aos.onboarding.v1 import onboarding_service_pb2_grpc
from services.common import validation
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.principal import caller
from services.onboarding import activation, repository, responses, states
from services.onboarding.clients import Clients
from services.onboarding.evidence import HANDSHAKE, Evidence
from services.onboarding.policy import Move, State
from services.onboarding.settings import Settings

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _unprocessable(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(field, description, http_status=422)


def _required(request: Any, field: str) -> str:
    value: str = getattr(request, field).strip()
    if not value:
        raise _unprocessable(field, "is required")
    return value


class OnboardingServicer(onboarding_service_pb2_grpc.OnboardingServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cache: states.Cache,
        clients: Clients,
        evidence: Evidence,
        settings: Settings,
    ) -> None:
        self._sessions, self._cache, self._clients = sessions, cache, clients
        self._evidence, self._settings = evidence, settings

    async def GetOnboardingStatus(
        self, request: rpc.GetOnboardingStatusRequest, context: Context
    ) -> rpc.GetOnboardingStatusResponse:
        tenant_id = caller(context).tenant()
        return responses.status(tenant_id, await self._cache.get(tenant_id))

    async def VerifyIdentity(self, request: rpc.VerifyIdentityRequest, context: Context) -> rpc.VerifyIdentityResponse:
        who = caller(context)
        tenant_id = who.tenant()
        if not who.email_verified:
            return responses.verified(tenant_id, await self._cache.get(tenant_id), verified=False)
        async with self._sessions.begin() as session:
            move = await states.advance(session, tenant_id, State.IDENTITY_VERIFIED, "first_human_auth", who)
        self._cache.put(tenant_id, move.to_state)
        return responses.verified(tenant_id, move.to_state, verified=True)

    async def AdvanceApiKey(self, request: rpc.AdvanceApiKeyRequest, context: Context) -> rpc.AdvanceApiKeyResponse:
        who = caller(context)
        tenant_id = who.tenant()
        if not (await self._clients.key_evidence(tenant_id)).has_valid_key:
            raise FailedPrecondition("the tenant has no valid API key", reason="KEY_REQUIRED")
        async with self._sessions.begin() as session:
            move = await states.advance(session, tenant_id, State.API_KEY_CREATED, "first_api_key_created", who)
        self._cache.put(tenant_id, move.to_state)
        return responses.advanced(move)

    async def CompleteOnboarding(
        self, request: rpc.CompleteOnboardingRequest, context: Context
    ) -> rpc.CompleteOnboardingResponse:
        who = caller(context)
        tenant_id = who.tenant()
        current = await self._cache.get(tenant_id, fresh=True)
        if current >= State.COMPLETE:
            return responses.completed(tenant_id, Move(current, current, True), None)
        evaluation = await activation.evaluate(self._clients, tenant_id)
        async with self._sessions.begin() as session:
            move = await states.complete(session, tenant_id, who, evaluation)
        if move is None:
            raise activation.incomplete(evaluation)
        self._cache.put(tenant_id, move.to_state)
        return responses.completed(tenant_id, move, evaluation)

    async def SdkHandshake(self, request: rpc.SdkHandshakeRequest, context: Context) -> rpc.SdkHandshakeResponse:
        who = caller(context)
        tenant_id = who.tenant()
        version, language = _required(request, "sdk_version"), _required(request, "sdk_language")
        # The attestation first (account owns it), then the transition; either failing fails the request.
        await self._clients.record_attestation(tenant_id, version, language, request.client_id.strip())
        # A handshake is evidence like any other: Evidence.move owns its one transaction and the promotion.
        state, _ = await self._evidence.move(tenant_id, State.SDK_CONNECTED, HANDSHAKE, who)
        return responses.handshake(tenant_id, state)

    async def GetSdkInstructions(
        self, request: rpc.GetSdkInstructionsRequest, context: Context
    ) -> rpc.GetSdkInstructionsResponse:
        tenant_id = caller(context).tenant()
        return responses.instructions(tenant_id, self._settings.api_base_url, self._settings.docs_url)

    async def ForceComplete(self, request: rpc.ForceCompleteRequest, context: Context) -> rpc.ForceCompleteResponse:
        who = caller(context)  # an operator: the gate rule admits no other kind
        tenant_id, reason = _required(request, "tenant_id"), request.reason.strip()
        if not 10 <= len(reason) <= 500:
            raise _unprocessable("reason", f"must be 10..500 characters, got {len(reason)}")
        created_at = None if await self._cache.tracked(tenant_id) else await self._created_at(tenant_id)
        current = await self._cache.get(tenant_id, fresh=True)
        if current >= State.COMPLETE:
            return responses.force_completed(tenant_id, Move(current, current, True), reason, who.email, "no_op")
        skipped = await activation.skipped(self._clients, tenant_id)
        async with self._sessions.begin() as session:
            move, audit_id = await states.force_complete(session, tenant_id, who, reason, skipped, created_at)
        self._cache.put(tenant_id, move.to_state)
        return responses.force_completed(tenant_id, move, reason, who.email, audit_id)

    async def _created_at(self, tenant_id: str) -> datetime | None:
        """When account created a tenant onboarding does not track yet; NotFound when account knows none."""
        try:
            return await self._clients.tenant_created_at(tenant_id)
        except NotFound:
            raise NotFound(f"Tenant {tenant_id} not found", reason="TENANT_NOT_FOUND") from None

    async def ListStalled(self, request: rpc.ListStalledRequest, context: Context) -> rpc.ListStalledResponse:
        hours = validation.between("threshold_hours", request.threshold_hours or 24, 1, 24 * 365)
        now = datetime.now(UTC)
        async with self._sessions() as session:
            rows = await repository.stalled(session, now - timedelta(hours=hours))
        return responses.stalled(rows, hours, now)

    async def NotifyEvidence(self, request: rpc.NotifyEvidenceRequest, context: Context) -> rpc.NotifyEvidenceResponse:
        caller(context)
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 64)
        if request.kind == pb.EVIDENCE_KIND_UNSPECIFIED:
            raise InvalidArgument("kind", "is required")
        # Applied as the event carrying the same evidence is: Evidence owns the transaction.
        state, moved = await self._evidence.apply(tenant_id, request.kind, request.key_id)
        return rpc.NotifyEvidenceResponse(current_state=state.name, transitioned=moved)

    async def GetOnboardingState(
        self, request: rpc.GetOnboardingStateRequest, context: Context
    ) -> rpc.GetOnboardingStateResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 64)
        state = await self._cache.get(tenant_id)
        return rpc.GetOnboardingStateResponse(tenant_id=tenant_id, current_state=state.name, state_value=int(state))

    async def EvaluateActivation(
        self, request: rpc.EvaluateActivationRequest, context: Context
    ) -> rpc.EvaluateActivationResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 64)
        evaluation = await activation.evaluate(self._clients, tenant_id)
        return rpc.EvaluateActivationResponse(
            passed=evaluation.verdict.passed,
            missing=evaluation.verdict.missing,
            requirements=responses.requirements(evaluation),
        )
