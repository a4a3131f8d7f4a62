"""Loopback benchmark of VerifyApiKey over gRPC (not a test).

Starts an embedded PostgreSQL, a migrated api_keys database with N keys, the api_keys service as its own
process (`python -m services.api_keys`, uvloop) once with its cache and once with the cache disabled,
and a bare grpc.aio server with one empty RPC as the baseline, also in its own process. The service speaks
only mutual TLS (this process calls as onboarding, the caller VerifyApiKey's rule names); the empty RPC is
served twice, in plaintext (the baseline, as before mTLS) and with the same mutual TLS, so the table shows
what TLS itself costs. Each is driven by this process for a fixed time at concurrency 1, 16 and 64; it
prints RPC/s, p50/p99 and the ratio to the plaintext empty RPC at the same concurrency.

    .venv/bin/python bench/verify_bench.py [--seconds 3] [--keys 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import grpc
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "protos")]

from aos.api_keys.v1 import api_keys_service_pb2 as rpc  # noqa: E402
from cli import devtls, stack  # noqa: E402
from services.api_keys import keys  # noqa: E402
from services.common.principal import service_metadata  # noqa: E402

EMPTY = "/bench.Empty/Call"
BASE = "empty RPC"  # plaintext: the baseline every ratio is taken against
# This benchmark's targets as rows of bench/run.py's table.
ROWS = {
    BASE: "empty grpc.aio RPC",
    "empty RPC, mTLS": "empty grpc.aio RPC, mTLS",
    "verify, warm cache": "VerifyApiKey, warm cache, mTLS",
    "verify, cache miss": "VerifyApiKey, cache miss, mTLS",
}
CONCURRENCY = (1, 16, 64)


async def serve_empty(port: int, tls_dir: str) -> None:
    """The empty RPC, over mutual TLS as a service serves when `tls_dir` is given (as api_keys)."""

    async def call(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return b""

    handler = grpc.method_handlers_generic_handler("bench.Empty", {"Call": grpc.unary_unary_rpc_method_handler(call)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    if tls_dir:
        server.add_secure_port(f"127.0.0.1:{port}", devtls.identity(Path(tls_dir), "api_keys").server_credentials())
    else:
        server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def seed(url: str, count: int) -> list[str]:
    """Inserts `count` keys straight into the table (only hashes), returns their secrets."""
    secrets_ = [keys.issue() for _ in range(count)]
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.executemany(
            "INSERT INTO api_key (id, tenant_id, created_by, name, key_prefix, key_hash, permissions, "
            "allowed_workers, status) VALUES ($1, 'bench-tenant', 'bench', 'k', $2, $3, '[\"run:*\"]', '[]', 'active')",
            [(f"bench-{i}", s.prefix, s.digest) for i, s in enumerate(secrets_)],
        )
    finally:
        await conn.close()
    return [s.secret for s in secrets_]


async def drive(
    call: Callable[[int], Awaitable[object]], concurrency: int, seconds: float
) -> tuple[float, float, float]:
    """RPC/s, p50 ms, p99 ms over `seconds` after a short warm-up."""
    latencies: list[float] = []
    counter = 0
    stop_at = 0.0

    async def worker(measure: bool) -> None:
        nonlocal counter
        while time.perf_counter() < stop_at:
            counter += 1
            started = time.perf_counter()
            await call(counter)
            if measure:
                latencies.append(time.perf_counter() - started)

    stop_at = time.perf_counter() + 0.5
    await asyncio.gather(*(worker(False) for _ in range(concurrency)))
    begin = time.perf_counter()
    stop_at = begin + seconds
    await asyncio.gather(*(worker(True) for _ in range(concurrency)))
    elapsed = time.perf_counter() - begin
    quantiles = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, quantiles[49] * 1000, quantiles[98] * 1000


def start(args: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT)
    stack.wait_for_port(port, proc)
    return proc


async def main(seconds: float, key_count: int, rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="aos-bench-"))
    pg = stack.embedded_postgres(work)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        url = (await asyncio.to_thread(stack.prepare_databases, pg.get_uri(), "bench_", True))["api_keys"]
        secrets_ = await seed(url, key_count)
        tls_dir = stack.pki(work)
        empty = {BASE: stack.free_port(), "empty RPC, mTLS": stack.free_port()}
        for label, port in empty.items():
            args = [sys.executable, __file__, "--serve-empty", str(port)]
            args += ["--tls", str(tls_dir)] if label != BASE else []
            procs.append(start(args, {}, port, work / "e.log"))
        targets: dict[str, tuple[str, Callable[[grpc.aio.Channel], Callable[[int], Awaitable[object]]]]] = {}

        def empty_rpc(channel: grpc.aio.Channel) -> Callable[[int], Awaitable[object]]:
            method = channel.unary_unary(EMPTY)
            return lambda i: method(b"", timeout=10)

        def verify(channel: grpc.aio.Channel) -> Callable[[int], Awaitable[object]]:
            from aos.api_keys.v1 import api_keys_service_pb2_grpc

            stub = api_keys_service_pb2_grpc.ApiKeysServiceStub(channel)
            md = service_metadata("onboarding")
            requests = [rpc.VerifyApiKeyRequest(secret=s) for s in secrets_]
            return lambda i: stub.VerifyApiKey(requests[i % len(requests)], metadata=md, timeout=10)

        targets |= {label: (f"127.0.0.1:{port}", empty_rpc) for label, port in empty.items()}
        for label, cache in (("verify, warm cache", str(key_count * 2)), ("verify, cache miss", "0")):
            port = stack.free_port()
            env = {
                "API_KEYS_DATABASE_URL": url,
                "API_KEYS_GRPC_PORT": str(port),
                "API_KEYS_CACHE_SIZE": cache,
                "API_KEYS_LOG_LEVEL": "WARNING",
                **devtls.env(tls_dir, "api_keys"),
            }
            procs.append(start([sys.executable, "-m", "services.api_keys"], env, port, work / "svc.log"))
            targets[label] = (f"127.0.0.1:{port}", verify)
        await asyncio.sleep(1.0)  # the cache listener connects

        # Targets are interleaved per concurrency so that each ratio compares runs made under the same load.
        as_onboarding = devtls.identity(tls_dir, "onboarding").channel_credentials()
        channels = {
            label: grpc.aio.insecure_channel(addr) if label == BASE else grpc.aio.secure_channel(addr, as_onboarding)
            for label, (addr, _) in targets.items()
        }
        calls = {label: make(channels[label]) for label, (_, make) in targets.items()}
        print(f"{'target':<22}{'conc':>5}{'RPC/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}")
        # Best of `rounds` (as timeit takes the minimum): on a shared 2-core machine the noise only ever
        # slows a run down, and the rounds of all targets are interleaved.
        for concurrency in CONCURRENCY:
            best: dict[str, tuple[float, float, float]] = {}
            for _ in range(rounds):
                for label, call in calls.items():
                    result = await drive(call, concurrency, seconds)
                    best[label] = max(best.get(label, result), result)
            baseline = best[BASE][0]
            for label, (rate, p50, p99) in best.items():
                print(
                    f"{label:<22}{concurrency:>5}{rate:>10.0f}{p50:>9.2f}{p99:>9.2f}{rate / baseline:>8.2f}", flush=True
                )
        for channel in channels.values():
            await channel.close()
    finally:
        stack.stop(procs)
        pg.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def table_rows(seconds: float, concurrency: int) -> None:
    """This benchmark (its own PostgreSQL and processes) as scenario 1 of bench/run.py: its rows at
    `concurrency`, in that table's columns."""
    out = subprocess.run(
        [sys.executable, __file__, "--seconds", str(seconds), "--rounds", "1"],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    for line in out.splitlines()[1:]:
        label, conc, rate, p50, p99, ratio = line[:22].strip(), *line[22:].split()
        if int(conc) == concurrency:
            base = label == BASE
            print(
                f"{'1 ' + ROWS[label]:<44}"
                f"{conc:>5}{float(rate):>9.0f}{float(p50):>9.2f}{float(p99):>9.2f}"
                f"{'(base)' if base else ratio:>8}",
                flush=True,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve-empty", type=int, default=0)
    parser.add_argument("--tls", default="", help="with --serve-empty: serve mutual TLS from this dev PKI")
    options = parser.parse_args()
    if options.serve_empty:
        uvloop.run(serve_empty(options.serve_empty, options.tls))
    else:
        uvloop.run(main(options.seconds, options.keys, options.rounds))
