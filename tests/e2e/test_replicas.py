"""`AOS_REPLICAS=2 aos up`: two processes of every service behind Envoy, and what one replica changes
(a revocation, an onboarding state) every other replica honours within about a second."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from cli import devauth, stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    data, port = tmp_path_factory.mktemp("replicas"), stack.free_port()
    env = {k: v for k, v in os.environ.items() if k != "AOS_DATABASE_URL"}
    env |= {"AOS_DATA_DIR": str(data), "AOS_GATEWAY_PORT": str(port), "AOS_REPLICAS": "2"}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "aos"), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        deadline, lines = time.monotonic() + 120, []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("services: "):
                break
            assert time.monotonic() < deadline, "".join(lines)
        else:
            pytest.fail("".join(lines))
        yield f"http://127.0.0.1:{port}", data, lines[-1]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def wait_until(check: "object", seconds: float) -> float:
    """Seconds until check() held for 10 calls in a row (Envoy alternates replicas); fails after `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if all(check() for _ in range(10)):  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.05)
    pytest.fail(f"not consistent across replicas within {seconds}s")


def test_two_replicas_of_everything_stay_consistent(replicated: tuple[str, Path, str]) -> None:
    url, data, listing = replicated
    for svc in stack.services():
        assert listing.count(f"{svc}=127.0.0.1:") == 1 and f"{svc}=127.0.0.1:" in listing
        assert listing.split(f"{svc}=")[1].split(",")[0].count("+") == 1, listing  # two addresses each
    clusters = yaml.safe_load((data / "run" / "envoy.yaml").read_text())["static_resources"]["clusters"]
    assert all(len(c["load_assignment"]["endpoints"][0]["lb_endpoints"]) == 2 for c in clusters)

    with httpx.Client(base_url=url, timeout=10) as http:
        user = "replica-owner"
        first = {"authorization": "Bearer " + devauth.mint(data, user=user, email="o@r.test")}
        tenant = http.post("/v1/tenants", json={"name": "Replicated"}, headers=first).json()["tenant"]["tenant_id"]
        human = {"authorization": "Bearer " + devauth.mint(data, user=user, email="o@r.test", org=tenant)}

        def state() -> str:
            return str(http.get("/onboarding/status", headers=human).json()["current_state"])

        assert state() == "IDENTITY_VERIFIED"
        created = http.post("/tenant/api-keys", json={"name": "ci"}, headers=human).json()
        key = {"x-aos-key": created["key"]}
        wait_until(lambda: state() == "API_KEY_CREATED", 2.0)
        shake = http.post("/sdk/handshake", json={"sdk_version": "1.0.0", "sdk_language": "python"}, headers=key)
        assert shake.status_code == 200 and shake.json()["onboarding_state"] == "SDK_CONNECTED"
        assert wait_until(lambda: state() == "SDK_CONNECTED", 2.0) < 1.5
        assert all(http.get("/sdk/instructions", headers=key).status_code == 200 for _ in range(10))

        revoked = http.delete(f"/tenant/api-keys/{created['id']}", params={"reason": "leaked"}, headers=human)
        assert revoked.status_code == 200
        assert wait_until(lambda: http.get("/sdk/instructions", headers=key).status_code == 401, 2.0) < 1.5
        listed = http.get(f"/api-keys/{created['id']}", headers=human).json()  # either api_keys replica
        assert listed["status"] == "REVOKED"
