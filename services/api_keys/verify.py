"""VerifyApiKey's hot path: checksum first, then a bounded in-process cache, then one prepared
statement on a lean asyncpg pool; usage counted in memory and written in batches.

The cache is only used while this replica LISTENs on the change channel: every revoke, disable, enable,
rotation and tenant status change NOTIFYs at commit, so a replica drops a stale verdict within
milliseconds. If the listening connection is lost, the cache is emptied and bypassed until it is back.
Expiry needs no message: a cached verdict carries expires_at and is re-evaluated on every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg
import stamina
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from services.api_keys import keys
from services.api_keys.repository import CHANNEL

log = logging.getLogger("aos.api_keys.verify")

DEFAULT_RPM = 1000
PROBE_SECONDS = 0.4
NOT_FOUND = rpc.VerifyApiKeyResponse(code=rpc.VERIFY_CODE_NOT_FOUND)
_LOOKUP = (
    "SELECT k.id, k.tenant_id, k.status, k.expires_at, k.permissions::text AS permissions, k.rate_limit_rpm, "
    "t.status AS tenant_status FROM api_key k LEFT JOIN tenant_state t ON t.tenant_id = k.tenant_id "
    "WHERE k.key_hash = $1"
)
_FLUSH = (
    "UPDATE api_key AS k SET total_requests = k.total_requests + u.n, "
    "last_used_at = GREATEST(k.last_used_at, u.at) "
    "FROM unnest($1::varchar[], $2::bigint[], $3::timestamptz[]) AS u(id, n, at) WHERE k.id = u.id"
)


class Verdict(NamedTuple):
    answer: rpc.VerifyApiKeyResponse  # the verdict while the key has not expired
    expired: rpc.VerifyApiKeyResponse
    expires_at: float  # epoch seconds; inf when the key never expires
    key_id: str
    tenant_id: str


def verdict(row: Any) -> Verdict:
    scopes = json.loads(row["permissions"]) if row["permissions"] else list(keys.DEFAULT_SCOPES)
    fields = {
        "key_id": row["id"],
        "tenant_id": row["tenant_id"],
        "scopes": scopes,
        "rate_limit_rpm": row["rate_limit_rpm"] or DEFAULT_RPM,
    }
    code = {"revoked": rpc.VERIFY_CODE_REVOKED, "disabled": rpc.VERIFY_CODE_DISABLED}.get(row["status"])
    if code is None:
        tenant_ok = row["tenant_status"] in (None, "active")
        code = rpc.VERIFY_CODE_VALID if tenant_ok else rpc.VERIFY_CODE_TENANT_INACTIVE
    expired = code if code != rpc.VERIFY_CODE_VALID else rpc.VERIFY_CODE_EXPIRED
    expires = row["expires_at"].timestamp() if row["expires_at"] else float("inf")
    return Verdict(
        rpc.VerifyApiKeyResponse(code=code, **fields),
        rpc.VerifyApiKeyResponse(code=expired, **fields),
        expires,
        row["id"],
        row["tenant_id"],
    )


async def _no_reset(connection: asyncpg.Connection) -> None:
    """The pool runs only autocommit reads and one UPDATE: there is no session state to reset, and the
    default reset costs a round trip per release."""


class Verifier:
    def __init__(self, engine: AsyncEngine, cache_size: int, flush_seconds: float, pool_size: int) -> None:
        self._connect = engine.dialect.create_connect_args(engine.url)[1]
        self._cache_size, self._flush_seconds, self._pool_size = cache_size, flush_seconds, pool_size
        # Hand-written rather than cachetools: a dict hit costs ~30 ns, LRUCache/FIFOCache.get ~230 ns (10k
        # entries, timeit); `make bench` (bench/calls.py) measures the whole hit and miss paths.
        self._cache: dict[str, Verdict] = {}
        self._generation = 0
        self.listening = asyncio.Event()
        self.listener_pid: int | None = None  # the LISTENing backend, for operators (and tests)
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._usage: dict[str, list[float]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # Plain ints, read by the metrics scrape: verify runs on the event loop thread only.
        self.cache_hits = 0
        self.cache_misses = 0

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._flush_forever())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()  # after the server drained: the last counts are written, not lost
        if self._pool is not None:
            await self._pool.close()

    async def verify(self, secret: str) -> rpc.VerifyApiKeyResponse:
        if len(secret) > keys.MAX_PRESENTED:
            return NOT_FOUND  # not even hashed
        digest = keys.digest(secret)
        found = self._cache.get(digest)  # only well-formed keys are ever cached: a hit needs no format check
        if found is None:
            if not keys.well_formed(secret):
                return NOT_FOUND  # no query: a malformed key costs no database work
            self.cache_misses += 1
            found = await self._lookup(digest)
            if found is None:
                return NOT_FOUND
        else:
            self.cache_hits += 1
        answer = found.answer if time.time() < found.expires_at else found.expired
        if answer.code == rpc.VERIFY_CODE_VALID:
            self._record(found.key_id)
        return answer

    async def _lookup(self, digest: str) -> Verdict | None:
        generation = self._generation
        row = await (await self._pool_()).fetchrow(_LOOKUP, digest)
        if row is None:
            return None
        found = verdict(row)
        # Only while listening, and only if no invalidation arrived during the query (it may concern this row).
        if self._cache_size > 0 and self.listening.is_set() and generation == self._generation:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[digest] = found
        return found

    async def _pool_(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        min_size=1, max_size=self._pool_size, reset=_no_reset, **self._connect
                    )
        return self._pool

    def invalidate(self, payload: str) -> None:
        self._generation += 1
        what, _, ident = payload.partition(":")
        field = 3 if what == "key" else 4
        self._cache = {d: v for d, v in self._cache.items() if v[field] != ident}

    def _drop_all(self) -> None:
        self._generation += 1
        self._cache = {}

    async def _listen(self) -> None:
        """LISTENs for as long as the replica runs: a lost connection is replaced at once; only failing to
        connect waits, 0.1 s doubling to 0.5 s (the cache is bypassed meanwhile, so sooner is better)."""
        while True:
            async for attempt in stamina.retry_context(
                on=(OSError, asyncpg.PostgresError),
                attempts=None,
                timeout=None,
                wait_initial=0.1,
                wait_max=0.5,
                wait_jitter=0.1,
            ):
                with attempt:
                    conn = await asyncpg.connect(**self._connect)
            await self._listen_on(conn)

    async def _listen_on(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: self.invalidate(payload))
            self._drop_all()  # whatever changed while nobody listened
            self.listener_pid = conn.get_server_pid()
            self.listening.set()
            await self._alive(conn, lost)
            log.warning("cache listener lost its connection; cache bypassed until it is back")
        finally:
            self.listening.clear()
            self._drop_all()
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close(timeout=1))

    async def _alive(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Returns when the listening connection is gone. A silent network failure sends no termination
        callback, so the connection is also probed: a cache may trust it for at most PROBE_SECONDS."""
        while not lost.is_set():
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), PROBE_SECONDS)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PROBE_SECONDS)

    def _record(self, key_id: str) -> None:
        seen = self._usage.get(key_id)
        if seen is None:
            self._usage[key_id] = [1, time.time()]
        else:
            seen[0] += 1
            seen[1] = time.time()

    def add_usage(self, key_id: str, requests: int, at: float) -> None:
        """Uses counted elsewhere (the edge gate's verdict cache), written with the next batch."""
        seen = self._usage.get(key_id)
        if seen is None:
            self._usage[key_id] = [requests, at]
        else:
            seen[0] += requests
            seen[1] = max(seen[1], at)

    async def flush(self) -> None:
        if not self._usage:
            return
        batch, self._usage = self._usage, {}
        ids = list(batch)
        try:
            pool = await self._pool_()
            await pool.execute(
                _FLUSH, ids, [int(batch[i][0]) for i in ids], [datetime.fromtimestamp(batch[i][1], UTC) for i in ids]
            )
        except Exception:
            log.warning("usage flush failed; keeping %d keys' counts for the next attempt", len(ids))
            for key_id, (count, at) in batch.items():
                seen = self._usage.setdefault(key_id, [0, at])
                seen[0] += count
                seen[1] = max(seen[1], at)
            raise

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            with contextlib.suppress(Exception):
                await self.flush()
