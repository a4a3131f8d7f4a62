"""The newer SDK's CusReporter through real Envoy, the gate and the services: only `X-CUS-Integration-Key:
{tenant_id}:{integration_id}:{secret}`, its single and batch ingest and its limits check, plus forged keys
that must write nothing (MONITORING.md decisions 5 and 12, section 7; M1-M4, M7, M34)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Gateway
from tests.e2e.test_gateway_monitoring import connected, new_key
from tests.monitoring.conftest import sql

pytestmark = pytest.mark.e2e
REPORTER_SCOPES = ["telemetry:write", "integrations:read"]
INVALID_KEY = {"error": "api_key_invalid", "message": "Invalid API key"}


async def new_integration(http: httpx.AsyncClient, auth: dict[str, str], **limits: int) -> str:
    body = {"name": f"llm-{uuid.uuid4().hex[:6]}", "provider_type": "openai", "credential": f"sk-{uuid.uuid4().hex}"}
    reply = await http.post("/integrations", json=body | limits, headers=auth)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["data"]["id"])


def usage(call_id: str, **fields: Any) -> dict[str, Any]:
    """A record as the reporter sends it: no integration_id (the key names it)."""
    return {"call_id": call_id, "provider": "openai", "model": "gpt-4o", "tokens_in": 10, "tokens_out": 5} | fields


class Reporter:
    """The CusReporter's requests, exactly: one header, the /api/v1 paths, the fields it reads."""

    def __init__(self, http: httpx.AsyncClient, tenant: str, integration: str, secret: str) -> None:
        self.http, self.integration = http, integration
        self.headers = {"X-CUS-Integration-Key": f"{tenant}:{integration}:{secret}"}

    async def report(self, record: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/api/v1/telemetry/llm-usage", json=record, headers=self.headers)

    async def report_batch(self, records: list[dict[str, Any]]) -> httpx.Response:
        return await self.http.post(
            "/api/v1/telemetry/llm-usage/batch", json={"records": records}, headers=self.headers
        )

    async def check_limits(self) -> dict[str, Any]:
        reply = await self.http.get(f"/api/v1/integrations/{self.integration}/limits", headers=self.headers)
        assert reply.status_code == 200, reply.text
        data = reply.json()["data"]
        read = (
            "budget_limit_cents budget_used_cents budget_percent token_limit_month tokens_used_month token_percent"
            " rate_limit_rpm current_rpm rate_percent"
        )
        return {name: data[name] for name in read.split()}


async def stored(engines: dict[str, AsyncEngine], tenant: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The tenant's usage records (call_id, integration_id, key_id) and monitoring's events for it."""
    rows = await sql(
        engines, "SELECT call_id, integration_id, key_id FROM usage_record WHERE tenant_id = :t ORDER BY 1", t=tenant
    )
    events = await sql(engines, "SELECT event_type FROM event WHERE tenant_id = :t ORDER BY position", t=tenant)
    return [tuple(r) for r in rows], [e.event_type for e in events]


async def reporter_of(http: httpx.AsyncClient, gateway: Gateway, **limits: int) -> tuple[Reporter, str, dict[str, str]]:
    """A tenant at SDK_CONNECTED with an integration, and its reporter holding a telemetry key; the key's id,
    and the owner's auth headers."""
    tenant, auth, _ = await connected(http, gateway)
    integration = await new_integration(http, auth, **limits)
    made = await http.post("/tenant/api-keys", json={"name": "reporter", "permissions": REPORTER_SCOPES}, headers=auth)
    assert made.status_code == 201, made.text
    return Reporter(http, tenant, integration, made.json()["key"]), made.json()["id"], auth


async def test_the_reporter_reports_and_reads_its_limits(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    """M1 and M7 with the reporter's exact requests: a call_id another tenant used is new here, its repeat is
    a duplicate with the original id, and the limits show this month's real usage and the last minute's."""
    other, _, _ = await reporter_of(http, gateway)
    assert (await other.report(usage("c1"))).status_code == 200  # B used c1
    reporter, key_id, auth = await reporter_of(
        http, gateway, budget_limit_cents=1000, token_limit_month=10_000, rate_limit_rpm=60
    )
    tenant = reporter.headers["X-CUS-Integration-Key"].split(":")[0]

    first = await reporter.report(usage("c1", tokens_in=1000, tokens_out=500, cost_cents=100))
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["status"], body["call_id"], body["success"], body["data"]["status"]) == (
        "accepted",
        "c1",
        True,
        "accepted",
    )
    again = await reporter.report(usage("c1", tokens_in=1000, tokens_out=500, cost_cents=100))
    assert (again.status_code, again.json()["status"], again.json()["id"]) == (200, "duplicate", body["id"])

    named = usage("c3", integration_id=reporter.integration, tokens_in=300, tokens_out=200, cost_cents=50)
    records = [usage(f"c{n}", tokens_in=300, tokens_out=200, cost_cents=50) for n in (2, 4)] + [named]
    batch = await reporter.report_batch(records)
    assert batch.status_code == 200, batch.text
    counts = batch.json()
    assert (counts["accepted"], counts["duplicates"], counts["errors"], counts["total"]) == (3, 0, 0, 3)

    rows, events = await stored(engines, tenant)
    assert rows == [(c, reporter.integration, key_id) for c in ("c1", "c2", "c3", "c4")]
    assert events == ["usage.ingested"] * 2
    limits = await reporter.check_limits()  # 250 cents, 3 000 tokens this month; 4 records in the last minute
    assert limits == {
        "budget_limit_cents": 1000,
        "budget_used_cents": "250",  # int64: a JSON string, as proto3 JSON writes 64-bit integers
        "budget_percent": 25.0,
        "token_limit_month": "10000",
        "tokens_used_month": "3000",
        "token_percent": 30.0,
        "rate_limit_rpm": 60,
        "current_rpm": 4,
        "rate_percent": pytest.approx(100 * 4 / 60),
    }
    canonical = await http.get(f"/v1/integrations/{reporter.integration}/limits", headers=auth)
    assert canonical.json()["data"]["requests_this_minute"] == 4  # the legacy name beside current_rpm


async def test_forged_integration_keys_write_nothing(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    """M2, M3, M34: a wrong secret, another tenant's key under A's id, A's key naming B's integration, mixed
    credentials and a malformed header are refused; A's and B's tables and event logs stay empty."""
    a, _, a_auth = await reporter_of(http, gateway)
    b, _, _ = await reporter_of(http, gateway)
    a_tenant, a_integration, a_secret = a.headers["X-CUS-Integration-Key"].split(":", 2)
    b_tenant, b_integration, b_secret = b.headers["X-CUS-Integration-Key"].split(":", 2)
    bad_key = await http.post("/api/v1/telemetry/llm-usage", json=usage("x"), headers={"X-AOS-Key": "aos_" + "0" * 40})
    assert (bad_key.status_code, bad_key.json()) == (401, INVALID_KEY)

    for header in (
        f"{a_tenant}:{a_integration}:aos_{uuid.uuid4().hex}{uuid.uuid4().hex}",  # an unknown secret
        f"{a_tenant}:{a_integration}:{b_secret}",  # B's valid key under A's tenant id
        f"{a_tenant}:{a_integration}",  # malformed: answered like a wrong key
        f"{a_tenant}::{a_secret}",
        "",
    ):
        for path, body in (
            ("/api/v1/telemetry/llm-usage", usage("f1")),
            ("/telemetry/llm-usage/batch", {"records": [usage("f1")]}),
        ):
            reply = await http.post(path, json=body, headers={"X-CUS-Integration-Key": header})
            assert (reply.status_code, reply.json()) == (401, INVALID_KEY), (header, reply.text)

    foreign = {"X-CUS-Integration-Key": f"{a_tenant}:{b_integration}:{a_secret}"}  # M3: A:J:T
    single = await http.post("/api/v1/telemetry/llm-usage", json=usage("f2"), headers=foreign)
    assert single.status_code == 404, single.text
    many = await http.post("/api/v1/telemetry/llm-usage/batch", json={"records": [usage("f2")]}, headers=foreign)
    assert many.status_code == 200 and (many.json()["accepted"], many.json()["errors"]) == (0, 1), many.text
    assert many.json()["error_details"] == [{"index": 0, "call_id": "f2", "reason": "INTEGRATION_NOT_FOUND"}]
    foreign_limits = await http.get(f"/api/v1/integrations/{b_integration}/limits", headers=foreign)
    assert foreign_limits.status_code == 404

    mismatched = await a.report(usage("f3", integration_id=b_integration))  # the record names another one
    assert mismatched.status_code == 404, mismatched.text
    for extra in ({"X-AOS-Key": a_secret}, a_auth):  # M3: a second credential
        mixed = await http.post("/api/v1/telemetry/llm-usage", json=usage("f4"), headers={**a.headers, **extra})
        assert mixed.status_code == 400 and mixed.json()["error"] == "mixed_auth", mixed.text

    # X-AOS-Key: the record must name its integration, and a client's x-aos-integration-id is the edge's to drop.
    key = {"X-AOS-Key": a_secret, "x-aos-integration-id": b_integration}
    unnamed = await http.post("/api/v1/telemetry/llm-usage", json=usage("f5"), headers=key)
    assert unnamed.status_code == 400 and "integration_id" in unnamed.text, unnamed.text
    posed = await http.post("/api/v1/telemetry/llm-usage", json=usage("f6", integration_id=b_integration), headers=key)
    assert posed.status_code == 404, posed.text

    assert await stored(engines, a_tenant) == ([], [])
    assert await stored(engines, b_tenant) == ([], [])


async def test_a_key_batch_counts_other_tenants_integrations_as_errors(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    """M4 with T as X-AOS-Key: {new c2, a stored call_id, a record naming B's integration J, c2 again}."""
    a, _, _ = await reporter_of(http, gateway)
    b, _, _ = await reporter_of(http, gateway)
    a_tenant, a_integration, a_secret = a.headers["X-CUS-Integration-Key"].split(":", 2)
    key = {"X-AOS-Key": a_secret}
    assert (await a.report(usage("stored"))).json()["status"] == "accepted"
    mine = {"integration_id": a_integration}
    records = [
        usage("c2", **mine),
        usage("stored", **mine),
        usage("cj", integration_id=b.integration),
        usage("c2", **mine),
    ]
    reply = await http.post("/api/v1/telemetry/llm-usage/batch", json={"records": records}, headers=key)
    assert reply.status_code == 200, reply.text
    counts = reply.json()
    assert (counts["accepted"], counts["duplicates"], counts["errors"], counts["total"]) == (1, 2, 1, 4)
    assert counts["error_details"] == [{"index": 2, "call_id": "cj", "reason": "INTEGRATION_NOT_FOUND"}]
    rows, events = await stored(engines, a_tenant)
    assert [r[0] for r in rows] == ["c2", "stored"] and events == ["usage.ingested"] * 2
    assert await stored(engines, b.headers["X-CUS-Integration-Key"].split(":")[0]) == ([], [])


async def test_an_integration_key_needs_its_tenant_at_sdk_connected_and_the_scope(
    http: httpx.AsyncClient, gateway: Gateway
) -> None:
    """M6 and M32 through the integration key: the gate treats it as the key it carries."""
    tenant, auth, key = await connected(http, gateway)
    integration = await new_integration(http, auth)
    plain = key["X-AOS-Key"]  # default scopes: no telemetry:write
    refused = await http.post(
        "/api/v1/telemetry/llm-usage",
        json=usage("s1"),
        headers={"X-CUS-Integration-Key": f"{tenant}:{integration}:{plain}"},
    )
    assert refused.status_code == 403 and "telemetry:write" in refused.json()["message"], refused.text
    new_tenant_user = f"owner-{uuid.uuid4().hex[:6]}"
    signup = await http.post("/v1/tenants", json={"name": "Early"}, headers=gateway.token(new_tenant_user))
    fresh = signup.json()["tenant"]["tenant_id"]
    fresh_auth = gateway.token(new_tenant_user, tenant=fresh)
    fresh_integration = await new_integration(http, fresh_auth)
    secret = await new_key(http, fresh_auth, permissions=REPORTER_SCOPES)
    header = {"X-CUS-Integration-Key": f"{fresh}:{fresh_integration}:{secret}"}
    gated = await http.post("/api/v1/telemetry/llm-usage", json=usage("s2"), headers=header)
    assert gated.status_code == 403 and gated.json()["required_state"] == "SDK_CONNECTED", gated.text
