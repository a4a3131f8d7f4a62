"""protos/ builds as its own distribution (`aos-api`) that an SDK installs and uses without the services."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cli import stack
from tests.conftest import Gateway

pytestmark = pytest.mark.e2e

# What an SDK does with the distribution: the handshake over gRPC, authenticated by an API key.
CLIENT = """
import sys, grpc
from aos.onboarding.v1 import onboarding_service_pb2 as rpc, onboarding_service_pb2_grpc
try:
    import services  # noqa: F401
    sys.exit("the services leaked into the SDK distribution")
except ImportError:
    pass
address, key = sys.argv[1:]
with grpc.insecure_channel(address) as channel:
    stub = onboarding_service_pb2_grpc.OnboardingServiceStub(channel)
    reply = stub.SdkHandshake(rpc.SdkHandshakeRequest(sdk_version="1.2.0", sdk_language="python", client_id="sdk"),
                              metadata=(("x-aos-key", key),), timeout=10)
    print(reply.onboarding_state)
"""


async def test_the_sdk_distribution_installs_alone_and_calls_the_stack(
    gateway: Gateway, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*args: str, **kw: object) -> "asyncio.Future[subprocess.CompletedProcess[str]]":
        # In a thread: the services under test run on this event loop and must keep serving meanwhile.
        return asyncio.ensure_future(asyncio.to_thread(subprocess.run, list(args), env=env, text=True, **kw))

    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "-q")
    await run(
        *pip, "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(stack.ROOT / "protos"), check=True, timeout=180
    )
    [wheel] = (tmp_path / "dist").glob("aos_api-*.whl")
    await run(sys.executable, "-m", "venv", str(tmp_path / "venv"), check=True, timeout=120)
    python = str(tmp_path / "venv" / "bin" / "python")
    await run(python, "-m", "pip", "--disable-pip-version-check", "-q", "install", str(wheel), check=True, timeout=300)

    # A tenant with a key, as a customer gets one: signup, first call (identity verified), a key.
    user = "sdk-owner"
    signup = await http.post("/v1/tenants", json={"name": "SDK Co"}, headers=gateway.token(user))
    auth = gateway.token(user, tenant=signup.json()["tenant"]["tenant_id"])
    assert (await http.get("/onboarding/status", headers=auth)).json()["current_state"] == "IDENTITY_VERIFIED"
    created = await http.post("/tenant/api-keys", json={"name": "sdk"}, headers=auth)
    assert created.status_code == 201, created.text

    out = await run(
        python,
        "-c",
        CLIENT,
        gateway.url.removeprefix("http://"),
        created.json()["key"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "SDK_CONNECTED"
