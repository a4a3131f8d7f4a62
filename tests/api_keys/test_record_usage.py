"""RecordApiKeyUsage: uses the edge gate answered from its verdict cache join the batched usage counts."""

import time
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from tests.api_keys.conftest import create, verify
from tests.api_keys.test_verify_api_key import usage
from tests.conftest import eventually, human, service


async def test_reported_uses_are_added_to_the_counts(
    verifier: Any, keys: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    made = await create(keys, tenant)
    await verify(verifier, made.key)  # one verified use
    at = Timestamp(seconds=int(time.time()))
    report = rpc.RecordApiKeyUsageRequest(
        usage=[
            rpc.ApiKeyUsage(key_id=made.id, requests=4, last_used_at=at),
            rpc.ApiKeyUsage(key_id=str(uuid.uuid4()), requests=2, last_used_at=at),  # unknown: ignored
        ]
    )
    await verifier.RecordApiKeyUsage(report, metadata=service(), timeout=5)

    async def total() -> int:
        return (await usage(engines, made.id))[0]

    await eventually(total, until=lambda n: n == 5, within=5.0)
    assert (await usage(engines, made.id))[1] is not None


async def test_only_services_report_usage(keys: Any, tenant: str) -> None:
    made = await create(keys, tenant)
    report = rpc.RecordApiKeyUsageRequest(usage=[rpc.ApiKeyUsage(key_id=made.id, requests=1000)])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await keys.RecordApiKeyUsage(report, metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
