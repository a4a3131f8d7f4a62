"""Scenario 6: the live-runs first page (ListLiveRuns, limit 50) of a tenant with 1,000 LIVE runs, in a run
table of 1,000,000 runs across 10,000 tenants vs a table holding only those 1,000 runs (MONITORING.md
section 11, target <= 1.5x). Measured three ways, each against its own baseline in the same run:

  - native gRPC straight to each monitoring (mutual TLS), from the Python client (h2load presents no
    client certificate, so it cannot reach a service port);
  - native gRPC through Envoy and the gate with an API key, driven by h2load;
  - GET /activity/live through Envoy and the gate, driven by wrk.

The baseline's monitoring runs on the small table; a second Envoy routes monitoring to it (everything else
to the same services), so both sides pass the same gate."""

from __future__ import annotations

import asyncio
import re
import statistics
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import httpx

from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from aos.monitoring.v1 import monitoring_service_pb2_grpc
from bench.common import Running, Tenant, measure, row
from bench.keyset import human
from cli import devauth, stack

RUNS = 1000  # the listed tenant's runs, all LIVE
LIST = "/aos.monitoring.v1.ActivityService/ListLiveRuns"
Result = tuple[float, float, float]  # RPC/s, p50 ms, p99 ms

# One set-based statement fills a table: the tenant's runs first (i <= $2, all LIVE), then the others spread
# over $3 tenants, one in ten LIVE and the rest COMPLETED, started a second apart.
INSERT = """
INSERT INTO run (run_id, tenant_id, agent_id, actor_type, origin_system_id, goal, status, state, source,
                 provider_type, risk_level, risk_type, policy_context, started_at, last_seen_at, completed_at,
                 duration_ms, latency_bucket, evidence_health)
SELECT gen_random_uuid(), CASE WHEN i <= $2 THEN $1 ELSE 'bench-tenant-' || (i % $3) END, 'agent-' || (i % 50),
       'SERVICE', 'sdk:aos_bench', 'bench', CASE WHEN live THEN 'running' ELSE 'succeeded' END,
       CASE WHEN live THEN 'LIVE' ELSE 'COMPLETED' END, 'sdk', 'openai', 'NORMAL', 'COST', '{}'::jsonb, t, t,
       CASE WHEN live THEN NULL ELSE t + interval '2 seconds' END, CASE WHEN live THEN NULL ELSE 2000 END,
       CASE WHEN live THEN NULL ELSE 'OK' END, CASE WHEN live THEN NULL ELSE 'MISSING' END
FROM (SELECT i, i <= $2 OR i % 10 = 0 AS live, now() - make_interval(secs => i) AS t
      FROM generate_series(1, $4) AS i) AS g
"""


@dataclass(frozen=True)
class Tables:
    total: int  # runs in the big table
    tenants: int

    @classmethod
    def at_scale(cls, scale: float) -> Tables:
        return cls(int(1_000_000 * scale), int(10_000 * scale))

    @property
    def size(self) -> str:
        return f"{self.total / 1e6:g}M runs" if self.total >= 1e6 else f"{self.total:,} runs"


async def load(tables: Tables, tenant: str, big: str, small: str) -> None:
    """Fills monitoring's run table at `big` and at `small` (database URLs) for `tenant`."""
    started = time.monotonic()
    await asyncio.gather(fill(big, tenant, tables.total, tables.tenants), fill(small, tenant, RUNS, 1))
    print(
        f"# scenario 6: {tables.total:,} runs across {tables.tenants:,} tenants"
        f" loaded in {time.monotonic() - started:.0f} s"
    )


async def fill(url: str, tenant: str, total: int, tenants: int) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(INSERT, tenant, RUNS, max(tenants - 1, 1), total)
        await conn.execute("VACUUM ANALYZE run")  # as autovacuum would after a bulk load
    finally:
        await conn.close()


async def complete(running: Running, tenant: str) -> None:
    """The customer's reads open at COMPLETE: an operator forces it, and the gate's cache (1 s) moves on."""
    founder = devauth.mint(running.work, user="bench-founder", email="f@bench.test", operator=True)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.gateway_port}", timeout=10) as http:
        body = {"tenant_id": tenant, "reason": "bench: live-runs reads"}
        done = await http.post(
            "/fdr/onboarding/force-complete", json=body, headers={"authorization": f"Bearer {founder}"}
        )
        assert done.status_code == 200, done.text
    await asyncio.sleep(1.5)


async def small_side(running: Running, small_url: str) -> tuple[int, int]:
    """A monitoring on the small table and an Envoy routing monitoring to it: (service port, gateway port)."""
    port = running.spawn("monitoring", small_url, stack.free_port(), {}, "small-monitoring.log")
    gateway = stack.free_port()
    cfg = stack.envoy_config(
        running.work / "run-small",
        running.ports | {"monitoring": port},
        gateway,
        devauth.ensure_keys(running.work),
        running.tls_dir,
    )
    running._started(stack.start_envoy(cfg, running.work / "envoy-small.log"), gateway)
    await running.ready()
    return port, gateway


