from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.integrations.v1 import integration_pb2 as pb
from aos.integrations.v1 import integrations_service_pb2 as rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from services.common import notify, validation
from services.common.errors import InvalidArgument
from services.common.interceptors import request_id
from services.common.principal import caller
from services.common.server import created
from services.integrations import outbound, policy, repository
from services.integrations.models import Connector, Datasource, Integration, Managed
from services.integrations.resources import CONNECTORS, DATASOURCES, INTEGRATIONS, Kind, Resources
from services.integrations.settings import Settings

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _ts(**values: datetime | None) -> dict[str, Any]:
    """Timestamp fields that are set (an unset one stays absent rather than 1970)."""
    return {k: v for k, v in values.items() if v is not None}


def _now() -> Any:
    return datetime.now(UTC)


def _managed(r: Managed) -> dict[str, Any]:
    """The fields every resource message shares (never credential_ref or config)."""
    return {
        "tenant_id": r.tenant_id, "name": r.name, "status": r.status, "health_state": r.health_state,
        "health_message": r.health_message or "", "latency_ms": r.latency_ms, "has_credential": bool(r.credential_ref),
        "deleted": r.deleted_at is not None,
        **_ts(health_checked_at=r.health_checked_at, created_at=r.created_at, updated_at=r.updated_at),
    }  # fmt: skip


def integration_pb(r: Integration) -> pb.Integration:
    return pb.Integration(
        id=r.id, provider_type=r.provider_type, default_model=r.default_model or "",
        budget_limit_cents=r.budget_limit_cents, token_limit_month=r.token_limit_month,
        rate_limit_rpm=r.rate_limit_rpm, created_by=r.created_by or "", **_ts(deleted_at=r.deleted_at), **_managed(r),
    )  # fmt: skip


def summary_pb(r: Integration) -> pb.IntegrationSummary:
    return pb.IntegrationSummary(
        id=r.id, name=r.name, provider_type=r.provider_type, status=r.status, health_state=r.health_state,
        default_model=r.default_model or "", **_ts(created_at=r.created_at),
    )  # fmt: skip


def connector_pb(r: Connector) -> pb.Connector:
    return pb.Connector(
        connector_id=r.id, connector_type=r.connector_type, capabilities=r.capabilities, endpoint=r.endpoint,
        connection_count=r.connection_count, error_count=r.error_count, **_ts(last_connected=r.last_connected),
        **_managed(r),
    )  # fmt: skip


def datasource_pb(r: Datasource) -> pb.Datasource:
    return pb.Datasource(
        source_id=r.id, source_type=r.source_type, description=r.description, tags=r.tags, endpoint=r.endpoint,
        **_managed(r),
    )  # fmt: skip


