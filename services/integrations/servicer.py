from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.integrations.v1 import integration_pb2 as pb
from aos.integrations.v1 import integrations_service_pb2 as rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from services.common import events, validation
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.interceptors import request_id
from services.common.principal import Principal, caller
from services.common.server import created
from services.integrations import crypto, outbound, policy, repository
from services.integrations.models import Connector, Datasource, Integration, Managed
from services.integrations.settings import Settings

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
OWNER = "integrations"
log = logging.getLogger("aos.integrations")
_PAST = {"enable": "enabled", "disable": "disabled", "delete": "deleted"}


def _ts(**values: datetime | None) -> dict[str, Any]:
    """Timestamp fields that are set (an unset one stays absent rather than 1970)."""
    return {k: v for k, v in values.items() if v is not None}


def _now() -> Any:
    return datetime.now(UTC)


def integration_pb(r: Integration) -> pb.Integration:
    return pb.Integration(
        id=r.id,
        tenant_id=r.tenant_id,
        name=r.name,
        provider_type=r.provider_type,
        status=r.status,
        health_state=r.health_state,
        health_message=r.health_message or "",
        latency_ms=r.latency_ms,
        default_model=r.default_model or "",
        budget_limit_cents=r.budget_limit_cents,
        token_limit_month=r.token_limit_month,
        rate_limit_rpm=r.rate_limit_rpm,
        has_credential=bool(r.credential_ref),
        deleted=r.deleted_at is not None,
        created_by=r.created_by or "",
        **_ts(
            health_checked_at=r.health_checked_at,
            deleted_at=r.deleted_at,
            created_at=r.created_at,
            updated_at=r.updated_at,
        ),
    )


def summary_pb(r: Integration) -> pb.IntegrationSummary:
    return pb.IntegrationSummary(
        id=r.id,
        name=r.name,
        provider_type=r.provider_type,
        status=r.status,
        health_state=r.health_state,
        default_model=r.default_model or "",
        **_ts(created_at=r.created_at),
    )


def connector_pb(r: Connector) -> pb.Connector:
    return pb.Connector(
        connector_id=r.id,
        tenant_id=r.tenant_id,
        name=r.name,
        connector_type=r.connector_type,
        status=r.status,
        capabilities=r.capabilities,
        endpoint=r.endpoint,
        health_state=r.health_state,
        health_message=r.health_message or "",
        latency_ms=r.latency_ms,
        has_credential=bool(r.credential_ref),
        connection_count=r.connection_count,
        error_count=r.error_count,
        deleted=r.deleted_at is not None,
        **_ts(
            health_checked_at=r.health_checked_at,
            last_connected=r.last_connected,
            created_at=r.created_at,
            updated_at=r.updated_at,
        ),
    )


def datasource_pb(r: Datasource) -> pb.Datasource:
    return pb.Datasource(
        source_id=r.id,
        tenant_id=r.tenant_id,
        name=r.name,
        source_type=r.source_type,
        status=r.status,
        description=r.description,
        tags=r.tags,
        endpoint=r.endpoint,
        health_state=r.health_state,
        health_message=r.health_message or "",
        latency_ms=r.latency_ms,
        has_credential=bool(r.credential_ref),
        deleted=r.deleted_at is not None,
        **_ts(health_checked_at=r.health_checked_at, created_at=r.created_at, updated_at=r.updated_at),
    )


@dataclass(frozen=True)
class Kind:
    """How one resource kind is named in ids, events and AAD."""

    model: type[Any]
    id_field: str
    noun: str


INTEGRATIONS = Kind(Integration, "integration_id", "integration")
CONNECTORS = Kind(Connector, "connector_id", "connector")
DATASOURCES = Kind(Datasource, "source_id", "datasource")


def _meta() -> pb.Meta:
    return pb.Meta(timestamp=_now(), request_id=request_id.get())


