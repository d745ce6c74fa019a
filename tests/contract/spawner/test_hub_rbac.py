"""The hub as z2jh's ``hub`` ServiceAccount: each extra permission, granted and missing.

The emulator enforces RBAC; the hub (PlatformSpawner in-process, through ``KUBECONFIG``) is
``system:serviceaccount:jhub:hub`` with the Role z2jh 4.4.0's chart gives it
(jhplatform/z2jh/chart/hub-rbac.yaml, from the design facts in z2jh-hub-loader.md "The hub's RBAC")
and, unless a test narrows it with ``hub_rbac.use()``, helm-values/gpu-rbac.yaml and
helm-values/storage-rbac.yaml. Test ids name the permission.

We test these aspects:
- with the chart's Role alone, a spawn works end to end (pods, PVCs, events, secrets, services);
- ``get/list/watch resourcequotas`` (gpu-rbac.yaml): missing, a GPU spawn still starts, the hub
  logs one line naming the permission and the manifest, the ledger has no quota capacity and the
  apiserver's quota stays the backstop; granted, the ledger knows the quota and no such line;
- ``get/list/watch nodes`` (gpu-rbac.yaml's ClusterRole, with ``gpu_capacity_from_nodes``):
  missing, the spawn still starts and the line names nodes, the apiserver's refusal and the
  manifest; granted, node capacity is known;
- ``patch persistentvolumeclaims`` (storage-rbac.yaml): missing, a profile asking for a bigger
  home keeps the claim's size, the user is told, and the log line names the permission and the
  manifest; granted, the claim is expanded;
- nothing hangs or counts as a failed spawn: every spawn reaches Running within its timeout.
"""

from __future__ import annotations

import logging

import pytest

from doubles import make_spawner
from helpers import wait_for
from jhplatform.spawner import PlatformSpawner
from jhplatform.spawner.gpu import gpu_ledger, reset_gpu_ledger

pytestmark = pytest.mark.contract

NS = "jhub"
GPU = "nvidia.com/gpu"
A100_GPU = {"resource": GPU, "count": 1, "type": "A100", "type_label": "nvidia.com/gpu.product", "type_value": "NVIDIA-A100-SXM4-40GB"}
PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True},
    {"display_name": "A100", "slug": "a100", "gpu": A100_GPU},
    {"display_name": "Large home", "slug": "large", "kubespawner_override": {"storage_capacity": "50Gi"}},
]
HUB = 'User "system:serviceaccount:jhub:hub"'


@pytest.fixture
def jhub(cluster):
    reset_gpu_ledger()
    yield cluster
    reset_gpu_ledger()


def make_namespace(cluster) -> None:
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS}})
    cluster.cluster.create("resourcequotas", NS, {"metadata": {"name": "gpu-quota"}, "spec": {"hard": {f"requests.{GPU}": "2"}}})


def spawner(user: str, **extra):
    config = {"PlatformSpawner": {"namespace": NS, "start_timeout": 20, "image": "quay.io/jupyter/scipy-notebook:2025-01-06",
                                  "profile_list": PROFILES, **extra}}
    return make_spawner(PlatformSpawner, user=user, config=config, groups=("lab",))


