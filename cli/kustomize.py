"""The subset of kustomize the overlays use, so that `make k8s` needs no kustomize binary;
`kubectl kustomize deploy/k8s/overlays/<name>` renders the same documents."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

# Kinds kustomize leaves without a namespace; every other kind (custom resources included) gets one.
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "patches", "images"}


def build(directory: Path) -> list[dict[str, Any]]:
    """The documents `kustomize build directory` produces, for the fields in SUPPORTED."""
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(k) - SUPPORTED
    if unknown:
        raise ValueError(f"{directory}/kustomization.yaml: unsupported fields {sorted(unknown)}")
    docs: list[dict[str, Any]] = []
    for resource in k.get("resources", []):
        path = directory / resource
        docs += build(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    ids = [_id(d) for d in docs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{directory}: duplicate resources {sorted({i for i in ids if ids.count(i) > 1})}")
    for patch in k.get("patches", []):
        _apply_patch(directory, patch, docs)
    if "namespace" in k:
        for d in docs:
            if d["kind"] not in CLUSTER_SCOPED:
                d["metadata"]["namespace"] = k["namespace"]
    for entry in k.get("labels", []):
        _apply_labels(entry, docs)
    for image in k.get("images", []):
        _apply_image(image, docs)
    return docs


# kustomize's legacy output order, so `kubectl apply -f` creates ConfigMaps, Secrets and Services first.
ORDER_FIRST = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def _order(doc: dict[str, Any]) -> tuple[int, str, str, str]:
    kind = doc["kind"]
    rank = ORDER_FIRST.index(kind) - len(ORDER_FIRST) if kind in ORDER_FIRST else 0
    rank = 1 + ORDER_LAST.index(kind) if kind in ORDER_LAST else rank
    group, _, version = doc["apiVersion"].rpartition("/")
    meta = doc["metadata"]
    return rank, f"{group or '~G'}_{version}_{kind}", meta.get("namespace", ""), meta["name"]


def _id(doc: dict[str, Any]) -> tuple[str, str, str]:
    return doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else "", doc["kind"], doc["metadata"]["name"]


def _apply_patch(directory: Path, patch: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    if set(patch) - {"path", "target"}:
        raise ValueError(f"unsupported patch fields {sorted(set(patch) - {'path', 'target'})}")
    body = yaml.safe_load((directory / patch["path"]).read_text())
    target = patch.get("target")
    if target is None:
        matches = [d for d in docs if _id(d) == _id(body)]
    else:
        if set(target) - {"kind", "name", "labelSelector"}:
            raise ValueError(f"unsupported patch target {target}")
        wanted = dict(pair.split("=", 1) for pair in target.get("labelSelector", "").split(",") if pair)
        matches = [
            d
            for d in docs
            if d["kind"] == target.get("kind", d["kind"])
            and d["metadata"]["name"] == target.get("name", d["metadata"]["name"])
            and wanted.items() <= d["metadata"].get("labels", {}).items()
        ]
    if not matches:
        raise ValueError(f"{directory / patch['path']}: patch matches no resource")
    for d in matches:
        meta = d["metadata"]
        merged = merge(d, {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "metadata")})
        merged["metadata"] = merge(meta, {k: v for k, v in body.get("metadata", {}).items() if k != "name"})
        d.clear()
        d.update(merged)


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge for the shapes used here: maps merge, `null` deletes a key, lists of named maps
    (containers, env, volumes, ports) merge by name, and any other list is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        # kustomize's order: the patch's items (merged into their namesakes), then the untouched ones.
        existing = {item["name"]: item for item in base}
        patched = {item["name"] for item in patch}
        return [
            merge(existing[item["name"]], item) if item["name"] in existing else copy.deepcopy(item) for item in patch
        ] + [copy.deepcopy(item) for item in base if item["name"] not in patched]
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _apply_labels(entry: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    if entry.get("includeSelectors") or set(entry) - {"pairs", "includeSelectors", "includeTemplates"}:
        raise ValueError(f"unsupported labels entry {entry}")
    for d in docs:
        d["metadata"].setdefault("labels", {}).update(entry["pairs"])
        if entry.get("includeTemplates") and d["kind"] in WORKLOADS:
            d["spec"]["template"].setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])


def _apply_image(image: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    if set(image) - {"name", "newName", "newTag"}:
        raise ValueError(f"unsupported image entry {image}")
    for d in docs:
        if d["kind"] not in WORKLOADS:
            continue
        spec = d["spec"]["template"]["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            repo, tag = _split_image(container["image"])
            if repo != image["name"]:
                continue
            container["image"] = f"{image.get('newName', repo)}" + (
                f":{image['newTag']}" if "newTag" in image else (f":{tag}" if tag else "")
            )


def _split_image(ref: str) -> tuple[str, str]:
    last = ref.split("/")[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, ""


def render(directory: Path) -> str:
    """The output of `kustomize build directory`, documents in kustomize's order."""
    return dump(sorted(build(directory), key=_order))


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # shared dicts (probes, security contexts) are written out, never as &anchors


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, explicit_start=True)