def _uuid(field: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise InvalidArgument(field, "must be a UUID") from exc


def _secret(value: str, field: str = "credential") -> str:
    return validation.length(field, value, 1, 8192)


def _endpoint(value: str, field: str = "endpoint") -> str:
    url = value.strip()
    if url and (not url.startswith(("http://", "https://")) or "@" in url.split("/", 3)[2]):
        raise InvalidArgument(field, "must be an http(s) URL without credentials in it")
    return url


def _config(request: Any) -> dict[str, Any]:
    config: dict[str, Any] = json_format.MessageToDict(request.config)
    if "base_url" in config:
        config["base_url"] = _endpoint(str(config["base_url"]), "config.base_url")
    return config


class IntegrationsServicer(integrations_service_pb2_grpc.IntegrationsServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings, guard: outbound.Guard) -> None:
        self._sessions, self._settings, self._guard = sessions, settings, guard
        self._keyring = crypto.Keyring(settings.keks, settings.active_kek)

    async def _emit(self, session: AsyncSession, who: Principal, event_type: str, **payload: Any) -> None:
        await events.emit(
            session,
            event_type=event_type,
            tenant_id=who.tenant(),
            actor_type=who.actor_type,
            actor_id=who.actor_id,
            decision_owner=OWNER,
            payload=payload,
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

    async def _create(self, context: Context, kind: Kind, row: Any, credential: str, **payload: Any) -> Any:
        who = caller(context)
        row.id, row.tenant_id, row.created_by = str(uuid.uuid4()), who.tenant(), who.actor_id
        async with self._sessions.begin() as session:
            if credential:
                row.credential_ref = await self._seal(session, row.tenant_id, kind, row.id, credential)
            row = await repository.add(session, row)
            await self._emit(
                session,
                who,
                f"{kind.noun}.created",
                **{kind.id_field: row.id},
                name=row.name,
                status=row.status,
                has_credential=bool(row.credential_ref),
                **payload,
            )
        await created(context)
        return row

    async def _get(self, context: Context, kind: Kind, row_id: str) -> Any:
        tenant_id = caller(context).tenant()
        async with self._sessions() as session:
            return await repository.get(session, kind.model, tenant_id, _uuid(kind.id_field, row_id))

    async def _move(self, context: Context, kind: Kind, row_id: str, action: str) -> Any:
        who = caller(context)
        row_id = _uuid(kind.id_field, row_id)
        async with self._sessions.begin() as session:
            row = await repository.transition(session, kind.model, who.tenant(), row_id, action)
            await self._emit(session, who, f"{kind.noun}.{_PAST[action]}", **{kind.id_field: row.id}, status=row.status)
        return row

    async def _test(self, context: Context, kind: Kind, row_id: str, probe: Callable[[Any, str], Any]) -> Any:
        """Read, check outside any transaction, then record the outcome (and its event) in one transaction."""
        who = caller(context)
        row_id = _uuid(kind.id_field, row_id)
        async with self._sessions() as session:
            row = await repository.get(session, kind.model, who.tenant(), row_id)
            if row.deleted_at is not None:
                raise repository.conflict(f"Cannot test deleted {kind.noun}", "DELETED")
            secret = await self._reveal(session, kind, row)
        if secret is None:
            outcome = outbound.Outcome("failing", "credential cannot be resolved", 0)
        else:
            outcome = await probe(row, secret)
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
        async with self._sessions.begin() as session:
            row = await repository.change(session, kind.model, who.tenant(), row_id, values)
            await self._emit(
                session,
                who,
                f"{kind.noun}.tested",
                **{kind.id_field: row.id},
                health_state=outcome.health_state,
                latency_ms=outcome.latency_ms,
                passed=outcome.passed,
            )
        log.info("%s %s tested: %s in %d ms", kind.noun, row.id, outcome.health_state, outcome.latency_ms)
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

    # Integrations (legacy envelope responses).

    def _credential(self, ref: str, secret: str) -> tuple[str, str]:
        if ref.strip() and secret:
            raise InvalidArgument("credential", "send either credential or credential_ref, not both")
        return policy.credential_ref(ref, dev=self._settings.dev), _secret(secret) if secret else ""

    async def CreateIntegration(
        self, request: rpc.CreateIntegrationRequest, context: Context
    ) -> rpc.CreateIntegrationResponse:
        provider = validation.one_of("provider_type", request.provider_type.strip().lower(), policy.PROVIDERS)
        ref, secret = self._credential(request.credential_ref, request.credential)
        if not ref and not secret:
            raise InvalidArgument("credential", "either credential or credential_ref is required")
        row = Integration(
            name=validation.length("name", request.name, 1, 255),
            provider_type=provider,
            status="created",
            credential_ref=ref,
            config=_config(request),
            default_model=validation.length("default_model", request.default_model, 0, 100) or None,
            budget_limit_cents=validation.between("budget_limit_cents", request.budget_limit_cents, 0, 2**31 - 1),
            token_limit_month=validation.between("token_limit_month", request.token_limit_month, 0, 2**63 - 1),
            rate_limit_rpm=validation.between("rate_limit_rpm", request.rate_limit_rpm, 0, 2**31 - 1),
        )
        row = await self._create(context, INTEGRATIONS, row, secret, provider_type=provider)
        return rpc.CreateIntegrationResponse(success=True, data=integration_pb(row), meta=_meta())

    async def GetIntegration(self, request: rpc.GetIntegrationRequest, context: Context) -> rpc.GetIntegrationResponse:
        row = await self._get(context, INTEGRATIONS, request.integration_id)
        return rpc.GetIntegrationResponse(success=True, data=integration_pb(row), meta=_meta())

    async def _list(
        self, context: Context, status: str, provider: str, size: int, token: str, offset: int
    ) -> tuple[list[Integration], int]:
        tenant_id = caller(context).tenant()
        filters = {
            "status": validation.one_of("status", status.strip().lower(), ("", *policy.INTEGRATION.statuses)),
            "provider_type": validation.one_of("provider_type", provider.strip().lower(), ("", *policy.PROVIDERS)),
        }
        offset = validation.between("offset", offset, 0, 2**31 - 1)
        async with self._sessions() as session:
            after = validation.decode_token(token)
            return await repository.list_rows(session, Integration, tenant_id, filters, after, offset, size)

    async def ListIntegrations(
        self, request: rpc.ListIntegrationsRequest, context: Context
    ) -> rpc.ListIntegrationsResponse:
        legacy = bool(request.limit or request.offset)
        if legacy and (request.page_token or request.page_size):
            raise InvalidArgument("page_token", "cannot be combined with limit/offset")
        size = validation.page_size("limit" if legacy else "page_size", request.limit or request.page_size, 20)
        # Keyset pages read one row more than they answer, to know whether another page exists.
        fetch = size if legacy else size + 1
        rows, total = await self._list(
            context, request.status, request.provider_type, fetch, request.page_token, request.offset
        )
        token = validation.encode_token(rows[size - 1].created_at, rows[size - 1].id) if len(rows) > size else ""
        rows = rows[:size]
        meta = pb.ListMeta(timestamp=_now(), request_id=request_id.get(), total=total)
        return rpc.ListIntegrationsResponse(
            success=True, data=[summary_pb(r) for r in rows], meta=meta, next_page_token=token
        )

    async def ListIntegrationsFacade(
        self, request: rpc.ListIntegrationsFacadeRequest, context: Context
    ) -> rpc.ListIntegrationsFacadeResponse:
        if request.as_of:
            raise InvalidArgument("as_of", "is not supported", reason="UNSUPPORTED_PARAM")
        size = validation.page_size("limit", request.limit, 20)
        rows, total = await self._list(context, request.status, request.provider_type, size, "", request.offset)
        more = request.offset + len(rows) < total
        correlation = dict((k, v) for k, v in context.invocation_metadata() or () if isinstance(v, str))
        page = pb_pagination(size, request.offset, request.offset + len(rows) if more else None)
        return rpc.ListIntegrationsFacadeResponse(
            integrations=[summary_pb(r) for r in rows],
            total=total,
            has_more=more,
            pagination=page,
            generated_at=_now(),
            meta=rpc.FacadeMeta(request_id=request_id.get(), correlation_id=correlation.get("x-correlation-id", "")),
        )

    async def UpdateIntegration(
        self, request: rpc.UpdateIntegrationRequest, context: Context
    ) -> rpc.UpdateIntegrationResponse:
        who = caller(context)
        row_id = _uuid("integration_id", request.integration_id)
        values: dict[str, Any] = {}
        if request.HasField("name"):
            values["name"] = validation.length("name", request.name, 1, 255)
        ref, secret = self._credential(request.credential_ref, request.credential)
        if request.HasField("credential_ref") or secret:
            values["credential_ref"] = ref
        if request.HasField("config"):
            values["config"] = _config(request)
        if request.HasField("default_model"):
            values["default_model"] = validation.length("default_model", request.default_model, 0, 100) or None
        for field in ("budget_limit_cents", "token_limit_month", "rate_limit_rpm"):
            if request.HasField(field):
                values[field] = validation.between(field, getattr(request, field), 0, 2**63 - 1)
        if not values:
            raise InvalidArgument("update", "No fields to update", reason="NO_FIELDS")
        async with self._sessions.begin() as session:
            if secret:
                values["credential_ref"] = await self._seal(session, who.tenant(), INTEGRATIONS, row_id, secret)
            row = await repository.change(session, Integration, who.tenant(), row_id, values)
            await self._emit(session, who, "integration.updated", integration_id=row.id, fields=sorted(values))
        return rpc.UpdateIntegrationResponse(success=True, data=integration_pb(row), meta=_meta())

    async def DeleteIntegration(
        self, request: rpc.DeleteIntegrationRequest, context: Context
    ) -> rpc.DeleteIntegrationResponse:
        row = await self._move(context, INTEGRATIONS, request.integration_id, "delete")
        return rpc.DeleteIntegrationResponse(
            success=True, data=rpc.DeleteResult(deleted=True, integration_id=row.id), meta=_meta()
        )

    async def EnableIntegration(
        self, request: rpc.EnableIntegrationRequest, context: Context
    ) -> rpc.EnableIntegrationResponse:
        row = await self._move(context, INTEGRATIONS, request.integration_id, "enable")
        data = rpc.StatusResult(integration_id=row.id, status=row.status, message="Integration enabled successfully")
        return rpc.EnableIntegrationResponse(success=True, data=data, meta=_meta())

    async def DisableIntegration(
        self, request: rpc.DisableIntegrationRequest, context: Context
    ) -> rpc.DisableIntegrationResponse:
        row = await self._move(context, INTEGRATIONS, request.integration_id, "disable")
        data = rpc.StatusResult(integration_id=row.id, status=row.status, message="Integration disabled successfully")
        return rpc.DisableIntegrationResponse(success=True, data=data, meta=_meta())

    async def TestIntegration(
        self, request: rpc.TestIntegrationRequest, context: Context
    ) -> rpc.TestIntegrationResponse:
        row = await self._test(context, INTEGRATIONS, request.integration_id, self._probe_provider)
        data = rpc.TestResult(
            integration_id=row.id,
            health_state=row.health_state,
            message=row.health_message or "",
            latency_ms=row.latency_ms,
            **_ts(checked_at=row.health_checked_at),
        )
        return rpc.TestIntegrationResponse(success=True, data=data, meta=_meta())

    async def GetIntegrationHealth(
        self, request: rpc.GetIntegrationHealthRequest, context: Context
    ) -> rpc.GetIntegrationHealthResponse:
        row = await self._get(context, INTEGRATIONS, request.integration_id)
        data = rpc.HealthResult(
            integration_id=row.id,
            health_state=row.health_state,
            health_message=row.health_message or "",
            latency_ms=row.latency_ms,
            **_ts(health_checked_at=row.health_checked_at),
        )
        return rpc.GetIntegrationHealthResponse(success=True, data=data, meta=_meta())

    async def GetIntegrationLimits(
        self, request: rpc.GetIntegrationLimitsRequest, context: Context
    ) -> rpc.GetIntegrationLimitsResponse:
        row = await self._get(context, INTEGRATIONS, request.integration_id)
        start, end = policy.billing_period(datetime.now(UTC))
        # Usage telemetry (cus_llm_usage) is not collected by this service yet: usage reads as zero.
        budget_used = tokens_used = requests = 0
        data = rpc.LimitsResult(
            integration_id=row.id,
            budget_limit_cents=row.budget_limit_cents,
            budget_used_cents=budget_used,
            budget_percent=policy.percent(budget_used, row.budget_limit_cents),
            token_limit_month=row.token_limit_month,
            tokens_used_month=tokens_used,
            token_percent=policy.percent(tokens_used, row.token_limit_month),
            rate_limit_rpm=row.rate_limit_rpm,
            requests_this_minute=requests,
            rate_percent=policy.percent(requests, row.rate_limit_rpm),
            **_ts(period_start=start, period_end=end),
        )
        return rpc.GetIntegrationLimitsResponse(success=True, data=data, meta=_meta())

    async def GetActivationEvidence(
        self, request: rpc.GetActivationEvidenceRequest, context: Context
    ) -> rpc.GetActivationEvidenceResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 100)
        async with self._sessions() as session:
            return rpc.GetActivationEvidenceResponse(
                has_validated_connector=await repository.evidence(session, tenant_id)
            )

    # Connectors.

    def _capabilities(self, connector_type: str, given: list[str]) -> list[str]:
        for c in given:
            validation.one_of("capabilities", c, policy.CAPABILITIES)
        return list(dict.fromkeys(given)) or list(policy.DEFAULT_CAPABILITIES.get(connector_type, ("read",)))

    async def CreateConnector(
        self, request: rpc.CreateConnectorRequest, context: Context
    ) -> rpc.CreateConnectorResponse:
        kind = validation.one_of("connector_type", request.connector_type.strip().lower(), policy.CONNECTOR_TYPES)
        row = Connector(
            name=validation.length("name", request.name, 1, 255),
            connector_type=kind,
            status="registered",
            endpoint=_endpoint(request.endpoint),
            capabilities=self._capabilities(kind, list(request.capabilities)),
        )
        secret = _secret(request.credential) if request.credential else ""
        row = await self._create(context, CONNECTORS, row, secret, connector_type=kind)
        return rpc.CreateConnectorResponse(connector=connector_pb(row))

    async def GetConnector(self, request: rpc.GetConnectorRequest, context: Context) -> rpc.GetConnectorResponse:
        return rpc.GetConnectorResponse(
            connector=connector_pb(await self._get(context, CONNECTORS, request.connector_id))
        )

    async def _page(self, context: Context, kind: Kind, request: Any) -> tuple[list[Any], str]:
        tenant_id = caller(context).tenant()
        status = validation.one_of("status", request.status.strip().lower(), ("", *kind.model.MACHINE.statuses))
        size = validation.page_size("page_size", request.page_size)
        async with self._sessions() as session:
            after = validation.decode_token(request.page_token)
            rows, _ = await repository.list_rows(session, kind.model, tenant_id, {"status": status}, after, 0, size + 1)
        token = validation.encode_token(rows[size - 1].created_at, rows[size - 1].id) if len(rows) > size else ""
        return rows[:size], token

    async def ListConnectors(self, request: rpc.ListConnectorsRequest, context: Context) -> rpc.ListConnectorsResponse:
        rows, token = await self._page(context, CONNECTORS, request)
        return rpc.ListConnectorsResponse(connectors=[connector_pb(r) for r in rows], next_page_token=token)

    async def DeleteConnector(
        self, request: rpc.DeleteConnectorRequest, context: Context
    ) -> rpc.DeleteConnectorResponse:
        row = await self._move(context, CONNECTORS, request.connector_id, "delete")
        return rpc.DeleteConnectorResponse(connector=connector_pb(row))

    async def EnableConnector(
        self, request: rpc.EnableConnectorRequest, context: Context
    ) -> rpc.EnableConnectorResponse:
        row = await self._move(context, CONNECTORS, request.connector_id, "enable")
        return rpc.EnableConnectorResponse(connector=connector_pb(row))

    async def DisableConnector(
        self, request: rpc.DisableConnectorRequest, context: Context
    ) -> rpc.DisableConnectorResponse:
        row = await self._move(context, CONNECTORS, request.connector_id, "disable")
        return rpc.DisableConnectorResponse(connector=connector_pb(row))

    async def TestConnector(self, request: rpc.TestConnectorRequest, context: Context) -> rpc.TestConnectorResponse:
        row = await self._test(context, CONNECTORS, request.connector_id, self._probe_resource)
        return rpc.TestConnectorResponse(connector=connector_pb(row))

    # Datasources.

    async def CreateDatasource(
        self, request: rpc.CreateDatasourceRequest, context: Context
    ) -> rpc.CreateDatasourceResponse:
        kind = validation.one_of("source_type", request.source_type.strip().lower(), policy.SOURCE_TYPES)
        tags = [validation.length("tags", t, 1, 100) for t in request.tags]
        row = Datasource(
            name=validation.length("name", request.name, 1, 255),
            source_type=kind,
            status="pending",
            endpoint=_endpoint(request.endpoint),
            description=validation.length("description", request.description, 0, 1000),
            tags=tags,
        )
        secret = _secret(request.credential) if request.credential else ""
        row = await self._create(context, DATASOURCES, row, secret, source_type=kind)
        return rpc.CreateDatasourceResponse(datasource=datasource_pb(row))

    async def GetDatasource(self, request: rpc.GetDatasourceRequest, context: Context) -> rpc.GetDatasourceResponse:
        return rpc.GetDatasourceResponse(
            datasource=datasource_pb(await self._get(context, DATASOURCES, request.source_id))
        )

    async def ListDatasources(
        self, request: rpc.ListDatasourcesRequest, context: Context
    ) -> rpc.ListDatasourcesResponse:
        rows, token = await self._page(context, DATASOURCES, request)
        return rpc.ListDatasourcesResponse(datasources=[datasource_pb(r) for r in rows], next_page_token=token)

    async def DeleteDatasource(
        self, request: rpc.DeleteDatasourceRequest, context: Context
    ) -> rpc.DeleteDatasourceResponse:
        return rpc.DeleteDatasourceResponse(
            datasource=datasource_pb(await self._move(context, DATASOURCES, request.source_id, "delete"))
        )

    async def EnableDatasource(
        self, request: rpc.EnableDatasourceRequest, context: Context
    ) -> rpc.EnableDatasourceResponse:
        return rpc.EnableDatasourceResponse(
            datasource=datasource_pb(await self._move(context, DATASOURCES, request.source_id, "enable"))
        )

    async def DisableDatasource(
        self, request: rpc.DisableDatasourceRequest, context: Context
    ) -> rpc.DisableDatasourceResponse:
        return rpc.DisableDatasourceResponse(
            datasource=datasource_pb(await self._move(context, DATASOURCES, request.source_id, "disable"))
        )

    async def TestDatasource(self, request: rpc.TestDatasourceRequest, context: Context) -> rpc.TestDatasourceResponse:
        row = await self._test(context, DATASOURCES, request.source_id, self._probe_resource)
        return rpc.TestDatasourceResponse(datasource=datasource_pb(row))


def pb_pagination(limit: int, offset: int, next_offset: int | None) -> rpc.Pagination:
    page = rpc.Pagination(limit=limit, offset=offset)
    if next_offset is not None:
        page.next_offset = next_offset
    return page
