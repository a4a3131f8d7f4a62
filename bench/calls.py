"""Scenarios 1 and 2: the calls of the request path, each against an empty grpc.aio RPC measured by the same
client in the same run, rounds interleaved (issue 13's table).

  1. gRPC straight to a service, driven by h2load through the mTLS hop (bench/tools.py Hop) and compared with
     the empty RPC behind the same kind of hop; and again from this process's Python client (client-bound)
     against the Python-measured empty RPC. Health/Check and ListProjects (3 projects) to account as the
     gateway with a tenant owner's metadata; VerifyApiKey as onboarding, to api_keys with its cache (hit)
     and to a second api_keys with the cache off (miss), the same secret every call.
  2. REST through Envoy and the gate, driven by wrk, compared with h2load's plaintext empty RPC: reads (JWT or
     X-AOS-Key) and writes with a unique name per request (bench/wrk/post.lua): projects of one tenant,
     projects spread over 16 tenants (their tokens rotating per request), and API keys of one tenant.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import asyncpg
import grpc
import httpx
from grpc_health.v1 import health_pb2

from aos.account.v1 import account_service_pb2 as account_rpc
from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from bench import empty, tools
from bench.common import Running, Tenant, new_tenant, row, skipped
from bench.keyset import human
from cli import devtls, stack
from services.common.principal import service_metadata

HEALTH = "/grpc.health.v1.Health/Check"
LIST_PROJECTS = "/aos.account.v1.AccountService/ListProjects"
VERIFY = "/aos.api_keys.v1.ApiKeysService/VerifyApiKey"
WRITERS = 16  # tenants the spread writes go to
HELLO = {"sdk_version": "1.2.0", "sdk_language": "python"}
# A key's quota is its plan's (enterprise: 100); the key-creating tenant's is raised past what a run creates.
KEY_QUOTA = 1_000_000
# Issue 13's targets: ratios to the empty RPC (direct rows: to the empty RPC behind the same hop).
TARGETS = {"list": ">= 0.30", "hit": ">= 0.9", "miss": ">= 0.5", "projects": ">= 0.20", "keys": ">= 0.20"}
TARGETS |= {"status": ">= 0.35", "instructions": ">= 0.35", "create one": ">= 0.05", "create 16": ">= 0.10"}


@dataclass(frozen=True)
class Grpc:
    """One gRPC target: where (a plaintext port: the empty server's, or a hop's route), the method, the
    serialized request (legal to repeat) and the caller metadata."""

    port: int
    method: str
    body: bytes
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rest:
    """One REST target through the gateway: GET with headers, or POST of post.lua's body with `header` set to
    one of `values` in turn."""

    path: str
    headers: dict[str, str] | None = None
    body: str = ""
    header: str = ""
    values: tuple[str, ...] = ()


async def run(
    running: Running, tenant: Tenant, account_url: str, skip: list[int], conc: int, seconds: float, rounds: int
) -> None:
    plain, miss, hop = await start(running)
    await setup_reads(running, tenant)
    writers = await setup_writers(running, account_url)
    owner = human(tenant.id, "bench-owner")
    verify = keys_rpc.VerifyApiKeyRequest(secret=tenant.key).SerializeToString()
    # h2load cannot send a header with an empty value; a missing one reads the same to a service.
    onboarding = tuple((name, value) for name, value in service_metadata("onboarding") if value)
    grpc_targets: dict[str, tuple[str, Grpc]] = {"E": ("1,2 empty grpc.aio RPC, h2c", Grpc(plain, empty.METHOD, b""))}
    if 1 not in skip:
        grpc_targets |= {
            "E+hop": ("1 empty grpc.aio RPC, mTLS behind the hop", Grpc(hop.ports["empty"], empty.METHOD, b"")),
            "health": ("1 Health/Check straight to account", Grpc(hop.ports["account"], HEALTH, b"")),
            "list": (
                "1 ListProjects straight to account (3 projects)",
                Grpc(hop.ports["account"], LIST_PROJECTS, account_rpc.ListProjectsRequest().SerializeToString(), owner),
            ),
            "hit": ("1 VerifyApiKey, warm cache", Grpc(hop.ports["verify hit"], VERIFY, verify, onboarding)),
            "miss": ("1 VerifyApiKey, cache miss", Grpc(hop.ports["verify miss"], VERIFY, verify, onboarding)),
        }
    for _, g in grpc_targets.values():
        await check(g)
    rest_targets: dict[str, tuple[str, Rest]] = {}
    if 2 not in skip:
        jwt = {"authorization": f"Bearer {tenant.token}"}
        key = {"x-aos-key": tenant.key}
        bearer = [f"Bearer {t}" for t in writers.tokens]
        rest_targets = {
            "projects": ("2 GET /accounts/projects, Envoy + gate (JWT)", Rest("/accounts/projects", jwt)),
            "keys": ("2 GET /api-keys?limit=10, Envoy + gate (key)", Rest("/api-keys?limit=10", key)),
            "status": ("2 GET /onboarding/status, Envoy + gate (JWT)", Rest("/onboarding/status", jwt)),
            "instructions": ("2 GET /sdk/instructions, Envoy + gate (key)", Rest("/sdk/instructions", key)),
            "handshake": (
                "2 POST /sdk/handshake, Envoy + gate (key)",
                Rest("/sdk/handshake", body=json.dumps(HELLO), header="X-AOS-Key", values=(tenant.key,)),
            ),
            "create one": (
                "2 POST /accounts/projects, 1 tenant",
                Rest("/accounts/projects", body='{"name":"%s"}', header="authorization", values=(bearer[0],)),
            ),
            "create 16": (
                f"2 POST /accounts/projects, {WRITERS} tenants",
                Rest("/accounts/projects", body='{"name":"%s"}', header="authorization", values=tuple(bearer)),
            ),
            "create key": (
                "2 POST /tenant/api-keys (CreateApiKey), 1 tenant",
                Rest(
                    "/tenant/api-keys",
                    body='{"name":"%s","permissions":["read:*"]}',
                    header="authorization",
                    values=(bearer[1],),
                ),
            ),
        }
        await check_rest(running.gateway_port, rest_targets)

    py_targets: dict[str, tuple[str, Callable[[int], object]]] = {}
    if 1 not in skip:
        py_targets = python_targets(running, plain, miss, owner, tenant.key)

    best: dict[str, tools.Result] = {}
    missing: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="aos-bench-tools-") as tmp:
        for _ in range(rounds):  # interleaved: every ratio compares runs made under the same load
            for name, (_, g) in grpc_targets.items():
                url = f"http://127.0.0.1:{g.port}{g.method}"
                keep(best, missing, name, partial(tools.h2load, url, g.body, g.metadata, conc, seconds, Path(tmp)))
            for name, (_, r) in rest_targets.items():
                url = f"http://127.0.0.1:{running.gateway_port}{r.path}"
                if r.body:
                    args = [uuid.uuid4().hex[:8], r.body, r.header, *r.values]
                    keep(best, missing, name, partial(tools.wrk, url, conc, seconds, script="post.lua", args=args))
                else:
                    keep(best, missing, name, partial(tools.wrk, url, conc, seconds, r.headers))
            for name, (_, call) in py_targets.items():
                result = await tools.drive(call, conc, seconds)  # type: ignore[arg-type]
                if name not in best or result[0] > best[name][0]:
                    best[name] = result

    def show(name: str, label: str, by: str, base: str, target: str = "") -> None:
        if name in missing:
            skipped(label, missing[name])
        elif base not in best or not best[base].rate:  # the baseline, or the baseline's tool is missing
            row(label, conc, best[name], None, target, by, base)
        else:
            row(label, conc, best[name], best[name][0] / best[base][0], target, by, base)

    for name, (label, _) in grpc_targets.items():
        show(name, label, "h2load", "" if name == "E" else "E" if name == "E+hop" else "E+hop", TARGETS.get(name, ""))
    for name, (label, _) in rest_targets.items():
        show(name, label, "wrk", "E", TARGETS.get(name, ""))
    for name, (label, _) in py_targets.items():
        show(name, label, "py", "" if name == "py E" else "py E", TARGETS.get(name.removeprefix("py "), ""))


async def start(running: Running) -> tuple[int, int, tools.Hop]:
    """The empty RPC in plaintext and over mTLS, a second api_keys on the same database with its verify cache
    off, and the hop with a route to each service a row calls straight: (plaintext port, miss port, hop)."""
    tls_dir = running.tls_dir
    plain = running.process([sys.executable, empty.__file__, str(port := stack.free_port())], {}, port, "empty.log")
    mtls = stack.free_port()
    running.process([sys.executable, empty.__file__, str(mtls), "--tls", str(tls_dir)], {}, mtls, "empty-tls.log")
    miss = stack.free_port()
    env = {"API_KEYS_DATABASE_URL": running.urls["api_keys"], "API_KEYS_GRPC_PORT": str(miss)}
    env |= {"API_KEYS_CACHE_SIZE": "0", "API_KEYS_METRICS_PORT": "0", **devtls.env(tls_dir, "api_keys")}
    running.process([sys.executable, "-m", "services.api_keys"], env, miss, "api_keys-miss.log")
    hop = tools.Hop(running.work, tls_dir)
    hop.route("empty", mtls, "gateway", "api-keys")
    hop.route("account", running.ports["account"], "gateway", "account")  # customer metadata: as the gateway
    hop.route("verify hit", running.ports["api_keys"], "onboarding", "api-keys")  # VerifyApiKey's one caller
    hop.route("verify miss", miss, "onboarding", "api-keys")
    running.procs.append(proc := hop.start())
    for port in hop.ports.values():
        await asyncio.to_thread(stack.wait_for_port, port, proc)
    await running.ready()
    return plain, miss, hop


def keep(
    best: dict[str, tools.Result], missing: dict[str, str], name: str, measure: Callable[[], tools.Result]
) -> None:
    """The best (highest throughput) of a target's rounds; a missing tool is noted once, not raised."""
    try:
        result = measure()
    except tools.Missing as exc:
        missing[name] = str(exc)
        return
    if name not in best or result[0] > best[name][0]:
        best[name] = result


