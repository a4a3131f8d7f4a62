"""One module per proto service, each a class with one async method per RPC: translate the request,
open the RPC's one transaction, translate back. What every servicer shares is here."""

from typing import Any, TypeAlias

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.principal import Principal
from services.monitoring import policy, repository, tenants

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Sessions: TypeAlias = async_sessionmaker[AsyncSession]


def header(context: Context, name: str) -> str:
    """A caller header the gateway sets beside the principal (x-aos-key-prefix, x-aos-integration-id)."""
    value = dict(context.invocation_metadata() or ()).get(name, "")
    return value if isinstance(value, str) else ""


async def scope(session: AsyncSession, who: Principal, allowed: tuple[str, ...]) -> tuple[str, policy.Thresholds]:
    """The caller's tenant once its lifecycle allows the call, and its thresholds."""
    tenant_id = await tenants.require(session, who, allowed)
    return tenant_id, await repository.thresholds(session, tenant_id)
