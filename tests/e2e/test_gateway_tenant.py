"""SPEC 2.9's tenant endpoints through real Envoy and the gate: their golden shapes on the legacy paths and
/v1, their gate states (CREATED; SDK_CONNECTED for usage and quotas), and usage counted as it happens."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Gateway
from tests.e2e.golden import assert_shape
from tests.e2e.test_gateway_monitoring import HELLO, complete, new_key, signup

pytestmark = pytest.mark.e2e

TENANT = {
    "tenant_id": str,
    "name": str,
    "slug": str,
    "plan": str,
    "status": str,
    "billing_email": str,
    "max_workers": int,
    "max_runs_per_day": int,
    "max_concurrent_runs": int,
    "max_tokens_per_month": float,
    "max_api_keys": int,
    "created_at": str,
    "updated_at": str,
}
HEALTH = {"tenant_id": str, "status": str, "healthy": bool, "suspended_reason": str}
USAGE = {
    "tenant_id": str,
    "plan": str,
    "runs_today": int,
    "runs_this_month": int,
    "tokens_this_month": float,
    "api_keys": int,
    "as_of": str,
}
QUOTA = {
    "tenant_id": str,
    "name": str,
    "limit": float,
    "used": float,
    "remaining": float,
    "exhausted": bool,
    "period": str,
}


async def test_tenant_metadata_and_health_from_created_on(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, auth = await signup(http, gateway)
    bodies = []
    for path in ("/tenant", "/tenants/self", "/v1/tenant"):
        reply = await http.get(path, headers=auth)
        assert reply.status_code == 200, (path, reply.text)
        assert_shape(reply.json(), TENANT)
        bodies.append(reply.json())
    assert bodies[0] == bodies[1] == bodies[2] and bodies[0]["tenant_id"] == tenant
    assert (bodies[0]["plan"], bodies[0]["status"], bodies[0]["max_api_keys"]) == ("free", "active", 5)
    for path in ("/tenant/health", "/tenants/self/status", "/v1/tenant/health"):
        reply = await http.get(path, headers=auth)
        assert reply.status_code == 200, (path, reply.text)
        assert_shape(reply.json(), HEALTH)
        assert reply.json() == {"tenant_id": tenant, "status": "active", "healthy": True, "suspended_reason": ""}
    assert (await http.get("/tenant")).status_code == 401


async def test_usage_and_quotas_need_sdk_connected(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, auth = await signup(http, gateway)
    for path in ("/tenant/usage", "/tenant/quota/api-keys"):
        early = await http.get(path, headers=auth)
        assert early.status_code == 403 and early.json()["required_state"] == "SDK_CONNECTED", early.text
    key = {"X-AOS-Key": await new_key(http, auth)}
    assert (await http.post("/sdk/handshake", json=HELLO, headers=key)).status_code == 200
    usage = await http.get("/tenant/usage", headers=auth)
    assert usage.status_code == 200, usage.text
    assert_shape(usage.json(), USAGE)
    assert {k: usage.json()[k] for k in ("tenant_id", "api_keys", "runs_today", "tokens_this_month")} == {
        "tenant_id": tenant,
        "api_keys": 1,
        "runs_today": 0,
        "tokens_this_month": 0,
    }
    for path in ("/tenant/quota/api-keys", "/v1/tenant/quota/api-keys"):
        quota = await http.get(path, headers=key)  # an API key reads its tenant's quotas too
        assert quota.status_code == 200, quota.text
        assert_shape(quota.json(), QUOTA)
        assert quota.json() | {"tenant_id": ""} == {
            "tenant_id": "",
            "name": "api-keys",
            "limit": 5,
            "used": 1,
            "remaining": 4,
            "exhausted": False,
            "period": "none",
        }
    unknown = await http.get("/tenant/quota/workers", headers=auth)
    assert unknown.status_code == 404, unknown.text
    canonical = await http.get("/v1/tenant/quota/workers", headers=auth)
    assert canonical.status_code == 404 and canonical.json()["details"][0]["reason"] == "QUOTA_NOT_FOUND"


async def test_runs_count_as_they_start(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, auth = await signup(http, gateway)
    key = {"X-AOS-Key": await new_key(http, auth)}
    assert (await http.post("/sdk/handshake", json=HELLO, headers=key)).status_code == 200
    await complete(http, gateway, tenant)
    created = await http.post("/api/v1/runs", json={"agent_id": "a1", "goal": "g"}, headers=key)
    assert created.status_code == 201, created.text
    runs = await http.get("/tenant/quota/runs", headers=auth)
    assert runs.status_code == 200, runs.text
    assert (runs.json()["used"], runs.json()["remaining"], runs.json()["period"]) == (1, 99, "day")
    usage = (await http.get("/tenant/usage", headers=auth)).json()
    assert (usage["runs_today"], usage["runs_this_month"]) == (1, 1)
