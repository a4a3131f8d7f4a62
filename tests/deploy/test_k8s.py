"""The Kubernetes overlays render, validate offline against the Kubernetes schemas, and keep the promises of
DESIGN.md §4 and §7: every service has its objects, gRPC health probes (over mutual TLS), non-root
containers, no secrets in manifests, a cert-manager certificate per workload naming its identity, and
NetworkPolicies that admit exactly the gateway and the named peers."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cli import cert_manager, devauth, devtls, k8s, kustomize, manifests, pods, stack
from gateway import config

pytestmark = pytest.mark.timeout(300)

# Checked independently of cli/manifests.py's own table: the issue's peers, plus api_keys and monitoring following
# account's events, and monitoring and integrations asking each other (ingest's ownership check, the limits'
# usage; MONITORING.md 0.12).
ADMITTED = {
    "account": {"gateway", "onboarding", "api-keys", "monitoring"},
    "api-keys": {"gateway", "onboarding", "account"},
    "integrations": {"gateway", "onboarding", "monitoring"},
    "monitoring": {"gateway", "integrations", "account"},
    "onboarding": {"gateway", "account", "api-keys", "integrations"},
}
APPS = sorted(ADMITTED)
# The oldest Kubernetes the manifests promise (gRPC probes are GA from 1.27) and the newest schemas shipped.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
# Custom resources kubernetes-validate has no schema for; checked structurally below instead.
CUSTOM_KINDS = {
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "Database"),
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    k8s.write_generated()
    return {overlay.name: kustomize.build(overlay) for overlay in k8s.overlays()}


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = find(docs, kind, name)
    return doc


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] in ("Deployment", "Job")]


def test_both_overlays_exist(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert set(rendered) == {"dev", "prod"}


def test_committed_base_is_what_the_generator_writes() -> None:
    assert k8s.stale_base() == [], "run `make k8s` and commit deploy/k8s"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_document_validates_against_the_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]], version: str
) -> None:
    for overlay, docs in rendered.items():
        for doc in docs:
            if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
                continue
            where = f"{overlay}: {doc['kind']}/{doc['metadata']['name']}"
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{where}: {e.message} at {list(e.path)}")


def test_validation_catches_a_bad_document(rendered: dict[str, list[dict[str, Any]]]) -> None:
    bad = yaml.safe_load(yaml.safe_dump(one(rendered["prod"], "Deployment", "account")))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["cmd"] = ["true"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_service_has_its_objects(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = rendered[overlay]
    for app in [*APPS, "gateway"]:
        deployment = one(docs, "Deployment", app)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        assert one(docs, "Service", app)["spec"]["selector"] == selector
        assert one(docs, "PodDisruptionBudget", app)["spec"]["selector"]["matchLabels"] == selector
        hpa = one(docs, "HorizontalPodAutoscaler", app)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": app}
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert one(docs, "NetworkPolicy", app)["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["resources"]["requests"] and container["resources"]["limits"]
    for svc in manifests.SERVICES:
        job = one(docs, "Job", f"{manifests.name(svc)}-migrate")
        (migrate,) = job["spec"]["template"]["spec"]["containers"]
        assert migrate["args"] == ["alembic", "-c", f"services/{svc}/alembic.ini", "upgrade", "head"]
        (server,) = one(docs, "Deployment", manifests.name(svc))["spec"]["template"]["spec"]["containers"]
        assert server["args"] == ["python", "-m", f"services.{svc}"]
        assert migrate["image"] == server["image"]
        env = {e["name"]: e for e in server["env"]}
        assert env[f"{svc.upper()}_GRPC_HOST"]["value"] == "0.0.0.0"
        assert env[f"{svc.upper()}_GRPC_PORT"]["value"] == str(manifests.GRPC_PORT)
        assert {e["name"]: e for e in migrate["env"]}[f"{svc.upper()}_DATABASE_URL"] == env[
            f"{svc.upper()}_DATABASE_URL"
        ]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_probes_ask_grpc_health_over_mutual_tls(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    """The kubelet's own gRPC probe speaks no TLS: each probe runs services.common.probe in the container."""
    for svc in manifests.SERVICES:
        (container,) = one(rendered[overlay], "Deployment", manifests.name(svc))["spec"]["template"]["spec"][
            "containers"
        ]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert container[probe]["exec"]["command"] == ["python", "-m", "services.common.probe", svc], probe
            assert container[probe]["timeoutSeconds"] >= 3, "a Python start and a TLS handshake"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_containers_run_as_non_root(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    specs = pod_specs(rendered[overlay])
    assert len(specs) >= 2 * len(APPS) + 1
    for name, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert security.get("runAsUser", spec["securityContext"]["runAsUser"]) != 0, name


def test_image_runs_as_the_user_the_manifests_expect() -> None:
    dockerfile = (manifests.ROOT / "deploy" / "Dockerfile").read_text()
    assert f"USER {pods.UID}:{pods.UID}" in dockerfile
    assert "PYTHONPATH=/app:/app/protos" in dockerfile


def test_no_secret_values_in_the_base_or_prod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    base = kustomize.build(k8s.BASE)
    for docs in (base, rendered["prod"]):
        assert find(docs, "Secret") == []
        for _, spec in pod_specs(docs):
            for container in spec["containers"]:
                for env in container["env"]:
                    if env["name"].endswith(("DATABASE_URL", "KEKS")):
                        assert "secretKeyRef" in env["valueFrom"], env
                    assert "@" not in env.get("value", ""), env  # no credentials in a URL


def test_dev_defines_every_secret_it_references_but_the_jwks(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["dev"]
    defined = {d["metadata"]["name"] for d in find(docs, "Secret")}
    referenced = {
        env["valueFrom"]["secretKeyRef"]["name"]
        for _, spec in pod_specs(docs)
        for container in spec["containers"]
        for env in container["env"]
        if "valueFrom" in env
    }
    assert referenced == defined
    volumes = one(docs, "Deployment", "gateway")["spec"]["template"]["spec"]["volumes"]
    issued = {c["spec"]["secretName"] for c in find(docs, "Certificate")}  # cert-manager writes these
    assert {v["secret"]["secretName"] for v in volumes if "secret" in v} - issued == {"aos-jwks"}
    for secret in find(docs, "Secret"):
        assert ":" not in secret["stringData"].get("url", "postgresql://")[len("postgresql://") :].split("@")[0]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_network_policies_admit_exactly_the_named_peers(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    deny = one(docs, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for app, admitted in ADMITTED.items():
        (rule,) = one(docs, "NetworkPolicy", app)["spec"]["ingress"]
        sources = {peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in rule["from"]}
        assert all(set(peer) == {"podSelector"} for peer in rule["from"]), "no namespace- or IP-wide sources"
        assert sources == admitted, app
        assert rule["ports"] == [{"protocol": "TCP", "port": manifests.GRPC_PORT}]
    for svc, callees in manifests.CALLS.items():
        (container,) = one(docs, "Deployment", manifests.name(svc))["spec"]["template"]["spec"]["containers"]
        addrs = {e["name"]: e["value"] for e in container["env"] if e["name"].endswith("_ADDR")}
        assert addrs == {
            f"{svc.upper()}_{c.upper()}_ADDR": f"{manifests.name(c)}:{manifests.GRPC_PORT}" for c in callees
        }
        for callee in callees:
            assert manifests.name(svc) in ADMITTED[manifests.name(callee)], f"{svc} calls {callee} but is not admitted"


def test_gateway_config_routes_to_the_services(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["prod"]
    config_map = one(docs, "ConfigMap", "gateway-config")
    envoy = yaml.safe_load(config_map["data"]["envoy.yaml"])
    assert (
        base64.b64decode(config_map["binaryData"]["aos.binpb"])
        == (manifests.ROOT / "gateway" / "aos.binpb").read_bytes()
    )
    clusters = {
        c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        for c in envoy["static_resources"]["clusters"]
    }
    assert clusters == {
        svc: {"address": manifests.name(svc), "port_value": manifests.GRPC_PORT} for svc in manifests.SERVICES
    }
    for svc in manifests.SERVICES:
        service = one(docs, "Service", manifests.name(svc))["spec"]
        assert service["clusterIP"] == "None", "headless, so Envoy balances per pod"
        (port,) = service["ports"]
        assert port["port"] == manifests.GRPC_PORT
    (listener,) = envoy["static_resources"]["listeners"]
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": manifests.GATEWAY_PORT}
    text = config_map["data"]["envoy.yaml"]
    pod = one(docs, "Deployment", "gateway")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert f"{mounts['config']}/aos.binpb" in text
    for sds in config.sds(config.Gateway("d", {})):  # Envoy's certificate from the mounted Secret, by SDS
        assert f"{mounts['config']}/{sds}" in text
        assert f"{mounts['tls']}/" in config_map["data"][sds]
    openapi = manifests.ROOT / "gateway" / "openapi.json"
    if openapi.exists():  # served by the gateway from the mounted copy
        assert config_map["data"]["openapi.json"] == openapi.read_text()
        assert f"{mounts['config']}/openapi.json" in text
    assert "gateway/" not in text, "no path of the source tree is left in the pod's config"
    # Envoy runs the config the init container rendered from the ConfigMap's, with the identity provider in.
    (init,) = pod["initContainers"]
    assert init["args"] == [
        "python",
        "-m",
        "gateway.identity",
        f"{mounts['config']}/envoy.yaml",
        f"{mounts['rendered']}/envoy.yaml",
    ]
    assert pod["containers"][0]["args"][:3] == ["envoy", "-c", f"{mounts['rendered']}/envoy.yaml"]


def _filled(tmp_path: Path, config_map: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The gateway pod's start on this machine: the ConfigMap's files and Envoy's certificate laid out in a
    temporary folder, then the init container's `python -m gateway.identity` with `env`, writing
    tmp_path/run.yaml."""
    gateway_tls = str(Path(devtls.identity(tmp_path / "dev" / "tls", "gateway").cert_file).parent)
    for key, value in config_map["data"].items():
        (tmp_path / key).write_text(
            value.replace(manifests.ENVOY_DIR, str(tmp_path)).replace(cert_manager.TLS_DIR, gateway_tls)
        )
    devtls.ensure(tmp_path, ["gateway"])  # the Secret cert-manager writes, laid out the same way
    (tmp_path / "aos.binpb").write_bytes(base64.b64decode(config_map["binaryData"]["aos.binpb"]))
    return subprocess.run(
        [sys.executable, "-m", "gateway.identity", str(tmp_path / "envoy.yaml"), str(tmp_path / "run.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=manifests.ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("AOS_IDP_")} | env,
    )


@pytest.mark.parametrize("source", ["file", "uri"])
def test_envoy_accepts_the_gateway_config(
    tmp_path: Path, rendered: dict[str, list[dict[str, Any]]], source: str
) -> None:
    """`envoy --mode validate` on the config the prod pod runs: the ConfigMap's, with a provider filled in
    (validation fetches nothing: no traffic leaves the machine)."""
    config_map = one(rendered["prod"], "ConfigMap", "gateway-config")
    jwks = devauth.ensure_keys(tmp_path / "keys")
    keys = (
        {"AOS_IDP_JWKS_PATH": str(jwks)} if source == "file" else {"AOS_IDP_JWKS_URI": "https://idp.example.test/jwks"}
    )
    filled = _filled(
        tmp_path, config_map, {"AOS_IDP_ISSUER": "https://idp.example.test/", "AOS_IDP_AUDIENCES": "aos-api"} | keys
    )
    assert filled.returncode == 0, filled.stderr
    run = yaml.safe_load((tmp_path / "run.yaml").read_text())
    (provider,) = _jwt_providers(run)
    assert provider["issuer"] == "https://idp.example.test/" and provider["audiences"] == ["aos-api"]
    result = subprocess.run(
        [str(stack.BIN / "envoy"), "--mode", "validate", "-c", str(tmp_path / "run.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _jwt_providers(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    (jwt_filter,) = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.jwt_authn"]
    return list(jwt_filter["typed_config"]["providers"].values())


def test_prod_takes_the_identity_provider_from_configuration(
    tmp_path: Path, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    prod, dev = rendered["prod"], rendered["dev"]
    text = kustomize.dump(prod)
    assert "aos-dev" not in text and "jwks.json" not in text, "no dev issuer or dev key file in prod"
    assert find(prod, "ConfigMap", manifests.IDENTITY_CONFIG) == [], "the deployment provides its own"
    pods_reading = {
        name
        for name, spec in pod_specs(prod)
        for container in [*spec.get("initContainers", []), *spec["containers"]]
        if {"configMapRef": {"name": manifests.IDENTITY_CONFIG}} in container.get("envFrom", [])
    }
    assert pods_reading == {"gateway", "onboarding"}  # Envoy's provider, the gate's claim names
    # The ConfigMap's config names no provider until the pod fills one in, and the filler has no default.
    (provider,) = _jwt_providers(yaml.safe_load(one(prod, "ConfigMap", "gateway-config")["data"]["envoy.yaml"]))
    assert provider["issuer"] == "$AOS_IDP_ISSUER"
    unset = _filled(tmp_path, one(prod, "ConfigMap", "gateway-config"), {})
    assert unset.returncode != 0 and "issuer" in unset.stderr
    identity = one(dev, "ConfigMap", manifests.IDENTITY_CONFIG)["data"]
    assert identity["AOS_IDP_ISSUER"] == "aos-dev"  # dev names the dev provider itself


# cert-manager.io/v1 fields these manifests may use (kubernetes-validate has no schema for its CRDs).
CERTIFICATE_FIELDS = {
    "secretName",
    "commonName",
    "uris",
    "dnsNames",
    "ipAddresses",
    "usages",
    "isCA",
    "privateKey",
    "duration",
    "renewBefore",
    "issuerRef",
}
USAGES = {"digital signature", "key encipherment", "server auth", "client auth", "cert sign"}
ISSUER_TYPES = {"selfSigned", "ca", "vault", "acme", "venafi"}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_each_workload_mounts_a_cert_manager_certificate_naming_its_identity(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    issuers = {d["metadata"]["name"]: d["spec"] for d in find(docs, "Issuer")}
    certificates = {d["spec"]["secretName"]: d for d in find(docs, "Certificate")}
    for issuer in issuers.values():
        (kind,) = issuer  # exactly one issuer type
        assert kind in ISSUER_TYPES
    for certificate in certificates.values():
        spec = certificate["apiVersion"], set(certificate["spec"])
        assert spec[0] == "cert-manager.io/v1" and spec[1] <= CERTIFICATE_FIELDS, spec
        assert (
            certificate["spec"]["issuerRef"]["kind"] == "Issuer" and certificate["spec"]["issuerRef"]["name"] in issuers
        )
        assert set(certificate["spec"].get("usages", [])) <= USAGES
        assert certificate["spec"]["privateKey"]["algorithm"] in {"RSA", "ECDSA", "Ed25519"}
        assert certificate["metadata"]["namespace"] == find(docs, "Deployment")[0]["metadata"]["namespace"]
    ca = issuers[cert_manager.CA_ISSUER]["ca"]["secretName"]
    assert certificates[ca]["spec"]["isCA"] is True
    for workload in [*manifests.SERVICES, "gateway"]:
        pod = one(docs, "Deployment", manifests.name(workload))["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
        issued = certificates[volume["secret"]["secretName"]]["spec"]
        assert issued["uris"] == [f"spiffe://aos.local/{workload}"], "one identity per certificate"
        assert issued["issuerRef"]["name"] == cert_manager.CA_ISSUER
        assert {"server auth", "client auth"} <= set(issued["usages"])
        assert manifests.name(workload) in issued["dnsNames"], "what its callers check"
        (container,) = pod["containers"]
        assert {"name": "tls", "mountPath": cert_manager.TLS_DIR, "readOnly": True} in container["volumeMounts"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        if workload != "gateway":
            prefix = workload.upper()
            assert [env[f"{prefix}_TLS_{part}_FILE"] for part in ("CERT", "KEY", "CA")] == [
                f"{cert_manager.TLS_DIR}/{file}" for file in ("tls.crt", "tls.key", "ca.crt")
            ]


def test_prod_uses_one_database_and_role_per_service(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["prod"]
    (cluster,) = find(docs, "Cluster")
    roles = {r["name"] for r in cluster["spec"]["managed"]["roles"]}
    databases = {(d["spec"]["name"], d["spec"]["owner"]) for d in find(docs, "Database")}
    assert roles == set(manifests.SERVICES)
    assert databases == {(svc, svc) for svc in manifests.SERVICES}
    assert {d["spec"]["cluster"]["name"] for d in find(docs, "Database")} == {cluster["metadata"]["name"]}
    assert {d["metadata"]["namespace"] for d in docs} == {"aos"}
    for _, spec in pod_specs(docs):
        assert all(c["image"] == "registry.example.com/aos/control-plane:0.1.0" for c in spec["containers"])
    assert {h["spec"]["minReplicas"] for h in find(docs, "HorizontalPodAutoscaler")} == {3}


def test_migration_jobs_run_before_rollout(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for job in find(rendered["prod"], "Job"):
        assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_make_k8s_writes_every_overlay(tmp_path: Path, rendered: dict[str, list[dict[str, Any]]]) -> None:
    written = k8s.render_all(tmp_path)
    for name, path in written.items():
        docs = list(yaml.safe_load_all(path.read_text()))
        assert sorted(map(str, docs)) == sorted(map(str, rendered[name]))


# --- the kustomize subset ---------------------------------------------------------------------------------


def test_strategic_merge_follows_kustomize() -> None:
    base = {"a": 1, "b": {"c": 2}, "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "l": [1]}
    patch = {"a": None, "b": {"d": 3}, "env": [{"name": "B", "value": "9"}, {"name": "Z"}], "l": [2]}
    assert kustomize.merge(base, patch) == {
        "b": {"c": 2, "d": 3},
        "env": [{"name": "B", "value": "9"}, {"name": "Z"}, {"name": "A", "value": "1"}],
        "l": [2],
    }


def test_unsupported_kustomize_fields_are_refused(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("namePrefix: x-\nresources: []\n")
    with pytest.raises(ValueError, match="namePrefix"):
        kustomize.build(tmp_path)


def test_a_patch_that_matches_nothing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n")
    (tmp_path / "p.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {k: w}\n")
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\npatches: [{path: p.yaml}]\n")
    with pytest.raises(ValueError, match="matches no resource"):
        kustomize.build(tmp_path)


def _real_kustomize() -> list[str] | None:
    if path := shutil.which("kustomize"):
        return [path, "build"]
    if path := shutil.which("kubectl"):
        # Some kubectl builds (the gcloud dispatcher) ask the API server's version first: give them a closed
        # loopback port, so no server is ever contacted and none found on 8080 is mistaken for a cluster.
        return [path, "--server=http://127.0.0.1:1", "kustomize"]
    return None


@pytest.mark.skipif(_real_kustomize() is None, reason="no kustomize or kubectl binary on this machine")
@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_a_real_kustomize_renders_the_same_documents(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path
) -> None:
    command = _real_kustomize()
    assert command is not None
    out = subprocess.run(
        [*command, str(k8s.OVERLAYS / overlay)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    real = [d for d in yaml.safe_load_all(out) if d]

    def by_id(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
        return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}

    assert by_id(real) == by_id(rendered[overlay])
    written = yaml.safe_load_all(k8s.render_all(tmp_path)[overlay].read_text())
    assert [list(by_id([d])) for d in written] == [list(by_id([d])) for d in real], "kustomize's order"


def test_the_veil_is_on_in_prod_only(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """AOS_VEIL (SPEC 2, scenario 16) on onboarding's gate in prod; dev keeps its telling 401s."""

    def env(overlay: str) -> dict[str, Any]:
        (container,) = [
            c
            for c in one(rendered[overlay], "Deployment", "onboarding")["spec"]["template"]["spec"]["containers"]
            if c["name"] == "service"
        ]
        return {e["name"]: e.get("value") for e in container["env"]}

    prod, dev = env("prod"), env("dev")
    assert prod["AOS_VEIL"] == "true" and "AOS_VEIL" not in dev
    assert set(dev) <= set(prod), "the patch adds to the base's variables, it replaces none"


def test_the_gate_reads_the_veil_setting_as_the_manifests_spell_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.onboarding.settings import Settings

    monkeypatch.setenv("AOS_VEIL", "true")
    assert Settings(database_url="postgresql://x/y").veil is True  # type: ignore[arg-type]
    monkeypatch.delenv("AOS_VEIL")
    assert Settings(database_url="postgresql://x/y").veil is False  # type: ignore[arg-type]
