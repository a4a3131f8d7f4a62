"""A later page costs what the first costs: the keyset condition is an index range, not a filter that
reads every earlier page again (found by `make bench`'s 100th-page scenario; EXPLAIN shows it here)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from services.account import repository as account_repository
from services.api_keys import repository as keys_repository
from services.common import db, paging

ROWS, PAGE, SKIP = 300, 10, 250


def page_of(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan of the page's rows (the Limit), without the total's count beside it: a count reads every row
    of the tenant by design, and may well read a small table whole."""
    if plan["Node Type"] == "Limit":
        return plan
    return next(page_of(p) for p in plan.get("Plans", []) if "Limit" in json.dumps(p))


def removed_by_filter(plan: dict[str, Any]) -> int:
    return int(plan.get("Rows Removed by Filter", 0)) + sum(removed_by_filter(p) for p in plan.get("Plans", []))


class Explaining(db.Reader):
    """A reader that also EXPLAINs (ANALYZE) each statement it runs, with its parameters."""

    plans: list[Any]

    async def rows(self, sql: str, *args: Any) -> list[db.Row]:
        self.plans = [*getattr(self, "plans", []), await self.value("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)]
        return await super().rows(sql, *args)


async def page_plan(
    engine: AsyncEngine, table: str, tenant: str, page: Callable[[db.Reader, Any], Awaitable[Any]]
) -> dict[str, Any]:
    """Runs one keyset page (after the SKIP newest rows) and EXPLAINs the exact SELECT it sent."""
    async with engine.connect() as conn:
        after = (
            await conn.execute(
                text(
                    f"SELECT created_at, id FROM {table} WHERE tenant_id = :t"
                    " ORDER BY created_at DESC, id DESC OFFSET :n"
                ),
                {"t": tenant, "n": SKIP - 1},
            )
        ).first()
    borrowed = await engine.raw_connection()
    try:
        reader = Explaining(borrowed.driver_connection)
        rows = await page(reader, (after.created_at, after.id))  # type: ignore[union-attr]
    finally:
        await greenlet_spawn(borrowed.close)
    assert len(rows) == PAGE
    plan = reader.plans[-1]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]  # type: ignore[no-any-return]


async def test_a_later_api_keys_page_reads_only_its_rows(engines: dict[str, AsyncEngine]) -> None:
    engine, tenant = engines["api_keys"], str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO api_key (id, tenant_id, created_by, name, key_prefix, key_hash, permissions,"
                " allowed_workers, status, created_at) SELECT md5(:t || '-' || i), :t, 'plan', 'k', 'aos_plan',"
                " md5(:t || i) || md5(i || :t), '[]', '[]', 'active', now() - make_interval(secs => i)"
                " FROM generate_series(1, :n) AS i"
            ),
            {"t": tenant, "n": ROWS},
        )
        await conn.execute(text("ANALYZE api_key"))

    async def page(reader: db.Reader, after: Any) -> Any:
        return (await keys_repository.list_keys(reader, tenant, None, paging.Page(PAGE, after=after)))[0][:PAGE]

    plan = await page_plan(engine, "api_key", tenant, page)
    assert removed_by_filter(page_of(plan)) == 0, json.dumps(plan, indent=1)


async def test_a_later_projects_page_reads_only_its_rows(engines: dict[str, AsyncEngine], tenant: str) -> None:
    engine = engines["account"]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO project (id, tenant_id, name, description, status, created_at, updated_at)"
                " SELECT md5(:t || '-' || i), :t, 'p', '', 'active', now() - make_interval(secs => i), now()"
                " FROM generate_series(1, :n) AS i"
            ),
            {"t": tenant, "n": ROWS},
        )
        await conn.execute(text("ANALYZE project"))

    async def page(reader: db.Reader, after: Any) -> Any:
        return (await account_repository.list_projects(reader, tenant, None, paging.Page(PAGE, after=after)))[0][:PAGE]

    plan = await page_plan(engine, "project", tenant, page)
    assert removed_by_filter(page_of(plan)) == 0, json.dumps(plan, indent=1)
