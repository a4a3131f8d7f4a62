from __future__ import annotations

import secrets
from typing import Any, TypeAlias

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.account.v1 import account_pb2 as pb
from aos.account.v1 import account_service_pb2 as rpc
from aos.account.v1 import account_service_pb2_grpc
from aos.onboarding.v1 import onboarding_pb2
from aos.onboarding.v1.onboarding_service_pb2 import NotifyEvidenceRequest as Evidence
from services.account import members, policy, repository, responses
from services.account.clients import Counters
from services.account.models import Member, Tenant
from services.common import db, events, notify, paging, principal, validation
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.principal import MANAGERS, WRITERS, Kind, Principal, caller
from services.common.server import created

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
OWNER = "account"


class AccountServicer(account_service_pb2_grpc.AccountServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: db.Reads,
        onboarding: notify.Peer,
        counters: Counters,
        signups_per_day: int,
    ) -> None:
        self._sessions, self._reads, self._onboarding = sessions, reads, onboarding
        self._counters, self._signups_per_day = counters, signups_per_day

    def _visible_tenant(self, who: Principal, tenant_id: str) -> str:
        # Customers see only their own tenant; any other id looks exactly like a missing one.
        if who.kind in (Kind.HUMAN, Kind.API_KEY) and tenant_id != who.tenant_id:
            raise NotFound("tenant not found", reason="TENANT_NOT_FOUND")
        return tenant_id

    def _projects_changed(self, tenant_id: str) -> None:
        """After the commit: onboarding's gate learns soon (it also follows the event log)."""
        evidence = Evidence(tenant_id=tenant_id, kind=onboarding_pb2.EVIDENCE_KIND_PROJECT_CHANGED)
        self._onboarding.tell(evidence, tenant_id)

    async def CreateTenant(self, request: rpc.CreateTenantRequest, context: Context) -> rpc.CreateTenantResponse:
        who = caller(context)
        tenant = responses.new_tenant(request, who)
        async with self._sessions.begin() as session:
            policy.within_signup_limit(await repository.signups_today(session, who.actor_id), self._signups_per_day)
            if not request.slug and await repository.slug_taken(session, tenant.slug):
                tenant.slug = f"{tenant.slug}-{secrets.token_hex(3)}"
            tenant = await repository.add_tenant(session, tenant)
            owner = await repository.upsert_member(
                session, Member(tenant_id=tenant.id, user_id=who.actor_id, email=who.email, role=principal.OWNER)
            )
            await events.record(session, OWNER, who, "tenant.created", tenant.id, responses.tenant_created(tenant))
        await created(context)
        return rpc.CreateTenantResponse(tenant=responses.tenant_pb(tenant), owner=responses.member_pb(owner))

    async def GetTenant(self, request: rpc.GetTenantRequest, context: Context) -> rpc.GetTenantResponse:
        tenant_id = self._visible_tenant(caller(context), request.tenant_id)
        async with self._reads() as reader:
            return rpc.GetTenantResponse(tenant=responses.tenant_pb(await repository.tenant(reader, tenant_id)))

    async def _own_tenant(self, context: Context) -> Tenant:
        async with self._sessions() as session:
            return await repository.get_tenant(session, caller(context).tenant())

    async def GetOwnTenant(self, request: rpc.GetOwnTenantRequest, context: Context) -> rpc.GetOwnTenantResponse:
        return responses.own_tenant(await self._own_tenant(context))

    async def GetOwnTenantHealth(
        self, request: rpc.GetOwnTenantHealthRequest, context: Context
    ) -> rpc.GetOwnTenantHealthResponse:
        return responses.health(await self._own_tenant(context))

    async def GetOwnTenantUsage(
        self, request: rpc.GetOwnTenantUsageRequest, context: Context
    ) -> rpc.GetOwnTenantUsageResponse:
        tenant = await self._own_tenant(context)
        return responses.usage(tenant, await self._counters.usage(tenant.id))

    async def GetOwnTenantQuota(
        self, request: rpc.GetOwnTenantQuotaRequest, context: Context
    ) -> rpc.GetOwnTenantQuotaResponse:
        rule = policy.quota(request.name)
        tenant = await self._own_tenant(context)
        used = await self._counters.count(tenant.id, rule.used)
        return responses.quota(tenant, request.name.strip().lower(), rule, used)

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
            change = {"from_status": before.status, "to_status": target, "reason": reason}
            await events.record(session, OWNER, who, f"tenant.{target}", tenant_id, change)
        return responses.tenant_pb(moved)

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
        who.require_role(*MANAGERS)
        member = responses.new_member(request, who)
        async with self._sessions.begin() as session:
            member = await members.put(session, who, member)
        return rpc.AddMemberResponse(member=responses.member_pb(member))

    async def RemoveMember(self, request: rpc.RemoveMemberRequest, context: Context) -> rpc.RemoveMemberResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        user_id = validation.length("user_id", request.user_id, 1, 255)
        async with self._sessions.begin() as session:
            member = await members.remove(session, who, who.tenant(), user_id)
        return rpc.RemoveMemberResponse(member=responses.member_pb(member))

    async def ListMembers(self, request: rpc.ListMembersRequest, context: Context) -> rpc.ListMembersResponse:
        tenant_id = caller(context).tenant()
        page = paging.request(request.page_token, request.page_size)
        async with self._sessions() as session:
            rows = await repository.list_members(session, tenant_id, page)
        members, token, _ = page.cut(rows, key=lambda m: (m.created_at, m.user_id))
        return rpc.ListMembersResponse(members=[responses.member_pb(m) for m in members], next_page_token=token)

    async def CreateProject(self, request: rpc.CreateProjectRequest, context: Context) -> rpc.CreateProjectResponse:
        who = caller(context)
        who.require_role(*WRITERS)
        project = responses.new_project(request, who)
        async with self._sessions.begin() as session:
            project, new = await repository.add_project(session, project)
            if new:
                added = {"project_id": project.id, "name": project.name}
                await events.record(session, OWNER, who, "project.created", project.tenant_id, added)
        if new:
            self._projects_changed(project.tenant_id)
        await created(context)
        return rpc.CreateProjectResponse(**responses.project_fields(project))

    async def GetProject(self, request: rpc.GetProjectRequest, context: Context) -> rpc.GetProjectResponse:
        tenant_id = caller(context).tenant()
        async with self._reads() as reader:
            project = await repository.project(reader, tenant_id, request.project_id)
        return rpc.GetProjectResponse(**responses.project_fields(project))

    async def ListProjects(self, request: rpc.ListProjectsRequest, context: Context) -> rpc.ListProjectsResponse:
        tenant_id = caller(context).tenant()
        status = validation.one_of("status", request.status.lower(), ("", *policy.PROJECT_STATUSES)) or None
        page = paging.request(request.page_token, request.page_size, request.limit, request.offset)
        async with self._reads() as reader:
            rows, total = await repository.list_projects(reader, tenant_id, status, page)
        projects, token, more = page.cut(rows)
        return rpc.ListProjectsResponse(
            items=[responses.project_pb(p) for p in projects],
            total=total,
            has_more=more,
            filters_applied={"tenant_id": tenant_id} | ({"status": status} if status else {}),
            next_page_token=token,
        )

    async def ArchiveProject(self, request: rpc.ArchiveProjectRequest, context: Context) -> rpc.ArchiveProjectResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        async with self._sessions.begin() as session:
            project, changed = await repository.archive_project(session, who.tenant(), request.project_id)
            if changed:
                archived = {"project_id": project.id}
                await events.record(session, OWNER, who, "project.archived", project.tenant_id, archived)
        if changed:
            self._projects_changed(project.tenant_id)
        return rpc.ArchiveProjectResponse(project=responses.project_pb(project))

    async def RecordSdkAttestation(
        self, request: rpc.RecordSdkAttestationRequest, context: Context
    ) -> rpc.RecordSdkAttestationResponse:
        who = caller(context)
        attestation = responses.new_attestation(request)
        async with self._sessions.begin() as session:
            await repository.get_tenant(session, attestation.tenant_id)
            saved, new = await repository.upsert_attestation(session, attestation)
            attested = responses.attested(saved, new)
            await events.record(session, OWNER, who, "sdk.attested", saved.tenant_id, attested)
        return rpc.RecordSdkAttestationResponse(attestation=responses.attestation_pb(saved), created=new)

    async def ResolveMember(self, request: rpc.ResolveMemberRequest, context: Context) -> rpc.ResolveMemberResponse:
        org_id = validation.length("org_id", request.org_id, 1, 255)
        user_id = validation.length("user_id", request.user_id, 1, 255)
        async with self._reads() as reader:
            return responses.membership_pb(await repository.membership(reader, org_id, user_id))

    async def GetActivationEvidence(
        self, request: rpc.GetActivationEvidenceRequest, context: Context
    ) -> rpc.GetActivationEvidenceResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 36)
        async with self._reads() as reader:
            project, attested = await repository.evidence(reader, tenant_id)
        return rpc.GetActivationEvidenceResponse(has_active_project=project, has_attestation=attested)

    async def CheckProject(self, request: rpc.CheckProjectRequest, context: Context) -> rpc.CheckProjectResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 64)
        project_id = validation.length("project_id", request.project_id, 1, 64)
        async with self._reads() as reader:
            status = await repository.project_status(reader, tenant_id, project_id)
        return rpc.CheckProjectResponse(exists=status is not None, status=(status or "").upper())
