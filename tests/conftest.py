"""One harness for every test: real PostgreSQL (embedded, or AOS_TEST_DATABASE_URL), one migrated
database per service, real grpc.aio servers on ephemeral ports, real Envoy for the REST tests."""

from __future__ import annotations

import os

# Tests fork subprocesses (initdb, Envoy, pip) while in-process gRPC servers run threads; gRPC's fork
# handlers then crash the child (seen as initdb dying with SIGSEGV). Must be set before grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import asyncio
import contextlib
import importlib
import inspect
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cli import devauth, stack
from services.common import db, server
from services.common.settings import async_url


@pytest.fixture(scope="session")
def pg_base() -> Iterator[str]:
    """URL of a PostgreSQL server the tests may create databases on."""
    if url := os.environ.get("AOS_TEST_DATABASE_URL"):
        yield url
        return
    data = Path(tempfile.mkdtemp(prefix="aos-pg-"))  # short: the unix socket lives in here
    pg = stack.embedded_postgres(data)
    yield pg.get_uri()
    pg.cleanup()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def db_urls(pg_base: str) -> dict[str, str]:
    """service → URL of its own freshly migrated test database."""
    prefix = f"t{os.getpid()}_"
    return stack.prepare_databases(pg_base, prefix, fresh=True)


@pytest.fixture(scope="session")
async def engines(db_urls: dict[str, str]) -> AsyncIterator[dict[str, AsyncEngine]]:
    made = {svc: db.create_engine(async_url(url), pool_size=5) for svc, url in db_urls.items()}
    yield made
    for engine in made.values():
        await engine.dispose()


# The onboarding gate's verdict and state caches live 1 s by default; the tests wait out a shorter life.
GATE_CACHE_SECONDS = 0.2
# Settings the tests shorten for every service that declares them (as the running services read them).
TEST_SETTINGS: dict[str, Any] = {"cache_seconds": GATE_CACHE_SECONDS}


def settings_for(svc: str, url: str, ports: dict[str, int]) -> Any:
    """A service's own Settings, as its __main__ would read them: database, port, every peer's address
    for the `<peer>_addr` fields it declares (env `<SVC>_<PEER>_ADDR` in `aos up`) and TEST_SETTINGS."""
    cls = importlib.import_module(f"services.{svc}.settings").Settings
    peers = {f"{p}_addr": f"127.0.0.1:{port}" for p, port in ports.items() if f"{p}_addr" in cls.model_fields}
    shortened = {name: value for name, value in TEST_SETTINGS.items() if name in cls.model_fields}
    return cls(database_url=url, grpc_port=ports[svc], **peers, **shortened)


async def start_service(svc: str, settings: Any) -> server.Service:
    """A service's real server (its own engine and pool) on 127.0.0.1 and its port."""
    build = importlib.import_module(f"services.{svc}.server").build
    service = build(settings, db.create_engine(settings.database_url.get_secret_value(), pool_size=10))
    await server.start(service, "127.0.0.1", settings.grpc_port, health_interval=0.2)
    return service


@pytest.fixture(scope="session")
def ports(db_urls: dict[str, str]) -> dict[str, int]:
    """Ports fixed up front, so that services that call each other know their peers before they start."""
    return {svc: stack.free_port() for svc in db_urls}


@pytest.fixture(scope="session")
async def running(db_urls: dict[str, str], ports: dict[str, int]) -> AsyncIterator[dict[str, server.Service]]:
    """Every service of the tree, each built by its own `server.build(settings, engine)`."""
    started = {}
    for svc, url in db_urls.items():
        started[svc] = await start_service(svc, settings_for(svc, url, ports))
    yield started
    for service in started.values():
        await server.stop(service, 1.0)


class Listening(Protocol):
    port: int


Stub = TypeVar("Stub")


class Channels:
    """The one place the tests make gRPC channels to servers that outlive a test (the running services,
    the onboarding instance under test): one channel per address, shared by every stub of that server."""

    def __init__(self) -> None:
        self._open: dict[str, grpc.aio.Channel] = {}

    def channel(self, to: Listening | str) -> grpc.aio.Channel:
        """A server (anything with its `port` on 127.0.0.1) or a "host:port" address. Called on the event
        loop (an async fixture or test): a grpc.aio channel belongs to the loop it is made on."""
        address = to if isinstance(to, str) else f"127.0.0.1:{to.port}"
        if address not in self._open:
            self._open[address] = grpc.aio.insecure_channel(address)
        return self._open[address]

    def stub(self, stub: Callable[[grpc.aio.Channel], Stub], to: Listening | str) -> Stub:
        return stub(self.channel(to))

    async def close(self) -> None:
        for channel in self._open.values():
            await channel.close()


@pytest.fixture(scope="session")
async def channels() -> AsyncIterator[Channels]:
    made = Channels()
    yield made
    await made.close()


@pytest.fixture(scope="session")
async def account_channel(channels: Channels, running: dict[str, server.Service]) -> grpc.aio.Channel:
    return channels.channel(running["account"])


@pytest.fixture(scope="session")
def account(account_channel: grpc.aio.Channel) -> Any:
    from aos.account.v1 import account_service_pb2_grpc

    return account_service_pb2_grpc.AccountServiceStub(account_channel)


