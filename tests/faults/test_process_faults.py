"""Faults of whole processes: a service SIGKILLed mid-journey costs exactly its own routes (503) while
every other route keeps working, and the journey completes once it is back; onboarding stopped while keys
are created catches every tenant up from the producers' event cursors when it returns."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from tests.conftest import eventually, human, tls_channel
from tests.faults.conftest import ProcessStack, signup

pytestmark = pytest.mark.e2e


async def state(http: httpx.AsyncClient, auth: dict[str, str]) -> str:
    reply = await http.get("/onboarding/status", headers=auth)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["current_state"])


async def test_a_killed_service_costs_only_its_own_routes_and_the_journey_completes_after_restart(
    procs: ProcessStack,
) -> None:
    gw = procs.gateway
    hello = {"sdk_version": "1.0.0", "sdk_language": "python"}
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        tenant, auth = await signup(http, gw, "Killed")
        assert (await http.post("/accounts/projects", json={"name": "before"}, headers=auth)).status_code == 201
        created = await http.post("/tenant/api-keys", json={"name": "ci"}, headers=auth)
        assert created.status_code == 201, created.text
        key = {"x-aos-key": created.json()["key"]}  # not used yet: no verdict of it is cached anywhere

        await asyncio.to_thread(procs.kill, "api_keys")
        try:
            for _ in range(3):  # its routes: 503, at once, on every try
                for method, path in (("GET", "/api-keys"), ("POST", "/tenant/api-keys"), ("GET", "/tenant/api-keys")):
                    body = {"name": "ci"} if method == "POST" else None
                    reply = await http.request(method, path, json=body, headers=auth)
                    assert reply.status_code == 503, (path, reply.status_code, reply.text)
                # a key cannot be verified: the gate fails closed with 503, never a false 401 "invalid key"
                shake = await http.post("/sdk/handshake", json=hello, headers=key)
                assert shake.status_code == 503 and "api_keys" in shake.text, shake.text
                # every other service's routes keep working meanwhile
                made = await http.post("/accounts/projects", json={"name": "during"}, headers=auth)
                assert made.status_code == 201
                listed = await http.get("/accounts/projects", headers=auth)
                assert listed.status_code == 200
                assert (await http.get("/v1/integrations", headers=auth)).status_code == 200
                assert await state(http, auth) == "API_KEY_CREATED"
            assert {p["name"] for p in listed.json()["items"]} == {"before", "during"}
        finally:
            await asyncio.to_thread(procs.start, "api_keys")

        assert (await http.get("/api-keys", headers=auth)).json()["total"] == 1  # Envoy reaches it at once
        outcome: list[httpx.Response] = []

        async def shaken() -> bool:  # onboarding's channel finds the peer again within its 2 s max backoff
            outcome.append(await http.post("/sdk/handshake", json=hello, headers=key))
            assert outcome[-1].status_code in (200, 503), outcome[-1].text
            return outcome[-1].status_code == 200

        await eventually(shaken, within=5)
        assert outcome[-1].json()["onboarding_state"] == "SDK_CONNECTED" and outcome[-1].json()["tenant_id"] == tenant
        assert (await http.post("/tenant/api-keys", json={"name": "after"}, headers=auth)).status_code == 201


async def test_onboarding_down_while_keys_are_created_catches_up_from_the_cursors(procs: ProcessStack) -> None:
    gw = procs.gateway
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        tenants = [await signup(http, gw, f"Offline {i}") for i in range(4)]
        for _, auth in tenants:
            assert await state(http, auth) == "IDENTITY_VERIFIED"
        shaken_auth = tenants[0][1]
        first = await http.post("/tenant/api-keys", json={"name": "early"}, headers=shaken_auth)
        early_key = {"x-aos-key": first.json()["key"]}
        hello = {"sdk_version": "1.0.0", "sdk_language": "python"}
        assert (await http.post("/sdk/handshake", json=hello, headers=early_key)).status_code == 200

        secrets: dict[str, str] = {}
        await asyncio.to_thread(procs.kill, "onboarding")
        try:
            # Keys keep being created straight on api_keys (the gate is down, so not through Envoy): its
            # synchronous notification to onboarding fails, only its event log records them.
            async with tls_channel(procs.peers["api_keys"]) as channel:
                stub = api_keys_service_pb2_grpc.ApiKeysServiceStub(channel)
                for tenant, _ in tenants[1:]:
                    for name in ("a", "b"):
                        made = await stub.CreateApiKey(
                            keys_rpc.CreateApiKeyRequest(name=name), metadata=human(tenant), timeout=10
                        )
                        secrets[tenant] = made.key
            # and SDKs keep trying to shake hands: the gateway fails closed, nothing gets in
            refused = await http.post("/sdk/handshake", json=hello, headers=early_key)
            assert refused.status_code in (403, 503), refused.text
        finally:
            await asyncio.to_thread(procs.start, "onboarding")

        async def caught_up() -> bool:
            states = [(await http.get("/onboarding/status", headers=auth)) for _, auth in tenants[1:]]
            return all(r.status_code == 200 and r.json()["current_state"] == "API_KEY_CREATED" for r in states)

        await eventually(caught_up, within=15)
        assert await state(http, shaken_auth) == "SDK_CONNECTED"  # nothing it knew was lost or repeated
        for tenant, auth in tenants[1:]:  # and the journey continues from there
            listed = await http.get("/tenant/api-keys", headers=auth)
            assert listed.status_code == 200 and len(listed.json()) == 2
            shake = await http.post("/sdk/handshake", json=hello, headers={"x-aos-key": secrets[tenant]})
            assert shake.status_code == 200 and shake.json()["onboarding_state"] == "SDK_CONNECTED", shake.text


async def test_a_peer_back_from_a_long_outage_is_found_again_within_seconds(procs: ProcessStack) -> None:
    """api_keys asks account about a tenant it has not mirrored yet: after account was down long enough for
    gRPC's default reconnect backoff to grow (1 s x 1.6 per attempt, up to 120 s), a restarted account must
    still be found within a couple of seconds, not at the next far-off attempt."""
    gw = procs.gateway
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        _, auth = await signup(http, gw, "Outage")
        assert (await http.post("/tenant/api-keys", json={"name": "before"}, headers=auth)).status_code == 201
        await asyncio.to_thread(procs.kill, "account")
        try:
            await asyncio.sleep(10)  # long enough for api_keys' reconnect backoff to account to grow
        finally:
            await asyncio.to_thread(procs.start, "account")
        back = time.monotonic()
        _, fresh = await signup(http, gw, "After")  # Envoy reaches account at once; api_keys has not seen it

        async def created() -> bool:
            reply = await http.post("/tenant/api-keys", json={"name": "after"}, headers=fresh)
            assert reply.status_code in (201, 503), reply.text
            return reply.status_code == 201

        await eventually(created, within=15)
        assert time.monotonic() - back < 3.5
