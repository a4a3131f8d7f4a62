from __future__ import annotations

from typing import Any

from cli import pods
from cli.manifests import ROOT, SERVICES, name


def documents() -> list[dict[str, Any]]:
    """The dev overlay's throwaway PostgreSQL: deploy/postgres/init.sql's databases and roles, trust auth
    inside the namespace, data in an emptyDir. Production uses an external server (the prod overlay)."""
    app = "postgres"
    labels = pods.app_labels(app, "database")
    pg = pods.container(
        "postgres",
        "postgres:17",
        [
            {"name": "POSTGRES_HOST_AUTH_METHOD", "value": "trust"},
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ],
        {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        ports=[{"name": "postgres", "containerPort": 5432, "protocol": "TCP"}],
        readinessProbe={"exec": {"command": ["pg_isready", "-U", "postgres"]}, "periodSeconds": 5},
        volumeMounts=[
            {"name": "data", "mountPath": "/var/lib/postgresql/data"},
            {"name": "run", "mountPath": "/var/run/postgresql"},
            {"name": "init", "mountPath": "/docker-entrypoint-initdb.d", "readOnly": True},
        ],
    )
    pod = pods.pod(
        [pg],
        [
            {"name": "data", "emptyDir": {}},
            {"name": "run", "emptyDir": {}},
            {"name": "init", "configMap": {"name": "postgres-init"}},
        ],
    )
    pod["securityContext"] = {**pods.POD_SECURITY, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999}
    clients = [name(svc) for svc in SERVICES]
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": pods.meta("postgres-init", labels),
            "data": {"init.sql": (ROOT / "deploy" / "postgres" / "init.sql").read_text()},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": pods.meta(app, labels),
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
                "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": pods.meta(app, labels),
            "spec": {
                "selector": {"app.kubernetes.io/name": app},
                "ports": [{"name": "postgres", "port": 5432, "targetPort": "postgres"}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": pods.meta(app, labels),
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": app}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "podSelector": {
                                    "matchExpressions": [
                                        {"key": "app.kubernetes.io/name", "operator": "In", "values": clients}
                                    ]
                                }
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": 5432}],
                    }
                ],
            },
        },
    ]
