"""Prometheus metrics of one service process, served on GET /metrics by prometheus_client's HTTP server.

RPC counts and latencies live in plain per-method accumulators that become Prometheus families only at
scrape time: every handler runs on the event loop thread and the scrape thread only copies them, so they
need no lock, and a call costs two clock
reads, a dict update and a bisect (about 0.5 µs in all, measured) instead of the client library's locked
counter and histogram children (about 2 µs).
Readings that need the database (outbox lag) are taken when Prometheus scrapes, never per call.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

log = logging.getLogger("aos.metrics")

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCRAPE_TIMEOUT = 1.0
# Committed events that readers cannot see yet: an older transaction is still open (events.py's
# visibility rule), so every consumer waits for it. Served by ix_event_txid_position; normally no rows.
_OUTBOX = text(
    "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(occurred_at)), 0) FROM event "
    "WHERE txid >= (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"
)


class MethodStats:
    """One RPC method's calls by status code and, for unary calls, its latency histogram."""

    __slots__ = ("buckets", "codes", "count", "method", "service", "sum")

    def __init__(self, full_method: str) -> None:
        self.service, _, self.method = full_method.strip("/").rpartition("/")
        self.codes: dict[str, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def done(self, code: str, seconds: float | None) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1
        if seconds is not None:
            self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sum += seconds
            self.count += 1


class _Reading(Collector):
    """A gauge or counter whose value is read from a callable at scrape time (None: not reported)."""

    def __init__(self, kind: type[GaugeMetricFamily | CounterMetricFamily], name: str, doc: str, read: Reader) -> None:
        self._kind, self._name, self._doc, self._read = kind, name, doc, read

    def collect(self) -> Iterator[Metric]:
        value = self._read()
        if value is not None:
            yield self._kind(self._name, self._doc, value=value)


Reader = Callable[[], float | None]


class Metrics(Collector):
    def __init__(self) -> None:
        # One registry per service, not the global one: the tests run all four services in one process.
        self.registry = CollectorRegistry(auto_describe=False)
        self.methods: dict[str, MethodStats] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self._before: list[Callable[[], Awaitable[None]]] = []
        self._http: WSGIServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.registry.register(self)

    def method(self, full_method: str) -> MethodStats:
        stats = self.methods.get(full_method)
        if stats is None:
            stats = self.methods[full_method] = MethodStats(full_method)
        return stats

    def error(self, code: str, reason: str) -> None:
        self.errors[code, reason] = self.errors.get((code, reason), 0) + 1

    def gauge(self, name: str, doc: str, read: Reader) -> None:
        self.registry.register(_Reading(GaugeMetricFamily, name, doc, read))

    def counter(self, name: str, doc: str, read: Reader) -> None:
        self.registry.register(_Reading(CounterMetricFamily, name, doc, read))

    def before_scrape(self, refresh: Callable[[], Awaitable[None]]) -> None:
        self._before.append(refresh)

    def collect(self) -> Iterable[Metric]:
        if self._before and self._loop is not None:
            self._refresh()
        labels = ["grpc_service", "grpc_method"]
        handled = CounterMetricFamily(
            "grpc_server_handled", "RPCs completed, by status code", labels=[*labels, "grpc_code"]
        )
        latency = HistogramMetricFamily(
            "grpc_server_handling_seconds", "Unary RPC latency in the server", labels=labels
        )
        for s in list(self.methods.values()):
            for code, n in list(s.codes.items()):
                handled.add_metric([s.service, s.method, code], n)
            if s.count:
                cumulative, buckets = 0, []
                for bound, n in zip([*map(str, BUCKETS), "+Inf"], s.buckets, strict=True):
                    cumulative += n
                    buckets.append((bound, cumulative))
                latency.add_metric([s.service, s.method], buckets, s.sum)
        errors = CounterMetricFamily(
            "aos_rpc_errors", "RPCs that failed, by status code and reason", labels=["grpc_code", "reason"]
        )
        for (code, reason), n in list(self.errors.items()):
            errors.add_metric([code, reason], n)
        return [handled, latency, errors]

    def _refresh(self) -> None:
        """Runs the database readings on the service's event loop and waits for them (scrape thread)."""
        for refresh in self._before:
            try:
                asyncio.run_coroutine_threadsafe(refresh(), self._loop).result(SCRAPE_TIMEOUT)  # type: ignore[arg-type]
            except Exception as exc:  # a reading that fails is left out; the scrape still answers
                log.debug("metrics reading failed: %s", type(exc).__name__)

    async def serve(self, host: str, port: int) -> int:
        """Serves the registry on `port` (0: any free one) from prometheus_client's own HTTP server thread."""
        self._loop = asyncio.get_running_loop()
        self._http, _ = start_http_server(port, host, self.registry)
        return int(self._http.server_port)

    async def close(self) -> None:
        if self._http is not None:
            await asyncio.to_thread(self._http.shutdown)
            self._http.server_close()


def watch_database(metrics: Metrics, engine: AsyncEngine) -> None:
    """The SQLAlchemy pool's use, and the outbox's lag (both read at scrape time)."""
    pool = engine.pool
    if isinstance(pool, QueuePool):
        metrics.gauge("aos_db_pool_checked_out", "Database connections in use", lambda: float(pool.checkedout()))
        metrics.gauge("aos_db_pool_size", "Database connections the pool keeps open", lambda: float(pool.size()))
    outbox: dict[str, float] = {}

    async def read_outbox() -> None:
        outbox.clear()
        async with engine.connect() as conn:
            pending, lag = (await conn.execute(_OUTBOX)).one()
        outbox.update(pending=float(pending), lag=float(lag))

    metrics.before_scrape(read_outbox)
    metrics.gauge(
        "aos_outbox_pending_events",
        "Committed events readers cannot see yet, held back by an older open transaction",
        lambda: outbox.get("pending"),
    )
    metrics.gauge(
        "aos_outbox_lag_seconds",
        "Age of the oldest committed event readers cannot see yet (0: none waits)",
        lambda: outbox.get("lag"),
    )


def ratio(hits: Reader, misses: Reader) -> Reader:
    """hits / (hits + misses) since start; NaN before the first lookup."""

    def read() -> float:
        h, m = hits() or 0.0, misses() or 0.0
        return h / (h + m) if h + m else math.nan

    return read
