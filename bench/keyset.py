"""Scenario 4: ListApiKeys, first and 100th page (page size 10) of a tenant's 1,000 keys, in a table of
1,000,000 keys across 10,000 tenants vs a table holding only those 1,000 keys."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import asyncpg

from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from bench.common import Call, Running, measure, row

PAGE = 10  # keys per ListApiKeys page: the 100th page of 1,000 keys is the last
Stub = api_keys_service_pb2_grpc.ApiKeysServiceStub
Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Tables:
    tenant: str  # the tenant whose 1,000 keys are listed, in both tables
    total: int  # keys in the big table
    tenants: int

    @classmethod
    def at_scale(cls, scale: float) -> Tables:
        return cls(str(uuid.uuid4()), int(1_000_000 * scale), int(10_000 * scale))


def human(tenant: str, user: str) -> Metadata:
    return (
        ("x-aos-actor-type", "human"),
        ("x-aos-actor-id", user),
        ("x-aos-email", f"{user}@bench.test"),
        ("x-aos-email-verified", "true"),
        ("x-aos-tenant-id", tenant),
        ("x-aos-role", "owner"),
    )


async def load(tables: Tables, big: str, small: str) -> None:
    """Fills the big table at `big` and the small one at `small` (api_keys database URLs)."""
    started = time.monotonic()
    await asyncio.gather(
        bulk_load(big, tables.tenant, tables.total, tables.tenants), bulk_load(small, tables.tenant, 1000, 1)
    )
    print(
        f"# scenario 4: {tables.total:,} keys across {tables.tenants:,} tenants loaded"
        f" in {time.monotonic() - started:.0f} s"
    )


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


async def run(running: Running, tables: Tables, conc: int, seconds: float, rounds: int) -> None:
    owner = human(tables.tenant, "bench-lister")
    big = Stub(running.channel(running.ports["api_keys"]))
    little = Stub(running.channel(running.small_port))
    tokens = {"big": await hundredth(big, owner), "small": await hundredth(little, owner)}
    calls = {
        "small first": lister(little, owner, ""),
        "big first": lister(big, owner, ""),
        "small 100th": lister(little, owner, tokens["small"]),
        "big 100th": lister(big, owner, tokens["big"]),
    }
    best = await measure(calls, conc, seconds, rounds)
    total = tables.total
    size = f"{total / 1e6:g}M keys" if total >= 1e6 else f"{total:,} keys"
    for page, first in (("1", "first"), ("100", "100th")):
        small, large = best[f"small {first}"], best[f"big {first}"]
        row(f"4 ListApiKeys page {page}, 1,000 keys", conc, small, None)
        row(f"4 ListApiKeys page {page}, {size}", conc, large, large[1] / small[1], "<= 1.5")


async def hundredth(stub: Stub, owner: Metadata) -> str:
    """The page token of the 100th page, after checking that page is full and the total right."""
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


def lister(stub: Stub, owner: Metadata, token: str) -> Call:
    request = keys_rpc.ListApiKeysRequest(page_size=PAGE, page_token=token)
    return lambda i: stub.ListApiKeys(request, metadata=owner, timeout=10)
