"""The pieces every workload here is built from: pod and container specs locked down the same way, their
labels, and the objects that select pods by label (HPA, PDB, NetworkPolicy peers)."""

from __future__ import annotations

from typing import Any

UID = 10001  # the image's user (deploy/Dockerfile)


def app_labels(app: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/component": component}


def meta(obj_name: str, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"name": obj_name, "labels": dict(labels), **extra}


POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": UID,
    "runAsGroup": UID,
    "fsGroup": UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def spread(app: str) -> dict[str, Any]:
    """Replicas on different nodes where the cluster allows it."""
    return {
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": app}},
            }
        ]
    }


def pod(containers: list[dict[str, Any]], volumes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "securityContext": POD_SECURITY,
        **extra,
        "containers": containers,
        "volumes": [{"name": "tmp", "emptyDir": {}}, *volumes],
    }


def container(
    cname: str, image: str, env: list[dict[str, Any]], resources: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, *extra.pop("volumeMounts", [])]
    return {
        "name": cname,
        "image": image,
        **extra,
        "env": env,
        "resources": resources,
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": mounts,
    }


def secret_env(var: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def deployment(app: str, labels: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    """Rolls out one new pod before it takes an old one away, so capacity never drops during a rollout."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(app, labels),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": dict(labels)}, "spec": spec},
        },
    }


def hpa(app: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(app, labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
            "minReplicas": 2,
            "maxReplicas": 6,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


def pdb(app: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(app, labels),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": app}}},
    }


def peer(app: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {"app.kubernetes.io/name": app}}}
