"""Integration rules with no I/O: types, the status lifecycles, credential references, limits arithmetic."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from services.common.errors import FailedPrecondition, InvalidArgument

PROVIDERS = ("openai", "anthropic", "azure_openai", "bedrock", "custom")
HEALTH_STATES = ("unknown", "healthy", "degraded", "failing")
CONNECTOR_TYPES = ("http", "sql", "mcp", "vector", "file", "serverless", "stream", "custom")
SOURCE_TYPES = ("database", "document", "file", "vector", "api", "stream", "custom")
CAPABILITIES = ("read", "write", "query", "stream", "batch", "transaction", "search", "vector_search")
DEFAULT_CAPABILITIES = {
    "http": ("read", "write", "query"),
    "mcp": ("read", "write", "query"),
    "sql": ("read", "write", "query", "transaction"),
    "vector": ("read", "write", "vector_search"),
    "file": ("read", "write"),
    "serverless": ("query",),
    "stream": ("read", "stream"),
}
# Legacy prefixes of raw provider secrets: never accepted where a reference belongs (SPEC 6.3).
RAW_SECRET_PREFIXES = ("sk-", "anthropic-", "az-", "aws_")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class Conflict(FailedPrecondition):
    """An action the row's status or deletion refuses; the legacy REST API answered 409 (not bad input)."""

    http_status = 409


@dataclass(frozen=True)
class Lifecycle:
    """The status table of one resource kind. One lifecycle, three vocabularies: created → enabled ⇄
    disabled; `error` is set by the system and cannot be enabled; delete is soft (status `deleted_status`,
    deleted_at set) and final."""

    noun: str
    created: str
    enabled: str
    disabled: str
    error: str
    deleted_status: str

    @property
    def statuses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.created, self.enabled, self.disabled, self.error, self.deleted_status)))

    def sources(self, action: str) -> tuple[str, ...]:
        """Statuses (of a row that is not deleted) from which `action` is legal."""
        return {
            "enable": (self.created, self.disabled),
            "disable": (self.enabled,),
            "delete": (self.created, self.enabled, self.disabled, self.error),
        }[action]

    def target(self, action: str) -> str:
        return {"enable": self.enabled, "disable": self.disabled, "delete": self.deleted_status}[action]

    def refusal(self, action: str, status: str, deleted: bool) -> str:
        """Why `action` is illegal for a row in `status` (the legacy wording where there was one)."""
        if deleted:
            return f"Cannot {action} deleted {self.noun}" if action != "delete" else f"{self.noun} is already deleted"
        if action == "enable" and status == self.error:
            return f"Cannot enable {self.noun} in error state; fix it and test it first"
        return f"cannot {action} {self.noun} in status {status}"


INTEGRATION = Lifecycle("integration", "created", "enabled", "disabled", "error", "disabled")
CONNECTOR = Lifecycle("connector", "registered", "connected", "disconnected", "error", "deprecated")
DATASOURCE = Lifecycle("datasource", "pending", "active", "inactive", "error", "deprecated")


def credential_ref(value: str, *, dev: bool, field: str = "credential_ref") -> str:
    """A reference the resolver accepts (encrypted://, env:// in dev), or INVALID_ARGUMENT naming the field."""
    ref = value.strip()
    if not ref:
        return ""
    if ref.lower().startswith(RAW_SECRET_PREFIXES):
        raise InvalidArgument(
            field, "must be a reference, not a raw secret; send the secret in `credential`", reason="RAW_SECRET"
        )
    if ref.startswith("encrypted://"):
        try:
            blob = base64.urlsafe_b64decode(ref.removeprefix("encrypted://").encode())
        except ValueError as exc:
            raise InvalidArgument(field, "encrypted:// payload is not URL-safe base64") from exc
        if len(blob) < 12 + 16 + 1:
            raise InvalidArgument(field, "encrypted:// payload is too short for nonce, ciphertext and tag")
        return ref
    if ref.startswith("env://"):
        if not dev:
            raise InvalidArgument(field, "env:// references are allowed only in development")
        if not _ENV_VAR.fullmatch(ref.removeprefix("env://")):
            raise InvalidArgument(field, "env:// must name an environment variable")
        return ref
    raise InvalidArgument(field, "unsupported reference scheme; use encrypted://, env:// (dev) or `credential`")


def percent(used: int, limit: int) -> float:
    """SPEC 6.4: min(100, used/limit·100); 0 when the limit is 0 (unlimited)."""
    return 0.0 if limit <= 0 else min(100.0, used / limit * 100)


def billing_period(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month of `now` (UTC): 1st of this month → 1st of next month."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end
