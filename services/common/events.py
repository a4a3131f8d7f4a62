"""The events outbox: validated envelopes written in the caller's transaction, served by EventLogService.

Readers see an event only once every transaction that could still commit before it has finished
(txid below the snapshot's xmin), and page in (txid, position) order, so a cursor never skips an
event that commits late.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc
from google.protobuf import json_format, struct_pb2
from sqlalchemy import BigInteger, Column, DateTime, Index, MetaData, String, Table, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.events.v1 import event_pb2, events_service_pb2, events_service_pb2_grpc
from services.common.errors import Internal, InvalidArgument

SYSTEM = "__system__"
SCHEMA_VERSION = "1.0.0"
ACTOR_TYPES = frozenset({"user", "system", "sdk", "founder"})
REQUIRED = {
    "event_id": str,
    "event_type": str,
    "tenant_id": str,
    "project_id": str,
    "actor_type": str,
    "actor_id": str,
    "decision_owner": str,
    "sequence_no": int,
    "schema_version": str,
}


def tables(metadata: MetaData) -> None:
    """Adds the outbox tables to a service's own MetaData (each service keeps its own copy)."""
    Table(
        "event",
        metadata,
        Column("position", BigInteger, primary_key=True, autoincrement=True),
        Column("txid", BigInteger, nullable=False, server_default=text("(pg_current_xact_id()::text)::bigint")),
        Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("tenant_id", String(64), nullable=False),
        Column("project_id", String(64), nullable=False),
        Column("actor_type", String(20), nullable=False),
        Column("actor_id", String(255), nullable=False),
        Column("decision_owner", String(50), nullable=False),
        Column("sequence_no", BigInteger, nullable=False),
        Column("schema_version", String(20), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("payload", JSONB, nullable=False),
        Index("uq_event_stream_sequence", "decision_owner", "tenant_id", "project_id", "sequence_no", unique=True),
        Index("ix_event_txid_position", "txid", "position"),
    )
    Table(
        "event_sequence",
        metadata,
        Column("decision_owner", String(50), primary_key=True),
        Column("tenant_id", String(64), primary_key=True),
        Column("project_id", String(64), primary_key=True),
        Column("last_sequence", BigInteger, nullable=False),
    )


def validate(event: dict[str, Any]) -> list[str]:
    """Problems of an envelope: "missing: f" (absent or null) and "invalid: f ..." (SPEC 8)."""
    problems = [f"missing: {f}" for f in REQUIRED if event.get(f) is None]
    problems += [
        f"invalid: {f} must be {t.__name__}"
        for f, t in REQUIRED.items()
        if event.get(f) is not None and (not isinstance(event[f], t) or isinstance(event[f], bool))
    ]
    if isinstance(event.get("actor_type"), str) and event["actor_type"] not in ACTOR_TYPES:
        problems.append(f"invalid: actor_type {event['actor_type']!r}")
    if isinstance(event.get("sequence_no"), int) and event["sequence_no"] < 0:
        problems.append("invalid: sequence_no must be >= 0")
    return problems


# One statement takes the stream's next number and writes the event. The counter row stays locked
# until commit (concurrent writers of one stream queue on it, and a rollback releases the number, so
# the stream stays gapless), so callers emit as their last statement: the lock is then held only for
# this statement and the COMMIT.
_EMIT = text(
    "WITH seq AS (INSERT INTO event_sequence (decision_owner, tenant_id, project_id, last_sequence) "
    "VALUES (:decision_owner, :tenant_id, :project_id, 1) ON CONFLICT (decision_owner, tenant_id, project_id) "
    "DO UPDATE SET last_sequence = event_sequence.last_sequence + 1 RETURNING last_sequence) "
    "INSERT INTO event (event_id, event_type, tenant_id, project_id, actor_type, actor_id, decision_owner, "
    "sequence_no, schema_version, occurred_at, payload) SELECT :event_id, :event_type, :tenant_id, :project_id, "
    ":actor_type, :actor_id, :decision_owner, last_sequence, :schema_version, :occurred_at, CAST(:payload AS jsonb) "
    "FROM seq RETURNING sequence_no"
)


async def emit(
    session: AsyncSession,
    *,
    event_type: str,
    tenant_id: str,
    actor_type: str,
    actor_id: str,
    decision_owner: str,
    payload: dict[str, Any],
    project_id: str = SYSTEM,
) -> dict[str, Any]:
    """Writes one event in the session's transaction; an invalid event raises and so aborts the change."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "tenant_id": tenant_id,
        "project_id": project_id,
        "actor_type": actor_type,
        "actor_id": actor_id,
        "decision_owner": decision_owner,
        "sequence_no": 0,
        "schema_version": SCHEMA_VERSION,
    }
    problems = validate(event)
    if problems:
        raise Internal(f"invalid event {event_type}: {'; '.join(problems)}", reason="INVALID_EVENT")
    event |= {"occurred_at": datetime.now(UTC), "payload": json.dumps(payload)}
    event["sequence_no"] = (await session.execute(_EMIT, event)).scalar_one()
    return event


class Actor(Protocol):
    @property
    def actor_type(self) -> str: ...
    @property
    def actor_id(self) -> str: ...


async def record(
    session: AsyncSession,
    owner: str,
    actor: Actor,
    event_type: str,
    tenant_id: str,
    payload: dict[str, Any],
    project_id: str = SYSTEM,
) -> dict[str, Any]:
    """`emit` for a service (`owner`) acting for a caller: the shape every service's writes use."""
    return await emit(
        session,
        event_type=event_type,
        tenant_id=tenant_id,
        actor_type=actor.actor_type,
        actor_id=actor.actor_id,
        decision_owner=owner,
        payload=payload,
        project_id=project_id,
    )


def _token(txid: int, position: int) -> str:
    return base64.urlsafe_b64encode(f"{txid}:{position}".encode()).decode()


def _cursor(token: str) -> tuple[int, int]:
    if not token:
        return (0, 0)
    try:
        txid, position = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        return int(txid), int(position)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument("page_token", "unknown page token") from exc


_LIST = (
    "SELECT * FROM event WHERE (txid, position) > (:txid, :position) "
    "AND txid < (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint {filters} ORDER BY txid, position LIMIT :n"
)


def _to_pb(row: Any) -> event_pb2.Event:
    event = event_pb2.Event(
        event_id=str(row.event_id),
        event_type=row.event_type,
        tenant_id=row.tenant_id,
        project_id=row.project_id,
        actor_type=row.actor_type,
        actor_id=row.actor_id,
        decision_owner=row.decision_owner,
        sequence_no=row.sequence_no,
        schema_version=row.schema_version,
        payload=json_format.ParseDict(row.payload, struct_pb2.Struct()),
    )
    event.occurred_at.FromDatetime(row.occurred_at)
    return event


class EventLogServicer(events_service_pb2_grpc.EventLogServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], poll_seconds: float = 0.2) -> None:
        self._sessions, self._poll = sessions, poll_seconds

    async def _page(self, tenant_id: str, project_id: str, after_sequence: int, token: str, size: int) -> list[Any]:
        filters = (" AND tenant_id = :tenant" if tenant_id else "") + (
            " AND project_id = :project" if project_id else ""
        )
        filters += " AND sequence_no > :after" if tenant_id and after_sequence else ""
        txid, position = _cursor(token)
        params = {
            "txid": txid,
            "position": position,
            "n": size,
            "tenant": tenant_id,
            "project": project_id,
            "after": after_sequence,
        }
        async with self._sessions() as session:
            return list((await session.execute(text(_LIST.format(filters=filters)), params)).all())

    async def ListEvents(
        self, request: events_service_pb2.ListEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> events_service_pb2.ListEventsResponse:
        if not 0 <= request.page_size <= 1000:
            raise InvalidArgument("page_size", "must be between 1 and 1000")
        rows = await self._page(
            request.tenant_id, request.project_id, request.after_sequence, request.page_token, request.page_size or 100
        )
        token = _token(rows[-1].txid, rows[-1].position) if rows else (request.page_token or _token(0, 0))
        return events_service_pb2.ListEventsResponse(events=[_to_pb(r) for r in rows], next_page_token=token)

    async def WatchEvents(
        self, request: events_service_pb2.WatchEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[events_service_pb2.WatchEventsResponse]:
        token = request.page_token
        _cursor(token)
        while True:
            rows = await self._page(request.tenant_id, "", 0, token, 100)
            for row in rows:
                token = _token(row.txid, row.position)
                yield events_service_pb2.WatchEventsResponse(event=_to_pb(row), page_token=token)
            if not rows:
                await asyncio.sleep(self._poll)