def _meta() -> pb.Meta:
    return pb.Meta(timestamp=_now(), request_id=request_id.get())


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
    """Translates requests and responses; the work happens in Resources, one transaction per change."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        guard: outbound.Guard,
        onboarding: notify.Peer,
    ) -> None:
        self._sessions, self._settings = sessions, settings
        self._do = Resources(sessions, settings, guard, onboarding)

    # Integrations: the legacy envelope {success, data, meta} on every route.

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
            **_integration_fields(request, everything=True),
        )
        row = await self._do.create(caller(context), INTEGRATIONS, row, secret, provider_type=provider)
        await created(context)
        return rpc.CreateIntegrationResponse(success=True, data=integration_pb(row), meta=_meta())

    async def GetIntegration(self, request: rpc.GetIntegrationRequest, context: Context) -> rpc.GetIntegrationResponse:
        row = await self._do.get(caller(context), INTEGRATIONS, request.integration_id)
        return rpc.GetIntegrationResponse(success=True, data=integration_pb(row), meta=_meta())

    async def _list(self, context: Context, request: Any, size: int, token: str = "") -> tuple[list[Integration], int]:
        filters = {
            "status": validation.one_of("status", request.status.strip().lower(), ("", *policy.INTEGRATION.statuses)),
            "provider_type": validation.one_of(
                "provider_type", request.provider_type.strip().lower(), ("", *policy.PROVIDERS)
            ),
        }
        offset = validation.between("offset", request.offset, 0, 2**31 - 1)
        return await self._do.rows(caller(context), INTEGRATIONS, filters, token, offset, size)

    async def ListIntegrations(
        self, request: rpc.ListIntegrationsRequest, context: Context
    ) -> rpc.ListIntegrationsResponse:
        legacy = bool(request.limit or request.offset)
        if legacy and (request.page_token or request.page_size):
            raise InvalidArgument("page_token", "cannot be combined with limit/offset")
        size = validation.page_size("limit" if legacy else "page_size", request.limit or request.page_size, 20)
        # Keyset pages read one row more than they answer, to know whether another page exists.
        rows, total = await self._list(context, request, size if legacy else size + 1, request.page_token)
        token = validation.encode_token(rows[size - 1].created_at, rows[size - 1].id) if len(rows) > size else ""
        meta = pb.ListMeta(timestamp=_now(), request_id=request_id.get(), total=total)
        data = [summary_pb(r) for r in rows[:size]]
        return rpc.ListIntegrationsResponse(success=True, data=data, meta=meta, next_page_token=token)

    async def ListIntegrationsFacade(
        self, request: rpc.ListIntegrationsFacadeRequest, context: Context
    ) -> rpc.ListIntegrationsFacadeResponse:
        if request.as_of:
            raise InvalidArgument("as_of", "is not supported", reason="UNSUPPORTED_PARAM")
        rows, total = await self._list(context, request, validation.page_size("limit", request.limit, 20))
        more = request.offset + len(rows) < total
        page = rpc.Pagination(limit=validation.page_size("limit", request.limit, 20), offset=request.offset)
        if more:
            page.next_offset = request.offset + len(rows)
        headers = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        meta = rpc.FacadeMeta(request_id=request_id.get(), correlation_id=headers.get("x-correlation-id", ""))
        return rpc.ListIntegrationsFacadeResponse(
            integrations=[summary_pb(r) for r in rows],
            total=total,
            has_more=more,
            pagination=page,
            generated_at=_now(),
            meta=meta,
        )

    async def UpdateIntegration(
        self, request: rpc.UpdateIntegrationRequest, context: Context
    ) -> rpc.UpdateIntegrationResponse:
        values = _integration_fields(request, everything=False)
        if request.HasField("name"):
            values["name"] = validation.length("name", request.name, 1, 255)
        ref, secret = self._credential(request.credential_ref, request.credential)
        if request.HasField("credential_ref") and not secret:
            values["credential_ref"] = ref
        if request.HasField("config"):
            values["config"] = _config(request)
        row = await self._do.update(caller(context), INTEGRATIONS, request.integration_id, values, secret)
        return rpc.UpdateIntegrationResponse(success=True, data=integration_pb(row), meta=_meta())

    async def DeleteIntegration(
        self, request: rpc.DeleteIntegrationRequest, context: Context
    ) -> rpc.DeleteIntegrationResponse:
        row = await self._do.move(caller(context), INTEGRATIONS, request.integration_id, "delete")
        data = rpc.DeleteResult(deleted=True, integration_id=row.id)
        return rpc.DeleteIntegrationResponse(success=True, data=data, meta=_meta())

    async def EnableIntegration(
        self, request: rpc.EnableIntegrationRequest, context: Context
    ) -> rpc.EnableIntegrationResponse:
        row = await self._do.move(caller(context), INTEGRATIONS, request.integration_id, "enable")
        data = rpc.StatusResult(integration_id=row.id, status=row.status, message="Integration enabled successfully")
        return rpc.EnableIntegrationResponse(success=True, data=data, meta=_meta())

    async def DisableIntegration(
        self, request: rpc.DisableIntegrationRequest, context: Context
    ) -> rpc.DisableIntegrationResponse:
        row = await self._do.move(caller(context), INTEGRATIONS, request.integration_id, "disable")
        data = rpc.StatusResult(integration_id=row.id, status=row.status, message="Integration disabled successfully")
        return rpc.DisableIntegrationResponse(success=True, data=data, meta=_meta())

    async def TestIntegration(
        self, request: rpc.TestIntegrationRequest, context: Context
    ) -> rpc.TestIntegrationResponse:
        row = await self._do.test(caller(context), INTEGRATIONS, request.integration_id)
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
        row = await self._do.get(caller(context), INTEGRATIONS, request.integration_id)
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
        row = await self._do.get(caller(context), INTEGRATIONS, request.integration_id)
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
            validated = await repository.evidence(session, tenant_id)
        return rpc.GetActivationEvidenceResponse(has_validated_connector=validated)

    # Connectors.

    async def CreateConnector(
        self, request: rpc.CreateConnectorRequest, context: Context
    ) -> rpc.CreateConnectorResponse:
        kind = validation.one_of("connector_type", request.connector_type.strip().lower(), policy.CONNECTOR_TYPES)
        row = Connector(
            name=validation.length("name", request.name, 1, 255),
            connector_type=kind,
            status="registered",
            endpoint=_endpoint(request.endpoint),
            capabilities=_capabilities(kind, list(request.capabilities)),
        )
        secret = _secret(request.credential) if request.credential else ""
        row = await self._do.create(caller(context), CONNECTORS, row, secret, connector_type=kind)
        await created(context)
        return rpc.CreateConnectorResponse(connector=connector_pb(row))

    async def GetConnector(self, request: rpc.GetConnectorRequest, context: Context) -> rpc.GetConnectorResponse:
        row = await self._do.get(caller(context), CONNECTORS, request.connector_id)
        return rpc.GetConnectorResponse(connector=connector_pb(row))

    async def ListConnectors(self, request: rpc.ListConnectorsRequest, context: Context) -> rpc.ListConnectorsResponse:
        rows, token = await self._page(context, CONNECTORS, request)
        return rpc.ListConnectorsResponse(connectors=[connector_pb(r) for r in rows], next_page_token=token)

    async def UpdateConnector(
        self, request: rpc.UpdateConnectorRequest, context: Context
    ) -> rpc.UpdateConnectorResponse:
        values = _common_updates(request)
        if request.capabilities:
            values["capabilities"] = _capabilities("", list(request.capabilities))
        secret = _secret(request.credential) if request.HasField("credential") else ""
        row = await self._do.update(caller(context), CONNECTORS, request.connector_id, values, secret)
        return rpc.UpdateConnectorResponse(connector=connector_pb(row))

    async def DeleteConnector(
        self, request: rpc.DeleteConnectorRequest, context: Context
    ) -> rpc.DeleteConnectorResponse:
        row = await self._do.move(caller(context), CONNECTORS, request.connector_id, "delete")
        return rpc.DeleteConnectorResponse(connector=connector_pb(row))

    async def EnableConnector(
        self, request: rpc.EnableConnectorRequest, context: Context
    ) -> rpc.EnableConnectorResponse:
        row = await self._do.move(caller(context), CONNECTORS, request.connector_id, "enable")
        return rpc.EnableConnectorResponse(connector=connector_pb(row))

    async def DisableConnector(
        self, request: rpc.DisableConnectorRequest, context: Context
    ) -> rpc.DisableConnectorResponse:
        row = await self._do.move(caller(context), CONNECTORS, request.connector_id, "disable")
        return rpc.DisableConnectorResponse(connector=connector_pb(row))

    async def TestConnector(self, request: rpc.TestConnectorRequest, context: Context) -> rpc.TestConnectorResponse:
        row = await self._do.test(caller(context), CONNECTORS, request.connector_id)
        return rpc.TestConnectorResponse(connector=connector_pb(row))

    # Datasources.

    async def CreateDatasource(
        self, request: rpc.CreateDatasourceRequest, context: Context
    ) -> rpc.CreateDatasourceResponse:
        kind = validation.one_of("source_type", request.source_type.strip().lower(), policy.SOURCE_TYPES)
        row = Datasource(
            name=validation.length("name", request.name, 1, 255),
            source_type=kind,
            status="pending",
            endpoint=_endpoint(request.endpoint),
            description=validation.length("description", request.description, 0, 1000),
            tags=_tags(request.tags),
        )
        secret = _secret(request.credential) if request.credential else ""
        row = await self._do.create(caller(context), DATASOURCES, row, secret, source_type=kind)
        await created(context)
        return rpc.CreateDatasourceResponse(datasource=datasource_pb(row))

    async def GetDatasource(self, request: rpc.GetDatasourceRequest, context: Context) -> rpc.GetDatasourceResponse:
        row = await self._do.get(caller(context), DATASOURCES, request.source_id)
        return rpc.GetDatasourceResponse(datasource=datasource_pb(row))

    async def ListDatasources(
        self, request: rpc.ListDatasourcesRequest, context: Context
    ) -> rpc.ListDatasourcesResponse:
        rows, token = await self._page(context, DATASOURCES, request)
        return rpc.ListDatasourcesResponse(datasources=[datasource_pb(r) for r in rows], next_page_token=token)

    async def UpdateDatasource(
        self, request: rpc.UpdateDatasourceRequest, context: Context
    ) -> rpc.UpdateDatasourceResponse:
        values = _common_updates(request)
        if request.HasField("description"):
            values["description"] = validation.length("description", request.description, 0, 1000)
        if request.tags:
            values["tags"] = _tags(request.tags)
        secret = _secret(request.credential) if request.HasField("credential") else ""
        row = await self._do.update(caller(context), DATASOURCES, request.source_id, values, secret)
        return rpc.UpdateDatasourceResponse(datasource=datasource_pb(row))

    async def DeleteDatasource(
        self, request: rpc.DeleteDatasourceRequest, context: Context
    ) -> rpc.DeleteDatasourceResponse:
        row = await self._do.move(caller(context), DATASOURCES, request.source_id, "delete")
        return rpc.DeleteDatasourceResponse(datasource=datasource_pb(row))

    async def EnableDatasource(
        self, request: rpc.EnableDatasourceRequest, context: Context
    ) -> rpc.EnableDatasourceResponse:
        row = await self._do.move(caller(context), DATASOURCES, request.source_id, "enable")
        return rpc.EnableDatasourceResponse(datasource=datasource_pb(row))

    async def DisableDatasource(
        self, request: rpc.DisableDatasourceRequest, context: Context
    ) -> rpc.DisableDatasourceResponse:
        row = await self._do.move(caller(context), DATASOURCES, request.source_id, "disable")
        return rpc.DisableDatasourceResponse(datasource=datasource_pb(row))

    async def TestDatasource(self, request: rpc.TestDatasourceRequest, context: Context) -> rpc.TestDatasourceResponse:
        row = await self._do.test(caller(context), DATASOURCES, request.source_id)
        return rpc.TestDatasourceResponse(datasource=datasource_pb(row))

    async def _page(self, context: Context, kind: Kind, request: Any) -> tuple[list[Any], str]:
        status = validation.one_of("status", request.status.strip().lower(), ("", *kind.model.MACHINE.statuses))
        size = validation.page_size("page_size", request.page_size)
        return await self._do.page(caller(context), kind, status, size, request.page_token)


def _integration_fields(request: Any, *, everything: bool) -> dict[str, Any]:
    """default_model and the limits: all of them on create, the ones present on update."""
    values: dict[str, Any] = {}
    if everything or request.HasField("default_model"):
        values["default_model"] = validation.length("default_model", request.default_model, 0, 100) or None
    for field, high in (
        ("budget_limit_cents", 2**31 - 1),
        ("token_limit_month", 2**63 - 1),
        ("rate_limit_rpm", 2**31 - 1),
    ):
        if everything or request.HasField(field):
            values[field] = validation.between(field, getattr(request, field), 0, high)
    return values


def _common_updates(request: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if request.HasField("name"):
        values["name"] = validation.length("name", request.name, 1, 255)
    if request.HasField("endpoint"):
        values["endpoint"] = _endpoint(request.endpoint)
    return values


def _capabilities(connector_type: str, given: list[str]) -> list[str]:
    for capability in given:
        validation.one_of("capabilities", capability, policy.CAPABILITIES)
    return list(dict.fromkeys(given)) or list(policy.DEFAULT_CAPABILITIES.get(connector_type, ("read",)))


def _tags(tags: Any) -> list[str]:
    return [validation.length("tags", t, 1, 100) for t in tags]
