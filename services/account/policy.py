"""Account rules with no I/O: plan quota presets, the tenant lifecycle, who may change a member, the
signup limit, slugs, attestation hashes."""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from services.common.errors import FailedPrecondition, ResourceExhausted
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
