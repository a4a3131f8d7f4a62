"""Proto ⇄ row: validated rows from requests, messages from rows, and the payloads of the events rows record."""

from __future__ import annotations

import uuid
from typing import Any

from aos.account.v1 import account_pb2 as pb
from aos.account.v1 import account_service_pb2 as rpc
from services.account import policy
from services.account.clients import Usage
from services.account.models import Member, Project, SdkAttestation, Tenant
from services.common import db, validation
from services.common.errors import InvalidArgument
from services.common.principal import Principal


def new_tenant(request: rpc.CreateTenantRequest, who: Principal) -> Tenant:
    """An active tenant on its plan's quotas, owned by the caller; without a requested slug, the slug is
    derived from the name (the caller makes it unique)."""
    name = validation.name("name", request.name, 1, 255)
    plan = validation.enum_name("plan", pb.Plan, request.plan or pb.PLAN_FREE, "PLAN_")
    if request.slug and not policy.valid_slug(request.slug):
        raise InvalidArgument("slug", "must be 3..100 lower-case letters, digits and inner hyphens")
    email = validation.length("billing_email", request.billing_email, 0, 255) or None
    tenant_id = str(uuid.uuid4())
    return Tenant(
        id=tenant_id,
        # The caller's organisation at the identity provider (the gate passes it on); a token without one
        # makes the tenant its own organisation, which is what dev tokens then name.
        org_id=who.org_id or tenant_id,
        name=name,
        slug=request.slug or policy.slugify(name),
        plan=plan,
        status="active",
        billing_email=email,
        created_by=who.actor_id,
        **policy.PLANS[plan]._asdict(),
    )


def tenant_created(t: Tenant) -> dict[str, Any]:
    quotas = policy.PLANS[t.plan]._asdict()
    return {
        "name": t.name,
        "slug": t.slug,
        "plan": t.plan,
        "status": t.status,
        "quotas": quotas,
        "owner_id": t.created_by,
    }


def tenant_pb(t: Tenant | db.Row) -> pb.Tenant:
    message = pb.Tenant(
        tenant_id=t.id,
        name=t.name,
        slug=t.slug,
        plan=pb.Plan.Value(f"PLAN_{t.plan.upper()}"),
        status=pb.TenantStatus.Value(f"TENANT_STATUS_{t.status.upper()}"),
        suspended_reason=t.suspended_reason or "",
        billing_email=t.billing_email or "",
        org_id=t.org_id,
        quotas=pb.Quotas(**{f: getattr(t, f) for f in policy.Quotas._fields}),
    )
    message.created_at.FromDatetime(t.created_at)
    message.updated_at.FromDatetime(t.updated_at)
    return message


def own_tenant(t: Tenant) -> rpc.GetOwnTenantResponse:
    message = rpc.GetOwnTenantResponse(
        tenant_id=t.id,
        name=t.name,
        slug=t.slug,
        plan=t.plan,
        status=t.status,
        billing_email=t.billing_email or "",
        **{f: getattr(t, f) for f in policy.Quotas._fields},
    )
    message.created_at.FromDatetime(t.created_at)
    message.updated_at.FromDatetime(t.updated_at)
    return message


def health(t: Tenant) -> rpc.GetOwnTenantHealthResponse:
    return rpc.GetOwnTenantHealthResponse(
        tenant_id=t.id, status=t.status, healthy=t.status == "active", suspended_reason=t.suspended_reason or ""
    )


def usage(t: Tenant, counted: Usage) -> rpc.GetOwnTenantUsageResponse:
    message = rpc.GetOwnTenantUsageResponse(tenant_id=t.id, plan=t.plan, **counted._asdict())
    message.as_of.GetCurrentTime()
    return message


def quota(t: Tenant, name: str, rule: policy.Quota, used: int) -> rpc.GetOwnTenantQuotaResponse:
    limit = getattr(t, rule.limit)
    return rpc.GetOwnTenantQuotaResponse(
        tenant_id=t.id,
        name=name,
        limit=limit,
        used=used,
        remaining=max(0, limit - used),
        exhausted=used >= limit,
        period=rule.period,
    )


def membership_pb(m: Member | db.Row) -> rpc.ResolveMemberResponse:
    return rpc.ResolveMemberResponse(tenant_id=m.tenant_id, role=pb.Role.Value(f"ROLE_{m.role.upper()}"))


def new_member(request: rpc.AddMemberRequest, who: Principal) -> Member:
    user_id = validation.length("user_id", request.user_id, 1, 255)
    email = validation.length("email", request.email, 3, 320)
    role = validation.enum_name("role", pb.Role, request.role, "ROLE_")
    return Member(tenant_id=who.tenant(), user_id=user_id, email=email, role=role)


def member_changed(user_id: str, before: str, after: str) -> dict[str, Any]:
    """The payload of member.role_changed and member.removed (after ""), which the edge's role cache follows."""
    return {"user_id": user_id, "from_role": before, "to_role": after}


def member_pb(m: Member) -> pb.Member:
    message = pb.Member(
        tenant_id=m.tenant_id, user_id=m.user_id, email=m.email, role=pb.Role.Value(f"ROLE_{m.role.upper()}")
    )
    message.created_at.FromDatetime(m.created_at)
    return message


def new_project(request: rpc.CreateProjectRequest, who: Principal) -> Project:
    name = validation.name("name", request.name, 1, 200)
    description = validation.length("description", request.description, 0, 1000)
    request_id = validation.length("request_id", request.request_id, 0, 100) or None
    return Project(
        id=str(uuid.uuid4()),
        tenant_id=who.tenant(),
        name=name,
        description=description,
        status="active",
        request_id=request_id,
    )


def project_fields(p: Project | db.Row) -> dict[str, Any]:
    return {
        "project_id": p.id,
        "tenant_id": p.tenant_id,
        "name": p.name,
        "description": p.description,
        "status": p.status.upper(),
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


def project_pb(p: Project | db.Row) -> pb.Project:
    return pb.Project(**project_fields(p))


def new_attestation(request: rpc.RecordSdkAttestationRequest) -> SdkAttestation:
    tenant_id = validation.length("tenant_id", request.tenant_id, 1, 36)
    version = validation.length("sdk_version", request.sdk_version, 1, 100)
    language = validation.length("sdk_language", request.sdk_language, 1, 50)
    client_id = validation.length("client_id", request.client_id, 0, 200)
    return SdkAttestation(
        tenant_id=tenant_id,
        sdk_version=version,
        sdk_language=language,
        client_id=client_id or None,
        attestation_hash=policy.attestation_hash(tenant_id, version, language, client_id),
    )


def attested(a: SdkAttestation, created: bool) -> dict[str, Any]:
    return {
        "attestation_hash": a.attestation_hash,
        "sdk_version": a.sdk_version,
        "sdk_language": a.sdk_language,
        "client_id": a.client_id or "",
        "created": created,
    }


def attestation_pb(a: SdkAttestation) -> pb.SdkAttestation:
    message = pb.SdkAttestation(
        tenant_id=a.tenant_id,
        sdk_version=a.sdk_version,
        sdk_language=a.sdk_language,
        client_id=a.client_id or "",
        attestation_hash=a.attestation_hash,
    )
    message.attested_at.FromDatetime(a.attested_at)
    return message
