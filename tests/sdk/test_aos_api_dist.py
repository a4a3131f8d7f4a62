"""protos/ builds as its own distribution (`aos-api`) that an SDK installs and uses without the services."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import stack
from tests.conftest import Gateway

pytestmark = pytest.mark.e2e

CLIENT = """
import sys, grpc
from aos.account.v1 import account_service_pb2 as rpc, account_service_pb2_grpc
try:
    import services  # noqa: F401
    sys.exit("the services leaked into the SDK distribution")
except ImportError:
    pass
address, token = sys.argv[1:]
with grpc.insecure_channel(address) as channel:
    stub = account_service_pb2_grpc.AccountServiceStub(channel)
    reply = stub.CreateTenant(rpc.CreateTenantRequest(name="From the SDK"),
                              metadata=(("authorization", "Bearer " + token),), timeout=10)
    print(reply.tenant.name)
"""


async def test_the_sdk_distribution_installs_alone_and_calls_the_stack(gateway: Gateway, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(stack.ROOT / "protos")],
        check=True,
        env=env,
        timeout=180,
    )
    [wheel] = (tmp_path / "dist").glob("aos_api-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=120)
    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "-q", "install", str(wheel)],
        check=True,
        env=env,
        timeout=300,
    )
    token = gateway.token()["authorization"].split()[1]
    # In a thread: the services under test run on this event loop and must keep serving meanwhile.
    out = await asyncio.to_thread(
        subprocess.run,
        [str(python), "-c", CLIENT, gateway.url.removeprefix("http://"), token],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "From the SDK"
