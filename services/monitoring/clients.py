"""Typed calls to account: one deadline per call (a timeout in the channel's service config fails every call
with grpcio 1.85, DESIGN.md section 2); account unreachable is UNAVAILABLE naming it, never a guess."""

from __future__ import annotations

import grpc

from aos.account.v1 import account_service_pb2 as account_rpc
from aos.account.v1 import account_service_pb2_grpc
from services.common import errors, principal

ME = "monitoring"
DEADLINE_SECONDS = 2.0


def _unavailable(detail: str) -> errors.Unavailable:
    return errors.Unavailable(
        f"account unavailable: {detail}", reason="DEPENDENCY_UNAVAILABLE", metadata={"dependency": "account"}
    )


class Account:
    def __init__(self, channel: grpc.aio.Channel | None) -> None:
        self._stub = account_service_pb2_grpc.AccountServiceStub(channel) if channel is not None else None

    async def project_exists(self, tenant_id: str, project_id: str) -> bool:
        """Whether the project is the tenant's (another tenant's answers False, like an unknown one)."""
        if self._stub is None:
            raise _unavailable("not configured")
        request = account_rpc.CheckProjectRequest(tenant_id=tenant_id, project_id=project_id)
        try:
            reply = await self._stub.CheckProject(
                request, metadata=principal.service_metadata(ME, tenant_id), timeout=DEADLINE_SECONDS
            )
        except grpc.aio.AioRpcError as exc:
            raise _unavailable(exc.code().name.lower()) from exc
        return reply.exists
