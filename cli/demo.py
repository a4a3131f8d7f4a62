"""`aos demo`: walks a new tenant from signup to COMPLETE through the REST gateway of a running stack, then
uses what COMPLETE unlocks: a run, usage telemetry, a failed completion and the incident it opens.

Every step goes through Envoy exactly as a customer's console, script or SDK would; after each onboarding
step the tenant's state is read back and printed. The integration is validated against a local fake
LLM provider (an OpenAI-compatible `GET /v1/models`) this command serves for the duration of the demo.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cli import devauth


class DemoError(RuntimeError):
    pass


def _call(base: str, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            return json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise DemoError(f"{method} {path} → {exc.code}: {exc.read().decode(errors='replace')}") from exc


class _Provider(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path.rstrip("/").endswith("/models") and self.headers.get("authorization", "").startswith("Bearer ")
        body = json.dumps({"object": "list", "data": [{"id": "demo-model", "object": "model"}]}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body if ok else b'{"error":"unauthorized"}')

    def log_message(self, format: str, *args: Any) -> None:  # keep the demo's output readable
        return


@contextmanager
def fake_provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()


def _data(body: Any) -> Any:
    """The record of a legacy envelope ({success, data, meta}) or of a bare response."""
    return body.get("data", body) if isinstance(body, dict) else body


def run(base: str, data_dir: Path, say: Callable[[str], None] = print) -> str:
    """Runs the journey; returns the tenant id. Raises DemoError naming the step that failed."""
    user = f"demo-{uuid.uuid4().hex[:8]}"

    def human(tenant: str | None = None) -> dict[str, str]:
        # After signup the token names the tenant as its organisation (dev); signup made the user its owner.
        token = devauth.mint(data_dir, user=user, email=f"{user}@example.com", org=tenant)
        return {"authorization": f"Bearer {token}"}

    signup = _call(base, "POST", "/v1/tenants", human(), {"name": f"Demo {user}"})
    tenant = str(signup["tenant"]["tenant_id"])
    auth = human(tenant)

    def step(title: str, do: Callable[[], Any]) -> Any:
        result = do()
        state = _call(base, "GET", "/onboarding/status", auth)["current_state"]
        say(f"{title:<40} → {state}")
        return result

    say(f"{'1. sign up tenant ' + tenant[:8]:<40} → (created, owner {user})")
    step("2. verify identity", lambda: _call(base, "POST", "/onboarding/verify", auth, {}))
    created = step(
        "3. create the first API key", lambda: _call(base, "POST", "/tenant/api-keys", auth, {"name": "demo"})
    )
    key = {"x-aos-key": created["key"]}
    handshake = {"sdk_version": "1.0.0", "sdk_language": "python", "client_id": "aos-demo"}
    step("4. SDK handshake with the key", lambda: _call(base, "POST", "/sdk/handshake", key, handshake))
    with fake_provider() as provider_url:
        integration = {
            "name": "demo-openai",
            "provider_type": "openai",
            # The provider key travels once, write-only, and is stored encrypted by integrations; an
            # env:// reference would name a variable of the integrations process, not of this one.
            "credential": f"demo-provider-key-{uuid.uuid4().hex}",
            "config": {"base_url": provider_url},
        }
        made = _data(_call(base, "POST", "/integrations", auth, integration))
        integration_id = made["id"]
        step("5. register an integration", lambda: integration_id)
        step("6. enable it", lambda: _call(base, "POST", f"/integrations/{integration_id}/enable", auth, {}))
        tested = _data(
            step(
                "7. validate it against the provider",
                lambda: _call(base, "POST", f"/integrations/{integration_id}/test", auth, {}),
            )
        )
        say(f"   health: {tested.get('health_state')} ({tested.get('message', '')})")
        if tested.get("health_state") != "healthy":
            raise DemoError(f"the integration did not validate: {tested}")
    step("8. create a project", lambda: _call(base, "POST", "/accounts/projects", auth, {"name": "demo"}))
    done = step("9. complete onboarding", lambda: _call(base, "POST", "/onboarding/complete", auth, {}))
    if _data(done).get("to_state") != "COMPLETE":
        raise DemoError(f"onboarding did not complete: {done}")
    say(f"tenant {tenant} is COMPLETE")
    monitor(base, auth, key, integration_id, say)
    return tenant


USAGE: list[
    dict[str, Any]
] = [  # what an SDK's reporter sends for the run's LLM calls (token counts, cost; never the content)
    {"provider": "openai", "model": "gpt-4o", "tokens_in": 1200, "tokens_out": 300, "cost_cents": 4},
    {"provider": "openai", "model": "gpt-4o", "tokens_in": 900, "tokens_out": 250, "cost_cents": 3},
    {"provider": "openai", "model": "gpt-4o-mini", "tokens_in": 400, "tokens_out": 80, "cost_cents": 1},
]

TOTALS = {"input_tokens": "tokens_in", "output_tokens": "tokens_out", "cost_cents": "cost_cents"}


def monitor(
    base: str, auth: dict[str, str], key: dict[str, str], integration_id: str, say: Callable[[str], None]
) -> None:
    """The SDK's run with the first key, usage records of the demo's integration, the run failing on a
    timeout, and the incident that completion opened, read back as the console reads it."""
    run = _call(base, "POST", "/api/v1/runs", key, {"agent_id": "demo-agent", "goal": "summarise the report"})
    run_id = run["run_id"]
    say(f"{'10. start a run with the key':<40} → run {run_id[:8]} {run['state']} ({run['origin_system_id']})")
    # Ingest needs telemetry:write, which the first key's default scopes (run:*) do not grant.
    writer = {"name": "demo-telemetry", "permissions": ["telemetry:write"]}
    telemetry = {"x-aos-key": _call(base, "POST", "/tenant/api-keys", auth, writer)["key"]}
    records = [
        {**usage, "call_id": f"{run_id}-{i}", "agent_id": "demo-agent", "integration_id": integration_id}
        for i, usage in enumerate(USAGE)
    ]
    sent = _call(base, "POST", "/api/v1/telemetry/llm-usage/batch", telemetry, {"records": records})
    if sent["accepted"] != len(records):
        raise DemoError(f"usage records were not all accepted: {sent}")
    say(f"{'11. send ' + str(len(records)) + ' usage records':<40} → accepted {sent['accepted']}")
    failed = {
        "status": "failed",
        "error_message": "EXECUTION_TIMEOUT after 30s",
        "duration_ms": 30000,
        # The run's final totals are its calls' usage.
        **{total: sum(u[field] for u in USAGE) for total, field in TOTALS.items()},
    }
    done = _call(base, "POST", f"/v1/runs/{run_id}:complete", key, failed)
    opened = ", ".join(done["incident_ids"])
    say(f"{'12. the run fails: EXECUTION_TIMEOUT':<40} → {done['run']['status']}, incident {opened}")
    active = _call(base, "GET", "/incidents/active", auth)
    shown = [i for i in active["items"] if i["llm_run_id"] == run_id]
    if not shown:
        raise DemoError(f"the failed run's incident is not active: {active}")
    incident = shown[0]
    say(
        f"{'13. GET /incidents/active':<40} → {incident['severity']} {incident['lifecycle_state']}: {incident['title']}"
    )