def lines(caplog, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


async def test_chart_role_alone_runs_a_spawn_with_its_own_objects(jhub):
    jhub.hub_rbac.use()
    make_namespace(jhub)
    ada = spawner("ada", storage_pvc_ensure=True, storage_capacity="1Gi", internal_ssl=False, services_enabled=True,
                  gpu_capacity_from_quotas=False)
    ada.user_options = {"profile": "cpu"}
    await ada.start()
    assert jhub.cluster.get("pods", NS, "jupyter-ada")["status"]["phase"] == "Running"
    assert jhub.cluster.get("persistentvolumeclaims", NS, "claim-ada")
    assert jhub.cluster.get("services", NS, "jupyter-ada")
    assert not [r for r in jhub.requests if r.get("status") == 403], "the chart's Role covers every call of a plain spawn"
    await ada.stop()


@pytest.mark.parametrize("granted", [False, True], ids=["missing-resourcequotas-get-list-watch", "granted-resourcequotas-get-list-watch"])
async def test_resourcequota_watch(jhub, caplog, granted):
    jhub.hub_rbac.use("gpu-rbac") if granted else jhub.hub_rbac.use()
    make_namespace(jhub)
    caplog.set_level(logging.INFO)
    dee = spawner("dee")
    dee.user_options = {"profile": "a100"}
    await dee.start()
    assert jhub.cluster.get("pods", NS, "jupyter-dee")["status"]["phase"] == "Running"
    found = lines(caplog, "Cannot watch resourcequotas")
    sources = [c.source for c in gpu_ledger().capacities(GPU, "A100")]
    if granted:
        assert found == []
        assert "quota" in sources
    else:
        assert found == [
            "Cannot watch resourcequotas for GPU capacity (403 Forbidden); GPU decisions go on without them and retry in 60 s. "
            "Grant the hub get/list/watch on resourcequotas (helm-values/gpu-rbac.yaml) or turn off gpu_capacity_from_quotas."
        ]
        # KubeSpawner's own log has the apiserver's words.
        assert any(f'{HUB} cannot list resource "resourcequotas" in API group "" in the namespace "jhub"' in m
                   for m in lines(caplog, "An error occurred when calling Kubernetes API"))
        assert "quota" not in sources
        # The apiserver still enforces the quota: a third GPU (2 in the quota) is refused.
        assert [r for r in jhub.requests if r.get("resource") == "resourcequotas" and r.get("status") == 403]
    await dee.stop()


@pytest.mark.parametrize("granted", [False, True], ids=["missing-nodes-get-list-watch", "granted-nodes-get-list-watch"])
async def test_node_watch(jhub, caplog, granted):
    jhub.hub_rbac.use("gpu-rbac") if granted else jhub.hub_rbac.use()
    make_namespace(jhub)
    caplog.set_level(logging.INFO)
    cy = spawner("cy", gpu_capacity_from_nodes=True, gpu_capacity_from_quotas=False)
    cy.user_options = {"profile": "a100"}
    await cy.start()
    assert jhub.cluster.get("pods", NS, "jupyter-cy")["status"]["phase"] == "Running"
    found = lines(caplog, "Cannot watch nodes")
    capacities = [(c.source, c.total) for c in gpu_ledger().capacities(GPU, "A100")]
    if granted:
        assert found == [] and capacities == [("nodes", 8)]
    else:
        assert found == [
            "Cannot watch nodes for GPU capacity (403: nodes is forbidden: User \"system:serviceaccount:jhub:hub\" cannot list "
            "resource \"nodes\" in API group \"\" at the cluster scope); GPU decisions go on without them and retry in 60 s. "
            "Grant the hub get/list/watch on nodes (helm-values/gpu-rbac.yaml) or turn off gpu_capacity_from_nodes."
        ]
        assert capacities == []
    await cy.stop()


@pytest.mark.parametrize("granted", [False, True], ids=["missing-persistentvolumeclaims-patch", "granted-persistentvolumeclaims-patch"])
async def test_claim_growth(jhub, caplog, granted):
    jhub.hub_rbac.use("storage-rbac") if granted else jhub.hub_rbac.use()
    make_namespace(jhub)
    caplog.set_level(logging.INFO)
    home = dict(storage_pvc_ensure=True, storage_capacity="10Gi", gpu_capacity_from_quotas=False,
                volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}],
                volume_mounts=[{"name": "home", "mountPath": "/home/jovyan"}])
    first = spawner("ada", **home)
    first.user_options = {"profile": "cpu"}
    await first.start()
    await wait_for(lambda: jhub.cluster.get("persistentvolumeclaims", NS, "claim-ada").get("status", {}).get("phase") == "Bound", 5)
    await first.stop()
    state = first.get_state()
    again = spawner("ada", **home)
    again.load_state(state)
    again.user_options = {"profile": "large"}
    await again.start()
    assert jhub.cluster.get("pods", NS, "jupyter-ada")["status"]["phase"] == "Running"
    size = jhub.cluster.get("persistentvolumeclaims", NS, "claim-ada")["spec"]["resources"]["requests"]["storage"]
    if granted:
        assert size == "50Gi"
        assert again.storage_messages == ["Your home volume claim-ada is being expanded from 10Gi to 50Gi. The extra space appears once "
                                          "the storage system has resized it; your files stay where they are."]
    else:
        assert size == "10Gi"
        assert again.storage_messages == ["Your home volume claim-ada stays at 10Gi: this server asks for 50Gi, but it could not be "
                                          "resized. Your files are unchanged; ask your hub admin if you need more space."]
        [line] = lines(caplog, "stays at 10Gi")
        assert line == (
            "ada: home claim jhub/claim-ada stays at 10Gi: resize to 50Gi for profile 'Large home' refused because the hub's "
            "service account may not patch PersistentVolumeClaims (grant 'patch' on persistentvolumeclaims: kubectl apply -n "
            "<namespace> -f helm-values/storage-rbac.yaml; see docs/storage.md) (403: persistentvolumeclaims \"claim-ada\" is "
            f"forbidden: {HUB} cannot patch resource \"persistentvolumeclaims\" in API group \"\" in the namespace \"jhub\")"
        )
    await again.stop()
