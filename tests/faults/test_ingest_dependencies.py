"""Ingest and the limits route with a peer stopped (MONITORING.md decision 12; M8): integrations down, an
integration monitoring saw owned still ingests from its cache while one it never saw answers 503 naming
integrations; monitoring down, the limits route answers 503 naming monitoring, never zeros."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import eventually
from tests.e2e.test_gateway_integration_key import REPORTER_SCOPES, Reporter, new_integration, usage
from tests.faults.conftest import ProcessStack, signup

pytestmark = pytest.mark.e2e
HELLO = {"sdk_version": "1.2.0", "sdk_language": "python"}


async def test_ingest_and_limits_with_a_peer_stopped(procs: ProcessStack) -> None:
    gw = procs.gateway
    async with httpx.AsyncClient(base_url=gw.url, timeout=15) as http:
        tenant, auth = await signup(http, gw, "Peers")
        seen = await new_integration(http, auth, budget_limit_cents=1000, token_limit_month=10_000)
        unseen = await new_integration(http, auth)
        made = await http.post("/tenant/api-keys", json={"name": "r", "permissions": REPORTER_SCOPES}, headers=auth)
        secret = made.json()["key"]
        assert (await http.post("/sdk/handshake", json=HELLO, headers={"X-AOS-Key": secret})).status_code == 200
        reporter = Reporter(http, tenant, seen, secret)
        first = await reporter.report(usage("c1", tokens_in=2000, tokens_out=1000, cost_cents=250))
        assert first.status_code == 200, first.text

        await asyncio.to_thread(procs.kill, "integrations")
        try:
            cached = await reporter.report(usage("c2", cost_cents=10))  # owned, cached for 60 s: no question asked
            assert cached.status_code == 200 and cached.json()["status"] == "accepted", cached.text
            never_seen = Reporter(http, tenant, unseen, secret)
            missed = await never_seen.report(usage("c3"))
            assert missed.status_code == 503 and "integrations unavailable" in missed.text, missed.text
        finally:
            await asyncio.to_thread(procs.start, "integrations")

        await asyncio.to_thread(procs.kill, "monitoring")
        try:
            for _ in range(2):
                limits = await http.get(f"/api/v1/integrations/{seen}/limits", headers=reporter.headers)
                assert limits.status_code == 503 and "monitoring unavailable" in limits.text, limits.text
                assert "budget_used_cents" not in limits.text
        finally:
            await asyncio.to_thread(procs.start, "monitoring")
        url = f"/api/v1/integrations/{seen}/limits"
        await eventually(lambda: http.get(url, headers=reporter.headers), until=lambda r: r.status_code == 200)
        back = await reporter.check_limits()
        assert (back["budget_used_cents"], back["tokens_used_month"], back["budget_percent"]) == ("260", "3015", 26.0)
        # integrations is back: the integration never seen is asked about, and owned (a refusal was not cached).
        assert (await never_seen.report(usage("c3"))).status_code == 200
