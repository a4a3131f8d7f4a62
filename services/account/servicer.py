from __future__ import annotations

import secrets
import uuid
from typing import Any, TypeAlias

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.account.v1 import account_pb2 as pb
from aos.account.v1 import account_service_pb2 as rpc
from aos.account.v1 import account_service_pb2_grpc
from aos.onboarding.v1 import onboarding_pb2
from aos.onboarding.v1.onboarding_service_pb2 import NotifyEvidenceRequest as Evidence
from services.account import policy, repository
from services.account.models import Member, Project, SdkAttestation, Tenant
from services.common import events, notify, validation
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.principal import Kind, Principal, caller
from services.common.server import created

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
OWNER = "account"


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


def _tenant_pb(t: Tenant) -> pb.Tenant:
    message = pb.Tenant(
        tenant_id=t.id,
        name=t.name,
        slug=t.slug,
        plan=pb.Plan.Value(f"PLAN_{t.plan.upper()}"),
        status=pb.TenantStatus.Value(f"TENANT_STATUS_{t.status.upper()}"),
        suspended_reason=t.suspended_reason or "",
        billing_email=t.billing_email or "",
        quotas=pb.Quotas(**{f: getattr(t, f) for f in policy.Quotas._fields}),
    )
    message.created_at.FromDatetime(t.created_at)
    message.updated_at.FromDatetime(t.updated_at)
    return message


def _member_pb(m: Member) -> pb.Member:
    message = pb.Member(
        tenant_id=m.tenant_id, user_id=m.user_id, email=m.email, role=pb.Role.Value(f"ROLE_{m.role.upper()}")
    )
    message.created_at.FromDatetime(m.created_at)
    return message


