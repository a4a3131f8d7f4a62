"""Proto ⇄ row: first the messages built from a row (the canonical Connector and Datasource, the legacy
{success, data, meta} envelope of integrations), then the validated rows and changes a request asks for."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import json_format

from aos.integrations.v1 import integration_pb2 as pb
from aos.integrations.v1 import integrations_service_pb2 as rpc
from aos.monitoring.v1.monitoring_service_pb2 import GetIntegrationUsageResponse as Usage
from services.common import paging, querystring, rest, validation
from services.common.errors import InvalidArgument
from services.common.interceptors import request_id
from services.common.paging import Page
from services.integrations import policy
from services.integrations.models import Connector, Datasource, Integration, Managed

MAX_INT32 = 2**31 - 1
E = TypeVar("E")


@contextlib.contextmanager
def unprocessable() -> Iterator[None]:
    """Field errors that the legacy /integrations routes answer 422 (SPEC 2.7, 6.3, scenario 24); /v1 keeps 400."""
    try:
        yield
    except InvalidArgument as exc:
        exc.legacy_http_status = 422
        raise


def _now() -> Any:
    """A datetime, which protobuf takes for a Timestamp field (its stubs say Timestamp only)."""
    return datetime.now(UTC)


def _ts(**values: datetime | None) -> dict[str, Any]:
    """Timestamp fields that are set (an unset one stays absent rather than 1970)."""
    return {k: v for k, v in values.items() if v is not None}


def _managed(r: Managed) -> dict[str, Any]:
    """The fields every resource message shares (never credential_ref or config)."""
    return {
        "tenant_id": r.tenant_id, "name": r.name, "status": r.status, "health_state": r.health_state,
        "health_message": r.health_message or "", "latency_ms": r.latency_ms, "has_credential": bool(r.credential_ref),
        "deleted": r.deleted_at is not None,
        **_ts(health_checked_at=r.health_checked_at, created_at=r.created_at, updated_at=r.updated_at),
    }  # fmt: skip


def integration(r: Integration) -> pb.Integration:
    return pb.Integration(
        id=r.id, provider_type=r.provider_type, default_model=r.default_model or "",
        budget_limit_cents=r.budget_limit_cents, token_limit_month=r.token_limit_month,
        rate_limit_rpm=r.rate_limit_rpm, created_by=r.created_by or "", **_ts(deleted_at=r.deleted_at), **_managed(r),
    )  # fmt: skip


def summary(r: Integration) -> pb.IntegrationSummary:
    return pb.IntegrationSummary(
        id=r.id, name=r.name, provider_type=r.provider_type, status=r.status, health_state=r.health_state,
        default_model=r.default_model or "", **_ts(created_at=r.created_at),
    )  # fmt: skip


def connector(r: Connector) -> pb.Connector:
    return pb.Connector(
        connector_id=r.id, connector_type=r.connector_type, capabilities=r.capabilities, endpoint=r.endpoint,
        connection_count=r.connection_count, error_count=r.error_count, **_ts(last_connected=r.last_connected),
        **_managed(r),
    )  # fmt: skip


def datasource(r: Datasource) -> pb.Datasource:
    return pb.Datasource(
        source_id=r.id, source_type=r.source_type, description=r.description, tags=r.tags, endpoint=r.endpoint,
        **_managed(r),
    )  # fmt: skip


def envelope(response: Callable[..., E], data: Any) -> E:
    """The legacy integrations envelope every integration route answers with."""
    return response(success=True, data=data, meta=pb.Meta(timestamp=_now(), request_id=request_id.get()))


def integrations(rows: list[Integration], total: int, token: str) -> rpc.ListIntegrationsResponse:
    meta = pb.ListMeta(timestamp=_now(), request_id=request_id.get(), total=total)
    data = [summary(r) for r in rows]
    return rpc.ListIntegrationsResponse(success=True, data=data, meta=meta, next_page_token=token)


def facade(
    rows: list[Integration], total: int, more: bool, page: Page, correlation_id: str
) -> rpc.ListIntegrationsFacadeResponse:
    """The typed page for gRPC callers and, in `body`, the legacy body REST answers alone (null where unset)."""
    pagination = rpc.Pagination(limit=page.size, offset=page.offset)
    if more:
        pagination.next_offset = page.offset + len(rows)
    meta = rpc.FacadeMeta(request_id=request_id.get(), correlation_id=correlation_id)
    reply = rpc.ListIntegrationsFacadeResponse(
        integrations=[summary(r) for r in rows],
        total=total,
        has_more=more,
        pagination=pagination,
        generated_at=_now(),
        meta=meta,
    )
    shaped = rest.pick(reply, ("integrations", "total", "has_more", "pagination", "generated_at", "meta"))
    reply.body.CopyFrom(rest.json_body(shaped))
    return reply


def tested(r: Integration) -> rpc.TestResult:
    return rpc.TestResult(
        integration_id=r.id, health_state=r.health_state, message=r.health_message or "", latency_ms=r.latency_ms,
        **_ts(checked_at=r.health_checked_at),
    )  # fmt: skip


def health(r: Integration) -> rpc.HealthResult:
    return rpc.HealthResult(
        integration_id=r.id, health_state=r.health_state, health_message=r.health_message or "",
        latency_ms=r.latency_ms, **_ts(health_checked_at=r.health_checked_at),
    )  # fmt: skip


def limits(r: Integration, usage: Usage, start: datetime, end: datetime) -> rpc.LimitsResult:
    """The limits beside this billing period's usage as monitoring counted it."""
    budget_used, tokens_used, requests = usage.cost_cents, usage.tokens, usage.requests_last_minute
    return rpc.LimitsResult(
        integration_id=r.id,
        budget_limit_cents=r.budget_limit_cents,
        budget_used_cents=budget_used,
        budget_percent=policy.percent(budget_used, r.budget_limit_cents),
        token_limit_month=r.token_limit_month,
        tokens_used_month=tokens_used,
        token_percent=policy.percent(tokens_used, r.token_limit_month),
        rate_limit_rpm=r.rate_limit_rpm,
        requests_this_minute=requests,
        current_rpm=requests,
        rate_percent=policy.percent(requests, r.rate_limit_rpm),
        **_ts(period_start=start, period_end=end),
    )


