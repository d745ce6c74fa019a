"""Where the GPU ledger's data comes from, with PlatformSpawner run in-process on the emulator.

We test these aspects:
- a GPU spawn is decided from the pod and quota watches, annotates its pod so usage can be
  rebuilt, holds its reservation only while it starts (the pod counts after that), and a stop
  frees the GPU; a CPU spawn makes no request for GPU decisions;
- node-allocatable capacity (``gpu_capacity_from_nodes``) follows the nodes' watch: cordoning
  a GPU node takes its GPUs out;
- a hub that may not read ResourceQuotas (RBAC) still spawns GPU servers, logs what to grant,
  and the apiserver's quota stays the backstop;
- a broken GPU profile is refused when the configuration is loaded, naming the setting;
- ``helm-values/gpu-rbac.yaml`` grants every verb the hub used on quotas and nodes, read-only;
- a pod create that answers slower than KubeSpawner's request timeout is retried, the quota
  refuses the retry because the first attempt's pod holds the GPU, and the spawn still succeeds
  with that pod (not "another workload took the GPU").
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from traitlets import TraitError

from doubles import make_spawner
from helpers import REPO, wait_for
from jhplatform.spawner import PlatformSpawner
from jhplatform.spawner.gpu import check_gpu_profiles, gpu_ledger, reset_gpu_ledger

pytestmark = pytest.mark.contract

NS = "gpu"
GPU = "nvidia.com/gpu"
PRODUCT = "nvidia.com/gpu.product"
A100_GPU = {"resource": GPU, "count": 1, "type": "A100", "type_label": PRODUCT, "type_value": "NVIDIA-A100-SXM4-40GB"}
PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True},
    {"display_name": "A100", "slug": "a100", "gpu": A100_GPU},
]


@pytest.fixture
def gpu_ns(cluster):
    reset_gpu_ledger()
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS}})
    cluster.cluster.create("resourcequotas", NS, {"metadata": {"name": "gpu-quota"}, "spec": {"hard": {f"requests.{GPU}": "2"}}})
    yield cluster
    reset_gpu_ledger()


def spawner(user: str, **extra):
    config = {"PlatformSpawner": {"namespace": NS, "start_timeout": 20, "image": "quay.io/jupyter/scipy-notebook:2025-01-06",
                                  "profile_list": PROFILES, **extra}}
    return make_spawner(PlatformSpawner, user=user, config=config, groups=("lab",))


async def test_gpu_spawn_uses_watches_annotates_and_releases(gpu_ns):
    ada = spawner("ada")
    ada.user_options = {"profile": "a100"}
    await ada.start()
    pod = gpu_ns.cluster.get("pods", NS, "jupyter-ada")
    assert {k: v for k, v in pod["metadata"]["annotations"].items() if k.startswith("jhplatform.io/")} == {
        "jhplatform.io/gpu": "nvidia.com/gpu=1", "jhplatform.io/gpu-type": "A100", "jhplatform.io/gpu-groups": '["lab"]'}
    assert {t["key"] for t in pod["spec"]["tolerations"]} >= {GPU}
    assert pod["spec"]["nodeSelector"] == {PRODUCT: "NVIDIA-A100-SXM4-40GB"}
    ledger = gpu_ledger()
    assert ledger.reservations == {}, "the reservation ends with the spawn; the pod counts now"
    await wait_for(lambda: ledger.user_used("ada") == 1, 5, message="the pod counted from the watch")
    assert ledger.group_used("lab") == 1
    assert ledger.decide("bob", (), GPU, "A100", 1).free == 1

    # A CPU spawn needs no GPU decision and makes no request for one.
    bob = spawner("bob")
    bob.user_options = {"profile": "cpu"}
    mark = len(gpu_ns.requests)
    await bob.start()
    assert not [e for e in list(gpu_ns.requests)[mark:] if e.get("resource") in ("resourcequotas", "nodes")]

    await ada.stop()
    await wait_for(lambda: ledger.user_used("ada") == 0, 5, message="the GPU freed after the stop")
    await wait_for(lambda: ledger.decide("bob", (), GPU, "A100", 1).free == 2, 5, message="the quota's status caught up")
    await bob.stop()


async def test_node_capacity_follows_cordoning(gpu_ns):
    cy = spawner("cy", gpu_capacity_from_nodes=True, gpu_capacity_from_quotas=False)
    profile_list = await cy._gpu_profile_list()
    await cy._gpu_ensure_sources(profile_list)
    ledger = gpu_ledger()
    assert [(c.source, c.free, c.total) for c in ledger.capacities(GPU, "A100")] == [("nodes", 8, 8)]
    node = gpu_ns.cluster.get("nodes", "", "gpu-a100-1")
    gpu_ns.cluster.replace("nodes", None, "gpu-a100-1", {**node, "spec": {**node.get("spec", {}), "unschedulable": True}})
    await wait_for(lambda: ledger.capacities(GPU, "A100")[0].total == 4, 10, message="the cordoned node's GPUs left out")


async def test_without_quota_rbac_spawns_go_on(gpu_ns, caplog):
    gpu_ns.faults.add(verb="list", resource="resourcequotas", status=403, count=None,
                      message='resourcequotas is forbidden: User "system:serviceaccount:jhub:hub" cannot list resource "resourcequotas"')
    caplog.set_level(logging.ERROR)
    dee = spawner("dee")
    dee.user_options = {"profile": "a100"}
    await dee.start()
    assert gpu_ns.cluster.get("pods", NS, "jupyter-dee")["status"]["phase"] == "Running"
    assert any("Cannot watch resourcequotas for GPU capacity" in r.getMessage() and "helm-values/gpu-rbac.yaml" in r.getMessage()
               for r in caplog.records)
    await dee.stop()


def test_broken_gpu_profile_refused_at_load():
    broken = [{"display_name": "GPU", "slug": "gpu", "gpu": {"resource": GPU, "count": 0}}]
    with pytest.raises(TraitError, match=r"PlatformSpawner.profile_list profile 'gpu': gpu.count must be a whole number"):
        make_spawner(PlatformSpawner, config={"PlatformSpawner": {"profile_list": broken}})
    from traitlets.config import Config

    c = Config()
    c.KubeSpawner.profile_list = broken
    assert check_gpu_profiles(c) == ["PlatformSpawner.profile_list profile 'gpu': gpu.count must be a whole number of GPUs, 1 or more, not 0"]


def granted(kind: str) -> set[tuple[str, str]]:
    docs = list(yaml.safe_load_all((REPO / "helm-values" / "gpu-rbac.yaml").read_text()))
    return {(res, verb) for d in docs if d["kind"] == kind for rule in d["rules"] for res in rule["resources"] for verb in rule["verbs"]}


async def test_rbac_manifest_grants_what_the_hub_uses(gpu_ns):
    ada = spawner("ada", gpu_capacity_from_nodes=True)
    ada.user_options = {"profile": "a100"}
    mark = len(gpu_ns.requests)
    await ada.start()
    await ada.stop()
    used = {(e["resource"], e["verb"]) for e in list(gpu_ns.requests)[mark:] if e.get("resource") in ("resourcequotas", "nodes")}
    assert used == {("resourcequotas", "list"), ("resourcequotas", "watch"), ("nodes", "list"), ("nodes", "watch")}
    assert {u for u in used if u[0] == "resourcequotas"} <= granted("Role")
    assert {u for u in used if u[0] == "nodes"} <= granted("ClusterRole")
    assert {v for _, v in granted("Role") | granted("ClusterRole")} == {"get", "list", "watch"}, "read-only"


async def test_quota_403_on_retry_of_a_slow_create_keeps_our_pod(cluster):
    reset_gpu_ledger()
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS}})
    cluster.cluster.create("resourcequotas", NS, {"metadata": {"name": "gpu-quota"}, "spec": {"hard": {f"requests.{GPU}": "1"}}})
    # The first create is stored at once but answered after 4 s; KubeSpawner gives up after 3 s.
    cluster.faults.add(verb="create", resource="pods", respond_after=4.0)
    ada = spawner("ada")
    ada.user_options = {"profile": "a100"}
    try:
        await ada.start()
        creates = [(e["method"], e.get("status")) for e in cluster.requests if e.get("verb") == "create" and e.get("resource") == "pods"]
        assert creates[:2] == [("POST", 201), ("POST", 403)], creates
        pod = cluster.cluster.get("pods", NS, "jupyter-ada")
        assert pod["status"]["phase"] == "Running"
        assert await ada.poll() is None
        await ada.stop()
    finally:
        reset_gpu_ledger()
