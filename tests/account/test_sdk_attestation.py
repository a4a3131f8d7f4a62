import hashlib
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.account.v1 import account_service_pb2 as rpc
from services.account import policy
from tests.conftest import human, service


def test_hash_is_spec_7() -> None:
    expected = hashlib.sha256(b"T:1.2.0:python:c1").hexdigest()[:32]
    assert policy.attestation_hash("T", "1.2.0", "python", "c1") == expected


async def attestations(engines: dict[str, AsyncEngine], tenant: str) -> list[Any]:
    async with engines["account"].connect() as conn:
        return list(
            (
                await conn.execute(
                    text(
                        "SELECT sdk_version, attestation_hash, attested_at FROM sdk_attestation "
                        "WHERE tenant_id = :t ORDER BY id"
                    ),
                    {"t": tenant},
                )
            ).all()
        )


async def test_handshakes_upsert_by_hash(
    account_as_onboarding: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    peer = account_as_onboarding
    shake = rpc.RecordSdkAttestationRequest(
        tenant_id=tenant, sdk_version="1.2.0", sdk_language="python", client_id="c1"
    )
    first = await peer.RecordSdkAttestation(shake, metadata=service(), timeout=5)
    assert first.created and first.attestation.attestation_hash == policy.attestation_hash(
        tenant, "1.2.0", "python", "c1"
    )
    again = await peer.RecordSdkAttestation(shake, metadata=service(), timeout=5)
    assert (
        not again.created and again.attestation.attested_at.ToDatetime() >= first.attestation.attested_at.ToDatetime()
    )
    rows = await attestations(engines, tenant)
    assert len(rows) == 1 and rows[0].attested_at == again.attestation.attested_at.ToDatetime().astimezone(
        rows[0].attested_at.tzinfo
    )
    shake.sdk_version = "1.3.0"
    assert (await peer.RecordSdkAttestation(shake, metadata=service(), timeout=5)).created
    assert [r.sdk_version for r in await attestations(engines, tenant)] == ["1.2.0", "1.3.0"]


async def test_evidence(account: Any, account_as_onboarding: Any, tenant: str) -> None:
    peer = account_as_onboarding
    ask = rpc.GetActivationEvidenceRequest(tenant_id=tenant)
    before = await peer.GetActivationEvidence(ask, metadata=service(), timeout=5)
    assert (before.has_active_project, before.has_attestation) == (False, False)
    project = await account.CreateProject(rpc.CreateProjectRequest(name="p"), metadata=human(tenant), timeout=5)
    await peer.RecordSdkAttestation(
        rpc.RecordSdkAttestationRequest(tenant_id=tenant, sdk_version="1", sdk_language="go"),
        metadata=service(),
        timeout=5,
    )
    after = await peer.GetActivationEvidence(ask, metadata=service(), timeout=5)
    assert (after.has_active_project, after.has_attestation) == (True, True)
    await account.ArchiveProject(
        rpc.ArchiveProjectRequest(project_id=project.project_id), metadata=human(tenant), timeout=5
    )
    archived = await peer.GetActivationEvidence(ask, metadata=service(), timeout=5)
    assert not archived.has_active_project


@pytest.mark.parametrize(
    ("change", "field"), [({"sdk_version": ""}, "sdk_version"), ({"sdk_language": ""}, "sdk_language")]
)
async def test_missing_sdk_fields(account_as_onboarding: Any, tenant: str, change: dict[str, str], field: str) -> None:
    peer = account_as_onboarding
    fields = {"tenant_id": tenant, "sdk_version": "1", "sdk_language": "python"} | change
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await peer.RecordSdkAttestation(rpc.RecordSdkAttestationRequest(**fields), metadata=service(), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and caught.value.details().startswith(field)


async def test_internal_rpcs_refuse_customers(account: Any, tenant: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.GetActivationEvidence(
            rpc.GetActivationEvidenceRequest(tenant_id=tenant), metadata=human(tenant), timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