def human(
    tenant: str = "", user: str = "", role: str = "owner", email: str = "", org: str = ""
) -> tuple[tuple[str, str], ...]:
    """Caller metadata as the gateway sets it for a verified human (`org`: their token's organisation)."""
    user = user or f"user-{uuid.uuid4().hex[:8]}"
    md = [
        ("x-aos-actor-type", "human"),
        ("x-aos-actor-id", user),
        ("x-aos-email", email or f"{user}@example.com"),
        ("x-aos-email-verified", "true"),
    ]
    if tenant:
        md += [("x-aos-tenant-id", tenant), ("x-aos-role", role)]
    if org:
        md += [("x-aos-org-id", org)]
    return tuple(md)


def operator(user: str = "founder-1") -> tuple[tuple[str, str], ...]:
    return (("x-aos-actor-type", "operator"), ("x-aos-actor-id", user), ("x-aos-email", f"{user}@aos.dev"))


def service(name: str = "onboarding") -> tuple[tuple[str, str], ...]:
    return (("x-aos-actor-type", "service"), ("x-aos-actor-id", name))


@pytest.fixture
async def tenant(account: Any) -> str:
    """A fresh tenant created through the API; the calling human is its owner."""
    from aos.account.v1 import account_service_pb2 as rpc

    reply = await account.CreateTenant(
        rpc.CreateTenantRequest(name=f"Tenant {uuid.uuid4().hex[:6]}"), metadata=human(), timeout=10
    )
    return str(reply.tenant.tenant_id)


@dataclass
class Gateway:
    """A real Envoy in front of the in-process services, with its own dev JWKS."""

    url: str
    data_dir: Path
    admin: str = ""

    def token(
        self, user: str = "", *, tenant: str | None = None, operator: bool = False, email: str = "", ttl: int = 600
    ) -> dict[str, str]:
        """A dev token of `user`; `tenant` is its organisation claim (in dev, the tenant id signup mapped). The
        caller's role is not in it: signup makes the user an owner, `member` gives others theirs."""
        user = user or f"user-{uuid.uuid4().hex[:8]}"
        token = devauth.mint(
            self.data_dir,
            user=user,
            email=email or f"{user}@example.com",
            org=tenant,
            operator=operator,
            ttl_seconds=ttl,
        )
        return {"authorization": f"Bearer {token}"}

    async def member(
        self, http: httpx.AsyncClient, owner: dict[str, str], tenant: str, role: str, user: str = ""
    ) -> dict[str, str]:
        """Adds `user` (a new one by default) to the tenant with `role` through AddMember, as its owner or an
        admin (`owner`: their auth headers); returns the member's auth headers."""
        user = user or f"{role}-{uuid.uuid4().hex[:8]}"
        body = {"user_id": user, "email": f"{user}@example.com", "role": f"ROLE_{role.upper()}"}
        reply = await http.post("/v1/members", json=body, headers=owner)
        assert reply.status_code in (200, 201), reply.text
        return self.token(user, tenant=tenant)


@contextlib.contextmanager
def envoy(cfg: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A real Envoy running `cfg` (its log beside it) until the block ends; listening on `port` at entry."""
    log = cfg.with_name("envoy.log")
    proc = stack.start_envoy(cfg, log)
    try:
        stack.wait_for_port(port, proc)
        yield proc
    finally:
        stack.stop([proc])
        if proc.returncode not in (0, -15):
            print(log.read_text())


@pytest.fixture(scope="session")
def gateway(running: dict[str, server.Service], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data = tmp_path_factory.mktemp("gateway")
    port = stack.free_port()
    cfg = stack.envoy_config(data, {name: svc.port for name, svc in running.items()}, port, devauth.ensure_keys(data))
    with envoy(cfg, port):
        yield Gateway(f"http://127.0.0.1:{port}", data)


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        yield client


@pytest.fixture
async def own_database() -> AsyncIterator[tuple[Any, Path]]:
    """A PostgreSQL of the test's own (server, data dir), so it can be stopped without disturbing the others."""
    data = Path(tempfile.mkdtemp(prefix="aos-own-"))  # short: the unix socket lives in here
    pg = stack.embedded_postgres(data)
    yield pg, data / "pg"
    pg.cleanup()
    shutil.rmtree(data, ignore_errors=True)


async def eventually(
    probe: Callable[[], Any],
    *,
    within: float = 5.0,
    every: float = 0.05,
    until: Callable[[Any], bool] = bool,
    retry: Callable[[Exception], bool] = lambda exc: False,
    what: str = "",
) -> Any:
    """Calls `probe` (sync or async) every `every` seconds until `until(value)` holds (by default: the value
    is truthy) and returns that value; callers that need the time it took measure around the call.

    An exception of the probe fails at once, unless `retry(exc)` says it is one to wait out. After `within`
    seconds it fails with an AssertionError naming `what` (by default the probe's name) and the last value
    or exception."""
    deadline = time.monotonic() + within
    while True:
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            if not retry(exc):
                raise
            last, cause = f"raised {exc!r}", exc
        else:
            if until(value):
                return value
            last, cause = f"returned {value!r}", None
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {within}s for {what or _named(probe)}; the last try {last}") from cause
        await asyncio.sleep(every)


def _named(probe: Callable[[], Any]) -> str:
    """A function's name; a lambda's source line, which shows what it polls."""
    name = getattr(probe, "__name__", repr(probe))
    if name == "<lambda>":
        with contextlib.suppress(OSError, TypeError):
            return inspect.getsource(probe).strip()
    return name


async def health_status(channel: grpc.aio.Channel) -> int:
    """The server's gRPC health status: a probe for `eventually`."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    return int(reply.status)


def unavailable(exc: Exception) -> bool:
    """For `eventually(retry=...)`: a peer that is not reachable (yet)."""
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() is grpc.StatusCode.UNAVAILABLE
