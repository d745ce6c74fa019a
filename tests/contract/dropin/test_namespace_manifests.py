"""The manifests admins apply beside the chart: ``helm-values/namespace.yaml`` and the extra RBAC.

The namespace is applied to the Kubernetes API emulator, whose Pod Security, LimitRange and
ResourceQuota admission follow the apiserver's (kube-emulator-spec.md, sections 4.3-4.5).

We test these aspects:
- the namespace enforces Pod Security Standards "restricted" (and audits and warns with it):
  a privileged pod is refused with the apiserver's message, a compliant one is admitted;
- the LimitRange gives a container that sets no resources its default requests and limits,
  so the quota's ``limits.cpu``/``limits.memory`` do not refuse it, and refuses a container
  above its per-container maximum;
- the ResourceQuota counts GPUs (``requests.nvidia.com/gpu``, what the hub's GPU ledger reads);
- every profile of ``helm-values/values.yaml`` fits under the LimitRange maximum and the
  quota (largest GPU choice included), so no shipped profile is refused by the namespace;
- every manifest in helm-values/ names the same namespace as namespace.yaml, and the RBAC
  binds z2jh's hub ServiceAccount in it.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
import yaml

from helpers import REPO
from jhplatform.policy.quantity import Quantity

HELM_VALUES = REPO / "helm-values"
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def manifests(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((HELM_VALUES / name).read_text()) if d]


def by_kind(name: str, kind: str) -> dict:
    [doc] = [d for d in manifests(name) if d["kind"] == kind]
    return doc


def pod(name: str, resources: dict | None = None, **container_security) -> dict:
    container = {
        "name": "notebook",
        "image": "quay.io/jupyter/scipy-notebook:2024-08-12",
        "securityContext": {**CONTAINER_RESTRICTED, **container_security},
    }
    if resources is not None:
        container["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"securityContext": RESTRICTED, "containers": [container]}}


@pytest.fixture
async def namespace(cluster):
    cluster.apply(manifests("namespace.yaml"))
    name = by_kind("namespace.yaml", "Namespace")["metadata"]["name"]
    # Admission is what these tests look at, so they create pods as the cluster admin.
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {cluster.tokens.admin_token}"}) as session:

        async def create(body: dict) -> tuple[int, dict]:
            url = f"{cluster.url}/api/v1/namespaces/{name}/pods"
            async with session.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}) as resp:
                return resp.status, await resp.json()

        yield create


async def test_namespace_enforces_restricted(namespace):
    labels = by_kind("namespace.yaml", "Namespace")["metadata"]["labels"]
    assert {labels[f"pod-security.kubernetes.io/{mode}"] for mode in ("enforce", "audit", "warn")} == {"restricted"}
    code, body = await namespace(pod("root-notebook", privileged=True))
    assert code == 403
    assert body["message"].startswith('pods "root-notebook" is forbidden: violates PodSecurity "restricted:latest": privileged')
    code, _ = await namespace(pod("notebook", {"limits": {"cpu": "2", "memory": "8G"}}))
    assert code == 201


async def test_container_without_resources_gets_limitrange_defaults(namespace):
    code, body = await namespace(pod("sidecar-like"))
    assert code == 201, body
    default = by_kind("namespace.yaml", "LimitRange")["spec"]["limits"][0]
    assert body["spec"]["containers"][0]["resources"] == {"limits": default["default"], "requests": default["defaultRequest"]}


async def test_container_above_the_maximum_is_refused(namespace):
    code, body = await namespace(pod("huge", {"limits": {"cpu": "32", "memory": "8G"}}))
    assert code == 403
    assert "maximum cpu usage per Container is 16" in body["message"]


def test_quota_counts_gpus_for_the_hub():
    hard = by_kind("namespace.yaml", "ResourceQuota")["spec"]["hard"]
    assert Quantity(hard["requests.nvidia.com/gpu"]) >= Quantity(4)
    assert {"limits.cpu", "limits.memory", "requests.cpu", "requests.memory", "persistentvolumeclaims"} <= hard.keys()


def _profile_resources(profile: dict) -> list[tuple[str, Quantity, Quantity, int]]:
    """(slug, cpu limit, memory limit, GPUs) for the profile and each of its GPU choices."""
    override = profile.get("kubespawner_override") or {}
    cpu, mem = Quantity(str(override["cpu_limit"])), Quantity(str(override["mem_limit"]))
    gpu = profile.get("gpu") or {}
    if "option" in gpu:
        choices = profile["profile_options"][gpu["option"]]["choices"]
        return [(f"{profile['slug']}:{k}", cpu, mem, int(k)) for k in choices]
    return [(profile["slug"], cpu, mem, int(gpu.get("count", 0)))]


def test_every_production_profile_fits_the_namespace():
    values = yaml.safe_load((HELM_VALUES / "values.yaml").read_text())
    limit = by_kind("namespace.yaml", "LimitRange")["spec"]["limits"][0]["max"]
    hard = by_kind("namespace.yaml", "ResourceQuota")["spec"]["hard"]
    rows = [row for profile in values["singleuser"]["profileList"] for row in _profile_resources(profile)]
    assert len(rows) >= 8
    for slug, cpu, mem, gpus in rows:
        assert cpu <= Quantity(limit["cpu"]) and mem <= Quantity(limit["memory"]), slug
        assert gpus <= Quantity(hard["requests.nvidia.com/gpu"]), slug


def test_every_manifest_uses_the_namespace_and_binds_the_hub():
    namespace = by_kind("namespace.yaml", "Namespace")["metadata"]["name"]
    for name in ("namespace.yaml", "gpu-rbac.yaml", "storage-rbac.yaml"):
        for doc in manifests(name):
            if doc["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
                continue
            assert doc["metadata"]["namespace"] == namespace, (name, doc["kind"])
    for name in ("gpu-rbac.yaml", "storage-rbac.yaml"):
        for doc in manifests(name):
            if doc["kind"].endswith("Binding"):
                assert doc["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": namespace}]
