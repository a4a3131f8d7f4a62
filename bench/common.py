"""What the scenarios of bench/run.py share: the table's rows, best-of-rounds measurement, and the running
services with a tenant that holds an API key."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

from bench.tools import Result, drive
from cli import devauth, devtls, stack
from services.common import tls

ROOT = Path(__file__).resolve().parent.parent
Call = Callable[[int], Awaitable[object]]
HEADER = f"{'scenario':<50}{'by':>7}{'conc':>5}{'RPC/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>7}  {'vs':<6}  target"
SCOPES = ["keys:read", "run:*", "read:*"]


def row(
    label: str, conc: int, result: Result, ratio: float | None, target: str = "", by: str = "py", vs: str = "p50"
) -> None:
    """One line of the table. `by`: the client (h2load, wrk, or py: this process's own, client-bound);
    `vs`: which baseline the ratio is taken against (see run.py's docstring); no ratio marks a baseline."""
    rate, p50, p99, failed = result
    if ratio is not None:
        shown = f"{ratio:>7.2f}  {vs:<6}"
    else:  # a baseline, or a row whose baseline was skipped (its tool is missing)
        shown = f"{'(base)':>7}  {'':<6}" if vs in ("", "p50") else f"{'-':>7}  {vs:<6}"
    note = f"  ({failed} requests failed)" if failed else ""
    print(f"{label:<50}{by:>7}{conc:>5}{rate:>8.0f}{p50:>9.2f}{p99:>9.2f}{shown}  {target}{note}".rstrip(), flush=True)


def skipped(label: str, note: str) -> None:
    print(f"{label:<50}  skipped: {note}", flush=True)


async def measure(calls: dict[str, Call], concurrency: int, seconds: float, rounds: int) -> dict[str, Result]:
    """Best of `rounds` (lowest p50), rounds interleaved across targets so that each ratio compares equal load."""
    best: dict[str, Result] = {}
    for _ in range(rounds):
        for label, call in calls.items():
            result = await drive(call, concurrency, seconds)
            if label not in best or result[1] < best[label][1]:
                best[label] = result
    return best


@dataclass
class Running:
    """Every service as its own process (mutual TLS, certificates of a dev CA under `work`), a second api_keys
    on the small table, Envoy in front, and the channels opened to them; `close` ends them all."""

    work: Path
    tls_dir: Path = Path()
    urls: dict[str, str] = field(default_factory=dict)  # each service's database
    ports: dict[str, int] = field(default_factory=dict)
    small_port: int = 0
    gateway_port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    starting: list[tuple[subprocess.Popen[bytes], int]] = field(default_factory=list)

    async def start(self, urls: dict[str, str], small: str) -> None:
        self.tls_dir = stack.pki(self.work)
        self.urls = urls
        self.ports = {svc: stack.free_port() for svc in urls}
        peers = {svc: f"127.0.0.1:{p}" for svc, p in self.ports.items()}
        os.environ.update({f"{svc.upper()}_LOG_LEVEL": "WARNING" for svc in [*urls, "api_keys"]})
        for svc, url in urls.items():
            self.spawn(svc, url, self.ports[svc], peers, f"{svc}.log")
        self.small_port = self.spawn("api_keys", small, stack.free_port(), {}, "small.log")
        self.gateway_port = stack.free_port()
        jwks = devauth.ensure_keys(self.work)
        cfg = stack.envoy_config(self.work / "run", self.ports, self.gateway_port, jwks, self.tls_dir)
        self._started(stack.start_envoy(cfg, self.work / "envoy.log"), self.gateway_port)
        await self.ready()

    def spawn(self, svc: str, url: str, port: int, peers: dict[str, str], log: str) -> int:
        self._started(stack.start_service(svc, url, port, peers, self.work / log, self.tls_dir), port)
        return port

    def process(self, args: list[str], env: dict[str, str], port: int, log: str) -> int:
        """Any other process of the bench (an empty RPC server, a differently configured service)."""
        with (self.work / log).open("ab") as out:
            proc = subprocess.Popen(args, cwd=ROOT, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT)
        self._started(proc, port)
        return port

    def _started(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.procs.append(proc)
        self.starting.append((proc, port))

    async def ready(self) -> None:
        """Every process started since the last call listens."""
        for proc, port in self.starting:
            await asyncio.to_thread(stack.wait_for_port, port, proc, 120)  # a busy machine starts slowly
        self.starting.clear()
        await asyncio.sleep(1.0)  # peers connect, the gateway's health checks pass

    def channel(self, port: int, identity: str = tls.GATEWAY) -> grpc.aio.Channel:
        """To a service, presenting `identity`'s certificate (the gateway's: customer metadata)."""
        credentials = devtls.identity(self.tls_dir, identity).channel_credentials()
        made = grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials)
        self.channels.append(made)
        return made

    async def close(self) -> None:
        for made in self.channels:
            await made.close()
        stack.stop(self.procs)


@dataclass(frozen=True)
class Tenant:
    id: str
    key_id: str
    key: str
    token: str  # its owner's bearer token


async def new_tenant(http: httpx.AsyncClient, work: Path, user: str) -> tuple[str, str]:
    """A tenant signed up by `user` through the gateway: (its id, its owner's bearer token)."""
    signup = await http.post(
        "/v1/tenants",
        json={"name": f"Bench {user}"},
        headers={"authorization": "Bearer " + devauth.mint(work, user=user, email=f"{user}@bench.test")},
    )
    assert signup.status_code in (200, 201), signup.text
    tenant = signup.json()["tenant"]["tenant_id"]
    return tenant, devauth.mint(work, user=user, email=f"{user}@bench.test", org=tenant)


async def sign_up(running: Running) -> Tenant:
    """A tenant with a project and an API key, made through the gateway as a user would."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.gateway_port}", timeout=10) as http:
        tenant, token = await new_tenant(http, running.work, "bench-owner")
        jwt = {"authorization": "Bearer " + token}
        assert (await http.post("/accounts/projects", json={"name": "p"}, headers=jwt)).status_code == 201
        made = (await http.post("/tenant/api-keys", json={"name": "bench", "permissions": SCOPES}, headers=jwt)).json()
    return Tenant(tenant, made["id"], made["key"], token)
