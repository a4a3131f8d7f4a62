"""The account service, as api_keys sees it: a tenant's status and key quota, over one channel (which the
follower of account's event log shares)."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import grpc

from aos.account.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from services.common import channels, principal, tls
from services.common.errors import NotFound, Unavailable

ME = "api_keys"
TIMEOUT = 2.0


class TenantInfo(NamedTuple):
    status: str
    max_api_keys: int


class Account:
    def __init__(self, addr: str, me: tls.Identity) -> None:
        self.channel = channels.peer(addr, me, "account") if addr else None
        self._stub = account_service_pb2_grpc.AccountServiceStub(self.channel) if self.channel else None

    async def tenant(self, tenant_id: str) -> TenantInfo:
        if self._stub is None:
            raise Unavailable("account service not configured", metadata={"dependency": "account"})
        try:
            reply = await self._stub.GetTenant(
                account_service_pb2.GetTenantRequest(tenant_id=tenant_id),
                metadata=principal.service_metadata(ME, tenant_id),
                timeout=TIMEOUT,
                wait_for_ready=True,  # a reconnect in progress is waited for (within TIMEOUT), not failed
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                raise NotFound("tenant not found", reason="TENANT_NOT_FOUND") from exc
            raise Unavailable(
                "account service unavailable", reason="DEPENDENCY_UNAVAILABLE", metadata={"dependency": "account"}
            ) from exc
        status = account_pb2.TenantStatus.Name(reply.tenant.status).removeprefix("TENANT_STATUS_").lower()
        return TenantInfo(status, reply.tenant.quotas.max_api_keys)

    async def close(self) -> None:
        if self.channel is not None:
            with contextlib.suppress(Exception):
                await self.channel.close()
