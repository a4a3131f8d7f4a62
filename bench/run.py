"""`make bench`: every benchmark scenario on the embedded default, bounded in time, loopback only.

Starts an embedded PostgreSQL, migrates one database per service, runs every service as its own process
(`python -m services.<svc>`) behind a real Envoy, and prints one table: RPC/s, p50, p99 and the ratio to
a baseline measured in the same run, under the same load.

  1. VerifyApiKey over gRPC, warm cache and cache miss, vs an empty grpc.aio RPC (bench/verify_bench.py);
     ratio = throughput / baseline throughput.
  2. A gated REST read through Envoy (GET /api-keys with an API key) and the same call as native gRPC
     through Envoy, vs ListApiKeys over native gRPC straight to api_keys; ratio = throughput / baseline.
  3. Activation evaluation (what finalize runs: three evidence RPCs at once) vs the slowest single
     evidence RPC, at concurrency 1; ratio = p50 / baseline p50 (target <= 1.3).
  4. ListApiKeys, first and 100th page (page size 10) of a tenant's 1,000 keys, in a table of 1,000,000
     keys across 10,000 tenants vs a table holding only those 1,000 keys; ratio = p50 / baseline p50
     (target <= 1.5). `--scale 0.1` loads 100,000 keys across 1,000 tenants instead.

    .venv/bin/python bench/run.py [--seconds 3] [--concurrency 16] [--scale 1] [--skip 1] [--load]

`--load` also runs the long form of the load test (200 clients for 60 s) after the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import grpc
import httpx
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "protos")]

from aos.account.v1 import account_service_pb2 as account_rpc  # noqa: E402
from aos.account.v1 import account_service_pb2_grpc  # noqa: E402
from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc  # noqa: E402
from aos.api_keys.v1 import api_keys_service_pb2_grpc  # noqa: E402
from aos.integrations.v1 import integrations_service_pb2 as integrations_rpc  # noqa: E402
from aos.integrations.v1 import integrations_service_pb2_grpc  # noqa: E402
from aos.onboarding.v1 import onboarding_service_pb2 as onboarding_rpc  # noqa: E402
from aos.onboarding.v1 import onboarding_service_pb2_grpc  # noqa: E402
from bench.verify_bench import drive  # noqa: E402
from cli import devauth, stack  # noqa: E402
from services.common.principal import service_metadata  # noqa: E402

Call = Callable[[int], Awaitable[object]]
HEADER = f"{'scenario':<44}{'conc':>5}{'RPC/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}  target"
SCOPES = ["keys:read", "run:*", "read:*"]
LATENCY = 0.010  # scenario 3's second run: added one-way delay between onboarding and each source
PAGE = 10  # keys per ListApiKeys page in scenario 4: the 100th page of 1,000 keys is the last


def row(label: str, conc: int, result: tuple[float, float, float], ratio: float | None, target: str = "") -> None:
    rate, p50, p99 = result
    shown = f"{ratio:>8.2f}" if ratio is not None else f"{'(base)':>8}"
    print(f"{label:<44}{conc:>5}{rate:>9.0f}{p50:>9.2f}{p99:>9.2f}{shown}  {target}", flush=True)


def human(tenant: str, user: str) -> tuple[tuple[str, str], ...]:
    return (
        ("x-aos-actor-type", "human"),
        ("x-aos-actor-id", user),
        ("x-aos-email", f"{user}@bench.test"),
        ("x-aos-email-verified", "true"),
        ("x-aos-tenant-id", tenant),
        ("x-aos-role", "owner"),
    )


def scenario_verify(seconds: float, concurrency: int) -> None:
    """Scenario 1 is bench/verify_bench.py (its own PostgreSQL and processes); its rows at `concurrency`."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "verify_bench.py"), "--seconds", str(seconds), "--rounds", "1"],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    for line in out.splitlines()[1:]:
        label, conc, rate, p50, p99, ratio = line[:22].strip(), *line[22:].split()
        if int(conc) == concurrency:
            base = label == "empty RPC"
            print(
                f"{'1 ' + ('empty grpc.aio RPC' if base else 'VerifyApiKey, ' + label.removeprefix('verify, ')):<44}"
                f"{conc:>5}{float(rate):>9.0f}{float(p50):>9.2f}{float(p99):>9.2f}"
                f"{'(base)' if base else ratio:>8}",
                flush=True,
            )


