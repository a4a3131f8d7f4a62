from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.integrations.v1 import integrations_service_pb2 as rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from aos.onboarding.v1 import onboarding_pb2
from aos.onboarding.v1.onboarding_service_pb2 import NotifyEvidenceRequest as Evidence
from services.common import notify, paging, validation
from services.common.errors import InvalidArgument
from services.common.principal import MANAGERS, READERS, Principal, caller
from services.common.server import created
from services.integrations import clients, crypto, outbound, policy, probes, repository, resources, responses
from services.integrations.models import Integration
from services.integrations.resources import CONNECTORS, DATASOURCES, INTEGRATIONS, Kind
from services.integrations.settings import Settings

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
log = logging.getLogger("aos.integrations")


def _rpcs(kind: Kind) -> tuple[Callable[..., Any], ...]:
    """Connectors' or datasources' eight RPCs, in the order the servicer names them. The two kinds differ
    only in names (`CreateConnector` answers `connector` from `responses.connector`, ...), so each RPC is
    made once here: translate, the shared verb, translate back."""
    name, noun = kind.noun.capitalize(), kind.noun
    to_pb, new, changes = (getattr(responses, f) for f in (noun, f"new_{noun}", f"{noun}_changes"))

    def reply(verb: str, row: Any) -> Any:
        return getattr(rpc, f"{verb}{name}Response")(**{noun: to_pb(row)})

    async def create(self: Any, request: Any, context: Context) -> Any:
        row, secret = new(request)
        return reply("Create", await self._create(context, kind, row, secret))

    async def get(self: Any, request: Any, context: Context) -> Any:
        return reply("Get", await self._get(context, kind, getattr(request, kind.id_field)))

    async def list_(self: Any, request: Any, context: Context) -> Any:
        rows, token = await self._page(context, kind, request)
        return getattr(rpc, f"List{name}sResponse")(**{f"{noun}s": [to_pb(r) for r in rows]}, next_page_token=token)

    async def update(self: Any, request: Any, context: Context) -> Any:
        values, secret = changes(request)
        return reply("Update", await self._update(context, kind, getattr(request, kind.id_field), values, secret))

    async def test(self: Any, request: Any, context: Context) -> Any:
        return reply("Test", await self._test(context, kind, getattr(request, kind.id_field)))

    def move(verb: str) -> Callable[..., Any]:
        async def moved(self: Any, request: Any, context: Context) -> Any:
            return reply(verb, await self._move(context, kind, getattr(request, kind.id_field), verb.lower()))

        return moved

    return create, get, list_, update, move("Delete"), move("Enable"), move("Disable"), test


