"""API keys at the edge: api_keys' verdicts cached, and failed verifications limited per client address and per
key prefix.

Valid verdicts live in an LRU of their own that only valid keys enter, so a flood of wrong keys can evict
none of them; refusals live in a short negative cache beside it. Every refusal spends a token of the client's
bucket and of the key prefix's; with either empty, a key the gate has never seen valid is refused with 429
and Retry-After before api_keys is asked. Keys seen valid are asked about as before (revocation still shows
within a second): a customer behind the same address as a guesser keeps working.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable

from cachetools import LRUCache, TTLCache

from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from services.onboarding.edge import INVALID_KEY, Denied

log = logging.getLogger("aos.gate")
# The part of a key shown in listings (aos_ + 8): the key a guesser who saw a listing would aim at.
PREFIX_CHARS = 12


class Buckets:
    """Token buckets by name: `burst` tokens each, refilled at `per_second`; at most `size` names are kept (the
    least recently touched forgotten first, which only ever forgives)."""

    def __init__(
        self, per_second: float, burst: int, size: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_second, self.burst, self._clock = per_second, float(burst), clock
        self._levels: LRUCache[str, tuple[float, float]] = LRUCache(maxsize=size)  # name → (tokens, when)

    def _level(self, name: str, now: float) -> float:
        tokens, at = self._levels.get(name, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.per_second)

    def wait(self, names: Iterable[str]) -> float:
        """Seconds until every bucket named holds a token again (0: now)."""
        now = self._clock()
        return max((max(0.0, (1 - self._level(n, now)) / self.per_second) for n in names), default=0.0)

    def spend(self, names: Iterable[str], tokens: float = 1.0) -> None:
        """Takes `tokens` from each bucket (a negative number gives them back)."""
        now = self._clock()
        for name in names:
            self._levels[name] = (max(0.0, self._level(name, now) - tokens), now)


def digest_of(secret: str) -> str:
    """What the caches know a key by (never the key itself)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def client_bucket(address: str) -> str:
    """An IPv6 client is its /64 (one subscriber's network hands out as many addresses as it likes)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"addr:{address}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"addr:{ip.ipv4_mapped}"
        return f"addr:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"addr:{ip}"


def too_many(wait: float) -> Denied:
    retry = str(max(1, math.ceil(wait)))
    body = {"error": "rate_limited", "message": f"Too many failed API key attempts; retry after {retry} s"}
    return Denied(429, body, {"retry-after": retry})


class KeyGuard:
    def __init__(
        self,
        verify: Callable[[str], Awaitable[keys_rpc.VerifyApiKeyResponse]],
        record_usage: Callable[[dict[str, tuple[int, float]]], Awaitable[None]],
        *,
        cache_seconds: float,
        negative_seconds: float,
        failures_per_second: float,
        failures_burst: int,
        size: int = 10_000,
    ) -> None:
        self._verify, self._record_usage = verify, record_usage
        # Key digest → api_keys' verdict: VALID ones, and the others.
        self.verdicts: TTLCache[str, keys_rpc.VerifyApiKeyResponse] = TTLCache(maxsize=size, ttl=cache_seconds)
        self.refused: TTLCache[str, keys_rpc.VerifyApiKeyResponse] = TTLCache(maxsize=size, ttl=negative_seconds)
        # Digests of keys api_keys last called valid: exempt from the failure budgets.
        self.vouched: LRUCache[str, bool] = LRUCache(maxsize=10 * size)
        self.failures = Buckets(failures_per_second, failures_burst, size=10 * size)
        # Valid uses answered from `verdicts` never reach VerifyApiKey, which counts the others: key id →
        # [requests, last use], sent to api_keys in batches so total_requests counts every request.
        self._uses: dict[str, list[float]] = {}

    def forget_key(self, key_id: str) -> None:
        for cache in (self.verdicts, self.refused):
            for digest in [d for d, verdict in cache.items() if verdict.key_id == key_id]:
                cache.pop(digest, None)

    async def check(self, secret: str, client: str) -> keys_rpc.VerifyApiKeyResponse:
        """The VALID verdict of `secret`, presented by `client` (an address); Denied otherwise (401, or 429
        while the client or the key's prefix is over its budget of failures)."""
        digest = digest_of(secret)
        valid = self.verdicts.get(digest)
        if valid is not None:
            self.used(valid)
            return valid
        # A check of a key never seen valid takes its token before api_keys is asked (given back if the key is
        # valid): however many run at once, no more than the budget get through.
        buckets = () if digest in self.vouched else (client_bucket(client), f"prefix:{secret[:PREFIX_CHARS]}")
        if (wait := self.failures.wait(buckets)) > 0:
            raise too_many(wait)
        self.failures.spend(buckets)
        verdict = self.refused.get(digest)
        if verdict is None:
            try:
                verdict = await self._verify(secret)  # counted by api_keys when VALID
            except BaseException:
                self.failures.spend(buckets, -1)  # api_keys did not answer: no failure of the caller's
                raise
            if verdict.code == keys_rpc.VERIFY_CODE_VALID and verdict.tenant_id:
                self.failures.spend(buckets, -1)
                self.verdicts[digest] = verdict
                self.vouched[digest] = True
                return verdict
            self.refused[digest] = verdict
        self.vouched.pop(digest, None)
        raise INVALID_KEY

    def used(self, valid: keys_rpc.VerifyApiKeyResponse) -> None:
        """Counts a use answered without asking api_keys."""
        seen = self._uses.setdefault(valid.key_id, [0, 0.0])
        seen[0] += 1
        seen[1] = time.time()

    async def report_usage(self) -> None:
        """Sends the uses answered from the cache since the last report; kept for the next one on failure."""
        if not self._uses:
            return
        batch, self._uses = self._uses, {}
        try:
            await self._record_usage({k: (int(n), at) for k, (n, at) in batch.items()})
        except Exception as exc:
            log.warning("key usage not reported (%s); retrying with the next batch", type(exc).__name__)
            for key_id, (n, at) in batch.items():
                seen = self._uses.setdefault(key_id, [0, at])
                seen[0] += n
                seen[1] = max(seen[1], at)

    async def report_usage_forever(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.report_usage()
