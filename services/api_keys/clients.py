"""The account service, as api_keys sees it: a tenant's status and key quota, and its event stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import grpc

from aos.account.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from aos.events.v1 import event_pb2, events_service_pb2, events_service_pb2_grpc
from services.common import channels, principal
from services.common.errors import NotFound, Unavailable

log = logging.getLogger("aos.api_keys.account")
ME = "api_keys"
TIMEOUT = 2.0


class TenantInfo(NamedTuple):
    status: str
    max_api_keys: int


class Account:
    def __init__(self, addr: str) -> None:
        self._channel = channels.peer(addr) if addr else None
        self._stub = account_service_pb2_grpc.AccountServiceStub(self._channel) if self._channel else None
        self._events = events_service_pb2_grpc.EventLogServiceStub(self._channel) if self._channel else None

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

    async def watch(
        self, load: Callable[[], Awaitable[str]], apply: Callable[[event_pb2.Event, str], Awaitable[None]]
    ) -> None:
        """Follows account's event log from the stored cursor forever, reconnecting after failures."""
        if self._events is None:
            return
        while True:
            try:
                request = events_service_pb2.WatchEventsRequest(page_token=await load())
                stream: Any = self._events.WatchEvents(request, metadata=principal.service_metadata(ME))
                async for item in stream:
                    await apply(item.event, item.page_token)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("account event watch interrupted: %s", type(exc).__name__)
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()