def _project_fields(p: Project) -> dict[str, Any]:
    return {
        "project_id": p.id,
        "tenant_id": p.tenant_id,
        "name": p.name,
        "description": p.description,
        "status": p.status.upper(),
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


def _project_pb(p: Project) -> pb.Project:
    return pb.Project(**_project_fields(p))


class AccountServicer(account_service_pb2_grpc.AccountServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], onboarding: notify.Peer) -> None:
        self._sessions, self._onboarding = sessions, onboarding

    async def _emit(
        self, session: AsyncSession, who: Principal, event_type: str, tenant_id: str, **payload: Any
    ) -> None:
        await events.emit(
            session,
            event_type=event_type,
            tenant_id=tenant_id,
            actor_type=who.actor_type,
            actor_id=who.actor_id,
            decision_owner=OWNER,
            payload=payload,
        )

    def _visible_tenant(self, who: Principal, tenant_id: str) -> str:
        # Customers see only their own tenant; any other id looks exactly like a missing one.
        if who.kind in (Kind.HUMAN, Kind.API_KEY) and tenant_id != who.tenant_id:
            raise NotFound("tenant not found", reason="TENANT_NOT_FOUND")
        return tenant_id

    async def CreateTenant(self, request: rpc.CreateTenantRequest, context: Context) -> rpc.CreateTenantResponse:
        who = caller(context)
        name = validation.length("name", request.name, 1, 255)
        plan = _enum_name(pb.Plan, request.plan or pb.PLAN_FREE, "PLAN_")
        if request.slug and not policy.valid_slug(request.slug):
            raise InvalidArgument("slug", "must be 3..100 lower-case letters, digits and inner hyphens")
        email = validation.length("billing_email", request.billing_email, 0, 255) or None
        tenant_id = str(uuid.uuid4())
        async with self._sessions.begin() as session:
            slug = request.slug or policy.slugify(name)
            if not request.slug and await repository.slug_taken(session, slug):
                slug = f"{slug}-{secrets.token_hex(3)}"
            tenant = await repository.add_tenant(
                session,
                Tenant(
                    id=tenant_id,
                    name=name,
                    slug=slug,
                    plan=plan,
                    status="active",
                    billing_email=email,
                    created_by=who.actor_id,
                    **policy.PLANS[plan]._asdict(),
                ),
            )
            owner = await repository.upsert_member(
                session, Member(tenant_id=tenant_id, user_id=who.actor_id, email=who.email, role="owner")
            )
            await self._emit(
                session,
                who,
                "tenant.created",
                tenant_id,
                name=name,
                slug=slug,
                plan=plan,
                status="active",
                quotas=policy.PLANS[plan]._asdict(),
                owner_id=who.actor_id,
            )
        await created(context)
        return rpc.CreateTenantResponse(tenant=_tenant_pb(tenant), owner=_member_pb(owner))

    async def GetTenant(self, request: rpc.GetTenantRequest, context: Context) -> rpc.GetTenantResponse:
        tenant_id = self._visible_tenant(caller(context), request.tenant_id)
        async with self._sessions() as session:
            return rpc.GetTenantResponse(tenant=_tenant_pb(await repository.get_tenant(session, tenant_id)))

    async def _lifecycle(self, context: Context, action: str, tenant_id: str, reason: str = "") -> pb.Tenant:
        who = caller(context)
        if not tenant_id:
            raise InvalidArgument("tenant_id", "is required")
        reason = validation.length("reason", reason, 0, 1000)
        sources, target = policy.LIFECYCLE[action]
        async with self._sessions.begin() as session:
            before = await repository.get_tenant(session, tenant_id)
            moved = await repository.move_tenant(session, tenant_id, sources, target, reason or None)
            if moved is None:
                raise FailedPrecondition(
                    f"cannot {action} a tenant that is {before.status}",
                    reason="ILLEGAL_TRANSITION",
                    metadata={"status": before.status},
                )
            await self._emit(
                session, who, f"tenant.{target}", tenant_id, from_status=before.status, to_status=target, reason=reason
            )
        return _tenant_pb(moved)

    async def SuspendTenant(self, request: rpc.SuspendTenantRequest, context: Context) -> rpc.SuspendTenantResponse:
        return rpc.SuspendTenantResponse(
            tenant=await self._lifecycle(context, "suspend", request.tenant_id, request.reason)
        )

    async def ReactivateTenant(
        self, request: rpc.ReactivateTenantRequest, context: Context
    ) -> rpc.ReactivateTenantResponse:
        return rpc.ReactivateTenantResponse(tenant=await self._lifecycle(context, "reactivate", request.tenant_id))

    async def TerminateTenant(
        self, request: rpc.TerminateTenantRequest, context: Context
    ) -> rpc.TerminateTenantResponse:
        return rpc.TerminateTenantResponse(
            tenant=await self._lifecycle(context, "terminate", request.tenant_id, request.reason)
        )

    async def ArchiveTenant(self, request: rpc.ArchiveTenantRequest, context: Context) -> rpc.ArchiveTenantResponse:
        return rpc.ArchiveTenantResponse(tenant=await self._lifecycle(context, "archive", request.tenant_id))

    async def AddMember(self, request: rpc.AddMemberRequest, context: Context) -> rpc.AddMemberResponse:
        who = caller(context)
        who.require_role(*policy.MANAGERS)
        user_id = validation.length("user_id", request.user_id, 1, 255)
        email = validation.length("email", request.email, 3, 320)
        if request.role == pb.ROLE_UNSPECIFIED:
            raise InvalidArgument("role", "is required")
        role = _enum_name(pb.Role, request.role, "ROLE_")
        if role == "owner":
            who.require_role("owner")
        async with self._sessions.begin() as session:
            member = await repository.upsert_member(
                session, Member(tenant_id=who.tenant(), user_id=user_id, email=email, role=role)
            )
            await self._emit(session, who, "member.added", who.tenant(), user_id=user_id, role=role)
        return rpc.AddMemberResponse(member=_member_pb(member))

    async def ListMembers(self, request: rpc.ListMembersRequest, context: Context) -> rpc.ListMembersResponse:
        tenant_id = caller(context).tenant()
        size = validation.page_size("page_size", request.page_size)
        async with self._sessions() as session:
            rows = await repository.list_members(
                session, tenant_id, validation.decode_token(request.page_token), size + 1
            )
        token = validation.encode_token(rows[size - 1].created_at, rows[size - 1].user_id) if len(rows) > size else ""
        return rpc.ListMembersResponse(members=[_member_pb(m) for m in rows[:size]], next_page_token=token)

    async def CreateProject(self, request: rpc.CreateProjectRequest, context: Context) -> rpc.CreateProjectResponse:
        who = caller(context)
        who.require_role("owner", "admin", "member")
        name = validation.length("name", request.name, 1, 200)
        description = validation.length("description", request.description, 0, 1000)
        request_id = validation.length("request_id", request.request_id, 0, 100) or None
        async with self._sessions.begin() as session:
            tenant = await repository.get_tenant(session, who.tenant())
            if tenant.status != "active":
                raise FailedPrecondition(f"tenant is {tenant.status}", reason="TENANT_INACTIVE")
            project, new = await repository.add_project(
                session,
                Project(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant.id,
                    name=name,
                    description=description,
                    status="active",
                    request_id=request_id,
                ),
            )
            if new:
                await self._emit(session, who, "project.created", tenant.id, project_id=project.id, name=name)
        if new:
            await self._onboarding.tell(
                Evidence(tenant_id=tenant.id, kind=onboarding_pb2.EVIDENCE_KIND_PROJECT_CHANGED), tenant.id
            )
        await created(context)
        return rpc.CreateProjectResponse(**_project_fields(project))

    async def GetProject(self, request: rpc.GetProjectRequest, context: Context) -> rpc.GetProjectResponse:
        tenant_id = caller(context).tenant()
        async with self._sessions() as session:
            project = await repository.get_project(session, tenant_id, request.project_id)
        return rpc.GetProjectResponse(**_project_fields(project))

    async def ListProjects(self, request: rpc.ListProjectsRequest, context: Context) -> rpc.ListProjectsResponse:
        tenant_id = caller(context).tenant()
        status = validation.one_of("status", request.status.lower(), ("", *policy.PROJECT_STATUSES)) or None
        legacy = bool(request.limit or request.offset)
        if legacy and (request.page_token or request.page_size):
            raise InvalidArgument("page_token", "cannot be combined with limit/offset")
        size = validation.page_size("limit" if legacy else "page_size", request.limit or request.page_size)
        offset = validation.between("offset", request.offset, 0, 2**31 - 1)
        async with self._sessions() as session:
            rows, total = await repository.list_projects(
                session, tenant_id, status, validation.decode_token(request.page_token), offset, size
            )
        more = len(rows) == size and (offset + size < total if legacy else True)
        token = validation.encode_token(rows[-1].created_at, rows[-1].id) if more and not legacy else ""
        applied = {"tenant_id": tenant_id} | ({"status": status} if status else {})
        return rpc.ListProjectsResponse(
            items=[_project_pb(p) for p in rows],
            total=total,
            has_more=offset + len(rows) < total if legacy else bool(token),
            filters_applied=applied,
            next_page_token=token,
        )

    async def ArchiveProject(self, request: rpc.ArchiveProjectRequest, context: Context) -> rpc.ArchiveProjectResponse:
        who = caller(context)
        who.require_role("owner", "admin")
        async with self._sessions.begin() as session:
            project, changed = await repository.archive_project(session, who.tenant(), request.project_id)
            if changed:
                await self._emit(session, who, "project.archived", project.tenant_id, project_id=project.id)
        if changed:
            await self._onboarding.tell(
                Evidence(tenant_id=project.tenant_id, kind=onboarding_pb2.EVIDENCE_KIND_PROJECT_CHANGED),
                project.tenant_id,
            )
        return rpc.ArchiveProjectResponse(project=_project_pb(project))

    async def RecordSdkAttestation(
        self, request: rpc.RecordSdkAttestationRequest, context: Context
    ) -> rpc.RecordSdkAttestationResponse:
        who = caller(context)
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 36)
        version = validation.length("sdk_version", request.sdk_version, 1, 100)
        language = validation.length("sdk_language", request.sdk_language, 1, 50)
        client_id = validation.length("client_id", request.client_id, 0, 200)
        digest = policy.attestation_hash(tenant_id, version, language, client_id)
        async with self._sessions.begin() as session:
            await repository.get_tenant(session, tenant_id)
            row, new = await repository.upsert_attestation(
                session,
                SdkAttestation(
                    tenant_id=tenant_id,
                    sdk_version=version,
                    sdk_language=language,
                    client_id=client_id or None,
                    attestation_hash=digest,
                ),
            )
            await self._emit(
                session,
                who,
                "sdk.attested",
                tenant_id,
                attestation_hash=digest,
                sdk_version=version,
                sdk_language=language,
                client_id=client_id,
                created=new,
            )
        attestation = pb.SdkAttestation(
            tenant_id=tenant_id,
            sdk_version=version,
            sdk_language=language,
            client_id=client_id,
            attestation_hash=digest,
        )
        attestation.attested_at.FromDatetime(row.attested_at)
        return rpc.RecordSdkAttestationResponse(attestation=attestation, created=new)

    async def GetActivationEvidence(
        self, request: rpc.GetActivationEvidenceRequest, context: Context
    ) -> rpc.GetActivationEvidenceResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 36)
        async with self._sessions() as session:
            project, attested = await repository.evidence(session, tenant_id)
        return rpc.GetActivationEvidenceResponse(has_active_project=project, has_attestation=attested)
