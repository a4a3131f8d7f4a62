"""A stack of real processes for the fault tests: every service as its own `python -m services.<svc>`
(started with cli/stack's helpers, as `aos up` does) behind a real Envoy, so one of them can be SIGKILLed
or stopped and restarted on the same port while the others and the gateway keep running."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli import devauth, stack
from tests.conftest import Gateway, pki


class ProcessStack:
    def __init__(self, pg_base: str, data: Path, prefix: str = "pf") -> None:
        self.data, self.logs = data, data / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.urls = stack.prepare_databases(pg_base, f"t{os.getpid()}_{prefix}_", fresh=True)
        self.ports = {svc: stack.free_port() for svc in self.urls}
        self.peers = {svc: stack.peer_address([port]) for svc, port in self.ports.items()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.envoy: subprocess.Popen[bytes] | None = None
        self.gateway_port = stack.free_port()

    def start(self, svc: str) -> None:
        proc = stack.start_service(svc, self.urls[svc], self.ports[svc], self.peers, self.logs / f"{svc}.log", pki())
        self.procs[svc] = proc
        stack.wait_for_port(self.ports[svc], proc)

    def start_all(self) -> None:
        for svc in self.urls:
            self.procs[svc] = stack.start_service(
                svc, self.urls[svc], self.ports[svc], self.peers, self.logs / f"{svc}.log", pki()
            )
        for svc, proc in self.procs.items():
            stack.wait_for_port(self.ports[svc], proc)
        jwks = devauth.ensure_keys(self.data)
        cfg = stack.envoy_config(self.data / "run", dict(self.ports), self.gateway_port, jwks, pki())
        self.envoy = stack.start_envoy(cfg, self.logs / "envoy.log")
        stack.wait_for_port(self.gateway_port, self.envoy)

    def kill(self, svc: str) -> None:
        """SIGKILL: no graceful shutdown, no goodbye to anyone."""
        proc = self.procs.pop(svc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        stack.stop([*self.procs.values(), *([self.envoy] if self.envoy else [])])

    @property
    def gateway(self) -> Gateway:
        return Gateway(f"http://127.0.0.1:{self.gateway_port}", self.data)


@pytest.fixture(scope="package")
def procs(pg_base: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    made = ProcessStack(pg_base, tmp_path_factory.mktemp("faults"))
    try:
        made.start_all()
        yield made
    finally:
        made.stop_all()


async def signup(http: httpx.AsyncClient, gateway: Gateway, name: str) -> tuple[str, dict[str, str]]:
    user = f"{name}-{time.monotonic_ns()}"
    reply = await http.post("/v1/tenants", json={"name": name}, headers=gateway.token(user))
    assert reply.status_code == 201, reply.text
    tenant = reply.json()["tenant"]["tenant_id"]
    return tenant, gateway.token(user, tenant=tenant)
