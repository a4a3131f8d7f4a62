"""The local stack: PostgreSQL (embedded or configured), one database per service, the services, Envoy."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from gateway import config
from gateway.identity import IdentityProvider
from services.common.migrations import config as alembic_config
from services.common.settings import async_url

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def services() -> list[str]:
    """Every service in the tree (a directory with its own migrations); deleting one removes it here too."""
    return sorted(p.parent.name for p in (ROOT / "services").glob("*/alembic.ini"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def embedded_postgres(data_dir: Path) -> Any:
    """Starts (or reuses) the embedded PostgreSQL of the pgserver wheel; it listens on a unix socket only."""
    import pgserver

    (data_dir / "pg").mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(str(data_dir / "pg"), cleanup_mode="stop")  # type: ignore[attr-defined]


def role_password(base: str, role: str) -> str:
    """A per-role password derived from the admin URL's own secret: stable across runs, stored nowhere."""
    secret = make_url(async_url(base)).password or "aos-dev"
    return hmac.new(str(secret).encode(), role.encode(), hashlib.sha256).hexdigest()


def database_url(base: str, name: str) -> str:
    """The URL of database `name` as its owner role `name` (each service connects as itself)."""
    url = make_url(async_url(base)).set(database=name, username=name, password=role_password(base, name))
    return url.render_as_string(hide_password=False)


async def _create_databases(base: str, names: list[str], fresh: bool) -> None:
    engine = create_async_engine(async_url(base), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            existing = set((await conn.execute(text("SELECT datname FROM pg_database"))).scalars())
            roles = set((await conn.execute(text("SELECT rolname FROM pg_roles"))).scalars())
            for name in names:
                if fresh and name in existing:
                    await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                password = role_password(base, name)
                verb = "ALTER" if name in roles else "CREATE"
                await conn.execute(
                    text(f"{verb} ROLE \"{name}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'")
                )
                if fresh or name not in existing:
                    await conn.execute(text(f'CREATE DATABASE "{name}" OWNER "{name}"'))
                else:
                    await conn.execute(text(f'ALTER DATABASE "{name}" OWNER TO "{name}"'))
                # Only the owner may connect: another service's role cannot even open this database.
                await conn.execute(text(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC'))
    finally:
        await engine.dispose()


def prepare_databases(base: str, prefix: str = "", fresh: bool = False) -> dict[str, str]:
    """Creates one database and one owning role per service (if missing, or anew when fresh) and
    migrates each to head as that role; returns service → URL (as the service's role)."""
    urls = {svc: database_url(base, f"{prefix}{svc}") for svc in services()}
    asyncio.run(_create_databases(base, [f"{prefix}{svc}" for svc in urls], fresh))
    for svc, url in urls.items():
        command.upgrade(alembic_config(ROOT / "services" / svc / "alembic.ini", url), "head")
    return urls


def envoy_config(
    run_dir: Path,
    upstreams: dict[str, int] | dict[str, list[int]],
    listen_port: int,
    jwks: Path,
    admin_port: int = 0,
    identity: IdentityProvider | None = None,
) -> Path:
    """Envoy's config for a local stack; the identity provider is the dev one (keys in `jwks`) unless given."""
    gw = config.from_descriptor(
        ROOT / "gateway" / "aos.binpb",
        upstreams={
            s: [("127.0.0.1", port) for port in p] if isinstance(p, list) else ("127.0.0.1", p)
            for s, p in upstreams.items()
        },
        listen_port=listen_port,
        identity=identity or IdentityProvider(jwks_path=str(jwks)),
        openapi_path=str(ROOT / "gateway" / "openapi.json"),
        admin_port=admin_port,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "envoy.yaml"
    path.write_text(yaml.safe_dump(config.render(gw), sort_keys=False))
    return path


def start_envoy(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    # --disable-hot-restart: several Envoys (tests, a dev stack) may run side by side on one machine.
    args = [str(BIN / "envoy"), "-c", str(cfg), "--disable-hot-restart", "--log-level", "warn"]
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def peer_address(ports: list[int]) -> str:
    """A gRPC target for a peer's replicas (grpc's ipv4 resolver takes a list; pick_first fails over)."""
    return f"ipv4:{','.join(f'127.0.0.1:{p}' for p in ports)}" if len(ports) > 1 else f"127.0.0.1:{ports[0]}"


def start_service(
    svc: str, url: str, port: int, peers: dict[str, str], log: Path, metrics_port: int = 0
) -> subprocess.Popen[bytes]:
    prefix = svc.upper()
    env = os.environ | {f"{prefix}_DATABASE_URL": url, f"{prefix}_GRPC_PORT": str(port)}
    env |= {f"{prefix}_METRICS_PORT": str(metrics_port)}
    env |= {f"{prefix}_{peer.upper()}_ADDR": addr for peer, addr in peers.items() if peer != svc}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", f"services.{svc}"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def stop(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
