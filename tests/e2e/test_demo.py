"""`aos up` then `aos demo`, both as the commands a developer runs on a fresh data directory: the demo walks
a new tenant from signup to COMPLETE through the gateway, then runs, reports usage, fails the run and shows
its incident, and exits 0 (issue 5 and issue 12, "Done when")."""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli import devauth, stack

pytestmark = pytest.mark.e2e
AOS = str(Path(sys.executable).parent / "aos")


Afterwards = Callable[[str, subprocess.CompletedProcess[str]], Any]


def _up_and_demo(data: Path, port: int, afterwards: Afterwards) -> tuple[subprocess.CompletedProcess[str], Any]:
    """The demo's output, and what `afterwards` read from the stack (gateway URL, output) while it still ran."""
    env = {k: v for k, v in os.environ.items() if k != "AOS_DATABASE_URL"} | {
        "AOS_DATA_DIR": str(data),
        "AOS_GATEWAY_PORT": str(port),
    }
    up = subprocess.Popen([AOS, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert up.stdout is not None
        deadline, said = time.monotonic() + 90, []
        for line in up.stdout:
            said.append(line)
            if line.startswith("gateway: "):
                url = line.split(" ", 1)[1].strip()
                break
            assert time.monotonic() < deadline, "aos up did not print the gateway URL in time"
        else:
            pytest.fail(f"aos up exited with {up.wait()}: {''.join(said)}")
        assert url == f"http://127.0.0.1:{port}"
        demo = subprocess.run([AOS, "demo"], env=env, capture_output=True, text=True, timeout=90)
        return demo, afterwards(url, demo) if demo.returncode == 0 else None
    finally:
        up.terminate()
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        if up.stdout is not None:
            up.stdout.close()


def test_make_up_then_demo_reaches_complete() -> None:
    port = stack.free_port()
    data = Path(tempfile.mkdtemp(prefix="aos-demo-"))  # short: embedded PostgreSQL's unix socket lives in here

    def console(url: str, demo: subprocess.CompletedProcess[str]) -> dict[str, Any]:
        """What the demo tenant's owner sees through the gateway once the demo is done."""
        first = demo.stdout.splitlines()[0]  # "1. sign up tenant 1a2b3c4d  → (created, owner demo-...)"
        owner = first.rsplit("owner ", 1)[1].rstrip(")")
        tenant = next(line.split()[1] for line in demo.stdout.splitlines() if line.startswith("tenant "))
        token = devauth.mint(data, user=owner, email=f"{owner}@example.com", org=tenant)
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=10) as http:
            return {
                "state": http.get("/onboarding/status").json()["current_state"],
                "completed": http.get("/activity/completed").json(),
                "live": http.get("/activity/live").json(),
                "active": http.get("/incidents/active").json(),
            }

    try:
        demo, seen = _up_and_demo(data, port, console)
        logs = "".join(f"\n--- {f.name}\n" + f.read_text()[-3000:] for f in sorted((data / "logs").glob("*.log")))
    finally:
        shutil.rmtree(data, ignore_errors=True)

    assert demo.returncode == 0, demo.stdout + demo.stderr + logs
    lines = demo.stdout.splitlines()
    states = [line.rsplit("→", 1)[1].strip() for line in lines if "→" in line]
    # every onboarding step printed the state after it, the ladder only climbs, and onboarding ends at COMPLETE
    assert states[1:5] == ["IDENTITY_VERIFIED", "API_KEY_CREATED", "SDK_CONNECTED", "SDK_CONNECTED"], demo.stdout
    assert any(line.strip().startswith("health: healthy") for line in lines), demo.stdout
    done = next(i for i, line in enumerate(lines) if line.startswith("tenant "))
    onboarding = [line.rsplit("→", 1)[1].strip() for line in lines[:done] if "→" in line]
    assert lines[done].endswith(" is COMPLETE") and onboarding[-1] == "COMPLETE", demo.stdout

    # Then what COMPLETE unlocks (issue 12): one failed run, its usage, and its incident at /incidents/active.
    assert seen["state"] == "COMPLETE"
    assert seen["live"]["total"] == 0 and seen["completed"]["total"] == 1, seen
    (run,) = seen["completed"]["items"]
    assert (run["status"], run["state"], run["input_tokens"], run["cost_cents"]) == ("failed", "COMPLETED", 2500, 8)
    (incident,) = seen["active"]["items"]
    assert (incident["llm_run_id"], incident["severity"], incident["lifecycle_state"]) == (
        run["run_id"],
        "HIGH",
        "ACTIVE",
    )
    assert incident["title"] == f"Execution Timeout: Run {run['run_id'][:8]}"
    assert lines[-1].endswith(f"HIGH ACTIVE: {incident['title']}"), demo.stdout
    assert "accepted 3" in lines[-3], demo.stdout


async def test_demo_reports_a_failing_step_and_exits_nonzero(tmp_path: Path) -> None:
    """Nothing listens on the gateway port: the demo names the failure instead of pretending success."""
    port = stack.free_port()
    env = os.environ | {"AOS_DATA_DIR": str(tmp_path), "AOS_GATEWAY_PORT": str(port)}
    devauth.ensure_keys(tmp_path)
    demo = await asyncio.to_thread(subprocess.run, [AOS, "demo"], env=env, capture_output=True, text=True, timeout=30)
    assert demo.returncode == 1 and demo.stderr.startswith("demo failed: "), demo.stderr
