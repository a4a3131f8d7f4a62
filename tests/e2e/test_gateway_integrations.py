"""The integrations REST surface through real Envoy: legacy envelopes and URLs, 201/400/404/409, the
/cus facade, canonical /v1 routes, and connectors (SPEC 2.7, scenarios 24-30)."""

import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.gate.v1 import gate_pb2
from aos.integrations.v1 import integrations_service_pb2
from services.common.interceptors import gate_rule
from tests.conftest import Gateway
from tests.integrations.conftest import GOOD_KEY, FakeProvider, provider  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e
SECRET = "prov-" + uuid.uuid4().hex


async def signup(http: httpx.AsyncClient, gateway: Gateway) -> tuple[str, dict[str, str]]:
    user = f"owner-{time.monotonic_ns()}"
    reply = await http.post("/v1/tenants", json={"name": "Acme"}, headers=gateway.token(user))
    assert reply.status_code == 201, reply.text
    tenant = reply.json()["tenant"]["tenant_id"]
    return tenant, gateway.token(user, tenant=tenant)


def body(name: str, base_url: str = "", **fields: Any) -> dict[str, Any]:
    return (
        {"name": name, "provider_type": "openai", "credential": GOOD_KEY}
        | ({"config": {"base_url": base_url}} if base_url else {})
        | fields
    )


async def test_legacy_integration_journey(
    http: httpx.AsyncClient,
    gateway: Gateway,
    provider: FakeProvider,  # noqa: F811
) -> None:
    tenant, auth = await signup(http, gateway)
    raw = await http.post("/integrations", json=body("raw", credential_ref="sk-abc", credential=""), headers=auth)
    assert raw.status_code == 422 and raw.json()["message"].startswith("credential_ref:") and "sk-abc" not in raw.text
    by_ref = await http.post(
        "/integrations", json=body("by-ref", credential_ref="encrypted://" + "A" * 60, credential=""), headers=auth
    )
    assert by_ref.status_code == 201, by_ref.text
    envelope = by_ref.json()
    assert envelope["success"] is True and set(envelope["meta"]) == {"timestamp", "request_id"}
    data = envelope["data"]
    assert data["status"] == "created" and data["health_state"] == "unknown" and data["tenant_id"] == tenant
    assert "credential_ref" not in data and "config" not in data and "credential" not in data

    created = await http.post("/integrations", json=body("main", provider.base(), credential=SECRET), headers=auth)
    assert created.status_code == 201 and SECRET not in created.text
    iid = created.json()["data"]["id"]
    dup = await http.post("/integrations", json=body("main"), headers=auth)
    assert dup.status_code == 409 and "already exists" in dup.json()["message"]

    assert (await http.put(f"/integrations/{iid}", json={}, headers=auth)).status_code == 400
    status_change = await http.put(f"/integrations/{iid}", json={"status": "enabled"}, headers=auth)
    assert status_change.status_code == 400  # status is not a field of the update: only the machine moves it
    assert (await http.get("/integrations/not-a-uuid", headers=auth)).status_code == 422  # legacy; /v1 says 400
    renamed = await http.put(
        f"/integrations/{iid}", json={"credential": GOOD_KEY, "default_model": "gpt"}, headers=auth
    )
    assert renamed.status_code == 200 and renamed.json()["data"]["default_model"] == "gpt"

    enabled = await http.post(f"/integrations/{iid}/enable", headers=auth)
    assert enabled.status_code == 200 and enabled.json()["data"] == {
        "integration_id": iid,
        "status": "enabled",
        "message": "Integration enabled successfully",
    }
    tested = await http.post(f"/integrations/{iid}/test", headers=auth)
    assert tested.status_code == 200 and tested.json()["data"]["health_state"] == "healthy"
    health = (await http.get(f"/integrations/{iid}/health", headers=auth)).json()["data"]
    assert health["health_state"] == "healthy" and health["health_checked_at"] == tested.json()["data"]["checked_at"]
    limits = (await http.get(f"/integrations/{iid}/limits", headers=auth)).json()["data"]
    assert limits["budget_percent"] == 0 and limits["period_start"].endswith("T00:00:00Z")

    listed = (await http.get("/integrations", params={"limit": 1, "offset": 0}, headers=auth)).json()
    assert listed["meta"]["total"] == 2 and len(listed["data"]) == 1
    assert set(listed["data"][0]) == {
        "id",
        "name",
        "provider_type",
        "status",
        "health_state",
        "default_model",
        "created_at",
    }
    enabled_only = (await http.get("/integrations", params={"status": "enabled"}, headers=auth)).json()
    assert [i["id"] for i in enabled_only["data"]] == [iid]
    assert (await http.get("/integrations", params={"status": "bogus"}, headers=auth)).status_code == 400

    facade = await http.get("/cus/integrations/list", params={"limit": 1}, headers=auth | {"x-correlation-id": "c-1"})
    page = facade.json()
    assert facade.status_code == 200 and page["total"] == 2 and page["has_more"] is True
    assert page["pagination"] == {"limit": 1, "offset": 0, "next_offset": 1} and page["meta"]["correlation_id"] == "c-1"
    assert (await http.get("/cus/integrations/list", params={"foo": 1}, headers=auth)).status_code == 400
    as_of = await http.get("/cus/integrations/list", params={"as_of": "x"}, headers=auth)
    assert as_of.status_code == 400 and "UNSUPPORTED_PARAM" in as_of.text

    assert (await http.post(f"/integrations/{iid}/disable", headers=auth)).status_code == 200
    again = await http.post(f"/integrations/{iid}/disable", headers=auth)
    assert again.status_code == 409
    deleted = await http.delete(f"/integrations/{iid}", headers=auth)
    assert deleted.json()["data"] == {"deleted": True, "integration_id": iid}
    assert (await http.get(f"/integrations/{iid}", headers=auth)).json()["data"]["status"] == "disabled"
    revived = await http.post(f"/integrations/{iid}/enable", headers=auth)
    assert revived.status_code == 409 and revived.json()["message"] == "Cannot enable deleted integration"


