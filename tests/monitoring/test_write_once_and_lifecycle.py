"""Write-once tables enforced by PostgreSQL (MONITORING.md 0.1, M27) and the lifecycle block fed by account's
tenant events (0.6, M33 at the service)."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aos.account.v1 import account_service_pb2 as account_rpc
from aos.monitoring.v1 import monitoring_pb2 as pb
from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from services.common.settings import async_url
from tests.conftest import eventually, human, operator
from tests.monitoring.conftest import event_types, finish, key, new_integration, new_run, sql


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE llm_run_record SET cost_cents = 0 WHERE tenant_id = :t",
        "DELETE FROM llm_run_record WHERE tenant_id = :t",
        "UPDATE usage_record SET cost_cents = 0 WHERE tenant_id = :t",
        "DELETE FROM usage_record WHERE tenant_id = :t",
        "TRUNCATE usage_record",
    ],
)
async def test_records_are_write_once(
    activity: Any,
    telemetry: Any,
    integrations: Any,
    tenant: str,
    engines: dict[str, AsyncEngine],
    db_urls: dict[str, str],
    pg_base: str,
    statement: str,
) -> None:
    await finish(activity, tenant, (await new_run(activity, tenant)).run_id)
    integration = await new_integration(integrations, tenant)
    usage = pb.UsageRecordInput(call_id="c1", integration_id=integration, provider="openai", model="m")
    await telemetry.IngestUsage(rpc.IngestUsageRequest(record=usage), metadata=key(tenant, scopes="*"))
    with pytest.raises(Exception, match="permission denied"):  # the service's own role
        await sql(engines, statement, t=tenant)
    # Even a superuser, which privileges do not stop, meets the trigger.
    admin = make_url(async_url(pg_base)).set(database=make_url(db_urls["monitoring"]).database)
    engine = create_async_engine(admin)
    try:
        with pytest.raises(Exception, match="write-once"):
            async with engine.begin() as conn:
                await conn.execute(text(statement), {"t": tenant})
    finally:
        await engine.dispose()
    counts = await sql(
        engines,
        "SELECT (SELECT count(*) FROM llm_run_record WHERE tenant_id = :t), "
        "(SELECT count(*) FROM usage_record WHERE tenant_id = :t)",
        t=tenant,
    )
    assert tuple(counts[0]) == (1, 1)


async def status_in_monitoring(engines: dict[str, AsyncEngine], tenant: str) -> str | None:
    rows = await sql(engines, "SELECT status FROM tenant_lifecycle WHERE tenant_id = :t", t=tenant)
    return rows[0].status if rows else None


async def test_a_suspended_tenant_reads_but_does_not_write(
    account: Any, activity: Any, incidents: Any, telemetry: Any, integrations: Any, engines: dict[str, AsyncEngine]
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    made = await account.CreateTenant(account_rpc.CreateTenantRequest(name="Paused"), metadata=human(user=owner))
    tenant = made.tenant.tenant_id
    run = await new_run(activity, tenant)
    failed = await finish(activity, tenant, (await new_run(activity, tenant)).run_id, "failed")
    integration = await new_integration(integrations, tenant)
    usage = pb.UsageRecordInput(call_id="c1", integration_id=integration, provider="openai", model="m")
    await account.SuspendTenant(
        account_rpc.SuspendTenantRequest(tenant_id=tenant, reason="unpaid"), metadata=operator()
    )
    await eventually(lambda: status_in_monitoring(engines, tenant), until=lambda s: s == "suspended", within=10)
    before = await event_types(engines, tenant)
    owner_md = human(tenant, user=owner)
    assert (await incidents.ListActiveIncidents(rpc.ListActiveIncidentsRequest(), metadata=owner_md)).total == 1
    assert (await activity.GetRun(rpc.GetRunRequest(run_id=run.run_id), metadata=key(tenant))).run_id == run.run_id
    ack = rpc.AcknowledgeIncidentRequest(incident_id=failed.incident_ids[0])
    ingest = telemetry.IngestUsage(rpc.IngestUsageRequest(record=usage), metadata=key(tenant, scopes="*"))
    for call in (incidents.AcknowledgeIncident(ack, metadata=owner_md), new_run(activity, tenant), ingest):
        with pytest.raises(grpc.aio.AioRpcError) as blocked:
            await call
        assert blocked.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "LIFECYCLE_BLOCKED" in str(blocked.value.trailing_metadata())
    assert await event_types(engines, tenant) == before  # nothing written
    await account.TerminateTenant(account_rpc.TerminateTenantRequest(tenant_id=tenant), metadata=operator())
    await eventually(lambda: status_in_monitoring(engines, tenant), until=lambda s: s == "terminated", within=10)
    with pytest.raises(grpc.aio.AioRpcError) as closed:
        await incidents.ListActiveIncidents(rpc.ListActiveIncidentsRequest(), metadata=owner_md)
    assert closed.value.code() is grpc.StatusCode.PERMISSION_DENIED
