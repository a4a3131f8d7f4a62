"""`python -m services.integrations rotate-kek` re-wraps every data key under the new KEK while the service keeps
serving, and credentials sealed before the rotation still decrypt after it."""

import asyncio
import base64
import json
import os
import sys
from typing import Any

from google.protobuf import struct_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.integrations.v1 import integrations_service_pb2 as rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from cli import stack
from services.common import server
from services.integrations.settings import DEV_KEK, DEV_KEK_ID
from tests.conftest import human, settings_for, start_service, tls_channel
from tests.integrations.conftest import GOOD_KEY, FakeProvider

NEW_KEK = base64.b64encode(os.urandom(32)).decode()
BOTH = {DEV_KEK_ID: DEV_KEK.get_secret_value(), "k2": NEW_KEK}


async def rotate(url: str, active: str) -> str:
    env = os.environ | {
        "INTEGRATIONS_DATABASE_URL": url,
        "INTEGRATIONS_KEKS": json.dumps(BOTH),
        "INTEGRATIONS_ACTIVE_KEK": active,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.integrations", "rotate-kek", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    return out.decode()


async def kek_ids(engines: dict[str, AsyncEngine]) -> set[str]:
    async with engines["integrations"].connect() as conn:
        return set((await conn.execute(text("SELECT DISTINCT kek_id FROM tenant_key"))).scalars())


async def test_rotation_rewraps_all_data_keys_and_credentials_still_decrypt(
    integrations: Any, tenant_id: str, provider: FakeProvider, db_urls: dict[str, str], engines: dict[str, AsyncEngine]
) -> None:
    base = struct_pb2.Struct(fields={"base_url": struct_pb2.Value(string_value=provider.base())})
    request = rpc.CreateIntegrationRequest(name="rotated", provider_type="openai", credential=GOOD_KEY, config=base)
    iid = (await integrations.CreateIntegration(request, metadata=human(tenant_id), timeout=5)).data.id
    async with engines["integrations"].connect() as conn:
        sealed_before = (
            await conn.execute(text("SELECT credential_ref FROM integration WHERE id = :i"), {"i": iid})
        ).scalar_one()
    # A replica configured with both KEKs (new one active), started before the rotation: no downtime.
    settings = settings_for("integrations", db_urls["integrations"], {"integrations": stack.free_port()})
    settings = settings.model_copy(update={"keks": {k: type(DEV_KEK)(v) for k, v in BOTH.items()}, "active_kek": "k2"})
    replica = await start_service("integrations", settings)
    try:
        # A channel of its own: the replica lives only in this test.
        async with tls_channel(f"127.0.0.1:{replica.port}") as channel:
            stub = integrations_service_pb2_grpc.IntegrationsServiceStub(channel)

            async def keep_testing() -> list[str]:
                states = []
                while not rotation.done():
                    tested = await stub.TestIntegration(
                        rpc.TestIntegrationRequest(integration_id=iid), metadata=human(tenant_id), timeout=10
                    )
                    states.append(tested.data.health_state)
                return states

            rotation = asyncio.ensure_future(rotate(db_urls["integrations"], "k2"))
            states = await keep_testing()  # the replica serves throughout the rotation
            assert "re-wrapped" in await rotation
            assert states and set(states) == {"healthy"}
            assert await kek_ids(engines) == {"k2"}
            tested = await stub.TestIntegration(
                rpc.TestIntegrationRequest(integration_id=iid), metadata=human(tenant_id), timeout=10
            )
        assert tested.data.health_state == "healthy"
        async with engines["integrations"].connect() as conn:
            sealed_after = (
                await conn.execute(text("SELECT credential_ref FROM integration WHERE id = :i"), {"i": iid})
            ).scalar_one()
        assert sealed_after == sealed_before  # only the data keys were re-wrapped
    finally:
        # Back to the dev KEK, which the session's service (dev config) uses for every other test.
        await rotate(db_urls["integrations"], DEV_KEK_ID)
        await server.stop(replica, 1.0)
    assert await kek_ids(engines) == {DEV_KEK_ID}
    again = await integrations.TestIntegration(
        rpc.TestIntegrationRequest(integration_id=iid), metadata=human(tenant_id), timeout=10
    )
    assert again.data.health_state == "healthy"
