"""The hub's RBAC in tests: the hub runs as ServiceAccount ``jhub:hub``, as under z2jh.

Every namespace the emulator gets (the defaults at reset and every namespace a test creates) gets
the chart's Role and RoleBinding for the hub (jhplatform/z2jh/chart/hub-rbac.yaml, from
z2jh-hub-loader.md "The hub's RBAC") and, unless a test asks for the chart's Role alone, the extra
RBAC this project ships in helm-values/ (gpu-rbac.yaml, storage-rbac.yaml), each with its
namespace rewritten to the one created: the admin applies them per namespace the hub spawns in.
The ClusterRole/ClusterRoleBinding for nodes in gpu-rbac.yaml is cluster-wide and is applied once.

Applying happens in a store hook, so it is done before the namespace create returns.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
HUB_NAMESPACE = "jhub"
HUB_SERVICE_ACCOUNT = "hub"
HUB_USER = f"system:serviceaccount:{HUB_NAMESPACE}:{HUB_SERVICE_ACCOUNT}"

CHART_RBAC = REPO / "jhplatform" / "z2jh" / "chart" / "hub-rbac.yaml"
EXTRA_RBAC = {
    "gpu-rbac": REPO / "helm-values" / "gpu-rbac.yaml",
    "storage-rbac": REPO / "helm-values" / "storage-rbac.yaml",
}
RESOURCES = {"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings",
             "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}


def manifests(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def for_namespace(doc: dict, namespace: str) -> dict:
    """A namespaced RBAC manifest moved to ``namespace`` (subjects keep naming jhub:hub)."""
    doc = copy.deepcopy(doc)
    if doc["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
        doc["metadata"]["namespace"] = namespace
    return doc


class HubRbac:
    """Which of the hub's RBAC sets every new namespace gets.

    ``extras`` names the helm-values manifests applied beside the chart's Role; set it to ``()``
    for "the chart's Role alone", or to one name to test one permission.
    """

    def __init__(self):
        self.extras: tuple[str, ...] = tuple(EXTRA_RBAC)
        self._cluster = None

    def install(self, cluster) -> None:
        """Hook into ``cluster`` (a jhplatform.devcluster Cluster) so new namespaces get the RBAC."""
        self._cluster = cluster
        cluster.store.hooks.append(self._on_change)

    def _on_change(self, change) -> None:
        if change.resource == "namespaces" and change.type == "ADDED":
            self.apply_to(change.obj["metadata"]["name"])

    def docs_for(self, namespace: str) -> list[dict]:
        docs = [d for d in manifests(CHART_RBAC) if d["kind"] != "ServiceAccount" or namespace == HUB_NAMESPACE]
        for name in self.extras:
            docs += manifests(EXTRA_RBAC[name])
        return [for_namespace(d, namespace) for d in docs]

    def apply_to(self, namespace: str) -> None:
        store = self._cluster.store
        for doc in self.docs_for(namespace):
            resource = RESOURCES[doc["kind"]]
            ns = doc["metadata"].get("namespace", "") if resource in ("serviceaccounts", "roles", "rolebindings") else ""
            if store.find(resource, ns, doc["metadata"]["name"]) is None:
                self._cluster.create(resource, ns or None, doc)

    def use(self, *extras: str) -> None:
        """The chart's Role plus ``extras`` only, in every namespace now and later: objects of
        the other sets are deleted, as if the admin had not applied them."""
        unknown = set(extras) - set(EXTRA_RBAC)
        assert not unknown, f"unknown RBAC set(s) {unknown}; known: {sorted(EXTRA_RBAC)}"
        self.extras = tuple(extras)
        store = self._cluster.store
        for name, path in EXTRA_RBAC.items():
            if name in extras:
                continue
            for doc in manifests(path):
                resource = RESOURCES[doc["kind"]]
                for obj in list(store.list(resource)):
                    if obj["metadata"]["name"] == doc["metadata"]["name"]:
                        store.remove(resource, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        for ns in store.list("namespaces"):
            self.apply_to(ns["metadata"]["name"])

    def grant_user_namespaces(self) -> None:
        """What ``enable_user_namespaces`` needs beyond the chart's Role, which z2jh does not
        ship: create namespaces, and list/watch pods and events in all namespaces (KubeSpawner's
        reflectors omit the namespace then). A test that turns user namespaces on says so."""
        self._cluster.create("clusterroles", None, {
            "metadata": {"name": "hub-user-namespaces"},
            "rules": [
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "create"]},
                {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["list", "watch"]},
            ],
        })
        self._cluster.create("clusterrolebindings", None, {
            "metadata": {"name": "hub-user-namespaces"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "hub-user-namespaces"},
            "subjects": [{"kind": "ServiceAccount", "name": HUB_SERVICE_ACCOUNT, "namespace": HUB_NAMESPACE}],
        })