def _secret(value: str, kind_type: str = "") -> str:
    """A credential to seal; for sql and database types it is a connection URL, checked now rather than
    at the first test."""
    secret = validation.length("credential", value, 1, 8192)
    if kind_type in policy.DSN_TYPES:
        policy.dsn("credential", secret)
    return secret


def _config(request: Any) -> dict[str, Any]:
    config: dict[str, Any] = json_format.MessageToDict(request.config)
    if "base_url" in config:
        config["base_url"] = policy.endpoint("config.base_url", str(config["base_url"]))
    return config


def _credential(ref: str, secret: str, env_allowed: Collection[str]) -> tuple[str, str]:
    if ref.strip() and secret:
        raise InvalidArgument("credential", "send either credential or credential_ref, not both")
    return policy.credential_ref(ref, env_allowed=env_allowed), _secret(secret) if secret else ""


def _integration_fields(request: Any, *, everything: bool) -> dict[str, Any]:
    """default_model and the limits: all of them on create, the ones present on update."""
    values: dict[str, Any] = {}
    if everything or request.HasField("default_model"):
        values["default_model"] = validation.length("default_model", request.default_model, 0, 100) or None
    for field, high in (
        ("budget_limit_cents", MAX_INT32),
        ("token_limit_month", 2**63 - 1),
        ("rate_limit_rpm", MAX_INT32),
    ):
        if everything or request.HasField(field):
            values[field] = validation.between(field, getattr(request, field), 0, high)
    return values


def new_integration(request: rpc.CreateIntegrationRequest, env_allowed: Collection[str]) -> tuple[Integration, str]:
    """The row to create and the secret to seal into it ("" when the request gave a reference)."""
    provider = validation.one_of("provider_type", request.provider_type.strip().lower(), policy.PROVIDERS)
    ref, secret = _credential(request.credential_ref, request.credential, env_allowed)
    if not ref and not secret:
        raise InvalidArgument("credential", "either credential or credential_ref is required")
    row = Integration(
        name=validation.name("name", request.name, 1, 255),
        provider_type=provider,
        status=policy.INTEGRATION.created,
        credential_ref=ref,
        config=_config(request),
        **_integration_fields(request, everything=True),
    )
    return row, secret


def integration_changes(
    request: rpc.UpdateIntegrationRequest, env_allowed: Collection[str]
) -> tuple[dict[str, Any], str]:
    """The columns to change and the new secret to seal ("" when none)."""
    values = _integration_fields(request, everything=False)
    if request.HasField("name"):
        values["name"] = validation.name("name", request.name, 1, 255)
    ref, secret = _credential(request.credential_ref, request.credential, env_allowed)
    if request.HasField("credential_ref") and not secret:
        values["credential_ref"] = ref
    if request.HasField("config"):
        values["config"] = _config(request)
    return values, secret


# The legacy /integrations bodies (SPEC 2.7), from the canonical RPCs' typed answers: SPEC's keys only, null
# where unset, integers as JSON numbers (services.common.rest.pick).
RECORD = (
    "id",
    "tenant_id",
    "name",
    "provider_type",
    "status",
    "health_state",
    "health_checked_at",
    "health_message",
    "default_model",
    "budget_limit_cents",
    "token_limit_month",
    "rate_limit_rpm",
    "created_at",
    "updated_at",
    "created_by",
    "deleted_at",
)
HEALTH = ("integration_id", "health_state", "health_message", "health_checked_at")
LIMITS = (
    "integration_id",
    "budget_limit_cents",
    "budget_used_cents",
    "budget_percent",
    "token_limit_month",
    "tokens_used_month",
    "token_percent",
    "rate_limit_rpm",
    "requests_this_minute",
    "rate_percent",
    "period_start",
    "period_end",
)
UNSET_AS_NULL = ("health_message", "default_model", "created_by")


