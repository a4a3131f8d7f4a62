"""`aos up` (what `make up` runs) on the embedded default: the stack serves REST and gRPC, Ctrl-C stops it."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from aos.account.v1 import account_service_pb2 as rpc
from aos.account.v1 import account_service_pb2_grpc
from cli import devauth, stack

pytestmark = pytest.mark.e2e


def metrics_urls(line: str) -> dict[str, list[str]]:
    """ "metrics: account=URL+URL, ...; envoy=URL" → name → its replicas' URLs."""
    pairs = [p.split("=", 1) for p in line.removeprefix("metrics: ").strip().replace("; ", ", ").split(", ")]
    return {name: urls.split("+") for name, urls in pairs}


@pytest.fixture(scope="module")
def stack_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    data, port = tmp_path_factory.mktemp("up"), stack.free_port()
    env = {k: v for k, v in os.environ.items() if k != "AOS_DATABASE_URL"} | {
        "AOS_DATA_DIR": str(data),
        "AOS_GATEWAY_PORT": str(port),
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "aos"), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("gateway: "):
                assert line.strip() == f"gateway: http://127.0.0.1:{port}"
                break
            assert time.monotonic() < deadline, "aos up did not print the gateway URL in time"
        else:
            pytest.fail(f"aos up exited with {proc.wait()}")
        services = proc.stdout.readline()  # "services: account=127.0.0.1:PORT, ...; logs in ..."
        (data / "service-ports").write_text(" ".join(p.split(":")[-1] for p in services.split(";")[0].split(", ")))
        (data / "metrics-line").write_text(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}", data, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_stack_serves_rest_and_grpc_then_stops_on_ctrl_c(stack_up: tuple[str, Path, subprocess.Popen[str]]) -> None:
    url, data, proc = stack_up
    signup_token = devauth.mint(data, user="founder-of-acme", email="a@acme.test")
    with httpx.Client(base_url=url, timeout=10) as http:
        tenant = http.post("/v1/tenants", json={"name": "Acme"}, headers={"authorization": f"Bearer {signup_token}"})
        assert tenant.status_code == 201, tenant.text
        tenant_id = tenant.json()["tenant"]["tenant_id"]
        auth = {
            "authorization": "Bearer " + devauth.mint(data, user="founder-of-acme", email="a@acme.test", org=tenant_id)
        }
        created = http.post("/accounts/projects", json={"name": "web"}, headers=auth)
        assert created.status_code == 201
        project_id = created.json()["project_id"]
        assert [p["project_id"] for p in http.get("/accounts/projects", headers=auth).json()["items"]] == [project_id]
        assert http.get(f"/accounts/projects/{project_id}", headers=auth).json()["name"] == "web"
    with grpc.insecure_channel(url.removeprefix("http://")) as channel:  # the same RPCs, native gRPC via Envoy
        stub = account_service_pb2_grpc.AccountServiceStub(channel)
        signup = stub.CreateTenant(
            rpc.CreateTenantRequest(name="Globex"), metadata=(("authorization", f"Bearer {signup_token}"),), timeout=5
        )
        md = (
            (
                "authorization",
                "Bearer "
                + devauth.mint(data, user="founder-of-acme", email="a@acme.test", org=signup.tenant.tenant_id),
            ),
        )
        made = stub.CreateProject(rpc.CreateProjectRequest(name="grpc"), metadata=md, timeout=5)
        assert [p.project_id for p in stub.ListProjects(rpc.ListProjectsRequest(), metadata=md, timeout=5).items] == [
            made.project_id
        ]
        assert stub.GetProject(rpc.GetProjectRequest(project_id=made.project_id), metadata=md, timeout=5).name == "grpc"
        with pytest.raises(grpc.RpcError):  # another tenant's project looks missing over gRPC too
            stub.GetProject(rpc.GetProjectRequest(project_id=project_id), metadata=md, timeout=5)

    metrics = metrics_urls((data / "metrics-line").read_text())
    assert set(metrics) == {*stack.services(), "envoy"}
    scraped = {name: httpx.get(urls[0], timeout=5) for name, urls in metrics.items()}
    assert {name: r.status_code for name, r in scraped.items()} == dict.fromkeys(metrics, 200)
    assert (
        'grpc_method="CreateProject"' in scraped["account"].text
        and "grpc_server_handling_seconds" in scraped["account"].text
    )
    assert "aos_db_pool_checked_out" in scraped["account"].text
    assert "aos_api_keys_verify_cache_hits_total" in scraped["api_keys"].text
    assert "envoy_cluster_upstream_rq" in scraped["envoy"].text and metrics["envoy"][0].endswith("/stats/prometheus")

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    ports = [int(url.rsplit(":", 1)[1]), *map(int, (data / "service-ports").read_text().split())]
    ports += [int(u.split(":")[2].split("/")[0]) for n, urls in metrics.items() if n != "envoy" for u in urls]
    for port in ports:  # Envoy and every service are gone
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