async def run(
    running: Running, tenant: Tenant, small_url: str, tables: Tables, conc: int, seconds: float, rounds: int
) -> None:
    await complete(running, tenant.id)
    small_port, small_gateway = await small_side(running, small_url)
    gateways = {"small": small_gateway, "big": running.gateway_port}
    for gateway in gateways.values():  # each side answers the tenant's 1,000 runs, as a customer sees them
        await check(gateway, tenant.key)

    owner = human(tenant.id, "bench-lister")
    stubs = {
        "small": monitoring_service_pb2_grpc.ActivityServiceStub(running.channel(small_port)),
        "big": monitoring_service_pb2_grpc.ActivityServiceStub(running.channel(running.ports["monitoring"])),
    }
    request = rpc.ListLiveRunsRequest()
    best = await measure(
        {side: (lambda i, s=stub: s.ListLiveRuns(request, metadata=owner, timeout=10)) for side, stub in stubs.items()},
        conc,
        seconds,
        rounds,
    )
    tools: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="aos-bench-h2load-") as tmp:
        body = Path(tmp) / "request.bin"
        body.write_bytes(b"\x00" + struct.pack(">I", 0))  # a gRPC frame of the empty request (limit 50)
        for _ in range(rounds):  # interleaved, as measure() does
            for side, gateway in gateways.items():
                keep(tools, f"h2load {side}", await asyncio.to_thread(h2load, gateway, tenant.key, body, conc, seconds))
                keep(tools, f"wrk {side}", await asyncio.to_thread(wrk, gateway, tenant.key, conc, seconds))
    for label, small, large in [
        ("6 ListLiveRuns p1, direct (py)", best["small"], best["big"]),
        ("6 ListLiveRuns p1, h2load+Envoy", tools["h2load small"], tools["h2load big"]),
        ("6 GET /activity/live, wrk+Envoy", tools["wrk small"], tools["wrk big"]),
    ]:
        row(f"{label}, 1,000 runs", conc, small, None)
        row(f"{label}, {tables.size}", conc, large, large[1] / small[1], "<= 1.5")


def keep(best: dict[str, Result], label: str, result: Result) -> None:
    if label not in best or result[1] < best[label][1]:
        best[label] = result


async def check(gateway: int, key: str) -> None:
    """Both gateways answer the gRPC call and the REST one with the tenant's runs, so the load tools (which
    count HTTP statuses only, not grpc-status) measure real answers."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway}") as channel:
        stub = monitoring_service_pb2_grpc.ActivityServiceStub(channel)
        page = await stub.ListLiveRuns(rpc.ListLiveRunsRequest(), metadata=(("x-aos-key", key),), timeout=10)
    assert (page.total, len(page.items)) == (RUNS, 50), (page.total, len(page.items))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway}", timeout=10) as http:
        live = await http.get("/activity/live", headers={"x-aos-key": key})
    assert live.status_code == 200 and live.json()["total"] == RUNS, live.text


def h2load(gateway: int, key: str, body: Path, conc: int, seconds: float) -> Result:
    """gRPC through Envoy: one stream per client connection; latencies from h2load's per-request log."""
    log = body.with_name(f"h2load-{gateway}.log")
    log.unlink(missing_ok=True)
    duration = f"{round(seconds * 1000)}ms"
    args = ["h2load", "-c", str(conc), "-m", "1", "-D", duration, "--warm-up-time", "500ms", "-d", str(body)]
    for header in ("content-type: application/grpc", "te: trailers", f"x-aos-key: {key}"):
        args += ["-H", header]
    args += [f"--log-file={log}", f"http://127.0.0.1:{gateway}{LIST}"]
    finished = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    out = finished.stdout
    assert finished.returncode == 0, out + finished.stderr
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    assert counts and int(counts[1]) > 0 and counts[1] == counts[2], out
    micros = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.strip())
    q = statistics.quantiles(micros, n=100)
    rate = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)[1])  # type: ignore[index]
    return rate, q[49] / 1000, q[98] / 1000


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk(gateway: int, key: str, conc: int, seconds: float) -> Result:
    """REST through Envoy (HTTP/1.1 keep-alive); wrk's own latency distribution."""
    args = [
        "wrk",
        "-t",
        "2",
        "-c",
        str(conc),
        "-d",
        f"{max(round(seconds), 1)}s",
        "--latency",
        "--timeout",
        "10s",
        "-H",
        f"X-AOS-Key: {key}",
    ]
    out = subprocess.run(
        [*args, f"http://127.0.0.1:{gateway}/activity/live"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    assert "Non-2xx" not in out and "timeout" not in out, out

    def percentile(p: str) -> float:
        found = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        assert found, out
        return float(found[1]) * UNITS[found[2]]

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    return rate, percentile("50"), percentile("99")
