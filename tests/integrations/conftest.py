"""Integrations fixtures: the gRPC stub, and a fake LLM provider that is a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aos.integrations.v1 import integrations_service_pb2_grpc
from services.common import server
from tests.conftest import Channels

GOOD_KEY = "prov-good-key-0123456789abcdef"
SLOW_SECONDS = 3.0  # beyond the service's default 2 s probe deadline


@dataclass
class FakeProvider:
    """Answers like an openai-compatible provider: /v1/models with the good key → 200, another key → 401;
    /boom/v1 → 500, /busy/v1 → 429, /slow/v1 → answers after SLOW_SECONDS."""

    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)

    def base(self, mode: str = "") -> str:
        return f"{self.url}/{mode}/v1" if mode else f"{self.url}/v1"


def _handler(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            provider.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
            if self.path.startswith("/slow/"):
                time.sleep(SLOW_SECONDS)
            status = {"/boom/": 500, "/busy/": 429}.get(self.path[:6], 0)
            if not status:
                presented = {
                    self.headers.get("authorization"),
                    self.headers.get("x-api-key"),
                    self.headers.get("api-key"),
                }
                status = 200 if ({f"Bearer {GOOD_KEY}", GOOD_KEY} & presented) else 401
            body = json.dumps({"data": []} if status == 200 else {"error": {"message": "nope"}}).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up (the slow case)
                pass

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="session")
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider("")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    httpd.daemon_threads = True
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
async def integrations(channels: Channels, running: dict[str, server.Service]) -> Any:
    return channels.stub(integrations_service_pb2_grpc.IntegrationsServiceStub, running["integrations"])


@pytest.fixture(scope="session")
async def evidence_reader(channels: Channels, running: dict[str, server.Service]) -> Any:
    """integrations as onboarding (the one caller of GetActivationEvidence) calls it: onboarding's certificate."""
    stub = integrations_service_pb2_grpc.IntegrationsServiceStub
    return channels.stub(stub, running["integrations"], "onboarding")


@pytest.fixture
def tenant_id() -> str:
    """A tenant id; the integrations service trusts the principal's tenant and keeps no tenant table."""
    return str(uuid.uuid4())
