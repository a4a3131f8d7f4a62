"""The unit of work every resource kind (integration, connector, datasource) shares: create, read, page,
update, move through the status machine, and test — each with its event in the same transaction."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.onboarding.v1 import onboarding_pb2
from aos.onboarding.v1.onboarding_service_pb2 import NotifyEvidenceRequest as Evidence
from services.common import events, notify, validation
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.principal import Principal
from services.integrations import crypto, outbound, repository
from services.integrations.models import Connector, Datasource, Integration, Managed
from services.integrations.settings import Settings

OWNER = "integrations"
log = logging.getLogger("aos.integrations")
_PAST = {"enable": "enabled", "disable": "disabled", "delete": "deleted"}
# Fields whose change invalidates the latest test.
_RETEST = {"credential_ref", "config", "endpoint"}


@dataclass(frozen=True)
class Kind:
    """How one resource kind is named in ids, events and AAD."""

    model: type[Any]
    id_field: str
    noun: str


INTEGRATIONS = Kind(Integration, "integration_id", "integration")
CONNECTORS = Kind(Connector, "connector_id", "connector")
DATASOURCES = Kind(Datasource, "source_id", "datasource")


def resource_id(kind: Kind, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise InvalidArgument(kind.id_field, "must be a UUID") from exc


class Resources:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        guard: outbound.Guard,
        onboarding: notify.Peer,
    ) -> None:
        self._sessions, self._settings, self._guard, self._onboarding = sessions, settings, guard, onboarding
        self._keyring = crypto.Keyring(settings.keks, settings.active_kek)

    async def _emit(self, session: AsyncSession, who: Principal, event: str, row: Any, **payload: Any) -> None:
        """One event per change; payloads carry ids, names and states — never a credential or config."""
        kind = next(k for k in (INTEGRATIONS, CONNECTORS, DATASOURCES) if isinstance(row, k.model))
        await events.emit(
            session,
            event_type=f"{kind.noun}.{event}",
            tenant_id=who.tenant(),
            actor_type=who.actor_type,
            actor_id=who.actor_id,
            decision_owner=OWNER,
            payload={kind.id_field: row.id, **payload},
        )

    async def _seal(self, session: AsyncSession, tenant_id: str, kind: Kind, row_id: str, secret: str) -> str:
        key = await repository.data_key(session, self._keyring, tenant_id, create=True)
        assert key is not None
        return crypto.seal(key, crypto.credential_aad(tenant_id, kind.noun, row_id), secret)

    async def _reveal(self, session: AsyncSession, kind: Kind, row: Managed) -> str | None:
        """The row's secret in memory, "" when it has none, None when it cannot be resolved."""
        ref = row.credential_ref
        if ref.startswith(crypto.SCHEME):
            key = await repository.data_key(session, self._keyring, row.tenant_id, create=False)
            try:
                aad = crypto.credential_aad(row.tenant_id, kind.noun, row.id)
                return None if key is None else crypto.open_sealed(key, aad, ref)
            except crypto.DecryptionFailed:
                return None
        if ref.startswith("env://"):
            return os.environ.get(ref.removeprefix("env://")) if self._settings.dev else None
        return ref

    async def create(self, who: Principal, kind: Kind, row: Any, secret: str, **payload: Any) -> Any:
        row.id, row.tenant_id, row.created_by = str(uuid.uuid4()), who.tenant(), who.actor_id
        async with self._sessions.begin() as session:
            if secret:
                row.credential_ref = await self._seal(session, row.tenant_id, kind, row.id, secret)
            row = await repository.add(session, row)
            await self._emit(
                session,
                who,
                "created",
                row,
                name=row.name,
                status=row.status,
                has_credential=bool(row.credential_ref),
                **payload,
            )
        return row

    async def get(self, who: Principal, kind: Kind, row_id: str) -> Any:
        async with self._sessions() as session:
            return await repository.get(session, kind.model, who.tenant(), resource_id(kind, row_id))

    async def rows(
        self, who: Principal, kind: Kind, filters: dict[str, str], token: str, offset: int, size: int
    ) -> tuple[list[Any], int]:
        async with self._sessions() as session:
            after = validation.decode_token(token)
            return await repository.list_rows(session, kind.model, who.tenant(), filters, after, offset, size)

    async def page(self, who: Principal, kind: Kind, status: str, size: int, token: str) -> tuple[list[Any], str]:
        """Newest first; reads one row ahead to know whether another page exists."""
        rows, _ = await self.rows(who, kind, {"status": status}, token, 0, size + 1)
        next_token = validation.encode_token(rows[size - 1].created_at, rows[size - 1].id) if len(rows) > size else ""
        return rows[:size], next_token

    async def update(self, who: Principal, kind: Kind, row_id: str, values: dict[str, Any], secret: str) -> Any:
        row_id = resource_id(kind, row_id)
        if not values and not secret:
            raise InvalidArgument("update", "No fields to update", reason="NO_FIELDS")
        async with self._sessions.begin() as session:
            if secret:
                values["credential_ref"] = await self._seal(session, who.tenant(), kind, row_id, secret)
            fields = sorted(values)
            if _RETEST & set(values):
                # What the last test validated has changed: it no longer counts as evidence until tested again.
                values |= {"health_state": "unknown", "health_message": "changed since the last test"}
            row = await repository.change(session, kind.model, who.tenant(), row_id, values)
            await self._emit(session, who, "updated", row, fields=fields, health_state=row.health_state)
        await self._onboarding.tell(
            Evidence(tenant_id=row.tenant_id, kind=onboarding_pb2.EVIDENCE_KIND_CONNECTOR_CHANGED), row.tenant_id
        )
        return row

    async def move(self, who: Principal, kind: Kind, row_id: str, action: str) -> Any:
        async with self._sessions.begin() as session:
            row = await repository.transition(session, kind.model, who.tenant(), resource_id(kind, row_id), action)
            await self._emit(session, who, _PAST[action], row, status=row.status)
        await self._onboarding.tell(
            Evidence(tenant_id=row.tenant_id, kind=onboarding_pb2.EVIDENCE_KIND_CONNECTOR_CHANGED), row.tenant_id
        )
        return row

    async def test(self, who: Principal, kind: Kind, row_id: str) -> Any:
        """Read, check outside any transaction, then record the outcome (and its event) in one transaction."""
        row_id = resource_id(kind, row_id)
        async with self._sessions() as session:
            row = await repository.get(session, kind.model, who.tenant(), row_id)
            if row.deleted_at is not None:
                raise repository.conflict(f"Cannot test deleted {kind.noun}", "DELETED")
            secret = await self._reveal(session, kind, row)
        if secret is None:
            outcome = outbound.Outcome("failing", "credential cannot be resolved", 0)
        elif isinstance(row, Integration):
            outcome = await self._probe_provider(row, secret)
        else:
            outcome = await self._probe_resource(row, secret)
        async with self._sessions.begin() as session:
            row = await repository.change(session, kind.model, who.tenant(), row_id, _health(kind, outcome))
            await self._emit(
                session,
                who,
                "tested",
                row,
                health_state=outcome.health_state,
                latency_ms=outcome.latency_ms,
                passed=outcome.passed,
            )
        log.info("%s %s tested: %s in %d ms", kind.noun, row.id, outcome.health_state, outcome.latency_ms)
        await self._onboarding.tell(
            Evidence(tenant_id=row.tenant_id, kind=onboarding_pb2.EVIDENCE_KIND_CONNECTOR_CHANGED), row.tenant_id
        )
        return row

    async def _probe_provider(self, row: Integration, secret: str) -> outbound.Outcome:
        request = outbound.provider_request(row.provider_type, row.config, secret)
        if request is None:
            raise InvalidArgument("config.base_url", f"is required for provider {row.provider_type}")
        async with outbound.client(self._guard, self._settings.probe_timeout_seconds) as http:
            try:
                return await outbound.probe_http(http, *request)
            except outbound.Refused as exc:
                raise InvalidArgument("config.base_url", str(exc), reason="DESTINATION_REFUSED") from exc

    async def _probe_resource(self, row: Connector | Datasource, secret: str) -> outbound.Outcome:
        """http-like types: a request to the endpoint; sql/database: connect and SELECT 1."""
        kind_type = row.connector_type if isinstance(row, Connector) else row.source_type
        try:
            if kind_type in ("sql", "database"):
                if not secret:
                    raise FailedPrecondition(
                        "a sql check needs the connection URL in `credential`", reason="NO_CREDENTIAL"
                    )
                return await outbound.probe_sql(secret, self._guard, self._settings.probe_timeout_seconds)
            if not row.endpoint:
                raise FailedPrecondition(f"no check exists for a {kind_type} without an endpoint", reason="NO_CHECK")
            headers = {"authorization": f"Bearer {secret}"} if secret else {}
            async with outbound.client(self._guard, self._settings.probe_timeout_seconds) as http:
                return await outbound.probe_http(http, row.endpoint, headers)
        except outbound.Refused as exc:
            raise InvalidArgument("endpoint", str(exc), reason="DESTINATION_REFUSED") from exc
        except ValueError as exc:  # an unparsable connection URL
            raise InvalidArgument("credential", "is not a valid connection URL") from exc


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
