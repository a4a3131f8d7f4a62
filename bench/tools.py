"""The one way each load tool is driven, and read: `h2load` for gRPC, `wrk` for REST (C clients, Debian
packages nghttp2-client and wrk), this process's own client where neither can speak the call, and a
loopback Envoy that lets h2load reach a service port (which speaks only mutual TLS) as a named caller.

Every driver returns a Result. A tool that is not installed raises Missing, which the table prints as a
skipped row, not a crash; requests that fail (non-2xx, timeouts) are counted and shown on their row, since
an overloaded machine makes some writes miss an internal deadline, and the run goes on."""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import struct
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import grpc
import yaml

from cli import devtls, stack


class Result(NamedTuple):
    rate: float  # successful requests/s
    p50: float  # ms, of every request
    p99: float
    failed: int = 0  # requests that failed


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
LUA = Path(__file__).with_name("wrk")  # wrk scripts
API = "type.googleapis.com/envoy.extensions"
NAN = float("nan")


class Missing(RuntimeError):
    """A load tool is not installed: its rows are skipped with this note."""


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        package = {"h2load": "nghttp2-client"}.get(tool, tool)
        raise Missing(f"{tool} not installed (apt-get install {package})")


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message, uncompressed: what h2load sends as the request body."""
    return b"\x00" + struct.pack(">I", len(message)) + message


# --- h2load -------------------------------------------------------------------------------------------------


def parse_h2load(out: str, log: str) -> Result:
    """h2load's stdout (the rate of the requests that finished with a 2xx, and how many did not) and its
    --log-file (one line per request: start, status, microseconds)."""
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if not counts or not rate:
        raise RuntimeError(f"h2load printed no summary:\n{out}")
    done, succeeded = int(counts[1]), int(counts[2])
    if done == 0:  # every request outlasted the run: the row shows a rate of 0, not a crash
        return Result(0.0, NAN, NAN)
    micros = [int(line.split("\t")[2]) for line in log.splitlines() if line.strip()]
    if len(micros) < 2:  # too few requests finished to have percentiles
        return Result(float(rate[1]) * succeeded / done, NAN, NAN, done - succeeded)
    q = statistics.quantiles(micros, n=100)
    return Result(float(rate[1]) * succeeded / done, q[49] / 1000, q[98] / 1000, done - succeeded)


def h2load(url: str, body: bytes, headers: Sequence[tuple[str, str]], conc: int, seconds: float, tmp: Path) -> Result:
    """gRPC unary calls to `url` (http://host:port/package.Service/Method): `conc` connections with one stream
    each, the same request `body` (a serialized message) every time. h2load counts HTTP statuses, not
    grpc-status: callers check the call answers OK first (check_grpc)."""
    need("h2load")
    data, log = tmp / "h2load-body.bin", tmp / "h2load.log"
    data.write_bytes(grpc_frame(body))
    log.unlink(missing_ok=True)
    args = ["h2load", "-c", str(conc), "-m", "1", "-D", f"{round(seconds * 1000)}ms", "--warm-up-time", "500ms"]
    args += ["-d", str(data), "-H", "content-type: application/grpc", "-H", "te: trailers"]
    for name, value in headers:
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run([*args, f"--log-file={log}", url], capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"h2load failed:\n{done.stdout}{done.stderr}")
    return parse_h2load(done.stdout, log.read_text())


# --- wrk ----------------------------------------------------------------------------------------------------


def parse_wrk(out: str) -> Result:
    """wrk's --latency report: the rate of 2xx answers; non-2xx answers and timeouts count as failed."""
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    wrong = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"Socket errors: .*timeout (\d+)", out)
    failed = (int(wrong[1]) if wrong else 0) + (int(timeouts[1]) if timeouts else 0)
    if not total:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    if int(total[1]) == 0:  # every request outlasted the run: the row shows a rate of 0, not a crash
        return Result(0.0, NAN, NAN, failed)

    def percentile(p: str) -> float:
        found = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        assert found, out
        return float(found[1]) * UNITS[found[2]]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rate, out
    ok = 1 - (int(wrong[1]) if wrong else 0) / int(total[1])  # timed-out requests are not in wrk's count
    return Result(float(rate[1]) * ok, percentile("50"), percentile("99"), failed)


