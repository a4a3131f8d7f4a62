"""`aos`: run the stack, migrate, mint dev tokens, regenerate code."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import devauth, stack
from gateway.identity import IdentityProvider

app = typer.Typer(no_args_is_help=True, add_completion=False)


def _data_dir() -> Path:
    return Path(os.environ.get("AOS_DATA_DIR", stack.ROOT / ".aos")).resolve()


def _database() -> tuple[str, Any]:
    """The configured server (AOS_DATABASE_URL), or an embedded one started for this process."""
    url = os.environ.get("AOS_DATABASE_URL")
    if url:
        return url, None
    pg = stack.embedded_postgres(_data_dir())
    return pg.get_uri(), pg


@app.command()
def up() -> None:
    """Start PostgreSQL (embedded unless AOS_DATABASE_URL is set), migrate, start every service (AOS_REPLICAS
    processes of each) and Envoy in front of them."""
    data, port = _data_dir(), int(os.environ.get("AOS_GATEWAY_PORT", "8080"))
    replicas = int(os.environ.get("AOS_REPLICAS", "1"))
    if replicas < 1:
        raise typer.BadParameter("AOS_REPLICAS must be at least 1")
    base, _pg = _database()
    urls = stack.prepare_databases(base)
    ports = {svc: [stack.free_port() for _ in range(replicas)] for svc in urls}
    metrics = {svc: [stack.free_port() for _ in range(replicas)] for svc in urls}
    admin = stack.free_port()  # Envoy's admin, for its /stats/prometheus
    peers = {svc: stack.peer_address(p) for svc, p in ports.items()}
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        started = [(svc, p) for svc, url in urls.items() for p in ports[svc]]
        for svc, p in started:
            i = ports[svc].index(p)
            procs.append(stack.start_service(svc, urls[svc], p, peers, logs / f"{svc}-{i}.log", metrics[svc][i]))
        for proc, (_svc, p) in zip(procs, started, strict=True):
            stack.wait_for_port(p, proc)
        # The dev identity provider unless AOS_IDP_* name another (its JWKS URI, issuer, audiences).
        jwks = devauth.ensure_keys(data)
        identity = IdentityProvider.from_env(jwks_path=str(jwks))
        cfg = stack.envoy_config(data / "run", ports, port, jwks, admin, identity)
        procs.append(stack.start_envoy(cfg, logs / "envoy.log"))
        stack.wait_for_port(port, procs[-1])
        print(f"gateway: http://127.0.0.1:{port}", flush=True)
        listing = ", ".join(f"{s}={'+'.join(f'127.0.0.1:{p}' for p in ps)}" for s, ps in ports.items())
        print(f"services: {listing}; logs in {logs}", flush=True)
        scrape = ", ".join(f"{s}={'+'.join(f'http://127.0.0.1:{p}/metrics' for p in ps)}" for s, ps in metrics.items())
        print(f"metrics: {scrape}; envoy=http://127.0.0.1:{admin}/stats/prometheus", flush=True)
        while not stopping:
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                print(f"stopping: {dead[0].args!r} exited with {dead[0].returncode}", file=sys.stderr)
                raise SystemExit(1)
            time.sleep(0.2)
    finally:
        stack.stop(procs)


@app.command()
def migrate() -> None:
    """Create and migrate every service's database to head."""
    base, _pg = _database()
    for svc, url in stack.prepare_databases(base).items():
        print(f"{svc}: migrated ({url.rsplit('@', 1)[-1]})")


@app.command("dev-token")
def dev_token(
    user: Annotated[str, typer.Option(help="user id (the token's sub)")],
    email: Annotated[str, typer.Option()],
    org: Annotated[
        str | None, typer.Option("--org", "--tenant", help="organisation (org_id claim); in dev, the tenant id")
    ] = None,
    operator: Annotated[
        bool, typer.Option(help="an AOS operator (founder): the token carries the operator group")
    ] = False,
    ttl: Annotated[int, typer.Option(help="lifetime in seconds")] = 3600,
) -> None:
    """Print a token signed by the local dev JWKS (never valid outside this machine's stack). Roles are not
    in it: signup makes the caller an owner, AddMember gives others theirs."""
    print(devauth.mint(_data_dir(), user=user, email=email, org=org, operator=operator, ttl_seconds=ttl))


@app.command()
def demo(gateway: Annotated[str, typer.Option(help="gateway URL of a running `aos up`")] = "") -> None:
    """Walk a new tenant from signup to COMPLETE through the REST gateway, printing the state after each step."""
    from cli import demo as journey

    url = gateway or f"http://127.0.0.1:{os.environ.get('AOS_GATEWAY_PORT', '8080')}"
    try:
        journey.run(url.rstrip("/"), _data_dir())
    except (journey.DemoError, OSError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        raise typer.Exit(1) from exc


@app.command()
def gen(check: Annotated[bool, typer.Option(help="only report stale generated files")] = False) -> None:
    """Regenerate Python stubs, the descriptor set and gateway/envoy.yaml from protos/."""
    from cli import gen as generator

    raise typer.Exit(generator.run(check=check))
