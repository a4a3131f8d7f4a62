"""A real identity provider's shape, on loopback: an OIDC issuer serving its discovery document and JWKS, Envoy
configured with the JWKS URI the discovery document names. Its tokens work end to end; after a key rotation
tokens of the removed key are refused and tokens of the new one accepted, with nothing restarted."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cli import stack
from gateway.identity import IdentityProvider
from services.common import server
from tests.conftest import envoy, eventually

pytestmark = pytest.mark.e2e
AUDIENCE = "aos-loopback"


class Issuer:
    """An OIDC issuer on 127.0.0.1: /.well-known/openid-configuration and /jwks (the keys it currently
    publishes), and tokens signed by any key it ever had."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {
                        "issuer": issuer.url,
                        "jwks_uri": f"{issuer.url}/jwks",
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }
                elif self.path == "/jwks":
                    issuer.fetches += 1
                    body = {"keys": [issuer.jwk(kid) for kid in issuer.published]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def rotate(self) -> str:
        """A new signing key, published alone from now on; returns its kid."""
        kid = f"k-{uuid.uuid4().hex[:8]}"
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published = [kid]
        return kid

    def jwk(self, kid: str) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
        return {**public, "kid": kid, "alg": "RS256", "use": "sig"}

    def token(self, kid: str, user: str, org: str = "") -> dict[str, str]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": user,
            "email": f"{user}@loopback.test",
            "email_verified": True,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        if org:
            claims["org_id"] = org
        signed = jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})
        return {"authorization": f"Bearer {signed}"}


@dataclass
class Edge:
    url: str
    envoy: Any


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    made = Issuer()
    yield made
    made.close()


@pytest.fixture
def edge(issuer: Issuer, running: dict[str, server.Service], tmp_path: Path) -> Iterator[Edge]:
    """Envoy in front of the running services, trusting the loopback issuer found by its discovery document;
    its keys are cached for a second (the production default is 300 s)."""
    issuer.rotate()
    discovery = httpx.get(f"{issuer.url}/.well-known/openid-configuration", timeout=5).json()
    identity = IdentityProvider(
        issuer=discovery["issuer"], audiences=(AUDIENCE,), jwks_uri=discovery["jwks_uri"], jwks_cache_seconds=1
    )
    port = stack.free_port()
    upstreams = {name: svc.port for name, svc in running.items()}
    cfg = stack.envoy_config(tmp_path, upstreams, port, tmp_path / "unused-jwks.json", identity=identity)
    with envoy(cfg, port) as proc:
        yield Edge(f"http://127.0.0.1:{port}", proc)


@pytest.fixture
async def rest(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as client:
        yield client


async def test_the_issuers_tokens_work_and_a_key_rotation_needs_no_restart(
    issuer: Issuer, edge: Edge, rest: httpx.AsyncClient
) -> None:
    (old,) = issuer.published
    user, org = f"oidc-{uuid.uuid4().hex[:6]}", f"org-{uuid.uuid4().hex[:8]}"
    signup = await rest.post("/v1/tenants", json={"name": "Loopback Inc"}, headers=issuer.token(old, user, org))
    assert signup.status_code == 201, signup.text
    tenant = signup.json()["tenant"]["tenant_id"]
    assert signup.json()["tenant"]["org_id"] == org
    before = issuer.token(old, user, org)
    status = await rest.get("/onboarding/status", headers=before)
    assert status.status_code == 200 and status.json()["tenant_id"] == tenant
    stranger = await rest.get("/onboarding/status", headers=issuer.token(old, "stranger", org))
    assert stranger.status_code == 403  # the organisation's token, but not a member

    fetched, new = issuer.fetches, issuer.rotate()
    rotated = time.monotonic()

    async def old_refused_new_accepted() -> tuple[int, int, int]:
        return (
            (await rest.get("/onboarding/status", headers=before)).status_code,
            (await rest.get("/onboarding/status", headers=issuer.token(old, user, org))).status_code,
            (await rest.get("/onboarding/status", headers=issuer.token(new, user, org))).status_code,
        )

    await eventually(old_refused_new_accepted, until=lambda codes: codes == (401, 401, 200), within=10, every=0.2)
    print(f"rotation honoured after {time.monotonic() - rotated:.1f} s")
    assert issuer.fetches > fetched and edge.envoy.poll() is None  # refetched by the same Envoy
    refused = await rest.get("/onboarding/status", headers=before)
    assert refused.json()["error"] == "invalid_token"
    other_issuer = jwt.decode(
        issuer.token(new, user, org)["authorization"].split()[1], options={"verify_signature": False}
    )
    forged = jwt.encode(other_issuer | {"iss": "https://evil.test"}, issuer.keys[new], algorithm="RS256")
    assert (await rest.get("/onboarding/status", headers={"authorization": f"Bearer {forged}"})).status_code == 401
