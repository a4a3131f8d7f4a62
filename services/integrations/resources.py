"""What every resource kind (integration, connector, datasource) shares: create, update, move through its
lifecycle and record a test, all in the caller's transaction (`session`). Each change writes one event,
whose payload carries ids, names and states — never a credential or config."""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events
from services.common.errors import InvalidArgument
from services.common.principal import Principal
from services.integrations import crypto, outbound, policy, repository
from services.integrations.models import Connector, Datasource, Integration, Managed
from services.integrations.policy import Conflict, Lifecycle

OWNER = "integrations"
_PAST = {"enable": "enabled", "disable": "disabled", "delete": "deleted"}
# Fields whose change invalidates the latest test.
_RETEST = {"credential_ref", "config", "endpoint", "provider_type"}


@dataclass(frozen=True)
class Kind:
    """How one resource kind is named in requests (its id field), events and AAD (its noun), and the column
    that says which type of it a row is."""

    model: type[Any]
    id_field: str
    type_field: str

    @property
    def lifecycle(self) -> Lifecycle:
        lifecycle: Lifecycle = self.model.LIFECYCLE
        return lifecycle

    @property
    def noun(self) -> str:
        return self.lifecycle.noun

    def id(self, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError as exc:
            refused = InvalidArgument(self.id_field, "must be a UUID")
            refused.legacy_http_status = 422  # the legacy API's path validation (SPEC 2.7)
            raise refused from exc


INTEGRATIONS = Kind(Integration, "integration_id", "provider_type")
CONNECTORS = Kind(Connector, "connector_id", "connector_type")
DATASOURCES = Kind(Datasource, "source_id", "source_type")


async def _seal(
    session: AsyncSession, keyring: crypto.Keyring, tenant_id: str, kind: Kind, row_id: str, secret: str
) -> str:
    key = await repository.data_key(session, keyring, tenant_id, create=True)
    assert key is not None
    return crypto.seal(key, crypto.credential_aad(tenant_id, kind.noun, row_id), secret)


async def create(
    session: AsyncSession, keyring: crypto.Keyring, who: Principal, kind: Kind, row: Any, secret: str
) -> Any:
    row.id, row.tenant_id, row.created_by = str(uuid.uuid4()), who.tenant(), who.actor_id
    if secret:
        row.credential_ref = await _seal(session, keyring, row.tenant_id, kind, row.id, secret)
    row = await repository.add(session, row)
    payload = {
        kind.id_field: row.id,
        "name": row.name,
        "status": row.status,
        "has_credential": bool(row.credential_ref),
        kind.type_field: getattr(row, kind.type_field),
    }
    await events.record(session, OWNER, who, f"{kind.noun}.created", row.tenant_id, payload)
    return row


def _destination(kind: Kind, row: Any, values: dict[str, Any]) -> tuple[str, ...]:
    """Where the row's credential is sent once `values` apply: the provider and the URL of its check call
    (base_url, region...) for an integration; the endpoint for a connector or datasource."""
    field = {name: values.get(name, getattr(row, name, "")) for name in ("config", "endpoint", "provider_type")}
    if kind is not INTEGRATIONS:
        return (field["endpoint"],)
    call = outbound.provider_request(field["provider_type"], field["config"], "")
    return field["provider_type"], call[0] if call else ""


async def update(
    session: AsyncSession,
    keyring: crypto.Keyring,
    who: Principal,
    kind: Kind,
    row_id: str,
    values: dict[str, Any],
    secret: str,
) -> Any:
    if not values and not secret:
        raise InvalidArgument("update", "No fields to update", reason="NO_FIELDS")
    before = await repository.get(session, kind.model, who.tenant(), row_id, lock=True)
    if secret and getattr(before, kind.type_field) in policy.DSN_TYPES:
        policy.dsn("credential", secret)  # the row's type says the credential is a connection URL
    moved = _destination(kind, before, {}) != _destination(kind, before, values)
    # A stored credential goes only where its owner sent it: a new destination needs it sent again.
    cleared = moved and bool(before.credential_ref) and not secret and "credential_ref" not in values
    if secret:
        values["credential_ref"] = await _seal(session, keyring, who.tenant(), kind, row_id, secret)
    elif cleared:
        values["credential_ref"] = ""
    fields = sorted(values)
    if _RETEST & set(values):
        # What the last test validated has changed: it no longer counts as evidence until tested again.
        values |= {"health_state": "unknown", "health_message": "changed since the last test"}
    row = await repository.change(session, kind.model, who.tenant(), row_id, values)
    payload: dict[str, Any] = {kind.id_field: row.id, "fields": fields, "health_state": row.health_state}
    if cleared:
        payload["credential_cleared"] = True
    await events.record(session, OWNER, who, f"{kind.noun}.updated", row.tenant_id, payload)
    return row


async def move(session: AsyncSession, who: Principal, kind: Kind, row_id: str, action: str) -> Any:
    row = await repository.transition(session, kind.model, who.tenant(), row_id, action)
    payload = {kind.id_field: row.id, "status": row.status}
    await events.record(session, OWNER, who, f"{kind.noun}.{_PAST[action]}", row.tenant_id, payload)
    return row


async def testable(
    session: AsyncSession,
    keyring: crypto.Keyring,
    tenant_id: str,
    kind: Kind,
    row_id: str,
    env_allowed: Collection[str],
) -> tuple[Any, str | None]:
    """The live row to test and its secret in memory ("" when it has none, None when it cannot be resolved)."""
    row = await repository.get(session, kind.model, tenant_id, row_id)
    if row.deleted_at is not None:
        raise Conflict(f"Cannot test deleted {kind.noun}", reason="DELETED")
    return row, await _reveal(session, keyring, kind, row, env_allowed)


async def _reveal(
    session: AsyncSession, keyring: crypto.Keyring, kind: Kind, row: Managed, env_allowed: Collection[str]
) -> str | None:
    ref = row.credential_ref
    if ref.startswith(crypto.SCHEME):
        key = await repository.data_key(session, keyring, row.tenant_id, create=False)
        try:
            aad = crypto.credential_aad(row.tenant_id, kind.noun, row.id)
            return None if key is None else crypto.open_sealed(key, aad, ref)
        except crypto.DecryptionFailed:
            return None
    if ref.startswith("env://"):  # a row stored before the allowlist resolves only if allowlisted now
        return os.environ.get(ref.removeprefix("env://")) if policy.env_allowed_ref(ref, env_allowed) else None
    return ref


async def tested(session: AsyncSession, who: Principal, kind: Kind, row_id: str, outcome: outbound.Outcome) -> Any:
    row = await repository.change(session, kind.model, who.tenant(), row_id, _health(kind, outcome))
    payload = {
        kind.id_field: row.id,
        "health_state": outcome.health_state,
        "latency_ms": outcome.latency_ms,
        "passed": outcome.passed,
    }
    await events.record(session, OWNER, who, f"{kind.noun}.tested", row.tenant_id, payload)
    return row


def _health(kind: Kind, outcome: outbound.Outcome) -> dict[str, Any]:
    values: dict[str, Any] = {
        "health_state": outcome.health_state,
        "health_message": outcome.message,
        "health_checked_at": datetime.now(UTC),
        "latency_ms": outcome.latency_ms,
    }
    if kind is CONNECTORS:
        counter = Connector.connection_count if outcome.passed else Connector.error_count
        values[counter.key] = counter + 1
        if outcome.passed:
            values["last_connected"] = values["health_checked_at"]
    return values
