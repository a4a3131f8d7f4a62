"""N concurrent clients run mixed journeys through the real gateway (signup, keys, projects, status,
handshakes, lists) for a bounded time: no 5xx, every acknowledged create is readable afterwards and has
its event, and every event stream (owner, tenant, project) of every service is gapless from 1.

Short form in `make test`; the long form of the issue (200 clients, 60 s) with
`AOS_LOAD_CLIENTS=200 AOS_LOAD_SECONDS=60 .venv/bin/pytest tests/load` (or `make bench`'s --load)."""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from cli import devauth
from tests.conftest import service, tls_channel
from tests.faults.conftest import ProcessStack

pytestmark = pytest.mark.e2e

# 32 clients keep 2 cores busy without saturating them (31-36 calls/s); at 50, account's queue passed the
# gate's 1 s deadline in about one run in three (503s), which measures the machine rather than the code. The
# long form (200 clients) is the saturation run.
CLIENTS = int(os.environ.get("AOS_LOAD_CLIENTS", "32"))
SECONDS = float(os.environ.get("AOS_LOAD_SECONDS", "10"))
MAX_KEYS = 5  # the free plan's quota: more would be a (correct) 429
HELLO = {"sdk_version": "1.0.0", "sdk_language": "python"}


class Tokens:
    """Mints dev JWTs like `Gateway.token` with the signing key parsed once: `devauth.mint` re-reads and
    re-validates the PEM each time (~50 ms of blocked event loop, which would dominate the load)."""

    def __init__(self, data_dir: Path) -> None:
        pem = (data_dir / "dev" / "signing-key.pem").read_bytes()
        self.key = serialization.load_pem_private_key(pem, password=None)

    def __call__(self, user: str, tenant: str = "") -> dict[str, str]:
        claims = devauth.claims(user=user, email=f"{user}@example.com", org=tenant or None, ttl_seconds=600)
        return {
            "authorization": "Bearer " + jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": devauth.KID})
        }  # type: ignore[arg-type]


@dataclass
class Ledger:
    """What the load was told: every acknowledged create, every unexpected answer."""

    tenants: dict[str, dict[str, str]] = field(default_factory=dict)  # tenant → owner's auth headers
    projects: dict[str, str] = field(default_factory=dict)  # project id → tenant
    keys: dict[str, str] = field(default_factory=dict)  # key id → tenant
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    bad: list[str] = field(default_factory=list)

    def check(self, what: str, reply: httpx.Response, *ok: int) -> bool:
        self.calls[what] += 1
        self.seconds[what].append(reply.elapsed.total_seconds())
        if reply.status_code not in ok:
            self.bad.append(f"{what}: {reply.status_code} {reply.text[:200]}")
            return False
        return True


async def journey(http: httpx.AsyncClient, token: Tokens, ledger: Ledger, stop_at: float, rng: random.Random) -> None:
    while time.monotonic() < stop_at:
        user = f"load-{uuid.uuid4().hex[:10]}"
        signup = await http.post("/v1/tenants", json={"name": f"Load {user}"}, headers=token(user))
        if not ledger.check("signup", signup, 201):
            continue
        tenant = signup.json()["tenant"]["tenant_id"]
        auth = token(user, tenant)
        ledger.tenants[tenant] = auth
        secrets: list[str] = []
        for _ in range(rng.randint(5, 15)):  # then a fresh tenant: signups stay part of the mix
            if time.monotonic() >= stop_at:
                return
            step = rng.choice(("project", "key", "projects", "keys", "status", "shake", "instructions", "integrations"))
            if step == "project":
                reply = await http.post("/accounts/projects", json={"name": f"p-{rng.random()}"}, headers=auth)
                if ledger.check(step, reply, 201):
                    ledger.projects[reply.json()["project_id"]] = tenant
            elif step == "key" and len(secrets) < MAX_KEYS:
                reply = await http.post("/tenant/api-keys", json={"name": "load"}, headers=auth)
                if ledger.check(step, reply, 201):
                    ledger.keys[reply.json()["id"]] = tenant
                    secrets.append(reply.json()["key"])
            elif step == "projects":
                ledger.check(step, await http.get("/accounts/projects", headers=auth), 200)
            elif step == "keys":
                ledger.check(step, await http.get("/api-keys", headers=auth), 200)
            elif step == "status":
                ledger.check(step, await http.get("/onboarding/status", headers=auth), 200)
            elif step in ("shake", "instructions") and secrets:
                key = {"x-aos-key": rng.choice(secrets)}
                if step == "shake":
                    ledger.check(step, await http.post("/sdk/handshake", json=HELLO, headers=key), 200)
                else:
                    ledger.check(step, await http.get("/sdk/instructions", headers=key), 200)
            elif step == "integrations":
                ledger.check(step, await http.get("/v1/integrations", headers=auth), 200)


