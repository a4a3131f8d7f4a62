"""Typed calls to account, api_keys and integrations: one deadline per call, errors named by source.

The deadline is passed per call: a timeout in the channel's service config fails every call with
grpcio 1.85 (DESIGN.md §2). The service config carries only a retry policy on UNAVAILABLE.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from aos.account.v1 import account_service_pb2 as account_rpc
from aos.account.v1 import account_service_pb2_grpc
from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from aos.integrations.v1 import integrations_service_pb2 as integrations_rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from services.common import channels, errors, principal

T = TypeVar("T")
ME = "onboarding"
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


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
class Peer:
    name: str
    channel: grpc.aio.Channel | None

    def require(self) -> grpc.aio.Channel:
        if self.channel is None:
            raise errors.Unavailable(
                f"{self.name} unavailable: not configured",
                reason="DEPENDENCY_UNAVAILABLE",
                metadata={"dependency": self.name},
            )
        return self.channel

    async def call(self, pending: Awaitable[T]) -> T:
        try:
            return await pending
        except grpc.aio.AioRpcError as exc:
            raise _error(self.name, exc) from exc

    def events(self) -> events_service_pb2_grpc.EventLogServiceStub:
        return events_service_pb2_grpc.EventLogServiceStub(self.require())


def _peer(name: str, addr: str) -> Peer:
    return Peer(name, channels.peer(addr, ("grpc.service_config", _SERVICE_CONFIG)) if addr else None)


class Clients:
    def __init__(self, account_addr: str, api_keys_addr: str, integrations_addr: str, timeout: float) -> None:
        self.account = _peer("account", account_addr)
        self.api_keys = _peer("api_keys", api_keys_addr)
        self.integrations = _peer("integrations", integrations_addr)
        self.timeout = timeout

    def peers(self) -> list[Peer]:
        return [self.account, self.api_keys, self.integrations]

    async def close(self) -> None:
        for peer in self.peers():
            if peer.channel is not None:
                await peer.channel.close()

    async def verify_key(self, secret: str) -> keys_rpc.VerifyApiKeyResponse:
        stub = api_keys_service_pb2_grpc.ApiKeysServiceStub(self.api_keys.require())
        request = keys_rpc.VerifyApiKeyRequest(secret=secret)
        return await self.api_keys.call(
            stub.VerifyApiKey(request, metadata=principal.service_metadata(ME), timeout=self.timeout)
        )

    async def record_key_usage(self, usage: dict[str, tuple[int, float]]) -> None:
        """Uses the gate answered from its verdict cache: key id → (requests, last use in epoch seconds)."""
        stub = api_keys_service_pb2_grpc.ApiKeysServiceStub(self.api_keys.require())
        request = keys_rpc.RecordApiKeyUsageRequest(
            usage=[
                keys_rpc.ApiKeyUsage(
                    key_id=key_id, requests=requests, last_used_at=Timestamp(seconds=int(at), nanos=int(at % 1 * 1e9))
                )
                for key_id, (requests, at) in usage.items()
            ]
        )
        await self.api_keys.call(
            stub.RecordApiKeyUsage(request, metadata=principal.service_metadata(ME), timeout=self.timeout)
        )

    async def account_evidence(self, tenant_id: str) -> account_rpc.GetActivationEvidenceResponse:
        stub = account_service_pb2_grpc.AccountServiceStub(self.account.require())
        request = account_rpc.GetActivationEvidenceRequest(tenant_id=tenant_id)
        md = principal.service_metadata(ME, tenant_id)
        return await self.account.call(stub.GetActivationEvidence(request, metadata=md, timeout=self.timeout))

    async def key_evidence(self, tenant_id: str) -> keys_rpc.GetActivationEvidenceResponse:
        stub = api_keys_service_pb2_grpc.ApiKeysServiceStub(self.api_keys.require())
        request = keys_rpc.GetActivationEvidenceRequest(tenant_id=tenant_id)
        md = principal.service_metadata(ME, tenant_id)
        return await self.api_keys.call(stub.GetActivationEvidence(request, metadata=md, timeout=self.timeout))

    async def connector_evidence(self, tenant_id: str) -> integrations_rpc.GetActivationEvidenceResponse:
        stub = integrations_service_pb2_grpc.IntegrationsServiceStub(self.integrations.require())
        request = integrations_rpc.GetActivationEvidenceRequest(tenant_id=tenant_id)
        md = principal.service_metadata(ME, tenant_id)
        return await self.integrations.call(stub.GetActivationEvidence(request, metadata=md, timeout=self.timeout))

    async def get_tenant(self, tenant_id: str) -> account_rpc.GetTenantResponse:
        stub = account_service_pb2_grpc.AccountServiceStub(self.account.require())
        request = account_rpc.GetTenantRequest(tenant_id=tenant_id)
        md = principal.service_metadata(ME, tenant_id)
        return await self.account.call(stub.GetTenant(request, metadata=md, timeout=self.timeout))

    async def record_attestation(
        self, tenant_id: str, version: str, language: str, client_id: str
    ) -> account_rpc.RecordSdkAttestationResponse:
        stub = account_service_pb2_grpc.AccountServiceStub(self.account.require())
        request = account_rpc.RecordSdkAttestationRequest(
            tenant_id=tenant_id, sdk_version=version, sdk_language=language, client_id=client_id
        )
        md = principal.service_metadata(ME, tenant_id)
        # A write: a longer deadline than the reads, so a busy account is not mistaken for a down one.
        return await self.account.call(stub.RecordSdkAttestation(request, metadata=md, timeout=3 * self.timeout))

    def watch(self, peer: Peer, token: str) -> AsyncIterator[events_service_pb2.WatchEventsResponse]:
        """The source's events after `token`, as they commit (no deadline: a long-lived stream)."""
        request = events_service_pb2.WatchEventsRequest(page_token=token)
        return peer.events().WatchEvents(request, metadata=principal.service_metadata(ME))  # type: ignore[return-value]
