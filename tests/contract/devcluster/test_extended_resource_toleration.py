"""The emulator's optional ExtendedResourceToleration admission plugin.

We test these aspects:
- the pure admission: a toleration per extended resource asked for in any container or init
  container (requests or limits), none for native resources or ``kubernetes.io`` names, no
  duplicate of an existing identical toleration, the input never modified;
- off by default: a GPU pod without a toleration stays Pending on the tainted GPU pool with the
  scheduler's untolerated-taint message;
- on (``DevCluster(extended_resource_toleration=True)``, the CLI's
  ``--extended-resource-toleration``): the same pod gets the toleration at create and is
  scheduled on a GPU node; a CPU pod gets nothing.
"""

from __future__ import annotations

import copy

import pytest

from helpers import wait_for
from jhplatform.cli import _devcluster_parser
from jhplatform.devcluster.cluster import Cluster
from jhplatform.devcluster.extended_resource_toleration import admit, is_extended_resource
from jhplatform.devcluster.nodes import parse_nodes
from jhplatform.devcluster.runtime import DevCluster
from jhplatform.devcluster.scheduler import Scheduler

GPU = "nvidia.com/gpu"
TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
POOL = "cpu:cpu=8,memory=32Gi;gpu:cpu=16,memory=64Gi,nvidia.com/gpu=4,taint:nvidia.com/gpu=present:NoSchedule"


def pod(name="p", limits=None, requests=None, init=None, tolerations=None):
    c = {"name": "notebook", "image": "i", "resources": {k: v for k, v in (("limits", limits), ("requests", requests)) if v}}
    spec = {"containers": [c]}
    if init:
        spec["initContainers"] = [{"name": "init", "image": "i", "resources": {"limits": init}}]
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {"metadata": {"name": name}, "spec": spec}


ADMIT = [
    ("gpu-limit", pod(limits={GPU: "1"}), [TOLERATION]),
    ("gpu-request", pod(requests={GPU: "1"}), [TOLERATION]),
    ("init-container", pod(init={"amd.com/gpu": "1"}), [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]),
    ("several-sorted", pod(limits={"nvidia.com/mig-1g.10gb": "1", "example.com/fpga": "1"}),
     [{"key": "example.com/fpga", "operator": "Exists", "effect": "NoSchedule"},
      {"key": "nvidia.com/mig-1g.10gb", "operator": "Exists", "effect": "NoSchedule"}]),
    ("appended", pod(limits={GPU: "1"}, tolerations=[{"key": "a", "operator": "Exists"}]), [{"key": "a", "operator": "Exists"}, TOLERATION]),
    ("already-there", pod(limits={GPU: "1"}, tolerations=[TOLERATION]), [TOLERATION]),
    ("cpu-only", pod(limits={"cpu": "1", "memory": "1Gi", "hugepages-2Mi": "2Mi"}), None),
    ("kubernetes-io", pod(limits={"example.kubernetes.io/thing": "1", "kubernetes.io/x": "1"}), None),
]


@pytest.mark.parametrize("given, tolerations", [a[1:] for a in ADMIT], ids=[a[0] for a in ADMIT])
def test_admit(given, tolerations):
    before = copy.deepcopy(given)
    out = admit(given)
    assert given == before, "the input is not modified"
    assert out["spec"].get("tolerations") == tolerations


def test_is_extended_resource():
    assert [is_extended_resource(n) for n in (GPU, "cpu", "requests.nvidia.com/gpu", "kubernetes.io/x", "a.kubernetes.io/x")] == [
        True, False, False, False, False]


async def _cluster(plugin: bool | None) -> Cluster:
    cluster = Cluster()
    if plugin is not None:
        cluster.extended_resource_toleration = plugin
    for node in parse_nodes(POOL):
        cluster.create("nodes", None, node)
    cluster.controllers.append(Scheduler(cluster))
    await cluster.start()
    cluster.create("namespaces", None, {"metadata": {"name": "ns"}})
    return cluster


def _scheduled(cluster, name):
    p = cluster.get("pods", "ns", name)
    cond = next((c for c in (p.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"), None)
    return cond and (cond["status"], p["spec"].get("nodeName") or cond.get("message"))


async def test_off_by_default_the_gpu_pod_stays_pending():
    cluster = await _cluster(None)
    try:
        created = cluster.create("pods", "ns", pod("gpu", limits={GPU: "1"}))
        assert not any(t.get("key") == GPU for t in created["spec"].get("tolerations") or [])
        status, message = await wait_for(lambda: _scheduled(cluster, "gpu"), 5)
        assert status == "False"
        assert "1 node(s) had untolerated taint {nvidia.com/gpu: present}" in message
    finally:
        await cluster.stop()


async def test_on_the_gpu_pod_tolerates_and_is_scheduled():
    cluster = await _cluster(True)
    try:
        created = cluster.create("pods", "ns", pod("gpu", limits={GPU: "1"}))
        assert TOLERATION in created["spec"]["tolerations"]
        assert await wait_for(lambda: _scheduled(cluster, "gpu"), 5) == ("True", "gpu")
        cpu = cluster.create("pods", "ns", pod("cpu", limits={"cpu": "1"}))
        assert not any(t.get("key") == GPU for t in cpu["spec"].get("tolerations") or [])
    finally:
        await cluster.stop()


def test_devcluster_and_cli_flag(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    _devcluster_parser(parser.add_subparsers())
    assert parser.parse_args(["devcluster", "--kubeconfig", "k"]).extended_resource_toleration is False
    assert parser.parse_args(["devcluster", "--kubeconfig", "k", "--extended-resource-toleration"]).extended_resource_toleration is True
    assert DevCluster(state_dir=tmp_path, extended_resource_toleration=True).cluster.extended_resource_toleration is True
    assert DevCluster(state_dir=tmp_path).cluster.extended_resource_toleration is False
