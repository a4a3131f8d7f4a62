"""Key guessing at the edge, through real Envoy and the gate (fake api_keys counting its verifications): failed
key checks are limited per client address and per key prefix (429 with Retry-After, api_keys not asked), and
a flood of wrong keys never evicts the cached verdicts of valid ones."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from services.onboarding.clients import Clients
from services.onboarding.edge import Denied
from services.onboarding.keyguard import KeyGuard
from tests.conftest import Gateway, identity_of
from tests.onboarding.conftest import FakeApiKeys, FakePeer, Onboarding
from tests.onboarding.test_gateway_onboarding import keyed_tenant

pytestmark = pytest.mark.e2e
BURST = 20  # the gate's default budget of failures per client and per key prefix


def wrong_key(prefix: str = "") -> str:
    body = (prefix or f"aos_{uuid.uuid4().hex[:8]}") + uuid.uuid4().hex + uuid.uuid4().hex[:6]
    return body[:50]


@asynccontextmanager
async def client_at(gateway: Gateway, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A REST client whose connections come from `address` (a loopback address of its own: its own budget)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=gateway.url, transport=transport, timeout=10) as client:
        yield client


async def status_of(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.get("/onboarding/status", headers={"x-aos-key": key})


def allowed_failures(elapsed: float) -> int:
    """The budget: the burst, plus what refilled (1/s) while the guesses ran."""
    return BURST + 1 + int(elapsed)


async def test_a_client_guessing_keys_is_slowed_to_429_before_api_keys_is_asked(
    onb_gateway: Gateway, account: object, onb: Onboarding, keys: FakeApiKeys
) -> None:
    _, valid = await keyed_tenant(account, onb, keys, 1)
    uncached, _ = keys.issue(next(iter(keys.valid_tenants)))
    async with client_at(onb_gateway, "127.0.0.2") as guesser, client_at(onb_gateway, "127.0.0.3") as bystander:
        assert (await status_of(guesser, valid["x-aos-key"])).status_code == 200  # seen valid from now on
        before = keys.verify_calls
        started = time.perf_counter()
        # All at once: the budget holds however many checks run concurrently.
        replies = await asyncio.gather(*(status_of(guesser, wrong_key()) for _ in range(3 * BURST)))
        elapsed = time.perf_counter() - started
        codes = [r.status_code for r in replies]
        assert set(codes) == {401, 429} and BURST <= codes.count(401) <= allowed_failures(elapsed), codes
        assert keys.verify_calls - before == codes.count(401)  # refused guesses cost api_keys nothing
        limited = next(r for r in replies if r.status_code == 429)
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"] == "rate_limited"
        print(f"{len(replies)} wrong keys in {elapsed:.2f} s, {codes.count(429)} refused with 429")
        # A key the gate has seen valid still works from there; one it never saw must wait.
        assert (await status_of(guesser, valid["x-aos-key"])).status_code == 200
        assert (await status_of(guesser, uncached)).status_code == 429
        # Another client is not affected.
        assert (await status_of(bystander, wrong_key())).status_code == 401
        assert (await status_of(bystander, uncached)).status_code == 200


async def test_guesses_at_one_key_prefix_from_many_addresses_are_limited_too(
    onb_gateway: Gateway, keys: FakeApiKeys
) -> None:
    prefix = f"aos_{uuid.uuid4().hex[:8]}"
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(client_at(onb_gateway, f"127.0.1.{i + 1}")) for i in range(60)]
        started = time.perf_counter()
        replies = await asyncio.gather(*(status_of(client, wrong_key(prefix)) for client in clients))
        elapsed = time.perf_counter() - started
        codes = [r.status_code for r in replies]
        assert set(codes) == {401, 429} and BURST <= codes.count(401) <= allowed_failures(elapsed), codes
        # A fresh address finds the prefix's budget spent; only what refilled (1/s) since the burst may pass.
        async with client_at(onb_gateway, "127.0.2.1") as fresh:
            later = [(await status_of(fresh, wrong_key(prefix))).status_code for _ in range(3)]
            refilled = int(time.perf_counter() - started - elapsed) + 1
            assert 429 in later and later.count(401) <= refilled, later
            assert (await status_of(fresh, wrong_key())).status_code == 401  # other prefixes are not


async def test_a_flood_of_wrong_keys_never_evicts_valid_verdicts(
    api_keys: FakePeer, keys: FakeApiKeys, account: object, onb: Onboarding
) -> None:
    """The gate's caches on a small scale (room for 50 verdicts), against the fake api_keys over gRPC."""
    clients = Clients("", f"127.0.0.1:{api_keys.port}", "", 1.0, identity_of("onboarding"))
    guard = KeyGuard(
        clients.verify_key,
        clients.record_key_usage,
        cache_seconds=60,
        negative_seconds=60,
        failures_per_second=1e6,
        failures_burst=10**6,
        size=50,
    )
    try:
        tenant, _ = await keyed_tenant(account, onb, keys, 1)
        valid = [keys.issue(tenant)[0] for _ in range(10)]
        for secret in valid:
            assert (await guard.check(secret, "192.0.2.1")).code == keys_rpc.VERIFY_CODE_VALID
        before = keys.verify_calls
        for i in range(20 * 50):
            with pytest.raises(Denied):
                await guard.check(wrong_key(), f"198.51.100.{i % 250}")
        assert len(guard.refused) == 50  # bounded: the oldest refusals went
        flood = keys.verify_calls
        for secret in valid:
            assert (await guard.check(secret, "192.0.2.1")).code == keys_rpc.VERIFY_CODE_VALID
        assert keys.verify_calls == flood and flood - before == 20 * 50  # every valid verdict still cached
    finally:
        await clients.close()


async def test_a_refused_request_is_cheaper_than_a_verification(onb_gateway: Gateway, keys: FakeApiKeys) -> None:
    """What a 429 costs next to a 401 that asked api_keys (printed for the README; asserted loosely)."""

    async def timed(client: httpx.AsyncClient, key: Callable[[], str], n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await status_of(client, key())
        return (time.perf_counter() - started) / n

    keys.delay = 0.005  # api_keys' VerifyApiKey at its measured ~5 ms (PostgreSQL lookup)
    async with client_at(onb_gateway, "127.0.3.1") as client:
        verified = await timed(client, wrong_key, BURST)
        for _ in range(2):
            await status_of(client, wrong_key())
        limited = await timed(client, wrong_key, 50)
    keys.delay = 0.0
    print(f"401 after asking api_keys: {verified * 1000:.2f} ms; 429: {limited * 1000:.2f} ms per request")
    assert limited < verified
