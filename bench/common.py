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

from bench.verify_bench import drive
from cli import devauth, stack

Call = Callable[[int], Awaitable[object]]
HEADER = f"{'scenario':<44}{'conc':>5}{'RPC/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}  target"
SCOPES = ["keys:read", "run:*", "read:*"]


def row(label: str, conc: int, result: tuple[float, float, float], ratio: float | None, target: str = "") -> None:
    rate, p50, p99 = result
    shown = f"{ratio:>8.2f}" if ratio is not None else f"{'(base)':>8}"
    print(f"{label:<44}{conc:>5}{rate:>9.0f}{p50:>9.2f}{p99:>9.2f}{shown}  {target}", flush=True)


async def measure(calls: dict[str, Call], concurrency: int, seconds: float, rounds: int) -> dict[str, tuple]:
    """Best of `rounds`, rounds interleaved across targets so that each ratio compares equal load."""
    best: dict[str, tuple[float, float, float]] = {}
    for _ in range(rounds):
        for label, call in calls.items():
            result = await drive(call, concurrency, seconds)
            if label not in best or result[1] < best[label][1]:
                best[label] = result
    return best


@dataclass
class Running:
    """Every service as its own process, a second api_keys on the small table, Envoy in front, and the
    channels opened to them; `close` ends them all."""

    work: Path
    ports: dict[str, int] = field(default_factory=dict)
    small_port: int = 0
    gateway_port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    starting: list[tuple[subprocess.Popen[bytes], int]] = field(default_factory=list)

    async def start(self, urls: dict[str, str], small: str) -> None:
        self.ports = {svc: stack.free_port() for svc in urls}
        peers = {svc: f"127.0.0.1:{p}" for svc, p in self.ports.items()}
        os.environ.update({f"{svc.upper()}_LOG_LEVEL": "WARNING" for svc in [*urls, "api_keys"]})
        for svc, url in urls.items():
            self.spawn(svc, url, self.ports[svc], peers, f"{svc}.log")
        self.small_port = self.spawn("api_keys", small, stack.free_port(), {}, "small.log")
        self.gateway_port = stack.free_port()
        cfg = stack.envoy_config(self.work / "run", self.ports, self.gateway_port, devauth.ensure_keys(self.work))
        self._started(stack.start_envoy(cfg, self.work / "envoy.log"), self.gateway_port)
        await self.ready()

    def spawn(self, svc: str, url: str, port: int, peers: dict[str, str], log: str) -> int:
        self._started(stack.start_service(svc, url, port, peers, self.work / log), port)
        return port

    def _started(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.procs.append(proc)
        self.starting.append((proc, port))

    async def ready(self) -> None:
        """Every process started since the last call listens."""
        for proc, port in self.starting:
            await asyncio.to_thread(stack.wait_for_port, port, proc)
        self.starting.clear()
        await asyncio.sleep(1.0)  # peers connect, the gateway's health checks pass

    def channel(self, port: int) -> grpc.aio.Channel:
        made = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
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


async def sign_up(running: Running) -> Tenant:
    """A tenant with a project and an API key, made through the gateway as a user would."""
    user = "bench-owner"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.gateway_port}", timeout=10) as http:
        signup = await http.post(
            "/v1/tenants",
            json={"name": "Bench"},
            headers={"authorization": "Bearer " + devauth.mint(running.work, user=user, email="o@bench.test")},
        )
        tenant = signup.json()["tenant"]["tenant_id"]
        token = devauth.mint(running.work, user=user, email="o@bench.test", org=tenant)
        jwt = {"authorization": "Bearer " + token}
        assert (await http.post("/accounts/projects", json={"name": "p"}, headers=jwt)).status_code == 201
        made = (await http.post("/tenant/api-keys", json={"name": "bench", "permissions": SCOPES}, headers=jwt)).json()
    return Tenant(tenant, made["id"], made["key"])
