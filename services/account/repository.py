from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, literal, literal_column, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.account import policy
from services.account.models import Member, Project, SdkAttestation, Tenant
from services.common import db, paging
from services.common.errors import AlreadyExists, NotFound


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    return bool(await session.scalar(select(exists().where(Tenant.slug == slug))))


async def add_tenant(session: AsyncSession, tenant: Tenant) -> Tenant:
    session.add(tenant)
    try:
        await session.flush()
    except IntegrityError as exc:
        if "uq_tenant_org_id" in str(exc.orig):
            raise AlreadyExists("the organisation already has a tenant", reason="ORG_HAS_TENANT") from exc
        raise AlreadyExists(f"slug {tenant.slug!r} is taken", reason="SLUG_TAKEN") from exc
    return tenant


async def get_tenant(session: AsyncSession, tenant_id: str) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant not found", reason="TENANT_NOT_FOUND")
    return tenant


async def move_tenant(
    session: AsyncSession, tenant_id: str, sources: tuple[str, ...], target: str, reason: str | None
) -> Tenant | None:
    """Conditional update: None when the tenant is not in one of `sources` (the row decides, not Python)."""
    values: dict[str, object] = {"status": target, "updated_at": func.now()}
    if target in ("suspended", "terminated"):
        values["suspended_reason"] = reason
    elif target == "active":
        values["suspended_reason"] = None
    stmt = (
        update(Tenant)
        .where(Tenant.id == tenant_id, Tenant.status.in_(sources))
        .values(**values)
        .returning(Tenant)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def signups_today(session: AsyncSession, user_id: str) -> int:
    """Tenants the user created in the last 24 hours. The count is taken under a per-user lock held until
    commit: a concurrent signup of the same user waits here and then counts this one's tenant too."""
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"signup:{user_id}", 0))))
    recent = Tenant.created_at > func.now() - timedelta(hours=24)
    return (
        await session.scalar(select(func.count()).select_from(Tenant).where(Tenant.created_by == user_id, recent)) or 0
    )


async def lock_owners(session: AsyncSession, tenant_id: str) -> int:
    """Locks the tenant's owner rows until commit (in one order, so lockers queue rather than deadlock) and
    counts them. A concurrent change that demoted or removed an owner meanwhile is seen: PostgreSQL
    re-reads a row it waited for, and one that is no longer an owner drops out."""
    query = select(Member.user_id).where(Member.tenant_id == tenant_id, Member.role == "owner")
    return len((await session.scalars(query.order_by(Member.user_id).with_for_update())).all())


async def get_member(session: AsyncSession, tenant_id: str, user_id: str) -> Member | None:
    query = select(Member).where(Member.tenant_id == tenant_id, Member.user_id == user_id).with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def delete_member(session: AsyncSession, tenant_id: str, user_id: str) -> None:
    stmt = delete(Member).where(Member.tenant_id == tenant_id, Member.user_id == user_id)
    await session.execute(stmt.execution_options(synchronize_session=False))


async def upsert_member(session: AsyncSession, member: Member) -> Member:
    stmt = insert(Member).values(
        tenant_id=member.tenant_id, user_id=member.user_id, email=member.email, role=member.role
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[Member.tenant_id, Member.user_id],
        set_={"role": stmt.excluded.role, "email": stmt.excluded.email},
    )
    # populate_existing: the session may hold this member already, read under lock just before.
    returning = stmt.returning(Member).execution_options(populate_existing=True)
    return (await session.execute(returning)).scalar_one()


async def list_members(session: AsyncSession, tenant_id: str, page: paging.Page) -> list[Member]:
    """Oldest first, unlike the other lists: members page forwards after (created_at, user_id)."""
    query = select(Member).where(Member.tenant_id == tenant_id)
    if page.after:
        query = query.where(tuple_(Member.created_at, Member.user_id) > tuple_(*page.after))
    query = query.order_by(Member.created_at, Member.user_id).limit(page.size + 1)
    return list((await session.scalars(query)).all())


_PROJECT_COLUMNS = ("id", "tenant_id", "name", "description", "status", "request_id")


async def add_project(session: AsyncSession, project: Project) -> tuple[Project, bool]:
    """Inserts when the tenant is active, in one statement; else raises as get_tenant and
    policy.require_active do, or returns the project an earlier request with the same request_id created."""
    values = [literal(getattr(project, c), Project.__table__.c[c].type) for c in _PROJECT_COLUMNS]
    active = select(*values).where(Tenant.id == project.tenant_id, Tenant.status == "active")
    stmt = insert(Project).from_select(_PROJECT_COLUMNS, active)
    stmt = stmt.on_conflict_do_nothing(index_elements=["tenant_id", "request_id"])
    created = (await session.execute(stmt.returning(Project))).scalar_one_or_none()
    if created is not None:
        return created, True
    policy.require_active((await get_tenant(session, project.tenant_id)).status)
    existing = await session.scalar(
        select(Project).where(Project.tenant_id == project.tenant_id, Project.request_id == project.request_id)
    )
    assert existing is not None  # the conflicting row exists: rows are never deleted
    return existing, False