def legacy(reply: Any, fields: tuple[str, ...]) -> Any:
    """The legacy envelope of a canonical answer {success, data, meta}, data cut to `fields`."""
    data = rest.pick(reply.data, fields, UNSET_AS_NULL)
    return rest.json_body({"success": reply.success, "data": data, "meta": rest.pick(reply.meta)})


def facade_query(request: rpc.ListIntegrationsFacadeRequest) -> tuple[rpc.ListIntegrationsFacadeRequest, Page]:
    """The facade's strict query (SPEC 2.7 as 2.5), from the REST query string when there is one: as_of is
    UNSUPPORTED_PARAM, any other refusal INVALID_QUERY naming the parameter; before any database access."""
    if request.raw_query:
        params = querystring.parse(request.raw_query)
        querystring.refuse_as_of(params)
        request = querystring.message(params, rpc.ListIntegrationsFacadeRequest, ("raw_query",))
    if request.as_of:
        raise InvalidArgument("as_of", "point-in-time reads are not supported", reason="UNSUPPORTED_PARAM")
    try:
        integration_filters(request)
        return request, paging.request("", 0, request.limit, request.offset, default=20)
    except InvalidArgument as exc:
        exc.reason = "INVALID_QUERY"
        raise


def integration_filters(request: rpc.ListIntegrationsRequest | rpc.ListIntegrationsFacadeRequest) -> dict[str, str]:
    status = validation.one_of("status", request.status.strip().lower(), ("", *policy.INTEGRATION.statuses))
    provider = validation.one_of("provider_type", request.provider_type.strip().lower(), ("", *policy.PROVIDERS))
    return {"status": status, "provider_type": provider}


def _capabilities(connector_type: str, given: list[str]) -> list[str]:
    for capability in given:
        validation.one_of("capabilities", capability, policy.CAPABILITIES)
    return list(dict.fromkeys(given)) or list(policy.DEFAULT_CAPABILITIES.get(connector_type, ("read",)))


def _tags(tags: Any) -> list[str]:
    return [validation.length("tags", t, 1, 100) for t in tags]


def _registered(request: Any, type_field: str, types: tuple[str, ...]) -> dict[str, Any]:
    """The fields a new connector or datasource shares: its type, name and endpoint."""
    return {
        type_field: validation.one_of(type_field, getattr(request, type_field).strip().lower(), types),
        "name": validation.name("name", request.name, 1, 255),
        "endpoint": policy.endpoint("endpoint", request.endpoint),
    }


def new_connector(request: rpc.CreateConnectorRequest) -> tuple[Connector, str]:
    fields = _registered(request, "connector_type", policy.CONNECTOR_TYPES)
    capabilities = _capabilities(fields["connector_type"], list(request.capabilities))
    row = Connector(status=policy.CONNECTOR.created, capabilities=capabilities, **fields)
    return row, _secret(request.credential, row.connector_type) if request.credential else ""


def new_datasource(request: rpc.CreateDatasourceRequest) -> tuple[Datasource, str]:
    fields = _registered(request, "source_type", policy.SOURCE_TYPES)
    description = validation.length("description", request.description, 0, 1000)
    row = Datasource(status=policy.DATASOURCE.created, description=description, tags=_tags(request.tags), **fields)
    return row, _secret(request.credential, row.source_type) if request.credential else ""


def _common_changes(request: rpc.UpdateConnectorRequest | rpc.UpdateDatasourceRequest) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if request.HasField("name"):
        values["name"] = validation.name("name", request.name, 1, 255)
    if request.HasField("endpoint"):
        values["endpoint"] = policy.endpoint("endpoint", request.endpoint)
    return values


def connector_changes(request: rpc.UpdateConnectorRequest) -> tuple[dict[str, Any], str]:
    values = _common_changes(request)
    if request.capabilities:
        values["capabilities"] = _capabilities("", list(request.capabilities))
    return values, _secret(request.credential) if request.HasField("credential") else ""


def datasource_changes(request: rpc.UpdateDatasourceRequest) -> tuple[dict[str, Any], str]:
    values = _common_changes(request)
    if request.HasField("description"):
        values["description"] = validation.length("description", request.description, 0, 1000)
    if request.tags:
        values["tags"] = _tags(request.tags)
    return values, _secret(request.credential) if request.HasField("credential") else ""
