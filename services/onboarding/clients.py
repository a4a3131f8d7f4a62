"""Typed calls to account, api_keys and integrations: one deadline per call, errors named by source.

The deadline is passed per call: a timeout in the channel's service config fails every call with
grpcio 1.85 (DESIGN.md §2). The service config carries only a retry policy on UNAVAILABLE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from aos.account.v1 import account_pb2 as account_pb
from aos.account.v1 import account_service_pb2 as account_rpc
from aos.account.v1 import account_service_pb2_grpc
from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from aos.integrations.v1 import integrations_service_pb2 as integrations_rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from services.common import channels, errors, principal, tls

S = TypeVar("S")  # a peer's stub
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp")
ME = "onboarding"


def _error(source: str, exc: grpc.aio.AioRpcError) -> errors.ServiceError:
    code, detail = exc.code(), exc.details() or ""
    if code is grpc.StatusCode.NOT_FOUND:
        return errors.NotFound(detail, reason="NOT_FOUND", metadata={"source": source})
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return errors.InvalidArgument("request", f"{source}: {detail}")
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        return errors.FailedPrecondition(f"{source}: {detail}", metadata={"source": source})
    return errors.Unavailable(
        f"{source} unavailable: {code.name.lower()}", reason="DEPENDENCY_UNAVAILABLE", metadata={"dependency": source}
    )


@dataclass
class Peer(Generic[S]):
    name: str
    channel: grpc.aio.Channel | None
    stub: S | None

    async def call(
        self,
        method: Callable[[S], grpc.aio.UnaryUnaryMultiCallable[Req, Resp]],
        request: Req,
        timeout: float,
        tenant_id: str = "",
    ) -> Resp:
        if self.stub is None:
            raise errors.Unavailable(
                f"{self.name} unavailable: not configured",
                reason="DEPENDENCY_UNAVAILABLE",
                metadata={"dependency": self.name},
            )
        try:
            return await method(self.stub)(request, metadata=principal.service_metadata(ME, tenant_id), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise _error(self.name, exc) from exc


def _peer(name: str, addr: str, me: tls.Identity, stub: Callable[[grpc.aio.Channel], S]) -> Peer[S]:
    channel = channels.peer(addr, me, name) if addr else None
    return Peer(name, channel, stub(channel) if channel is not None else None)


class Clients:
    def __init__(
        self, account_addr: str, api_keys_addr: str, integrations_addr: str, timeout: float, me: tls.Identity
    ) -> None:
        self.account = _peer("account", account_addr, me, account_service_pb2_grpc.AccountServiceStub)
        self.api_keys = _peer("api_keys", api_keys_addr, me, api_keys_service_pb2_grpc.ApiKeysServiceStub)
        self.integrations = _peer(
            "integrations", integrations_addr, me, integrations_service_pb2_grpc.IntegrationsServiceStub
        )
        self.timeout = timeout

    def peers(self) -> list[Peer[Any]]:
        return [self.account, self.api_keys, self.integrations]

    async def close(self) -> None:
        for peer in self.peers():
            if peer.channel is not None:
                await peer.channel.close()

    async def verify_key(self, secret: str) -> keys_rpc.VerifyApiKeyResponse:
        request = keys_rpc.VerifyApiKeyRequest(secret=secret)
        return await self.api_keys.call(lambda stub: stub.VerifyApiKey, request, self.timeout)

    async def record_key_usage(self, usage: dict[str, tuple[int, float]]) -> None:
        """Uses the gate answered from its verdict cache: key id → (requests, last use in epoch seconds)."""
        request = keys_rpc.RecordApiKeyUsageRequest(
            usage=[
                keys_rpc.ApiKeyUsage(
                    key_id=key_id, requests=requests, last_used_at=Timestamp(seconds=int(at), nanos=int(at % 1 * 1e9))
                )
                for key_id, (requests, at) in usage.items()
            ]
        )
        await self.api_keys.call(lambda stub: stub.RecordApiKeyUsage, request, self.timeout)

    async def account_evidence(self, tenant_id: str) -> account_rpc.GetActivationEvidenceResponse:
        request = account_rpc.GetActivationEvidenceRequest(tenant_id=tenant_id)
        return await self.account.call(lambda stub: stub.GetActivationEvidence, request, self.timeout, tenant_id)

    async def key_evidence(self, tenant_id: str) -> keys_rpc.GetActivationEvidenceResponse:
        request = keys_rpc.GetActivationEvidenceRequest(tenant_id=tenant_id)
        return await self.api_keys.call(lambda stub: stub.GetActivationEvidence, request, self.timeout, tenant_id)

    async def connector_evidence(self, tenant_id: str) -> integrations_rpc.GetActivationEvidenceResponse:
        request = integrations_rpc.GetActivationEvidenceRequest(tenant_id=tenant_id)
        return await self.integrations.call(lambda stub: stub.GetActivationEvidence, request, self.timeout, tenant_id)

    async def tenant_created_at(self, tenant_id: str) -> datetime | None:
        """When account created the tenant (None: its record has no time); NotFound when account has no such
        tenant."""
        request = account_rpc.GetTenantRequest(tenant_id=tenant_id)
        tenant = (await self.account.call(lambda stub: stub.GetTenant, request, self.timeout, tenant_id)).tenant
        return tenant.created_at.ToDatetime(UTC) if tenant.HasField("created_at") else None

    async def resolve_member(self, org_id: str, user_id: str) -> tuple[str, str]:
        """(tenant id, role) of the user in the organisation's tenant; NotFound when there is none."""
        request = account_rpc.ResolveMemberRequest(org_id=org_id, user_id=user_id)
        reply = await self.account.call(lambda stub: stub.ResolveMember, request, self.timeout)
        return reply.tenant_id, account_pb.Role.Name(reply.role).removeprefix("ROLE_").lower()

    async def record_attestation(
        self, tenant_id: str, version: str, language: str, client_id: str
    ) -> account_rpc.RecordSdkAttestationResponse:
        request = account_rpc.RecordSdkAttestationRequest(
            tenant_id=tenant_id, sdk_version=version, sdk_language=language, client_id=client_id
        )
        # A write: a longer deadline than the reads, so a busy account is not mistaken for a down one.
        return await self.account.call(lambda stub: stub.RecordSdkAttestation, request, 3 * self.timeout, tenant_id)
