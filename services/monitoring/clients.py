"""The peers monitoring asks on a request's path: integrations, whether the caller's tenant owns the
integrations its usage records name (MONITORING.md decision 12, STYLE section 6), and account, whether a run's
project is the tenant's. One deadline per call (a timeout in the channel's service config fails every call
with grpcio 1.85, DESIGN.md section 2); a peer unreachable is UNAVAILABLE naming it, never a guess."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from cachetools import TTLCache

from aos.account.v1 import account_service_pb2 as account_rpc
from aos.account.v1 import account_service_pb2_grpc
from aos.integrations.v1 import integrations_service_pb2 as integrations_rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from services.common import channels, errors, principal, tls

ME = "monitoring"
PEER = "integrations"
DEADLINE_SECONDS = 2.0


class Integrations:
    """Ownership answers per replica: an owned integration stays owned for `owned_seconds` (a deletion shows
    within that window); a refusal is never cached, so an integration created a moment ago works at once. A
    question the cache cannot answer while integrations is down is UNAVAILABLE, never a guess."""

    def __init__(
        self, addr: str, me: tls.Identity, owned_seconds: float = 60.0, timeout: float = 2.0, size: int = 100_000
    ) -> None:
        self._me, self._timeout = me.name, timeout
        self._channel = channels.peer(addr, me, PEER) if addr else None
        self._stub = integrations_service_pb2_grpc.IntegrationsServiceStub(self._channel) if self._channel else None
        self.owned_cache: TTLCache[tuple[str, str], bool] = TTLCache(maxsize=size, ttl=owned_seconds)

    async def owned(self, tenant_id: str, ids: Iterable[str]) -> set[str]:
        """Those of `ids` that name the tenant's undeleted integrations."""
        wanted = set(ids)
        known = {i for i in wanted if (tenant_id, i) in self.owned_cache}
        unknown = sorted(wanted - known)
        if not unknown:
            return known
        if self._stub is None:
            raise _unavailable("not configured")
        request = integrations_rpc.CheckIntegrationsRequest(tenant_id=tenant_id, integration_ids=unknown)
        try:
            reply = await self._stub.CheckIntegrations(
                request, metadata=principal.service_metadata(self._me, tenant_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise _unavailable(exc.code().name.lower()) from exc
        for integration_id in reply.owned_integration_ids:
            self.owned_cache[(tenant_id, integration_id)] = True
        return known | set(reply.owned_integration_ids)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


def _unavailable(why: str, peer: str = PEER) -> errors.Unavailable:
    return errors.Unavailable(
        f"{peer} unavailable: {why}", reason="DEPENDENCY_UNAVAILABLE", metadata={"dependency": peer}
    )


class Account:
    def __init__(self, channel: grpc.aio.Channel | None) -> None:
        self._stub = account_service_pb2_grpc.AccountServiceStub(channel) if channel is not None else None

    async def project_exists(self, tenant_id: str, project_id: str) -> bool:
        """Whether the project is the tenant's (another tenant's answers False, like an unknown one)."""
        if self._stub is None:
            raise _unavailable("not configured", "account")
        request = account_rpc.CheckProjectRequest(tenant_id=tenant_id, project_id=project_id)
        try:
            reply = await self._stub.CheckProject(
                request, metadata=principal.service_metadata(ME, tenant_id), timeout=DEADLINE_SECONDS
            )
        except grpc.aio.AioRpcError as exc:
            raise _unavailable(exc.code().name.lower(), "account") from exc
        return reply.exists