def wrk(
    url: str,
    conc: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    script: str = "",
    args: Sequence[str] = (),
) -> Result:
    """HTTP/1.1 keep-alive requests to `url`; `script` names a Lua file in bench/wrk/ that writes each
    request (unique payloads for writes), given `args`."""
    need("wrk")
    command = ["wrk", f"-t{min(2, conc)}", f"-c{conc}", f"-d{max(1, round(seconds))}s", "--latency"]
    command += ["--timeout", "10s"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(LUA / script)]
    command += [url, *(["--", *args] if args else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed:\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


# --- this process's own client --------------------------------------------------------------------------------


async def drive(call: Callable[[int], Awaitable[object]], concurrency: int, seconds: float) -> Result:
    """`concurrency` coroutines of this process calling `call(n)` back to back for `seconds`, after a
    0.5 s warm-up; a call that ends in a gRPC error counts as failed, as h2load and wrk count theirs. On
    two cores the client's own CPU bounds what it can measure (rows say client-bound)."""
    latencies: list[float] = []
    counter = failed = 0
    stop_at = 0.0

    async def worker(measure: bool) -> None:
        nonlocal counter, failed
        while time.perf_counter() < stop_at:
            counter += 1
            started, ok = time.perf_counter(), True
            try:
                await call(counter)
            except grpc.aio.AioRpcError:
                ok = False
            if measure:
                latencies.append(time.perf_counter() - started)
                failed += not ok

    stop_at = time.perf_counter() + 0.5
    await asyncio.gather(*(worker(False) for _ in range(concurrency)))
    begin = time.perf_counter()
    stop_at = begin + seconds
    await asyncio.gather(*(worker(True) for _ in range(concurrency)))
    elapsed = time.perf_counter() - begin
    if len(latencies) < 2:  # too few calls finished to have percentiles
        return Result((len(latencies) - failed) / elapsed, NAN, NAN, failed)
    quantiles = statistics.quantiles(latencies, n=100)
    return Result((len(latencies) - failed) / elapsed, quantiles[49] * 1000, quantiles[98] * 1000, failed)


# --- the mTLS hop in front of a service port ------------------------------------------------------------------


@dataclass
class Hop:
    """One loopback Envoy (one worker thread) with a plaintext listener per route, each a tcp_proxy that
    opens mutual TLS to one service port presenting one workload's certificate. The thinnest hop that lets
    h2load (which presents no certificate) call a service as `identity`: Envoy parses no HTTP here, it only
    wraps the bytes in TLS. The empty RPC's baseline is served behind the same kind of route."""

    work: Path
    tls_dir: Path
    routes: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # label: (upstream, identity, server)
    ports: dict[str, int] = field(default_factory=dict)

    def route(self, label: str, upstream: int, identity: str, server: str) -> None:
        """`label` reaches 127.0.0.1:`upstream` as `identity`, checking its certificate names `server`."""
        self.routes[label] = (upstream, identity, server)

    def config(self) -> dict[str, object]:
        listeners, clusters = [], []
        for label, (upstream, identity, server) in self.routes.items():
            self.ports[label] = port = stack.free_port()
            me = devtls.identity(self.tls_dir, identity)
            name = re.sub(r"\W", "_", label)
            proxy = {"@type": f"{API}.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": name, "cluster": name}
            listeners.append(
                {
                    "name": name,
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [
                        {"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": proxy}]}
                    ],
                }
            )
            tls_context = {
                "@type": f"{API}.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": server,
                "common_tls_context": {
                    "alpn_protocols": ["h2"],  # a grpc server speaks HTTP/2 over TLS only when ALPN says so
                    "tls_certificates": [
                        {"certificate_chain": {"filename": me.cert_file}, "private_key": {"filename": me.key_file}}
                    ],
                    "validation_context": {
                        "trusted_ca": {"filename": me.ca_file},
                        "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": server}}],
                    },
                },
            }
            endpoint = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream}}}
            clusters.append(
                {
                    "name": name,
                    "type": "STATIC",
                    "connect_timeout": "2s",
                    "load_assignment": {
                        "cluster_name": name,
                        "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
                    },
                    "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls_context},
                }
            )
        return {"static_resources": {"listeners": listeners, "clusters": clusters}}

    def start(self) -> subprocess.Popen[bytes]:
        """Envoy with every route so far; the caller owns (and stops) the process."""
        path = self.work / "hop.yaml"
        path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        args = [str(stack.BIN / "envoy"), "-c", str(path), "--disable-hot-restart", "--log-level", "warn"]
        args += ["--concurrency", "1"]
        with (self.work / "hop.log").open("ab") as out:
            return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
