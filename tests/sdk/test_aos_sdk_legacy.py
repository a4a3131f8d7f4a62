"""The published legacy SDK, unchanged: `aos-sdk==0.1.0` from the package index in a clean venv drives a run
through the real gateway (MONITORING.md section 3.1, decision 14; M9)."""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.e2e

# Only the SDK's public calls: AOSClient sends X-AOS-Key and JSON, raises AOSError on a status >= 400 and
# otherwise returns the decoded body, so any refusal fails the script with the status it got.
CLIENT = """
import json, sys
from aos_sdk import AOSClient
base_url, key = sys.argv[1:]
client = AOSClient(key, base_url)
created = client.create_run("a1", "summarise", plan=[{"skill": "llm"}])
read = client.get_run(created["run_id"])
print(json.dumps({"created": created, "read": read}))
"""


async def test_aos_sdk_0_1_0_creates_and_reads_a_run(gateway: Gateway, http: httpx.AsyncClient, tmp_path: Path) -> None:
    """M9: run_id returned; running, LIVE, SERVICE, origin `sdk:` + the key's first 12 characters."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*args: str, **kw: object) -> "asyncio.Future[subprocess.CompletedProcess[str]]":
        # In a thread: the services under test run on this event loop and must keep serving meanwhile.
        return asyncio.ensure_future(asyncio.to_thread(subprocess.run, list(args), env=env, text=True, **kw))

    venv = tmp_path / "venv"
    await run(sys.executable, "-m", "venv", str(venv), check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip = (python, "-m", "pip", "--disable-pip-version-check", "-q")
    installed = await run(*pip, "install", "aos-sdk==0.1.0", capture_output=True, timeout=300)
    assert installed.returncode == 0, installed.stderr

    # A tenant whose SDK has shaken hands (SDK_CONNECTED), and a key with the default scopes (run:*).
    user = f"legacy-sdk-{time.monotonic_ns()}"
    signup = await http.post("/v1/tenants", json={"name": "Legacy SDK Co"}, headers=gateway.token(user))
    auth = gateway.token(user, tenant=signup.json()["tenant"]["tenant_id"])
    made = await http.post("/tenant/api-keys", json={"name": "legacy"}, headers=auth)
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    hello = {"sdk_version": "0.1.0", "sdk_language": "python"}
    assert (await http.post("/sdk/handshake", json=hello, headers={"X-AOS-Key": key})).status_code == 200

    out = await run(python, "-c", CLIENT, gateway.url, key, cwd=tmp_path, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    answers = json.loads(out.stdout)
    created, read = answers["created"], answers["read"]
    assert created["run_id"] and read["run_id"] == created["run_id"]
    for run_ in (created, read):
        assert (run_["status"], run_["state"], run_["actor_type"]) == ("running", "LIVE", "SERVICE"), run_
        assert run_["origin_system_id"] == f"sdk:{key[:12]}" and run_["agent_id"] == "a1"
    assert read["goal"] == "summarise" and read["plan"] == [{"skill": "llm"}]
