"""Account rules with no I/O: plan quota presets, the tenant lifecycle, who may change a member, the
signup limit, slugs, attestation hashes."""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from services.common.errors import FailedPrecondition, NotFound, ResourceExhausted
from services.common.principal import OWNER, Principal


class Quotas(NamedTuple):
    max_workers: int
    max_runs_per_day: int
    max_concurrent_runs: int
    max_tokens_per_month: int
    max_api_keys: int


PLANS = {
    "free": Quotas(3, 100, 5, 1_000_000, 5),
    "pro": Quotas(10, 1000, 20, 10_000_000, 20),
    "enterprise": Quotas(100, 100_000, 100, 1_000_000_000, 100),
}

# action → (statuses it may start from, status it leads to); SPEC 1.1.
LIFECYCLE = {
    "suspend": (("active",), "suspended"),
    "reactivate": (("suspended",), "active"),
    "terminate": (("active", "suspended"), "terminated"),
    "archive": (("terminated",), "archived"),
}

PROJECT_STATUSES = ("active", "archived")


class Quota(NamedTuple):
    limit: str  # the Tenant column holding the plan's limit
    used: str  # the clients.Usage field counting against it (the peer that counts it: clients.Counters.count)
    period: str


# GET /tenant/quota/{name}: the quotas the system can count (workers and concurrent runs have no counter here,
# so they are not offered rather than answered with a made-up 0).
QUOTAS = {
    "api-keys": Quota("max_api_keys", "api_keys", "none"),
    "runs": Quota("max_runs_per_day", "runs_today", "day"),
    "tokens": Quota("max_tokens_per_month", "tokens_this_month", "month"),
}


def quota(name: str) -> Quota:
    """The named quota; NotFound for a name no quota has (the legacy /tenant/quota/* of an unknown one)."""
    found = QUOTAS.get(name.strip().lower())
    if found is None:
        raise NotFound(f"quota {name!r} not found (known: {', '.join(QUOTAS)})", reason="QUOTA_NOT_FOUND")
    return found


def require_active(status: str) -> None:
    """Only an active tenant gets new projects."""
    if status != "active":
        raise FailedPrecondition(f"tenant is {status}", reason="TENANT_INACTIVE")


def member_change(who: Principal, before: str | None, after: str | None, owners: int) -> None:
    """May `who` move a member from role `before` (None: not a member yet) to `after` (None: removed),
    while the tenant has `owners` owners? Only owners make, demote or remove owners, and the last owner
    stays an owner. (Whether `who` manages members at all is the servicer's check.)"""
    if OWNER in (before, after):
        who.require_role(OWNER)
    if before == OWNER and after != OWNER and owners <= 1:
        raise FailedPrecondition("the last owner of a tenant cannot be demoted or removed", reason="LAST_OWNER")


def within_signup_limit(signups: int, limit: int) -> None:
    """`signups`: tenants the user created in the last 24 hours."""
    if signups >= limit:
        raise ResourceExhausted(
            f"signup limit reached: a user may create at most {limit} tenants in 24 hours",
            reason="SIGNUP_LIMIT_EXCEEDED",
            metadata={"limit": str(limit)},
        )


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:90]
    return slug or "tenant"


def valid_slug(slug: str) -> bool:
    return re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{1,98}[a-z0-9])", slug) is not None


def attestation_hash(tenant_id: str, sdk_version: str, sdk_language: str, client_id: str) -> str:
    """SPEC 7: sha256 of "<tenant>:<version>:<language>:<client_id>", first 32 hex characters."""
    raw = f"{tenant_id}:{sdk_version}:{sdk_language}:{client_id}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]
