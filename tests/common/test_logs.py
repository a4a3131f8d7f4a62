"""Structured logs: every line emitted while handling an RPC names its request id, tenant and RPC, and
no line, even at DEBUG, ever contains an API key or an integration credential."""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from aos.integrations.v1 import integrations_service_pb2 as int_rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from services.common import server
from tests.conftest import Channels, human, service


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(server.JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logged() -> Iterator[Lines]:
    """Every log record of the process, as the services' JSON formatter writes it, at DEBUG."""
    root, handler = logging.getLogger(), Lines()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_rpc_log_lines_carry_request_tenant_and_method_and_never_a_secret(
    running: dict[str, server.Service], channels: Channels, tenant: str, logged: Lines
) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    credential, rotated = "sk-live-" + secrets.token_hex(20), "sk-live-" + secrets.token_hex(20)
    md = (*human(tenant), ("x-request-id", request_id))
    keys = channels.stub(api_keys_service_pb2_grpc.ApiKeysServiceStub, running["api_keys"])
    made = await keys.CreateApiKey(keys_rpc.CreateApiKeyRequest(name="logged"), metadata=md, timeout=10)
    gate = channels.stub(api_keys_service_pb2_grpc.ApiKeysServiceStub, running["api_keys"], "onboarding")
    verdict = await gate.VerifyApiKey(keys_rpc.VerifyApiKeyRequest(secret=made.key), metadata=service(), timeout=5)
    assert verdict.tenant_id == tenant
    integrations = channels.stub(integrations_service_pb2_grpc.IntegrationsServiceStub, running["integrations"])
    created = await integrations.CreateIntegration(
        int_rpc.CreateIntegrationRequest(name="logged", provider_type="openai", credential=credential),
        metadata=md,
        timeout=10,
    )
    await integrations.UpdateIntegration(
        int_rpc.UpdateIntegrationRequest(integration_id=created.data.id, credential=rotated), metadata=md, timeout=10
    )
    with pytest.raises(grpc.aio.AioRpcError):  # a raw secret where a reference belongs is refused, not echoed
        await integrations.CreateIntegration(
            int_rpc.CreateIntegrationRequest(name="bad", provider_type="openai", credential_ref=credential),
            metadata=md,
            timeout=10,
        )

    entries = [json.loads(line) for line in logged.lines]
    for secret in (made.key, credential, rotated):
        assert not [line for line in logged.lines if secret in line]
    ours = [e for e in entries if e["request_id"] == request_id]
    methods = {e["rpc"] for e in ours}
    assert {
        "/aos.api_keys.v1.ApiKeysService/CreateApiKey",
        "/aos.integrations.v1.IntegrationsService/CreateIntegration",
        "/aos.integrations.v1.IntegrationsService/UpdateIntegration",
    } <= methods
    assert all(e["tenant"] == tenant for e in ours)
    verify: list[Any] = [e for e in entries if e["rpc"] == "/aos.api_keys.v1.ApiKeysService/VerifyApiKey"]
    assert verify and all(e["request_id"] and e["request_id"] != request_id for e in verify)
    assert all({"ts", "level", "logger", "msg"} <= e.keys() for e in entries)