async def test_other_tenants_ids_are_404_and_canonical_routes(
    http: httpx.AsyncClient,
    gateway: Gateway,
    provider: FakeProvider,  # noqa: F811
) -> None:
    _, victim = await signup(http, gateway)
    iid = (await http.post("/v1/integrations", json=body("v", provider.base()), headers=victim)).json()["data"]["id"]
    _, attacker = await signup(http, gateway)
    for method, path in (
        ("GET", f"/integrations/{iid}"),
        ("PUT", f"/integrations/{iid}"),
        ("DELETE", f"/integrations/{iid}"),
        ("POST", f"/integrations/{iid}/enable"),
        ("POST", f"/integrations/{iid}/test"),
        ("GET", f"/integrations/{iid}/health"),
        ("POST", f"/v1/integrations/{iid}:enable"),
    ):
        reply = await http.request(method, path, headers=attacker, json={"name": "x"} if method == "PUT" else None)
        assert reply.status_code == 404, (method, path, reply.text)
    assert (await http.get("/integrations", headers=attacker)).json()["data"] == []
    canonical = await http.post(f"/v1/integrations/{iid}:enable", headers=victim)
    assert canonical.status_code == 200 and canonical.json()["data"]["status"] == "enabled"
    patched = await http.patch(f"/v1/integrations/{iid}", json={"name": "renamed"}, headers=victim)
    assert patched.json()["data"]["name"] == "renamed"


async def test_connectors_through_the_gateway(
    http: httpx.AsyncClient,
    gateway: Gateway,
    provider: FakeProvider,  # noqa: F811
) -> None:
    _, auth = await signup(http, gateway)
    reply = await http.post(
        "/connectors",
        json={"name": "api", "connector_type": "http", "endpoint": provider.base() + "/models", "credential": SECRET},
        headers=auth,
    )
    assert reply.status_code == 201 and SECRET not in reply.text
    cid = reply.json()["connector"]["connector_id"]
    tested = await http.post(f"/connectors/{cid}/test", headers=auth)
    assert tested.status_code == 200 and tested.json()["connector"]["health_state"] == "failing"
    listed = await http.get("/v1/connectors", headers=auth)
    assert [c["connector_id"] for c in listed.json()["connectors"]] == [cid]


def test_every_customer_rpc_is_open_from_identity_verified() -> None:
    """Scenario 30 / SPEC 0.5: integrations, connectors and datasources are never behind a later state."""
    service = integrations_service_pb2.DESCRIPTOR.services_by_name["IntegrationsService"]
    for method in service.methods:
        rule = gate_rule(f"/{service.full_name}/{method.name}")
        assert rule is not None
        if rule.audience == gate_pb2.AUDIENCE_CUSTOMER:
            assert rule.min_state == gate_pb2.ONBOARDING_STATE_IDENTITY_VERIFIED, method.name
        else:
            assert method.name in ("GetActivationEvidence", "CheckIntegrations"), method.name
            assert rule.audience == gate_pb2.AUDIENCE_INTERNAL


