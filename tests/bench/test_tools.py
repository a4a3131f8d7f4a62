"""The bench's readers of h2load's and wrk's output (bench/tools.py): throughput, p50 and p99, and a run with
failed requests is an error, not a number. Outputs as the Debian packages print them (h2load 1.52, wrk 4.1)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from bench import tools

H2LOAD = """starting benchmark...
Application protocol: h2c

finished in 1.20s, 2114.00 req/s, 132.22KB/s
requests: 2114 total, 2114 started, 2114 done, 2114 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 2114 2xx, 0 3xx, 0 4xx, 0 5xx
"""

WRK = """Running 1s test @ http://127.0.0.1:32935/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.05ms    3.45ms  21.71ms   79.20%
    Req/Sec   408.40     78.72   510.00     60.00%
  Latency Distribution
     50%  396.00us
     75%    6.33ms
     90%    9.66ms
     99%    1.70s
  410 requests in 1.01s, 1.08MB read
Requests/sec:    406.66
Transfer/sec:      1.07MB
"""


# --log-file lines: start time (µs since epoch), HTTP status, duration (µs); 1..100 ms here
LOG = "".join(f"1796234532443819\t200\t{ms * 1000}\n" for ms in range(1, 101))


def test_h2load_rate_from_its_summary_and_percentiles_from_its_request_log() -> None:
    assert tools.parse_h2load(H2LOAD, LOG) == (2114.0, pytest.approx(50.5), pytest.approx(99.99), 0)


def test_h2load_counts_failed_requests_and_only_successes_in_the_rate() -> None:
    out = H2LOAD.replace("2114 done, 2114 succeeded, 0 failed", "2114 done, 1057 succeeded, 1057 failed")
    assert tools.parse_h2load(out, LOG)[::3] == (1057.0, 1057)


def test_h2load_run_where_no_request_finished_is_a_rate_of_0() -> None:
    out = H2LOAD.replace(
        "2114 total, 2114 started, 2114 done, 2114 succeeded", "16 total, 16 started, 0 done, 0 succeeded"
    )
    assert tools.parse_h2load(out, "")[::3] == (0.0, 0)


def test_wrk_rate_and_percentiles_in_milliseconds_whatever_unit_wrk_chose() -> None:
    assert tools.parse_wrk(WRK) == (406.66, pytest.approx(0.396), 1700.0, 0)


def test_wrk_counts_error_answers_and_timeouts_and_only_successes_in_the_rate() -> None:
    failures = "  Non-2xx or 3xx responses: 205\n  Socket errors: connect 0, read 2, write 0, timeout 3\n"
    rate, _, _, failed = tools.parse_wrk(WRK.replace("Requests/sec:", failures + "Requests/sec:"))
    assert (rate, failed) == (pytest.approx(203.33), 208)


def test_wrk_run_where_every_request_failed_is_a_rate_of_0() -> None:
    rate, _, _, failed = tools.parse_wrk(WRK.replace("Requests/sec:", "  Non-2xx or 3xx responses: 410\nRequests/sec:"))
    assert (rate, failed) == (0.0, 410)


def test_wrk_run_where_no_request_finished_is_a_rate_of_0() -> None:
    out = WRK.replace("  410 requests in", "  0 requests in").replace("406.66", "0.00")
    assert tools.parse_wrk(out)[::3] == (0.0, 0)


def test_h2load_body_is_one_uncompressed_grpc_message() -> None:
    assert tools.grpc_frame(b"") == b"\x00\x00\x00\x00\x00"
    assert tools.grpc_frame(b"\x0a\x01x") == b"\x00\x00\x00\x00\x03\x0a\x01x"


def test_a_missing_tool_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools.shutil, "which", lambda tool: None)
    with pytest.raises(tools.Missing, match=r"apt-get install nghttp2-client"):
        tools.need("h2load")


async def test_own_client_counts_grpc_errors_as_failed_and_only_successes_in_the_rate() -> None:
    async def call(n: int) -> None:
        await asyncio.sleep(0.001)
        if n % 2:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())

    rate, p50, _, failed = await tools.drive(call, 2, 0.3)
    assert failed > 0 and p50 >= 1.0
    assert rate * 0.3 == pytest.approx(failed, rel=0.1)  # every other call fails