@dataclass(frozen=True)
class Writers:
    tenants: list[str]
    tokens: list[str]


async def setup_reads(running: Running, tenant: Tenant) -> None:
    """The read tenant holds 3 projects (sign_up made the first)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.gateway_port}", timeout=10) as http:
        for name in ("p2", "p3"):
            made = await http.post(
                "/accounts/projects", json={"name": name}, headers={"authorization": f"Bearer {tenant.token}"}
            )
            assert made.status_code == 201, made.text


async def setup_writers(running: Running, account_url: str) -> Writers:
    """WRITERS tenants, one owner each (a user may sign up only a few tenants a day); the second creates the
    keys, its quota raised in account's tenant row (no API raises a quota past the enterprise preset)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.gateway_port}", timeout=10) as http:
        made = [await new_tenant(http, running.work, f"bench-writer-{i}") for i in range(WRITERS)]
    conn = await asyncpg.connect(account_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("UPDATE tenant SET max_api_keys = $1 WHERE id = $2", KEY_QUOTA, made[1][0])
    finally:
        await conn.close()
    return Writers([t for t, _ in made], [token for _, token in made])


async def check(target: Grpc) -> None:
    """The call answers OK over the same path h2load takes (h2load counts HTTP statuses, not grpc-status)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{target.port}") as channel:
        call = channel.unary_unary(target.method)
        await call(target.body, metadata=target.metadata, timeout=10, wait_for_ready=True)


async def check_rest(gateway: int, targets: dict[str, tuple[str, Rest]]) -> None:
    """Each read answers 200 and each write 2xx once, as wrk will send them."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway}", timeout=10) as http:
        for label, target in targets.values():
            if target.body:
                body = target.body.replace("%s", f"check-{uuid.uuid4().hex[:8]}")
                headers = {target.header: target.values[0], "content-type": "application/json"}
                reply = await http.post(target.path, content=body, headers=headers)
            else:
                reply = await http.get(target.path, headers=target.headers)
            assert reply.is_success, f"{label}: {reply.status_code} {reply.text}"


