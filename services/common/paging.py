"""Lists newest first, in keyset pages after (created_at, id) or by the limit/offset that legacy clients
send; both fetch one row more than the page to tell whether another page follows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, literal, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from services.common import db, validation
from services.common.errors import InvalidArgument

T = TypeVar("T")
MAX_OFFSET = 2**31 - 1
# Where a first page starts: every row sorts before it (asyncpg sends it as 'infinity').
_END = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Page:
    size: int
    offset: int = 0
    after: tuple[datetime, str] | None = None
    legacy: bool = False

    def apply(
        self, query: Select[Any], created_at: InstrumentedAttribute[Any], row_id: InstrumentedAttribute[Any]
    ) -> Select[Any]:
        if self.after:
            # A row comparison, which PostgreSQL turns into an index range (an OR would only filter). Each value
            # is bound with its column's type: a text-bound id would not compare with a uuid column.
            after = (literal(self.after[0], created_at.type), literal(self.after[1], row_id.type))
            query = query.where(tuple_(created_at, row_id) < tuple_(*after))
        return query.order_by(created_at.desc(), row_id.desc()).offset(self.offset).limit(self.size + 1)

    def bounds(self) -> tuple[datetime, str, int, int]:
        """The page as $1..$4 of a `newest_first` statement."""
        after, row_id = self.after or (_END, "")
        return after, row_id, self.offset, self.size + 1

    def cut(
        self,
        rows: Sequence[T],
        key: Callable[[T], tuple[datetime, str]] = lambda r: (r.created_at, r.id),  # type: ignore[attr-defined]
    ) -> tuple[list[T], str, bool]:
        """The page's rows, the next page's token ("" when none follows, and for legacy pages) and whether
        more rows follow."""
        page, more = list(rows[: self.size]), len(rows) > self.size
        token = validation.encode_token(*key(page[-1])) if more and not self.legacy else ""
        return page, token, more


def request(page_token: str, page_size: int, limit: int = 0, offset: int = 0, *, default: int = 50) -> Page:
    """The page a List request asks for: legacy limit/offset, or a page_token/page_size keyset (not both)."""
    legacy = bool(limit or offset)
    if legacy and (page_token or page_size):
        raise InvalidArgument("page_token", "cannot be combined with limit/offset")
    size = validation.page_size("limit" if legacy else "page_size", limit or page_size, default)
    offset = validation.between("offset", offset, 0, MAX_OFFSET)
    return Page(size, offset, validation.decode_token(page_token), legacy)


def newest_first(table: str, columns: str, where: str) -> str:
    """One statement for a page of `table` (newest first, one row more than the page) and the total of the
    rows `where` selects. $1..$4 are Page.bounds: a first page starts after the end of time, so that first,
    later and limit/offset pages are one row comparison, which PostgreSQL turns into an index range on
    (…, created_at, id). `where`'s own parameters start at $5. A page past the end is one row of NULLs that
    still carries the total."""
    return (
        f"SELECT n.total, p.* FROM (SELECT count(*) AS total FROM {table} WHERE {where}) n"
        f" LEFT JOIN LATERAL (SELECT {columns} FROM {table} WHERE {where} AND (created_at, id) < ($1, $2)"
        " ORDER BY created_at DESC, id DESC OFFSET $3 LIMIT $4) p ON true"
    )


async def read(reader: db.Reader, sql: str, page: Page, *args: object) -> tuple[list[db.Row], int]:
    """The rows of a `newest_first` statement's page and its total, in one round trip."""
    rows = await reader.rows(sql, *page.bounds(), *args)
    return [r for r in rows if r["id"] is not None], rows[0]["total"] if rows else 0
