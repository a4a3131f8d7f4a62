"""Envoy's hop to the services: its own certificate on every cluster (health checks and the ext_authz gate
included), only the cluster's own identity accepted from the other side, and a renewed certificate used
without a restart."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from cli import devauth, devtls, stack
from gateway import config, rules, upstream_tls
from services.common import server, tls
from tests.conftest import pki

pytestmark = pytest.mark.e2e


def test_every_cluster_presents_the_gateway_certificate_and_checks_the_service_identity() -> None:
    methods = rules.load_methods((stack.ROOT / "gateway" / "aos.binpb").read_bytes())
    gw = config.Gateway("d", {svc: ("127.0.0.1", 1) for svc in stack.services()}, methods=methods)
    for cluster in config.render(gw)["static_resources"]["clusters"]:
        context = cluster["transport_socket"]["typed_config"]["common_tls_context"]
        assert [s["name"] for s in context["tls_certificate_sds_secret_configs"]] == [upstream_tls.SDS_CERT]
        validation = context["combined_validation_context"]
        assert validation["validation_context_sds_secret_config"]["name"] == upstream_tls.SDS_CA
        assert validation["default_validation_context"]["match_typed_subject_alt_names"] == [
            {"san_type": "URI", "matcher": {"exact": f"spiffe://aos.local/{cluster['name']}"}}
        ]
    files = config.sds(gw)
    cert = files[f"{upstream_tls.SDS_CERT}.yaml"]["resources"][0]["tls_certificate"]
    assert (cert["certificate_chain"]["filename"], cert["private_key"]["filename"]) == (
        gw.tls_cert_file,
        gw.tls_key_file,
    )


def _envoy(data: Path, upstreams: dict[str, int], tls_dir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    port, admin = stack.free_port(), stack.free_port()
    cfg = stack.envoy_config(data / "run", upstreams, port, devauth.ensure_keys(data), tls_dir, admin)
    proc = stack.start_envoy(cfg, data / "envoy.log")
    stack.wait_for_port(port, proc)
    return proc, port, admin


def _served_serials(admin: int) -> list[int]:
    """Serials of the certificates Envoy holds (its admin /certs)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/certs", timeout=5) as reply:
        body = json.load(reply)
    return [int(c["serial_number"], 16) for cert in body["certificates"] for c in cert.get("cert_chain", [])]


def _serial(path: str) -> int:
    return int(x509.load_pem_x509_certificate(Path(path).read_bytes()).serial_number)


def test_envoy_uses_a_renewed_certificate_without_a_restart(tmp_path: Path) -> None:
    tls_dir = stack.pki(tmp_path)
    me = devtls.identity(tls_dir, tls.GATEWAY)
    proc, _, admin = _envoy(tmp_path, {"account": stack.free_port()}, tls_dir)
    try:
        assert _served_serials(admin) == [_serial(me.cert_file)]
        devtls.issue(tls_dir, tls.GATEWAY)
        renewed = _serial(me.cert_file)
        deadline = time.monotonic() + 10
        while _served_serials(admin) != [renewed] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _served_serials(admin) == [renewed]
        assert proc.poll() is None
    finally:
        stack.stop([proc])


async def test_envoy_refuses_a_service_holding_another_identity(
    running: dict[str, server.Service], tmp_path: Path
) -> None:
    """The account cluster pointed at api_keys' port: a certificate of our CA, but not account's. Envoy does not
    send the request there (503), where the right service answers through the same config."""
    upstreams = {"account": running["api_keys"].port, "api_keys": running["api_keys"].port}
    proc, port, _ = _envoy(tmp_path, upstreams, pki())
    try:
        token = {"authorization": f"Bearer {devauth.mint(tmp_path, user='u', email='u@example.com')}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            wrong = await http.post("/v1/tenants", json={"name": "Misrouted"}, headers=token)
            assert wrong.status_code == 503, wrong.text
            right = await http.get("/v1/api-keys", headers=token)
            assert right.status_code != 503, right.text
    finally:
        stack.stop([proc])
