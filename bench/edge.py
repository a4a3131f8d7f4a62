"""Scenario 2: a gated REST read through Envoy (GET /api-keys with an API key) and the same call as native
gRPC through Envoy, vs ListApiKeys over native gRPC straight to api_keys."""

from __future__ import annotations

import httpx

from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from bench.common import SCOPES, Call, Running, Tenant, measure, row


async def run(running: Running, tenant: Tenant, conc: int, seconds: float, rounds: int) -> None:
    key_md = (
        ("x-aos-actor-type", "api_key"),
        ("x-aos-actor-id", tenant.key_id),
        ("x-aos-tenant-id", tenant.id),
        ("x-aos-scopes", ",".join(SCOPES)),
    )
    direct = api_keys_service_pb2_grpc.ApiKeysServiceStub(running.channel(running.ports["api_keys"]))
    via_envoy = api_keys_service_pb2_grpc.ApiKeysServiceStub(running.edge_channel())
    listing = keys_rpc.ListApiKeysRequest()
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{running.gateway_port}", timeout=10, limits=limits
    ) as http:
        rest = {"x-aos-key": tenant.key}

        async def rest_call(i: int) -> object:
            reply = await http.get("/api-keys", headers=rest)
            assert reply.status_code == 200, reply.text
            return reply

        calls: dict[str, Call] = {
            "base": lambda i: direct.ListApiKeys(listing, metadata=key_md, timeout=10),
            "grpc": lambda i: via_envoy.ListApiKeys(listing, metadata=(("x-aos-key", tenant.key),), timeout=10),
            "rest": rest_call,
        }
        best = await measure(calls, conc, seconds, rounds)
    base = best["base"][0]
    row("2 ListApiKeys, native gRPC to api_keys", conc, best["base"], None)
    row("2 ListApiKeys, gRPC via Envoy + gate", conc, best["grpc"], best["grpc"][0] / base)
    row("2 GET /api-keys, REST via Envoy + gate", conc, best["rest"], best["rest"][0] / base)
