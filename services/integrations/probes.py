"""What `:test` checks for each kind, through the SSRF guard: an integration's provider API, a connector's
or datasource's endpoint, or (sql, database) a connection and SELECT 1. Outbound I/O only, no database.

Every destination is validated again before the call (a row may predate the rules at create/update), so
a malformed one is INVALID_ARGUMENT naming the field, never a failure inside the HTTP client."""

from __future__ import annotations

from services.common.errors import FailedPrecondition, InvalidArgument
from services.integrations import outbound, policy
from services.integrations.models import Connector, Datasource, Integration


async def check(
    guard: outbound.Guard, timeout: float, row: Integration | Connector | Datasource, secret: str | None
) -> outbound.Outcome:
    """`secret` is the row's credential in memory ("" when it has none, None when it cannot be resolved)."""
    if secret is None:
        return outbound.Outcome("failing", "credential cannot be resolved", 0)
    if isinstance(row, Integration):
        return await _provider(guard, timeout, row, secret)
    return await _resource(guard, timeout, row, secret)


async def _provider(guard: outbound.Guard, timeout: float, row: Integration, secret: str) -> outbound.Outcome:
    if not secret:  # cleared when its destination changed: nothing is sent anywhere without one
        raise FailedPrecondition("the integration has no credential; send `credential` again", reason="NO_CREDENTIAL")
    request = outbound.provider_request(row.provider_type, row.config, secret)
    if request is None:
        raise InvalidArgument("config.base_url", f"is required for provider {row.provider_type}")
    policy.endpoint("config.base_url", request[0])
    async with outbound.client(guard, timeout) as http:
        try:
            return await outbound.probe_http(http, *request)
        except outbound.Refused as exc:
            raise InvalidArgument("config.base_url", str(exc), reason="DESTINATION_REFUSED") from exc


async def _resource(
    guard: outbound.Guard, timeout: float, row: Connector | Datasource, secret: str
) -> outbound.Outcome:
    """http-like types: a request to the endpoint; sql/database: connect and SELECT 1."""
    kind_type = row.connector_type if isinstance(row, Connector) else row.source_type
    try:
        if kind_type in policy.DSN_TYPES:
            if not secret:
                raise FailedPrecondition("a sql check needs the connection URL in `credential`", reason="NO_CREDENTIAL")
            return await outbound.probe_sql(policy.dsn("credential", secret), guard, timeout)
        if not row.endpoint:
            raise FailedPrecondition(f"no check exists for a {kind_type} without an endpoint", reason="NO_CHECK")
        headers = {"authorization": f"Bearer {secret}"} if secret else {}
        async with outbound.client(guard, timeout) as http:
            return await outbound.probe_http(http, policy.endpoint("endpoint", row.endpoint), headers)
    except outbound.Refused as exc:
        raise InvalidArgument("endpoint", str(exc), reason="DESTINATION_REFUSED") from exc
