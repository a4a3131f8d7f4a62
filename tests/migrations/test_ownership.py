"""Data ownership is enforced by PostgreSQL: each service's role owns its database and reaches no other."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from cli import stack
from services.common.settings import async_url


async def connect_and_count(url: str, table: str) -> int:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
    finally:
        await engine.dispose()


def as_role_of(owner_url: str, database_url: str) -> str:
    """`database_url` reached with the credentials of `owner_url`'s role."""
    owner = make_url(owner_url)
    return make_url(database_url).set(username=owner.username, password=owner.password).render_as_string(False)


async def test_a_service_role_owns_its_tables(db_urls: dict[str, str]) -> None:
    for url in db_urls.values():
        assert await connect_and_count(url, "event") >= 0
        assert make_url(url).username == make_url(url).database


async def test_another_services_credentials_cannot_open_its_database(db_urls: dict[str, str], pg_base: str) -> None:
    # A database made the way every service's is, so the check holds whichever services exist.
    other = f"own{os.getpid()}_other"
    await stack._create_databases(pg_base, [other], fresh=True)
    targets = [url for svc, url in db_urls.items() if svc != "account"] + [stack.database_url(pg_base, other)]
    assert await connect_and_count(targets[-1], "pg_class") > 0  # its owner gets in
    for url in targets:
        with pytest.raises(Exception, match="permission denied"):
            await connect_and_count(as_role_of(db_urls["account"], url), "pg_class")


async def test_the_admin_role_is_not_what_services_use(db_urls: dict[str, str], pg_base: str) -> None:
    admin = make_url(async_url(pg_base)).username
    assert all(make_url(url).username != admin for url in db_urls.values())


def sql_of(svc: str) -> str:
    root = stack.ROOT / "services" / svc
    return "\n".join(p.read_text() for p in root.rglob("*.py"))


def table_names(svc: str) -> set[str]:
    migrations = "\n".join(p.read_text() for p in (stack.ROOT / "services" / svc / "migrations").rglob("*.py"))
    return set(re.findall(r"op\.create_table\(\s*'(\w+)'", migrations)) - {"event", "event_sequence"}


def foreign_tables(source: str, tables: set[str]) -> list[str]:
    """The tables of `tables` that `source` names in SQL or maps with an ORM model."""
    return sorted(
        t
        for t in tables
        if re.search(rf"\b(FROM|JOIN|INTO|UPDATE|TABLE)\s+\"?{t}\b", source, re.I)
        or re.search(rf"__tablename__\s*=\s*['\"]{t}['\"]", source)
    )


@pytest.mark.parametrize("svc", stack.services())
def test_no_service_names_another_services_table(svc: str) -> None:
    foreign = set().union(*(table_names(o) for o in stack.services() if o != svc)) - table_names(svc)
    assert foreign_tables(sql_of(svc), foreign) == []


def test_the_ownership_check_catches_a_violation() -> None:
    sneaky = "await session.execute(text('SELECT key_hash FROM api_key WHERE tenant_id = :t'))"
    model = 'class Stolen(Base):\n    __tablename__ = "project"'
    assert foreign_tables(sneaky + "\n" + model, {"api_key", "project", "integration"}) == ["api_key", "project"]
    assert table_names("account") >= {"tenant", "project", "member", "sdk_attestation"}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    config = tomllib.loads((stack.ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = "\n".join(
        f"[[tool.importlinter.contracts]]\nname = {c['name']!r}\ntype = {c['type']!r}\n"
        + "".join(f"{k} = {v!r}\n" for k, v in c.items() if k not in ("name", "type"))
        for c in config["contracts"]
    )
    roots = config["root_packages"]
    (root / "pyproject.toml").write_text(f"[tool.importlinter]\nroot_packages = {roots!r}\n\n{contracts}")
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def forbidden_contracts() -> list[dict[str, object]]:
    config = tomllib.loads((stack.ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return [c for c in config["contracts"] if c["type"] == "forbidden"]


def contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads((stack.ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["type"]: c for c in config["contracts"]}


def test_the_import_contracts_cover_every_service() -> None:
    every = {f"services.{svc}" for svc in stack.services()}
    assert set(contracts()["independence"]["modules"]) == every  # type: ignore[arg-type]
    forbidden = {c["name"]: set(c["forbidden_modules"]) for c in forbidden_contracts()}  # type: ignore[call-overload]
    assert forbidden["services.common imports no service"] == every
    assert forbidden["services.common knows no domain API"] == {f"aos.{svc}" for svc in stack.services()}


def test_the_import_contracts_catch_a_violation(tmp_path: Path) -> None:
    """The project's own contracts, on a tree where common imports a service, then a domain's API (protos),
    then where one service imports another."""
    services = stack.services()
    for svc in ("common", *services):
        (tmp_path / "services" / svc).mkdir(parents=True)
        (tmp_path / "services" / svc / "__init__.py").write_text("")
        (tmp_path / "aos" / svc / "v1").mkdir(parents=True)  # namespace packages, like protos/aos
        (tmp_path / "aos" / svc / "v1" / f"{svc}_pb2.py").write_text("")
    (tmp_path / "services" / "__init__.py").write_text("")
    assert lint_imports(tmp_path).returncode == 0
    (tmp_path / "services" / "common" / "__init__.py").write_text(f"import services.{services[0]}\n")
    assert "services.common imports no service BROKEN" in lint_imports(tmp_path).stdout
    (tmp_path / "services" / "common" / "__init__.py").write_text(
        f"from aos.{services[0]}.v1 import {services[0]}_pb2\n"
    )
    assert "services.common knows no domain API BROKEN" in lint_imports(tmp_path).stdout
    (tmp_path / "services" / "common" / "__init__.py").write_text("from aos.common.v1 import common_pb2\n")
    assert lint_imports(tmp_path).returncode == 0  # a domain-free API (like aos.gate, aos.events) is allowed
    (tmp_path / "services" / "common" / "__init__.py").write_text("")
    if len(services) > 1:
        (tmp_path / "services" / services[0] / "__init__.py").write_text(f"import services.{services[1]}\n")
        assert "Services never import each other BROKEN" in lint_imports(tmp_path).stdout