def python_targets(
    running: Running, plain: int, miss: int, owner: tuple[tuple[str, str], ...], secret: str
) -> dict[str, tuple[str, Callable[[int], object]]]:
    """The direct rows from this process's grpc.aio client: one channel each, as a service's peer has."""
    made = grpc.aio.insecure_channel(f"127.0.0.1:{plain}")
    running.channels.append(made)
    empty_call = made.unary_unary(empty.METHOD)
    account = running.channel(running.ports["account"])
    health = account.unary_unary(HEALTH)
    list_projects = account.unary_unary(LIST_PROJECTS)
    hit = running.channel(running.ports["api_keys"], "onboarding").unary_unary(VERIFY)
    missed = running.channel(miss, "onboarding").unary_unary(VERIFY)
    listing = account_rpc.ListProjectsRequest().SerializeToString()
    verify = keys_rpc.VerifyApiKeyRequest(secret=secret).SerializeToString()
    onboarding = service_metadata("onboarding")
    return {
        "py E": ("1 empty grpc.aio RPC, plaintext (client-bound)", lambda i: empty_call(b"", timeout=10)),
        "py health": (
            "1 Health/Check to account, mTLS (client-bound)",
            lambda i: health(health_pb2.HealthCheckRequest().SerializeToString(), timeout=10),
        ),
        "py list": (
            "1 ListProjects to account, mTLS (client-bound)",
            lambda i: list_projects(listing, metadata=owner, timeout=10),
        ),
        "py hit": (
            "1 VerifyApiKey, warm cache, mTLS (client-bound)",
            lambda i: hit(verify, metadata=onboarding, timeout=10),
        ),
        "py miss": (
            "1 VerifyApiKey, cache miss, mTLS (client-bound)",
            lambda i: missed(verify, metadata=onboarding, timeout=10),
        ),
    }
