"""Following a peer's event log from a durable cursor: each event is handled, then its position is saved,
so after a restart or an outage the follower resumes where it stopped and misses nothing (an event may be
handled twice, so handlers are idempotent)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import stamina
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.events.v1 import event_pb2, events_service_pb2, events_service_pb2_grpc
from services.common import principal

log = logging.getLogger("aos.follow")


def tables(metadata: MetaData) -> Table:
    """Adds the cursor table to a following service's own MetaData."""
    return Table(
        "event_cursor",
        metadata,
        Column("source", String(50), primary_key=True),
        Column("page_token", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class Follower:
    """Follows the EventLog served on `channel` (None: the peer is not deployed, nothing is followed)."""

    def __init__(
        self,
        source: str,
        channel: grpc.aio.Channel | None,
        caller: str,
        sessions: async_sessionmaker[AsyncSession],
        cursors: Table,
        handle: Callable[[event_pb2.Event], Awaitable[None]],
        *,
        backoff: float = 0.2,
        max_backoff: float = 2.0,
    ) -> None:
        self.source, self._caller, self._sessions, self._cursors, self._handle = (
            source,
            caller,
            sessions,
            cursors,
            handle,
        )
        self._stub = events_service_pb2_grpc.EventLogServiceStub(channel) if channel is not None else None
        self._backoff, self._max_backoff = backoff, max_backoff
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._stub is not None:
            self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
        while True:
            # A fresh backoff after every stretch of progress; failures in a row wait longer each time.
            async for attempt in stamina.retry_context(
                on=Exception, attempts=None, timeout=None, wait_initial=self._backoff, wait_max=self._max_backoff
            ):
                with attempt:
                    await self._follow()

    async def _follow(self) -> None:
        """Reads until the stream breaks; raises only when it broke before any progress."""
        assert self._stub is not None
        request = events_service_pb2.WatchEventsRequest(page_token=await self.cursor())
        stream: Any = self._stub.WatchEvents(request, metadata=principal.service_metadata(self._caller))
        progressed = False
        try:
            async for item in stream:
                await self._handle(item.event)
                await self._save(item.page_token)
                progressed = True
        except Exception as exc:
            log.info("events of %s: %s", self.source, type(exc).__name__)
            if not progressed:
                raise
            return
        raise ConnectionError(f"event stream of {self.source} ended")

    async def cursor(self) -> str:
        async with self._sessions() as session:
            return (
                await session.scalar(select(self._cursors.c.page_token).where(self._cursors.c.source == self.source))
                or ""
            )

    async def _save(self, token: str) -> None:
        stmt = insert(self._cursors).values(source=self.source, page_token=token)
        stmt = stmt.on_conflict_do_update(
            index_elements=["source"], set_={"page_token": token, "updated_at": func.now()}
        )
        async with self._sessions.begin() as session:
            await session.execute(stmt)