async def all_events(port: int) -> list[Any]:
    """A service's whole EventLog, read as a peer service (onboarding) reads it."""
    events: list[Any] = []
    async with tls_channel(f"127.0.0.1:{port}", "onboarding") as channel:
        stub = events_service_pb2_grpc.EventLogServiceStub(channel)
        token = ""
        while True:
            page = await stub.ListEvents(
                events_service_pb2.ListEventsRequest(page_size=1000, page_token=token), metadata=service(), timeout=30
            )
            if not page.events:
                return events
            events.extend(page.events)
            token = page.next_page_token


async def test_mixed_journeys_lose_nothing_and_never_answer_5xx(load_stack: ProcessStack) -> None:
    gateway, ledger = load_stack.gateway, Ledger()
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30, limits=limits) as http:
        token = Tokens(gateway.data_dir)
        started = time.monotonic()
        stop_at = started + SECONDS
        await asyncio.wait_for(
            asyncio.gather(*(journey(http, token, ledger, stop_at, random.Random(i)) for i in range(CLIENTS))),
            SECONDS + 60,
        )
        elapsed = time.monotonic() - started
        total = sum(ledger.calls.values())
        print(
            f"\nload: {CLIENTS} clients, {total} calls in {elapsed:.1f}s ({total / elapsed:.0f}/s)", dict(ledger.calls)
        )
        for what, took in sorted(ledger.seconds.items()):
            took.sort()
            print(
                f"  {what:<13}{len(took):>6} p50 {took[len(took) // 2] * 1000:7.1f} ms  max {took[-1] * 1000:7.1f} ms"
            )
        assert ledger.projects and ledger.keys and ledger.calls["shake"], ledger.calls

        # Every acknowledged create is readable afterwards, by its own tenant.
        sem = asyncio.Semaphore(CLIENTS)

        async def readable(path: str, tenant: str) -> int:
            async with sem:
                return (await http.get(path, headers=ledger.tenants[tenant])).status_code

        paths = [(f"/accounts/projects/{p}", t) for p, t in ledger.projects.items()]
        paths += [(f"/api-keys/{k}", t) for k, t in ledger.keys.items()]
        codes = await asyncio.gather(*(readable(p, t) for p, t in paths))
        lost = [p for (p, _), code in zip(paths, codes, strict=True) if code != 200]
        assert not lost, lost[:10]

    # Every acknowledged create has its event, and every stream of every service is gapless from 1.
    logs = {svc: await all_events(port) for svc, port in load_stack.ports.items()}
    streams: dict[tuple[str, str, str], list[int]] = collections.defaultdict(list)
    for events in logs.values():
        for e in events:
            streams[(e.decision_owner, e.tenant_id, e.project_id)].append(e.sequence_no)
    gaps = {k: sorted(v) for k, v in streams.items() if sorted(v) != list(range(1, len(v) + 1))}
    assert not gaps, list(gaps.items())[:5]

    def payloads(svc: str, event_type: str, key: str) -> set[str]:
        return {e.payload[key] for e in logs[svc] if e.event_type == event_type and key in e.payload}

    assert set(ledger.tenants) <= {e.tenant_id for e in logs["account"] if e.event_type == "tenant.created"}
    assert set(ledger.projects) <= payloads("account", "project.created", "project_id")
    assert set(ledger.keys) <= payloads("api_keys", "api_key.created", "key_id")
    assert not ledger.bad, (len(ledger.bad), ledger.bad[:10])  # last: a 5xx must not hide a lost write
