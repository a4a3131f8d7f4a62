import asyncio
import uuid

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.events.v1 import events_service_pb2 as rpc
from aos.events.v1 import events_service_pb2_grpc
from services.common import db, events, server
from services.common.errors import Internal
from tests.conftest import Channels, human, service

VALID = {
    "event_id": str(uuid.uuid4()),
    "event_type": "x.y",
    "tenant_id": "t",
    "project_id": "__system__",
    "actor_type": "user",
    "actor_id": "u",
    "decision_owner": "account",
    "sequence_no": 0,
    "schema_version": "1.0.0",
}


def test_a_complete_envelope_is_valid() -> None:
    assert events.validate(VALID) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"tenant_id": None}, "missing: tenant_id"),
        ({"event_id": None}, "missing: event_id"),
        ({"actor_type": "robot"}, "invalid: actor_type 'robot'"),
        ({"sequence_no": -1}, "invalid: sequence_no must be >= 0"),
        ({"sequence_no": "1"}, "invalid: sequence_no must be int"),
        ({"sequence_no": True}, "invalid: sequence_no must be int"),
        ({"schema_version": 1}, "invalid: schema_version must be str"),
    ],
)
def test_invalid_envelopes_are_reported(change: dict[str, object], problem: str) -> None:
    assert problem in events.validate(VALID | change)


def test_missing_key_and_empty_string() -> None:
    without = {k: v for k, v in VALID.items() if k != "decision_owner"}
    assert events.validate(without) == ["missing: decision_owner"]
    assert events.validate(VALID | {"actor_id": ""}) == []  # empty strings pass (SPEC 8)


async def test_an_invalid_event_fails_the_write_and_leaves_no_row(engines: dict[str, AsyncEngine]) -> None:
    sessions = db.sessionmaker(engines["account"])
    tenant = str(uuid.uuid4())
    with pytest.raises(Internal, match="invalid event"):
        async with sessions.begin() as session:
            await session.execute(
                text(
                    "INSERT INTO tenant (id, org_id, name, slug, plan, status, max_workers, max_runs_per_day, "
                    "max_concurrent_runs, max_tokens_per_month, max_api_keys, created_by) "
                    "VALUES (:t, :t, 'n', :t, 'free', 'active', 1, 1, 1, 1, 1, 'test')"
                ),
                {"t": tenant},
            )
            await events.emit(
                session,
                event_type="tenant.created",
                tenant_id=tenant,
                actor_type="robot",
                actor_id="u",
                decision_owner="account",
                payload={},
            )
    async with engines["account"].connect() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM tenant WHERE id = :t"), {"t": tenant})).scalar_one()
        seq = (
            await conn.execute(text("SELECT count(*) FROM event_sequence WHERE tenant_id = :t"), {"t": tenant})
        ).scalar_one()
    assert (rows, seq) == (0, 0)


async def test_a_rolled_back_write_leaves_no_gap(engines: dict[str, AsyncEngine]) -> None:
    sessions = db.sessionmaker(engines["account"])
    tenant = f"gap-{uuid.uuid4()}"
    emit = {
        "event_type": "x.happened",
        "tenant_id": tenant,
        "actor_type": "system",
        "actor_id": "test",
        "decision_owner": "account",
        "payload": {},
    }
    async with sessions.begin() as session:
        await events.emit(session, **emit)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        async with sessions.begin() as session:
            await events.emit(session, **emit)  # type: ignore[arg-type]
            raise RuntimeError("the change fails after its event was written")
    async with sessions.begin() as session:
        third = await events.emit(session, **emit)  # type: ignore[arg-type]
    assert third["sequence_no"] == 2


async def test_100_concurrent_writers_of_one_stream_leave_no_gap(engines: dict[str, AsyncEngine]) -> None:
    """100 transactions race for one stream; every fifth rolls back after its event was written. The
    committed ones hold 1..80 with nothing lost, and the stream's counter agrees."""
    sessions = db.sessionmaker(engines["account"])
    tenant = f"race-{uuid.uuid4()}"

    async def write(i: int) -> None:
        async with sessions.begin() as session:
            await events.emit(
                session,
                event_type="x.happened",
                tenant_id=tenant,
                actor_type="system",
                actor_id="test",
                decision_owner="account",
                payload={"i": i},
            )
            if i % 5 == 0:
                raise RuntimeError("the change fails after its event was written")

    outcomes = await asyncio.gather(*(write(i) for i in range(100)), return_exceptions=True)
    assert sum(isinstance(o, RuntimeError) for o in outcomes) == 20
    assert all(o is None or isinstance(o, RuntimeError) for o in outcomes)
    async with engines["account"].connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT sequence_no, payload FROM event WHERE tenant_id = :t ORDER BY sequence_no"), {"t": tenant}
            )
        ).all()
        last = (
            await conn.execute(text("SELECT last_sequence FROM event_sequence WHERE tenant_id = :t"), {"t": tenant})
        ).scalar_one()
    assert [r.sequence_no for r in rows] == list(range(1, 81)) and last == 80
    assert sorted(r.payload["i"] for r in rows) == [i for i in range(100) if i % 5]


async def test_list_and_watch_follow_the_cursor(
    account: object, channels: Channels, running: dict[str, server.Service]
) -> None:
    from aos.account.v1 import account_service_pb2 as account_rpc

    log = channels.stub(events_service_pb2_grpc.EventLogServiceStub, running["account"], "onboarding")
    start = await log.ListEvents(rpc.ListEventsRequest(page_size=1000), metadata=service(), timeout=5)
    token = start.next_page_token
    while start.events:  # drain to the end of the log
        start = await log.ListEvents(
            rpc.ListEventsRequest(page_token=token, page_size=1000), metadata=service(), timeout=5
        )
        token = start.next_page_token
    reply = await account.CreateTenant(  # type: ignore[attr-defined]
        account_rpc.CreateTenantRequest(name="Watched"), metadata=human(), timeout=5
    )
    tenant = reply.tenant.tenant_id
    page = await log.ListEvents(rpc.ListEventsRequest(page_token=token), metadata=service(), timeout=5)
    assert [(e.event_type, e.tenant_id) for e in page.events] == [("tenant.created", tenant)]
    event = page.events[0]
    assert (event.sequence_no, event.decision_owner, event.actor_type, event.schema_version) == (
        1,
        "account",
        "user",
        "1.0.0",
    )
    assert event.payload["slug"] == reply.tenant.slug
    stream = log.WatchEvents(rpc.WatchEventsRequest(page_token=token), metadata=service(), timeout=5)
    first = await asyncio.wait_for(stream.read(), 5)
    assert first.event.event_id == event.event_id and first.page_token == page.next_page_token
    stream.cancel()


async def test_event_log_is_internal(channels: Channels, running: dict[str, server.Service]) -> None:
    log = channels.stub(events_service_pb2_grpc.EventLogServiceStub, running["account"])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await log.ListEvents(rpc.ListEventsRequest(), metadata=human("t"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    log = channels.stub(events_service_pb2_grpc.EventLogServiceStub, running["account"], "onboarding")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await log.ListEvents(rpc.ListEventsRequest(page_token="%%%"), metadata=service(), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