async def as_member(http: httpx.AsyncClient, gateway: Gateway, tenant: str, owner: dict[str, str], role: str) -> Any:
    """A token for a new member the owner added with `role` (the edge reads the role from account)."""
    return await gateway.member(http, owner, tenant, role)


async def test_a_viewer_cannot_repoint_an_owners_integration_nor_test_it(
    http: httpx.AsyncClient,
    gateway: Gateway,
    provider: FakeProvider,  # noqa: F811
    engines: dict[str, AsyncEngine],
) -> None:
    """Issue 11: a viewer set an owner's config.base_url to their own listener, ran `:test` and received
    the owner's credential."""
    tenant, owner = await signup(http, gateway)
    viewer = await as_member(http, gateway, tenant, owner, "viewer")
    iid = await http.post("/v1/integrations", json=body("prod", provider.base(), credential=SECRET), headers=owner)
    iid = iid.json()["data"]["id"]
    before, calls = await integration_row(engines, iid), len(provider.seen)
    listener = {"config": {"base_url": provider.base("attacker")}}
    for method, path, payload in (
        ("PUT", f"/integrations/{iid}", listener),
        ("PATCH", f"/v1/integrations/{iid}", listener),
        ("POST", f"/integrations/{iid}/test", None),
        ("POST", f"/v1/integrations/{iid}:test", {}),
        ("POST", f"/integrations/{iid}/disable", None),
        ("DELETE", f"/integrations/{iid}", None),
    ):
        reply = await http.request(method, path, json=payload, headers=viewer)
        assert reply.status_code == 403, (method, path, reply.text)
    assert (await http.get(f"/integrations/{iid}", headers=viewer)).status_code == 200  # viewers read
    assert await integration_row(engines, iid) == before
    assert provider.seen[calls:] == []  # no call left, to the listener or anywhere


async def integration_row(engines: dict[str, AsyncEngine], iid: str) -> Any:
    async with engines["integrations"].connect() as conn:
        found = await conn.execute(text("SELECT row_to_json(i)::text FROM integration i WHERE id = :i"), {"i": iid})
        return found.scalar_one()


async def test_malformed_endpoints_and_connection_urls_are_400_never_500(
    http: httpx.AsyncClient, gateway: Gateway
) -> None:
    """Issue 11: a connector endpoint `http://[::1/` then `:test`, and an sql credential `not a url` then
    `:test`, answered 500."""
    _, auth = await signup(http, gateway)
    for endpoint in ("http://[::1/", "http://127.0.0.1:99999/", "http:///nohost"):
        reply = await http.post(
            "/v1/connectors", json={"name": "c", "connector_type": "http", "endpoint": endpoint}, headers=auth
        )
        assert reply.status_code == 400 and reply.json()["message"].startswith("endpoint:"), reply.text
    sql = await http.post(
        "/v1/connectors", json={"name": "pg", "connector_type": "sql", "credential": "not a url"}, headers=auth
    )
    assert sql.status_code == 400 and sql.json()["message"].startswith("credential:"), sql.text
    made = await http.post("/v1/connectors", json={"name": "pg", "connector_type": "sql"}, headers=auth)
    cid = made.json()["connector"]["connector_id"]
    patched = await http.patch(f"/v1/connectors/{cid}", json={"credential": "not a url"}, headers=auth)
    assert patched.status_code == 400 and patched.json()["message"].startswith("credential:"), patched.text
    tested = await http.post(f"/v1/connectors/{cid}:test", json={}, headers=auth)
    assert tested.status_code == 400 and "connection URL" in tested.json()["message"], tested.text  # none stored
    home = await http.post(
        "/v1/integrations", json=body("env", credential_ref="env://HOME", credential=""), headers=auth
    )
    assert home.status_code == 400 and home.json()["message"].startswith("credential_ref:"), home.text


async def test_a_new_base_url_without_the_credential_leaves_nothing_to_send(
    http: httpx.AsyncClient,
    gateway: Gateway,
    provider: FakeProvider,  # noqa: F811
) -> None:
    _, auth = await signup(http, gateway)
    iid = (await http.post("/v1/integrations", json=body("moved", provider.base()), headers=auth)).json()["data"]["id"]
    moved = await http.patch(
        f"/v1/integrations/{iid}", json={"config": {"base_url": provider.base("elsewhere")}}, headers=auth
    )
    assert moved.status_code == 200 and moved.json()["data"]["has_credential"] is False
    calls = len(provider.seen)
    tested = await http.post(f"/v1/integrations/{iid}:test", json={}, headers=auth)
    assert tested.status_code == 400 and "credential" in tested.json()["message"] and len(provider.seen) == calls
