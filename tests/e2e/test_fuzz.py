"""schemathesis against /openapi.json on the live gateway: no 5xx, no answer outside the published schema,
and the fuzzing tenant never changes another tenant's data. Monitoring's operations are fuzzed again by a
tenant at COMPLETE, once as its owner and once with its key, since a younger tenant only meets the gate."""

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from tests.conftest import Channels, Gateway, service
from tests.e2e.test_gateway_monitoring import complete, connected, new_key

# Fuzzing every operation (about 140 with monitoring's) takes 2.5-4.5 min on a 2-core machine: 10 examples per
# operation after the coverage phase keeps it bounded (25 took 4.5 min when idle).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


async def signup(http: httpx.AsyncClient, gateway: Gateway, name: str) -> tuple[str, dict[str, str]]:
    user = f"fuzz-{name}"
    reply = await http.post("/v1/tenants", json={"name": name}, headers=gateway.token(user))
    tenant = reply.json()["tenant"]["tenant_id"]
    return tenant, gateway.token(user, tenant=tenant, ttl=900)


async def snapshot(http: httpx.AsyncClient, account_channel: Any, tenant: str, auth: dict[str, str]) -> Any:
    projects = (await http.get("/accounts/projects", params={"limit": 100}, headers=auth)).json()
    log = events_service_pb2_grpc.EventLogServiceStub(account_channel)
    events = await log.ListEvents(
        events_service_pb2.ListEventsRequest(tenant_id=tenant, page_size=1000), metadata=service(), timeout=10
    )
    return projects, [e.event_id for e in events.events]


def schemathesis(gateway: Gateway, header: str, *options: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{gateway.url}/openapi.json",
        "--header",
        header,
        "--checks",
        CHECKS,
        "--phases",
        "coverage,fuzzing",
        "--generation-deterministic",
        "--request-timeout",
        "10",
        "--workers",
        "1",
        *options,
    ]


async def test_fuzzing_finds_no_server_error_and_no_schema_violation(
    http: httpx.AsyncClient, gateway: Gateway, channels: Channels, running: dict[str, Any], tmp_path: Path
) -> None:
    account_channel = channels.channel(running["account"], "onboarding")  # account's events, as onboarding reads them
    bystander, bystander_auth = await signup(http, gateway, "Bystander")
    await http.post("/accounts/projects", json={"name": "keep me"}, headers=bystander_auth)
    before = await snapshot(http, account_channel, bystander, bystander_auth)
    _, auth = await signup(http, gateway, "Fuzzer")
    command = schemathesis(gateway, f"authorization: {auth['authorization']}", "--max-examples", "10")
    # In a thread: the services under test run on this event loop and must keep answering.
    result = await asyncio.to_thread(subprocess.run, command, cwd=tmp_path, capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "passed" in result.stdout
    assert await snapshot(http, account_channel, bystander, bystander_auth) == before


async def monitored(http: httpx.AsyncClient, log: Any, tenant: str, auth: dict[str, str]) -> Any:
    """What another tenant could change in monitoring: its runs, incidents and events."""
    completed = (await http.get("/activity/completed", params={"limit": 100}, headers=auth)).json()
    live = (await http.get("/activity/live", params={"limit": 100}, headers=auth)).json()
    active = (await http.get("/incidents/active", params={"limit": 100}, headers=auth)).json()
    events = await log.ListEvents(
        events_service_pb2.ListEventsRequest(tenant_id=tenant, page_size=1000), metadata=service(), timeout=10
    )
    # A LIVE run's latency_bucket and evidence_health are derived at read time (they age): its stored fields.
    stored = ("run_id", "status", "state", "last_seen_at", "input_tokens", "output_tokens", "cost_cents")
    live_runs = [{f: run[f] for f in stored} for run in live["items"]]
    return completed["items"], live_runs, active["items"], [e.event_id for e in events.events]


@pytest.mark.timeout(600)
async def test_fuzzing_monitoring_at_complete_as_owner_and_key(
    http: httpx.AsyncClient, gateway: Gateway, channels: Channels, running: dict[str, Any], tmp_path: Path
) -> None:
    """Every monitoring operation (the `monitoring` tag) with a COMPLETE tenant's owner token, then with its
    key (runs, telemetry and reads): no 5xx, answers as published, and a bystander's runs, incidents and
    events unchanged."""
    log = channels.stub(events_service_pb2_grpc.EventLogServiceStub, running["monitoring"], "onboarding")
    bystander, bystander_auth, bystander_key = await connected(http, gateway)
    await complete(http, gateway, bystander)
    for status in ("failed", "succeeded"):
        run = (await http.post("/api/v1/runs", json={"agent_id": "a", "goal": "g"}, headers=bystander_key)).json()
        await http.post(f"/v1/runs/{run['run_id']}:complete", json={"status": status}, headers=bystander_key)
    await http.post("/api/v1/runs", json={"agent_id": "a", "goal": "live"}, headers=bystander_key)
    before = await monitored(http, log, bystander, bystander_auth)
    assert [len(part) for part in before] == [2, 1, 1, 6]

    fuzzer, owner, _ = await connected(http, gateway)
    await complete(http, gateway, fuzzer)
    key = await new_key(http, owner, permissions=["run:*", "read:*", "telemetry:write"])
    for header in (f"authorization: {owner['authorization']}", f"X-AOS-Key: {key}"):
        command = schemathesis(gateway, header, "--include-tag", "monitoring", "--max-examples", "5")
        # In a thread: the services under test run on this event loop and must keep answering.
        result = await asyncio.to_thread(
            subprocess.run, command, cwd=tmp_path, capture_output=True, text=True, timeout=280
        )
        assert result.returncode == 0, result.stdout[-6000:]
        assert "passed" in result.stdout
    assert await monitored(http, log, bystander, bystander_auth) == before


async def test_header_names_grpc_cannot_carry_are_dropped_at_the_edge(
    http: httpx.AsyncClient, gateway: Gateway
) -> None:
    """HTTP allows `a*b` or `o'c` as header names, gRPC metadata does not: forwarded, every service's gRPC
    server refused the whole call and the client got 500 (found by the monitoring fuzzing above). The gate
    has Envoy drop them, on REST and native routes of every service."""
    tenant, owner, key = await connected(http, gateway)
    await complete(http, gateway, tenant)
    odd = {"a*b": "x", "o'c": "y", "t~d": "z"}
    for path, auth in [
        ("/accounts/projects", owner),
        ("/api-keys", owner),
        ("/integrations", owner),
        ("/onboarding/status", owner),
        ("/activity/live", owner),
        ("/incidents/active", key),
    ]:
        reply = await http.get(path, headers={**auth, **odd})
        assert reply.status_code == 200, (path, reply.text)