async def measure(calls: dict[str, Call], concurrency: int, seconds: float, rounds: int) -> dict[str, tuple]:
    """Best of `rounds`, rounds interleaved across targets so that each ratio compares equal load."""
    best: dict[str, tuple[float, float, float]] = {}
    for _ in range(rounds):
        for label, call in calls.items():
            result = await drive(call, concurrency, seconds)
            if label not in best or result[1] < best[label][1]:
                best[label] = result
    return best


async def bulk_load(url: str, tenant: str, total: int, tenants: int) -> None:
    """`total` keys straight into api_key with generate_series: 1,000 for `tenant`, the rest spread evenly
    over `tenants - 1` others. Hashes are unique (the unique index is real), secrets are never needed."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    insert = (
        "INSERT INTO api_key (id, tenant_id, created_by, name, key_prefix, key_hash, permissions, allowed_workers,"
        " status, created_at) SELECT {id}, {tenant}, 'bench', 'k', 'aos_bench', md5({seed}) || md5('x' || {seed}),"
        " '[\"read:*\"]', '[]', 'active', now() - make_interval(secs => i) FROM generate_series(1, $1) AS i"
    )
    try:
        await conn.execute(insert.format(id="'b-' || i", tenant=f"'{tenant}'", seed="'b' || i"), 1000)
        others = total - 1000
        if others > 0:
            await conn.execute(
                insert.format(
                    id="'o-' || i", tenant=f"'bench-tenant-' || (i % {max(tenants - 1, 1)})", seed="'o' || i"
                ),
                others,
            )
        await conn.execute("VACUUM ANALYZE api_key")  # as autovacuum would after a bulk load
    finally:
        await conn.close()


class DelayProxy:
    """A loopback TCP proxy that delivers every chunk `delay` seconds after it arrived (order kept)."""

    def __init__(self, upstream: int, delay: float) -> None:
        self.upstream, self.delay, self.port = upstream, delay, 0

    async def start(self) -> None:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while data := await reader.read(65536):
            loop.call_later(self.delay, writer.write, data)
        loop.call_later(self.delay, writer.close)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError, OSError):  # the bench ends with connections open
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))


async def scenario_activation(
    tenant: str,
    ports: dict[str, int],
    onboarding_port: int,
    suffix: str,
    channel: Callable[[int], grpc.aio.Channel],
    seconds: float,
    rounds: int,
) -> None:
    """Scenario 3: EvaluateActivation vs each evidence RPC it makes, asked from here over the same path."""
    md = service_metadata("onboarding", tenant)
    onboarding = onboarding_service_pb2_grpc.OnboardingServiceStub(channel(onboarding_port))
    account = account_service_pb2_grpc.AccountServiceStub(channel(ports["account"]))
    keys_stub = api_keys_service_pb2_grpc.ApiKeysServiceStub(channel(ports["api_keys"]))
    integrations = integrations_service_pb2_grpc.IntegrationsServiceStub(channel(ports["integrations"]))
    sources: dict[str, Call] = {
        "account": lambda i: account.GetActivationEvidence(
            account_rpc.GetActivationEvidenceRequest(tenant_id=tenant), metadata=md, timeout=10
        ),
        "api_keys": lambda i: keys_stub.GetActivationEvidence(
            keys_rpc.GetActivationEvidenceRequest(tenant_id=tenant), metadata=md, timeout=10
        ),
        "integrations": lambda i: integrations.GetActivationEvidence(
            integrations_rpc.GetActivationEvidenceRequest(tenant_id=tenant), metadata=md, timeout=10
        ),
    }
    evaluate = onboarding_rpc.EvaluateActivationRequest(tenant_id=tenant)

    async def in_sequence(i: int) -> None:
        for source in sources.values():
            await source(i)

    async def at_once(i: int) -> None:
        await asyncio.gather(*(source(i) for source in sources.values()))

    calls = {
        **sources,
        "sequence": in_sequence,
        "at once": at_once,
        "evaluate": lambda i: onboarding.EvaluateActivation(evaluate, metadata=md, timeout=10),
    }
    best = await measure(calls, 1, seconds, rounds)
    slowest = max(sources, key=lambda s: best[s][1])
    for source in sources:
        row(
            f"3 evidence {source}{suffix}{' (slowest)' if source == slowest else ''}",
            1,
            best[source],
            None if source == slowest else best[source][1] / best[slowest][1],
        )
    for label, name in (("in sequence", "sequence"), ("at once", "at once")):
        row(f"3 the 3 evidence RPCs {label}{suffix}", 1, best[name], best[name][1] / best[slowest][1])
    row(f"3 EvaluateActivation{suffix}", 1, best["evaluate"], best["evaluate"][1] / best[slowest][1], "<= 1.3")


async def main(options: argparse.Namespace) -> None:
    seconds, conc, rounds = options.seconds, options.concurrency, options.rounds
    print(
        f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start;"
        f" {seconds:g} s per run, best of {rounds}"
    )
    print(HEADER)
    if 1 not in options.skip:
        await asyncio.to_thread(scenario_verify, seconds, conc)

    work = Path(tempfile.mkdtemp(prefix="aos-bench-"))
    pg = stack.embedded_postgres(work)
    procs: list[subprocess.Popen[bytes]] = []
    channels: list[grpc.aio.Channel] = []
    try:
        urls = await asyncio.to_thread(stack.prepare_databases, pg.get_uri(), "bench_", True)
        small = (await asyncio.to_thread(stack.prepare_databases, pg.get_uri(), "benchsmall_", True))["api_keys"]
        big_tenant = str(uuid.uuid4())
        total, tenants = int(1_000_000 * options.scale), int(10_000 * options.scale)
        started = time.monotonic()
        if 4 not in options.skip:
            await asyncio.gather(
                bulk_load(urls["api_keys"], big_tenant, total, tenants), bulk_load(small, big_tenant, 1000, 1)
            )
            print(
                f"# scenario 4: {total:,} keys across {tenants:,} tenants loaded in {time.monotonic() - started:.0f} s"
            )

        ports = {svc: stack.free_port() for svc in urls}
        peers = {svc: f"127.0.0.1:{p}" for svc, p in ports.items()}
        quiet = {f"{svc.upper()}_LOG_LEVEL": "WARNING" for svc in [*urls, "api_keys"]}
        os.environ.update(quiet)
        for svc, url in urls.items():
            procs.append(stack.start_service(svc, url, ports[svc], peers, work / f"{svc}.log"))
        small_port = stack.free_port()
        procs.append(stack.start_service("api_keys", small, small_port, {}, work / "small.log"))
        gateway_port = stack.free_port()
        cfg = stack.envoy_config(work / "run", ports, gateway_port, devauth.ensure_keys(work))
        procs.append(stack.start_envoy(cfg, work / "envoy.log"))
        for proc, port in zip(procs, [*ports.values(), small_port, gateway_port], strict=True):
            await asyncio.to_thread(stack.wait_for_port, port, proc)
        await asyncio.sleep(1.0)  # peers connect, the gateway's health checks pass

        def channel(port: int) -> grpc.aio.Channel:
            made = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            channels.append(made)
            return made

        # A tenant with a project and an API key, made through the gateway as a user would.
        user = "bench-owner"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway_port}", timeout=10) as http:
            signup = await http.post(
                "/v1/tenants",
                json={"name": "Bench"},
                headers={"authorization": "Bearer " + devauth.mint(work, user=user, email="o@bench.test")},
            )
            tenant = signup.json()["tenant"]["tenant_id"]
            jwt = {"authorization": "Bearer " + devauth.mint(work, user=user, email="o@bench.test", tenant=tenant)}
            assert (await http.post("/accounts/projects", json={"name": "p"}, headers=jwt)).status_code == 201
            made = (
                await http.post("/tenant/api-keys", json={"name": "bench", "permissions": SCOPES}, headers=jwt)
            ).json()
        key_md = (
            ("x-aos-actor-type", "api_key"),
            ("x-aos-actor-id", made["id"]),
            ("x-aos-tenant-id", tenant),
            ("x-aos-scopes", ",".join(SCOPES)),
        )

        if 2 not in options.skip:
            direct = api_keys_service_pb2_grpc.ApiKeysServiceStub(channel(ports["api_keys"]))
            via_envoy = api_keys_service_pb2_grpc.ApiKeysServiceStub(channel(gateway_port))
            listing = keys_rpc.ListApiKeysRequest()
            limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{gateway_port}", timeout=10, limits=limits
            ) as http:
                rest = {"x-aos-key": made["key"]}

                async def rest_call(i: int) -> object:
                    reply = await http.get("/api-keys", headers=rest)
                    assert reply.status_code == 200, reply.text
                    return reply

                calls: dict[str, Call] = {
                    "base": lambda i: direct.ListApiKeys(listing, metadata=key_md, timeout=10),
                    "grpc": lambda i: via_envoy.ListApiKeys(
                        listing, metadata=(("x-aos-key", made["key"]),), timeout=10
                    ),
                    "rest": rest_call,
                }
                best = await measure(calls, conc, seconds, rounds)
            base = best["base"][0]
            row("2 ListApiKeys, native gRPC to api_keys", conc, best["base"], None)
            row("2 ListApiKeys, gRPC via Envoy + gate", conc, best["grpc"], best["grpc"][0] / base)
            row("2 GET /api-keys, REST via Envoy + gate", conc, best["rest"], best["rest"][0] / base)

        if 3 not in options.skip:
            await scenario_activation(tenant, ports, ports["onboarding"], "", channel, seconds, rounds)
            # The same with LATENCY of network between onboarding and each source (a delaying proxy in
            # front of each, for a second onboarding process): concurrent asks cost one latency, not three.
            proxies = {svc: DelayProxy(ports[svc], LATENCY) for svc in ("account", "api_keys", "integrations")}
            for proxy in proxies.values():
                await proxy.start()
            proxied = {svc: proxy.port for svc, proxy in proxies.items()}
            second = stack.free_port()
            procs.append(
                stack.start_service(
                    "onboarding",
                    urls["onboarding"],
                    second,
                    {svc: f"127.0.0.1:{p}" for svc, p in proxied.items()},
                    work / "onboarding-2.log",
                )
            )
            await asyncio.to_thread(stack.wait_for_port, second, procs[-1])
            await asyncio.sleep(1.0)
            await scenario_activation(
                tenant, proxied, second, f", +{LATENCY * 1000:g} ms net", channel, seconds, rounds
            )

        if 4 not in options.skip:
            owner = human(big_tenant, "bench-lister")
            big = api_keys_service_pb2_grpc.ApiKeysServiceStub(channel(ports["api_keys"]))
            little = api_keys_service_pb2_grpc.ApiKeysServiceStub(channel(small_port))

            async def hundredth(stub: api_keys_service_pb2_grpc.ApiKeysServiceStub) -> str:
                token = ""
                for _ in range(99):
                    page = await stub.ListApiKeys(
                        keys_rpc.ListApiKeysRequest(page_size=PAGE, page_token=token), metadata=owner, timeout=10
                    )
                    token = page.next_page_token
                last = await stub.ListApiKeys(
                    keys_rpc.ListApiKeysRequest(page_size=PAGE, page_token=token), metadata=owner, timeout=10
                )
                assert len(last.items) == PAGE and last.total == 1000, (len(last.items), last.total)
                return token

            def lister(stub: api_keys_service_pb2_grpc.ApiKeysServiceStub, token: str) -> Call:
                request = keys_rpc.ListApiKeysRequest(page_size=PAGE, page_token=token)
                return lambda i: stub.ListApiKeys(request, metadata=owner, timeout=10)

            tokens = {"big": await hundredth(big), "small": await hundredth(little)}
            calls = {
                "small first": lister(little, ""),
                "big first": lister(big, ""),
                "small 100th": lister(little, tokens["small"]),
                "big 100th": lister(big, tokens["big"]),
            }
            best = await measure(calls, conc, seconds, rounds)
            size = f"{total / 1e6:g}M keys" if total >= 1e6 else f"{total:,} keys"
            row("4 ListApiKeys page 1, 1,000 keys", conc, best["small first"], None)
            row(
                f"4 ListApiKeys page 1, {size}",
                conc,
                best["big first"],
                best["big first"][1] / best["small first"][1],
                "<= 1.5",
            )
            row("4 ListApiKeys page 100, 1,000 keys", conc, best["small 100th"], None)
            row(
                f"4 ListApiKeys page 100, {size}",
                conc,
                best["big 100th"],
                best["big 100th"][1] / best["small 100th"][1],
                "<= 1.5",
            )
        print(f"# load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        for made_channel in channels:
            await made_channel.close()
        stack.stop(procs)
        pg.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved runs per target; the best is kept")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--scale", type=float, default=1.0, help="scenario 4's table size (1 = 1M keys)")
    parser.add_argument("--skip", type=int, action="append", default=[], help="a scenario not to run")
    parser.add_argument("--load", action="store_true", help="then the long load test (200 clients, 60 s)")
    options = parser.parse_args()
    uvloop.run(main(options))
    if options.load:
        env = os.environ | {"AOS_LOAD_CLIENTS": "200", "AOS_LOAD_SECONDS": "60"}
        sys.exit(
            subprocess.call(
                [sys.executable, "-m", "pytest", "-q", "-s", "--timeout=600", "tests/load"], cwd=ROOT, env=env
            )
        )
