"""`make bench`: every benchmark scenario on the embedded default, bounded in time, loopback only.

Starts an embedded PostgreSQL, migrates one database per service, runs every service as its own process
(`python -m services.<svc>`) behind a real Envoy, and prints one table: requests/s, p50, p99 and the ratio
to a baseline measured in the same run, under the same load (rounds interleaved, the best kept). The
number that starts a row is the `--skip N` that leaves it out. Columns: `by` is the client: h2load (gRPC)
and wrk (REST), C load generators (Debian packages nghttp2-client and wrk; without them their rows print
"skipped"), or py, this process's own client, which two cores make the bottleneck (client-bound). `vs` is
the row the ratio divides by:

  E      h2load's empty grpc.aio RPC in plaintext (h2c), this run's ceiling of one Python process;
  E+hop  h2load's empty RPC over mutual TLS behind the hop: a loopback Envoy tcp_proxy that originates the
         mTLS a service port demands (h2load presents no certificate), so direct rows compare like with like;
  py E   the Python client's empty RPC;
  p50    its group's (base) row, p50 ÷ p50: lower is better (scenarios 3, 4, 5b, 6);
  rate   its group's (base) row, throughput ÷ throughput (5a).
Every other ratio is throughput ÷ throughput too: higher is better. A "-" ratio: its baseline was skipped.

  1. gRPC straight to a service (bench/calls.py): Health/Check and ListProjects (3 projects) to account,
     VerifyApiKey with a warm cache and with the cache off; by h2load through the hop, and by py.
  2. REST through Envoy and the gate by wrk (bench/calls.py): GET /accounts/projects (JWT), GET
     /api-keys?limit=10 (key), GET /onboarding/status (JWT), GET /sdk/instructions (key), POST
     /sdk/handshake (key); creates with unique names (bench/wrk/post.lua): projects of one tenant, projects
     over 16 tenants, API keys of one tenant (its key quota raised in account's database).
  3. Activation evaluation (what finalize runs: three evidence RPCs at once) vs the slowest single
     evidence RPC, at concurrency 1, py; ratio = p50 / baseline p50 (target <= 1.3).
  4. ListApiKeys, first and 100th page (page size 10) of a tenant's 1,000 keys, in a table of 1,000,000
     keys across 10,000 tenants vs a table holding only those 1,000 keys, py; ratio = p50 / baseline p50
     (target <= 1.5). `--scale 0.1` loads 100,000 keys across 1,000 tenants instead.
  5. Telemetry ingest (bench/ingest.py): 100-record batches through Envoy with the integration key (wrk) vs
     the same set-based INSERT straight into PostgreSQL, records/s (targets >= 0.3 and >= 20,000 records/s);
     one record per request vs an authenticated one-row read through the gateway, p50 (target <= 1.5).
  6. The live-runs first page (ListLiveRuns) of a tenant's 1,000 LIVE runs in a run table of 1,000,000
     runs across 10,000 tenants vs a table holding only those runs, straight to monitoring (py), through
     Envoy as gRPC (h2load) and as GET /activity/live (wrk); ratio = p50 / baseline p50 (target <= 1.5;
     bench/live_runs.py). `--scale` sizes it as scenario 4. Runs last: its tenant ends COMPLETE.

    .venv/bin/python bench/run.py [--seconds 2] [--rounds 2] [--concurrency 16] [--scale 1] [--skip 1] [--load]

`--load` also runs the long form of the load test (200 clients for 60 s) after the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "protos")]

from bench import activation, calls, ingest, keyset, live_runs  # noqa: E402
from bench.common import HEADER, Running, sign_up  # noqa: E402
from cli import stack  # noqa: E402


async def main(options: argparse.Namespace) -> None:
    seconds, conc, rounds, skip = options.seconds, options.concurrency, options.rounds, options.skip
    print(
        f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start;"
        f" {seconds:g} s per run, best of {rounds}"
    )
    print(HEADER)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="aos-bench-"))
    pg = stack.embedded_postgres(work)
    running = Running(work)
    try:
        urls = await asyncio.to_thread(stack.prepare_databases, pg.get_uri(), "bench_", True)
        smalls = await asyncio.to_thread(stack.prepare_databases, pg.get_uri(), "benchsmall_", True)
        small = smalls["api_keys"]
        await running.start(urls, small)
        tenant = await sign_up(running)
        tables, runs = keyset.Tables.at_scale(options.scale), live_runs.Tables.at_scale(options.scale)
        # The two big tables load at once (one PostgreSQL backend each, so both cores work); the runs are the
        # signed-up tenant's, so that the gate lets its key list them.
        await asyncio.gather(
            *([keyset.load(tables, urls["api_keys"], small)] if 4 not in skip else []),
            *([live_runs.load(runs, tenant.id, urls["monitoring"], smalls["monitoring"])] if 6 not in skip else []),
        )
        if 1 not in skip or 2 not in skip:
            await calls.run(running, tenant, urls["account"], skip, conc, seconds, rounds)
        if 3 not in skip:
            await activation.run(running, tenant.id, urls["onboarding"], seconds, rounds)
        if 4 not in skip:
            await keyset.run(running, tables, conc, seconds, rounds)
        if 5 not in skip:
            await ingest.run(running, tenant, urls["monitoring"], conc, seconds, rounds)
        if 6 not in skip:
            await live_runs.run(running, tenant, smalls["monitoring"], runs, conc, seconds, rounds)
        print(f"# load average {os.getloadavg()[0]:.2f} at the end; {time.monotonic() - started:.0f} s in all")
    finally:
        await running.close()
        pg.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved runs per target; the best is kept")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="scenarios 4 and 5's table sizes (1 = 1M keys, 1M runs)"
    )
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
