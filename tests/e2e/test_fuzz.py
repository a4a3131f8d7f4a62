"""schemathesis against /openapi.json on the live gateway: no 5xx, no answer outside the published schema,
and the fuzzing tenant never changes another tenant's data."""

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from tests.conftest import Channels, Gateway, service

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


async def test_fuzzing_finds_no_server_error_and_no_schema_violation(
    http: httpx.AsyncClient, gateway: Gateway, channels: Channels, running: dict[str, Any], tmp_path: Path
) -> None:
    account_channel = channels.channel(running["account"], "onboarding")  # account's events, as onboarding reads them
    bystander, bystander_auth = await signup(http, gateway, "Bystander")
    await http.post("/accounts/projects", json={"name": "keep me"}, headers=bystander_auth)
    before = await snapshot(http, account_channel, bystander, bystander_auth)
    _, auth = await signup(http, gateway, "Fuzzer")
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{gateway.url}/openapi.json",
        "--header",
        f"authorization: {auth['authorization']}",
        "--checks",
        CHECKS,
        "--max-examples",
        "10",
        "--phases",
        "coverage,fuzzing",
        "--generation-deterministic",
        "--request-timeout",
        "10",
        "--workers",
        "1",
    ]
    # In a thread: the services under test run on this event loop and must keep answering.
    result = await asyncio.to_thread(subprocess.run, command, cwd=tmp_path, capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "passed" in result.stdout
    assert await snapshot(http, account_channel, bystander, bystander_auth) == before
