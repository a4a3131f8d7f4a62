"""Integration rules with no I/O: types, the status lifecycles, credential references, endpoints and
connection URLs, limits arithmetic."""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from services.common.errors import FailedPrecondition, InvalidArgument

PROVIDERS = ("openai", "anthropic", "azure_openai", "bedrock", "custom")
HEALTH_STATES = ("unknown", "healthy", "degraded", "failing")
CONNECTOR_TYPES = ("http", "sql", "mcp", "vector", "file", "serverless", "stream", "custom")
SOURCE_TYPES = ("database", "document", "file", "vector", "api", "stream", "custom")
# Types whose credential is a connection URL (checked by connecting and running SELECT 1).
DSN_TYPES = ("sql", "database")
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


def credential_ref(value: str, *, env_allowed: Collection[str], field: str = "credential_ref") -> str:
    """A reference the resolver accepts, or INVALID_ARGUMENT naming the field: encrypted://, or env:// of a
    variable the operator allowlisted (a tenant must never read this process's environment)."""
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
        if not env_allowed_ref(ref, env_allowed):
            raise InvalidArgument(field, "env:// references are not accepted; send the secret in `credential`")
        return ref
    raise InvalidArgument(field, "unsupported reference scheme; use encrypted:// or send `credential`")


def env_allowed_ref(ref: str, env_allowed: Collection[str]) -> bool:
    """An env:// reference to a variable the operator allowlisted (checked again when it is resolved)."""
    name = ref.removeprefix("env://")
    return ref.startswith("env://") and _ENV_VAR.fullmatch(name) is not None and name in env_allowed


def endpoint(field: str, value: str) -> str:
    """An http(s) URL with a host, a port in 1..65535 (when given) and no credentials or whitespace in it;
    "" (no endpoint) stays ""."""
    url = value.strip()
    if not url:
        return ""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        raise InvalidArgument(field, f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(field, "must be an http or https URL")
    if "@" in parts.netloc:
        raise InvalidArgument(field, "must not carry credentials; send them in `credential`")
    if not parts.hostname:
        raise InvalidArgument(field, "must name a host")
    if port == 0:
        raise InvalidArgument(field, "port must be between 1 and 65535")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidArgument(field, "must not contain whitespace or control characters")
    return url


def dsn(field: str, value: str) -> URL:
    """A postgresql:// connection URL, parsed; INVALID_ARGUMENT naming the field (never echoing the value,
    which holds a password) when it is not one."""
    try:
        url = make_url(value)
        port = url.port
    except (ArgumentError, ValueError):
        raise InvalidArgument(field, "is not a valid connection URL") from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise InvalidArgument(field, "must be a postgresql:// connection URL")
    if port is not None and not 1 <= port <= 65535:
        raise InvalidArgument(field, "port must be between 1 and 65535")
    return url


def percent(used: int, limit: int) -> float:
    """SPEC 6.4: min(100, used/limit·100); 0 when the limit is 0 (unlimited)."""
    return 0.0 if limit <= 0 else min(100.0, used / limit * 100)


def billing_period(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month of `now` (UTC): 1st of this month → 1st of next month."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end
