"""Fixtures for the api_keys tests: a stub on the running service, helpers to issue keys, and extra
replicas of the service on the same database (for cache invalidation and shutdown tests)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from cli import stack
from services.api_keys import server as api_keys_server
from services.api_keys.settings import Settings
from services.common import db, server
from tests.conftest import Channels, human, service


@pytest.fixture(scope="session")
async def keys(channels: Channels, running: dict[str, server.Service]) -> Any:
    return channels.stub(api_keys_service_pb2_grpc.ApiKeysServiceStub, running["api_keys"])


async def create(keys: Any, tenant: str, name: str = "ci", role: str = "owner", **fields: Any) -> Any:
    return await keys.CreateApiKey(
        rpc.CreateApiKeyRequest(name=name, **fields), metadata=human(tenant, role=role), timeout=10
    )


def api_key_caller(tenant: str, scopes: str) -> tuple[tuple[str, str], ...]:
    """Caller metadata as the gateway sets it for an API key holding `scopes` (comma-separated)."""
    return (
        ("x-aos-actor-type", "api_key"),
        ("x-aos-actor-id", "caller-key"),
        ("x-aos-tenant-id", tenant),
        ("x-aos-scopes", scopes),
    )


async def verify(stub: Any, secret: str) -> Any:
    return await stub.VerifyApiKey(rpc.VerifyApiKeyRequest(secret=secret), metadata=service(), timeout=5)


async def sql(engines: dict[str, AsyncEngine], query: str, **params: Any) -> list[Any]:
    async with engines["api_keys"].begin() as conn:
        result = await conn.execute(text(query), params)
        return list(result.all()) if result.returns_rows else []


@contextlib.asynccontextmanager
async def replica(
    db_urls: dict[str, str], ports: dict[str, int], **overrides: Any
) -> AsyncIterator[tuple[api_keys_server.Service, Any]]:
    """Another api_keys process-alike on the same database: its own engine, cache and listener."""
    settings = Settings(
        database_url=overrides.pop("database_url", db_urls["api_keys"]),
        grpc_port=stack.free_port(),
        account_addr=f"127.0.0.1:{ports['account']}",
        **overrides,
    )
    built = api_keys_server.build(settings, db.create_engine(settings.database_url.get_secret_value(), pool_size=2))
    await server.start(built, "127.0.0.1", settings.grpc_port, health_interval=0.2)
    try:
        # A channel of its own: the replica lives only inside this context, and its port may be reused after.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
            yield built, api_keys_service_pb2_grpc.ApiKeysServiceStub(channel)
    finally:
        await server.stop(built, 1.0)


@pytest.fixture
def make_replica(db_urls: dict[str, str], ports: dict[str, int]) -> Callable[..., Any]:
    return lambda **overrides: replica(db_urls, ports, **overrides)