class IntegrationsServicer(integrations_service_pb2_grpc.IntegrationsServiceServicer):
    """One RPC per kind and verb; the three kinds share one implementation of each verb (below the RPCs),
    which opens the RPC's transaction. Connectors and datasources differ only in names, so their RPCs are
    made by `_rpcs` from what tells them apart."""

    (
        CreateConnector,
        GetConnector,
        ListConnectors,
        UpdateConnector,
        DeleteConnector,
        EnableConnector,
        DisableConnector,
        TestConnector,
    ) = _rpcs(CONNECTORS)
    (
        CreateDatasource,
        GetDatasource,
        ListDatasources,
        UpdateDatasource,
        DeleteDatasource,
        EnableDatasource,
        DisableDatasource,
        TestDatasource,
    ) = _rpcs(DATASOURCES)

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        guard: outbound.Guard,
        onboarding: notify.Peer,
        monitoring: clients.Monitoring,
    ) -> None:
        self._sessions, self._settings, self._guard, self._onboarding = sessions, settings, guard, onboarding
        self._monitoring = monitoring
        self._keyring = crypto.Keyring(settings.keks, settings.active_kek)
        self._env_allowed = settings.env_credential_allowlist

    async def CreateIntegration(
        self, request: rpc.CreateIntegrationRequest, context: Context
    ) -> rpc.CreateIntegrationResponse:
        with responses.unprocessable():
            row, secret = responses.new_integration(request, self._env_allowed)
        row = await self._create(context, INTEGRATIONS, row, secret)
        return responses.envelope(rpc.CreateIntegrationResponse, responses.integration(row))

    async def GetIntegration(self, request: rpc.GetIntegrationRequest, context: Context) -> rpc.GetIntegrationResponse:
        row = await self._get(context, INTEGRATIONS, request.integration_id)
        return responses.envelope(rpc.GetIntegrationResponse, responses.integration(row))

    async def ListIntegrations(
        self, request: rpc.ListIntegrationsRequest, context: Context
    ) -> rpc.ListIntegrationsResponse:
        page = paging.request(request.page_token, request.page_size, request.limit, request.offset, default=20)
        rows, total = await self._integrations(context, request, page)
        rows, token, _ = page.cut(rows)
        return responses.integrations(rows, total, token)

    async def ListIntegrationsFacade(
        self, request: rpc.ListIntegrationsFacadeRequest, context: Context
    ) -> rpc.ListIntegrationsFacadeResponse:
        request, page = responses.facade_query(request)
        rows, total = await self._integrations(context, request, page)
        rows, _, more = page.cut(rows)
        headers = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        return responses.facade(rows, total, more, page, headers.get("x-correlation-id", ""))

    async def UpdateIntegration(
        self, request: rpc.UpdateIntegrationRequest, context: Context
    ) -> rpc.UpdateIntegrationResponse:
        with responses.unprocessable():
            values, secret = responses.integration_changes(request, self._env_allowed)
        row = await self._update(context, INTEGRATIONS, request.integration_id, values, secret)
        return responses.envelope(rpc.UpdateIntegrationResponse, responses.integration(row))

    async def DeleteIntegration(
        self, request: rpc.DeleteIntegrationRequest, context: Context
    ) -> rpc.DeleteIntegrationResponse:
        row = await self._move(context, INTEGRATIONS, request.integration_id, "delete")
        return responses.envelope(rpc.DeleteIntegrationResponse, rpc.DeleteResult(deleted=True, integration_id=row.id))

    async def EnableIntegration(
        self, request: rpc.EnableIntegrationRequest, context: Context
    ) -> rpc.EnableIntegrationResponse:
        row = await self._move(context, INTEGRATIONS, request.integration_id, "enable")
        data = rpc.StatusResult(integration_id=row.id, status=row.status, message="Integration enabled successfully")
        return responses.envelope(rpc.EnableIntegrationResponse, data)

    async def DisableIntegration(
        self, request: rpc.DisableIntegrationRequest, context: Context
    ) -> rpc.DisableIntegrationResponse:
        row = await self._move(context, INTEGRATIONS, request.integration_id, "disable")
        data = rpc.StatusResult(integration_id=row.id, status=row.status, message="Integration disabled successfully")
        return responses.envelope(rpc.DisableIntegrationResponse, data)

    async def TestIntegration(
        self, request: rpc.TestIntegrationRequest, context: Context
    ) -> rpc.TestIntegrationResponse:
        row = await self._test(context, INTEGRATIONS, request.integration_id)
        return responses.envelope(rpc.TestIntegrationResponse, responses.tested(row))

    async def GetIntegrationHealth(
        self, request: rpc.GetIntegrationHealthRequest, context: Context
    ) -> rpc.GetIntegrationHealthResponse:
        row = await self._get(context, INTEGRATIONS, request.integration_id)
        return responses.envelope(rpc.GetIntegrationHealthResponse, responses.health(row))

    async def GetIntegrationLimits(
        self, request: rpc.GetIntegrationLimitsRequest, context: Context
    ) -> rpc.GetIntegrationLimitsResponse:
        row = await self._get(context, INTEGRATIONS, request.integration_id)
        start, end = policy.billing_period(datetime.now(UTC))
        usage = await self._monitoring.usage(row.tenant_id, row.id, start, end)
        return responses.envelope(rpc.GetIntegrationLimitsResponse, responses.limits(row, usage, start, end))

    # The legacy URLs of five RPCs above: the same calls, answering the legacy bodies (SPEC 2.7).
    async def CreateLegacyIntegration(
        self, request: rpc.CreateLegacyIntegrationRequest, context: Context
    ) -> rpc.CreateLegacyIntegrationResponse:
        same = rpc.CreateIntegrationRequest.FromString(request.SerializeToString())  # the same fields and numbers
        reply = await self.CreateIntegration(same, context)
        return rpc.CreateLegacyIntegrationResponse(body=responses.legacy(reply, responses.RECORD))

    async def GetLegacyIntegration(
        self, request: rpc.GetLegacyIntegrationRequest, context: Context
    ) -> rpc.GetLegacyIntegrationResponse:
        reply = await self.GetIntegration(rpc.GetIntegrationRequest(integration_id=request.integration_id), context)
        return rpc.GetLegacyIntegrationResponse(body=responses.legacy(reply, responses.RECORD))

    async def UpdateLegacyIntegration(
        self, request: rpc.UpdateLegacyIntegrationRequest, context: Context
    ) -> rpc.UpdateLegacyIntegrationResponse:
        same = rpc.UpdateIntegrationRequest.FromString(request.SerializeToString())
        reply = await self.UpdateIntegration(same, context)
        return rpc.UpdateLegacyIntegrationResponse(body=responses.legacy(reply, responses.RECORD))

    async def GetLegacyIntegrationHealth(
        self, request: rpc.GetLegacyIntegrationHealthRequest, context: Context
    ) -> rpc.GetLegacyIntegrationHealthResponse:
        same = rpc.GetIntegrationHealthRequest(integration_id=request.integration_id)
        reply = await self.GetIntegrationHealth(same, context)
        return rpc.GetLegacyIntegrationHealthResponse(body=responses.legacy(reply, responses.HEALTH))

    async def GetLegacyIntegrationLimits(
        self, request: rpc.GetLegacyIntegrationLimitsRequest, context: Context
    ) -> rpc.GetLegacyIntegrationLimitsResponse:
        same = rpc.GetIntegrationLimitsRequest(integration_id=request.integration_id)
        reply = await self.GetIntegrationLimits(same, context)
        return rpc.GetLegacyIntegrationLimitsResponse(body=responses.legacy(reply, responses.LIMITS))

    async def GetActivationEvidence(
        self, request: rpc.GetActivationEvidenceRequest, context: Context
    ) -> rpc.GetActivationEvidenceResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 100)
        async with self._sessions() as session:
            validated = await repository.evidence(session, tenant_id)
        return rpc.GetActivationEvidenceResponse(has_validated_connector=validated)

    async def CheckIntegrations(
        self, request: rpc.CheckIntegrationsRequest, context: Context
    ) -> rpc.CheckIntegrationsResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 100)
        ids = list(dict.fromkeys(request.integration_ids))
        if not 1 <= len(ids) <= 100:
            raise InvalidArgument("integration_ids", "must name 1 to 100 integrations")
        async with self._sessions() as session:
            owned = await repository.owned(session, tenant_id, ids)
        return rpc.CheckIntegrationsResponse(owned_integration_ids=[i for i in ids if i in owned])

    async def _create(self, context: Context, kind: Kind, row: Any, secret: str) -> Any:
        who = _manager(context)
        async with self._sessions.begin() as session:
            row = await resources.create(session, self._keyring, who, kind, row, secret)
        await created(context)
        return row

    async def _get(self, context: Context, kind: Kind, row_id: str) -> Any:
        tenant_id = _reader(context).tenant()
        async with self._sessions() as session:
            return await repository.get(session, kind.model, tenant_id, kind.id(row_id))

    async def _integrations(self, context: Context, request: Any, page: paging.Page) -> tuple[list[Integration], int]:
        """One page (plus the row after it) and the total of the live integrations the filters select."""
        filters, tenant_id = responses.integration_filters(request), _reader(context).tenant()
        async with self._sessions() as session:
            rows = await repository.page(session, Integration, tenant_id, filters, page)
            return rows, await repository.count(session, Integration, tenant_id, filters)

    async def _page(self, context: Context, kind: Kind, request: Any) -> tuple[list[Any], str]:
        status = validation.one_of("status", request.status.strip().lower(), ("", *kind.lifecycle.statuses))
        page, tenant_id = paging.request(request.page_token, request.page_size), _reader(context).tenant()
        async with self._sessions() as session:
            rows = await repository.page(session, kind.model, tenant_id, {"status": status}, page)
        rows, token, _ = page.cut(rows)
        return rows, token

    async def _update(self, context: Context, kind: Kind, row_id: str, values: dict[str, Any], secret: str) -> Any:
        who, row_id = _manager(context), kind.id(row_id)
        async with self._sessions.begin() as session:
            row = await resources.update(session, self._keyring, who, kind, row_id, values, secret)
        self._changed(row.tenant_id)
        return row

    async def _move(self, context: Context, kind: Kind, row_id: str, action: str) -> Any:
        who, row_id = _manager(context), kind.id(row_id)
        async with self._sessions.begin() as session:
            row = await resources.move(session, who, kind, row_id, action)
        self._changed(row.tenant_id)
        return row

    async def _test(self, context: Context, kind: Kind, row_id: str) -> Any:
        who, row_id = _manager(context), kind.id(row_id)
        # Two transactions: no connection or lock is held while the probe (an outbound call) waits on a remote.
        async with self._sessions() as session:
            row, secret = await resources.testable(
                session, self._keyring, who.tenant(), kind, row_id, self._env_allowed
            )
        outcome = await probes.check(self._guard, self._settings.probe_timeout_seconds, row, secret)
        async with self._sessions.begin() as session:
            row = await resources.tested(session, who, kind, row_id, outcome)
        log.info("%s %s tested: %s in %d ms", kind.noun, row.id, outcome.health_state, outcome.latency_ms)
        self._changed(row.tenant_id)
        return row

    def _changed(self, tenant_id: str) -> None:
        """After the commit: onboarding re-reads the tenant's activation evidence."""
        evidence = Evidence(tenant_id=tenant_id, kind=onboarding_pb2.EVIDENCE_KIND_CONNECTOR_CHANGED)
        self._onboarding.tell(evidence, tenant_id)


def _manager(context: Context) -> Principal:
    """Create, update, delete, enable, disable and test (which sends the stored credential out): owners
    and admins."""
    who = caller(context)
    who.require_role(*MANAGERS)
    return who


def _reader(context: Context) -> Principal:
    who = caller(context)
    who.require_role(*READERS)
    return who