async def get_project(session: AsyncSession, tenant_id: str, project_id: str) -> Project:
    project = await session.scalar(select(Project).where(Project.id == project_id, Project.tenant_id == tenant_id))
    if project is None:
        raise NotFound("project not found", reason="PROJECT_NOT_FOUND")
    return project


async def project_status(reader: db.Reader, tenant_id: str, project_id: str) -> str | None:
    """The project's status when it is the tenant's (another tenant's is as unknown as a missing one)."""
    status: str | None = await reader.value(
        "SELECT status FROM project WHERE id = $1 AND tenant_id = $2", project_id, tenant_id
    )
    return status


_PROJECT = "id, tenant_id, name, description, status, created_at, updated_at"
_PROJECTS = paging.newest_first("project", _PROJECT, "tenant_id = $5 AND ($6::text IS NULL OR status = $6)")


async def list_projects(
    reader: db.Reader, tenant_id: str, status: str | None, page: paging.Page
) -> tuple[list[db.Row], int]:
    """The page's rows (newest first, one more than the page when another follows) and the filtered total."""
    return await paging.read(reader, _PROJECTS, page, tenant_id, status)


async def project(reader: db.Reader, tenant_id: str, project_id: str) -> db.Row:
    found = await reader.row(f"SELECT {_PROJECT} FROM project WHERE id = $1 AND tenant_id = $2", project_id, tenant_id)
    if found is None:
        raise NotFound("project not found", reason="PROJECT_NOT_FOUND")
    return found


_TENANT = ", ".join(c.name for c in Tenant.__table__.columns)


async def tenant(reader: db.Reader, tenant_id: str) -> db.Row:
    found = await reader.row(f"SELECT {_TENANT} FROM tenant WHERE id = $1", tenant_id)
    if found is None:
        raise NotFound("tenant not found", reason="TENANT_NOT_FOUND")
    return found


async def membership(reader: db.Reader, org_id: str, user_id: str) -> db.Row:
    """The user's membership (tenant_id, role) in the tenant of the organisation; NotFound when either is
    missing."""
    found = await reader.row(
        "SELECT m.tenant_id, m.role FROM member m JOIN tenant t ON t.id = m.tenant_id"
        " WHERE t.org_id = $1 AND m.user_id = $2",
        org_id,
        user_id,
    )
    if found is None:
        raise NotFound("no membership", reason="MEMBER_NOT_FOUND")
    return found


async def archive_project(session: AsyncSession, tenant_id: str, project_id: str) -> tuple[Project, bool]:
    stmt = (
        update(Project)
        .where(Project.id == project_id, Project.tenant_id == tenant_id, Project.status == "active")
        .values(status="archived", updated_at=func.now())
        .returning(Project)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    archived = (await session.execute(stmt)).scalar_one_or_none()
    if archived is not None:
        return archived, True
    return await get_project(session, tenant_id, project_id), False


async def upsert_attestation(session: AsyncSession, row: SdkAttestation) -> tuple[SdkAttestation, bool]:
    """SPEC 7: insert, or refresh attested_at and sdk_version of the same (tenant, hash)."""
    now = datetime.now(UTC)
    stmt = insert(SdkAttestation).values(
        tenant_id=row.tenant_id,
        sdk_version=row.sdk_version,
        sdk_language=row.sdk_language,
        client_id=row.client_id,
        attested_at=now,
        attestation_hash=row.attestation_hash,
    )
    stmt = stmt.on_conflict_do_update(
        constraint="uq_sdk_attestations_tenant_hash",
        set_={"attested_at": now, "sdk_version": stmt.excluded.sdk_version},
    )
    # xmax = 0 only on a freshly inserted row version: tells insert from update in one statement.
    result: Any = await session.execute(stmt.returning(SdkAttestation, literal_column("(xmax = 0)")))
    saved, created = result.one()
    return saved, bool(created)


async def evidence(reader: db.Reader, tenant_id: str) -> tuple[bool, bool]:
    row = await reader.row(
        "SELECT EXISTS (SELECT FROM project WHERE tenant_id = $1 AND status = 'active'),"
        " EXISTS (SELECT FROM sdk_attestation WHERE tenant_id = $1)",
        tenant_id,
    )
    assert row is not None  # a SELECT without FROM always returns its one row
    return bool(row[0]), bool(row[1])
