"""`aos up` then `aos demo`, both as the commands a developer runs on a fresh data directory: the demo walks
a new tenant from signup to COMPLETE through the gateway and exits 0 (issue 5, "Done when")."""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cli import devauth, stack

pytestmark = pytest.mark.e2e
AOS = str(Path(sys.executable).parent / "aos")


def _up_and_demo(data: Path, port: int) -> subprocess.CompletedProcess[str]:
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
        demo = subprocess.run([AOS, "demo"], env=env, capture_output=True, text=True, timeout=60)
        return demo
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

    try:
        demo = _up_and_demo(data, port)
        logs = "".join(f"\n--- {f.name}\n" + f.read_text()[-3000:] for f in sorted((data / "logs").glob("*.log")))
    finally:
        shutil.rmtree(data, ignore_errors=True)

    assert demo.returncode == 0, demo.stdout + demo.stderr + logs
    lines = demo.stdout.splitlines()
    states = [line.rsplit("→", 1)[1].strip() for line in lines if "→" in line]
    # every step printed the state after it, the ladder only climbs, and the demo ends at COMPLETE
    assert states[1:5] == ["IDENTITY_VERIFIED", "API_KEY_CREATED", "SDK_CONNECTED", "SDK_CONNECTED"], demo.stdout
    assert states[-1] == "COMPLETE"
    assert any(line.strip().startswith("health: healthy") for line in lines), demo.stdout
    assert lines[-1].startswith("tenant ") and lines[-1].endswith(" is COMPLETE")


async def test_demo_reports_a_failing_step_and_exits_nonzero(tmp_path: Path) -> None:
    """Nothing listens on the gateway port: the demo names the failure instead of pretending success."""
    port = stack.free_port()
    env = os.environ | {"AOS_DATA_DIR": str(tmp_path), "AOS_GATEWAY_PORT": str(port)}
    devauth.ensure_keys(tmp_path)
    demo = await asyncio.to_thread(subprocess.run, [AOS, "demo"], env=env, capture_output=True, text=True, timeout=30)
    assert demo.returncode == 1 and demo.stderr.startswith("demo failed: "), demo.stderr
