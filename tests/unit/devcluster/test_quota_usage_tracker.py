"""The emulator's quota controller keeps usage incrementally and agrees with a full recompute.

We test these aspects:
- after every write of a random sequence (pods with CPU, memory and GPU requests, terminating
  and best-effort pods, phase changes to Succeeded, graceful deletion, deletion; claims with and
  without a storage class and grown; NodePort and LoadBalancer services; secrets and configmaps;
  quotas created, with scopes, with their spec changed, deleted), every quota's ``status`` equals
  :func:`quota.recompute` over all the objects of its namespace, which is the controller's
  definition of usage — including the writes admission refuses;
- a write in one namespace never touches another namespace's quota;
- after :meth:`Cluster.reset` a quota created again starts from nothing.
"""

from __future__ import annotations

import random

import pytest

from jhplatform.devcluster import quota
from jhplatform.devcluster.cluster import QUOTA_RESOURCES, Cluster
from jhplatform.devcluster.errors import ApiError

NAMESPACES = ("team-a", "team-b")
HARDS = [
    {"requests.nvidia.com/gpu": "4", "pods": "12"},
    {"requests.cpu": "6", "requests.memory": "24Gi", "limits.cpu": "12"},
    {"count/pods": "20", "persistentvolumeclaims": "6", "requests.storage": "50Gi"},
    {"services.nodeports": "2", "services.loadbalancers": "1", "count/secrets": "5", "configmaps": "4"},
    {"fast.storageclass.storage.k8s.io/requests.storage": "20Gi", "count/services": "4"},
]
SCOPES = [None, ["NotTerminating"], ["Terminating"], ["BestEffort"], ["NotBestEffort"]]


def make_pod(rng: random.Random, name: str) -> dict:
    container = {"name": "notebook", "image": "python:3"}
    if rng.random() < 0.8:
        requests = {"cpu": rng.choice(["100m", "500m", "1", "2"]), "memory": rng.choice(["256Mi", "1Gi", "4Gi"])}
        limits = {"cpu": rng.choice(["1", "2", "4"]), "memory": requests["memory"]}
        if rng.random() < 0.4:
            requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(rng.choice([1, 2]))
        container["resources"] = {"requests": requests, "limits": limits}
    spec = {"containers": [container]}
    if rng.random() < 0.3:
        spec["activeDeadlineSeconds"] = 3600
    return {"metadata": {"name": name}, "spec": spec}


def make_claim(rng: random.Random, name: str) -> dict:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": rng.choice(["1Gi", "5Gi", "10Gi"])}}}
    if rng.random() < 0.5:
        spec["storageClassName"] = rng.choice(["fast", "slow"])
    return {"metadata": {"name": name}, "spec": spec}


def make_service(rng: random.Random, name: str) -> dict:
    kind = rng.choice(["ClusterIP", "NodePort", "LoadBalancer"])
    return {"metadata": {"name": name}, "spec": {"type": kind, "ports": [{"port": 80, "targetPort": 8888}], "selector": {"a": "b"}}}


def make_quota(rng: random.Random, name: str) -> dict:
    spec = {"hard": dict(rng.choice(HARDS))}
    scopes = rng.choice(SCOPES)
    if scopes:
        spec["scopes"] = scopes
        spec["hard"] = {k: v for k, v in spec["hard"].items() if k in ("pods", "count/pods", "requests.cpu", "requests.memory", "limits.cpu", "requests.nvidia.com/gpu")} or {"pods": "10"}
    return {"metadata": {"name": name}, "spec": spec}


def check(cluster: Cluster) -> int:
    checked = 0
    for ns in NAMESPACES:
        objects = {r: cluster.store.list(r, ns) for r in QUOTA_RESOURCES}
        for q in objects["resourcequotas"]:
            assert q.get("status") == quota.recompute(q, objects), q["metadata"]["name"]
            checked += 1
    return checked


def write(cluster: Cluster, rng: random.Random, step: int) -> None:
    ns = rng.choice(NAMESPACES)
    existing = {r: [o["metadata"]["name"] for o in cluster.store.list(r, ns)] for r in QUOTA_RESOURCES}
    op = rng.random()
    if op < 0.30:
        cluster.create("pods", ns, make_pod(rng, f"pod-{step}"))
    elif op < 0.40 and existing["pods"]:
        p = cluster.store.get("pods", ns, rng.choice(existing["pods"]))
        new_phase = rng.choice(["Running", "Succeeded", "Failed"])
        cluster.store.update("pods", {**p, "status": {**(p.get("status") or {}), "phase": new_phase}})
    elif op < 0.50 and existing["pods"]:
        cluster.delete("pods", ns, rng.choice(existing["pods"]), grace_period=rng.choice([0, 30]))
    elif op < 0.60:
        cluster.create("persistentvolumeclaims", ns, make_claim(rng, f"claim-{step}"))
    elif op < 0.65 and existing["persistentvolumeclaims"]:
        cluster.delete("persistentvolumeclaims", ns, rng.choice(existing["persistentvolumeclaims"]))
    elif op < 0.72:
        cluster.create("services", ns, make_service(rng, f"svc-{step}"))
    elif op < 0.76 and existing["services"]:
        cluster.delete("services", ns, rng.choice(existing["services"]))
    elif op < 0.82:
        resource = rng.choice(["secrets", "configmaps"])
        cluster.create(resource, ns, {"metadata": {"name": f"{resource[:-1]}-{step}"}, "data": {}})
    elif op < 0.90:
        cluster.create("resourcequotas", ns, make_quota(rng, f"quota-{step}"))
    elif op < 0.95 and existing["resourcequotas"]:
        q = cluster.store.get("resourcequotas", ns, rng.choice(existing["resourcequotas"]))
        cluster.store.update("resourcequotas", {**q, "spec": make_quota(rng, "x")["spec"]})
    elif existing["resourcequotas"]:
        cluster.delete("resourcequotas", ns, rng.choice(existing["resourcequotas"]))


@pytest.mark.parametrize("seed", range(4))
def test_incremental_usage_equals_full_recompute(seed):
    rng = random.Random(seed)
    cluster = Cluster()
    for ns in NAMESPACES:
        cluster.create("namespaces", None, {"metadata": {"name": ns}})
        cluster.create("resourcequotas", ns, make_quota(rng, "initial"))
    refused = checked = 0
    for step in range(250):
        try:
            write(cluster, rng, step)
        except ApiError:
            refused += 1
        checked += check(cluster)
    # The sequence must exercise both paths: admitted writes and refusals.
    assert refused > 0 and checked > 250


def test_other_namespace_quota_untouched():
    cluster = Cluster()
    for ns in NAMESPACES:
        cluster.create("namespaces", None, {"metadata": {"name": ns}})
        cluster.create("resourcequotas", ns, {"metadata": {"name": "gpus"}, "spec": {"hard": {"requests.nvidia.com/gpu": "4"}}})
    before = cluster.store.get("resourcequotas", "team-b", "gpus")
    pod = make_pod(random.Random(1), "p")
    pod["spec"]["containers"][0]["resources"] = {"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}
    cluster.create("pods", "team-a", pod)
    assert cluster.store.get("resourcequotas", "team-a", "gpus")["status"]["used"] == {"requests.nvidia.com/gpu": "2"}
    assert cluster.store.get("resourcequotas", "team-b", "gpus") == before


async def test_reset_forgets_usage():
    cluster = Cluster()
    cluster.create("namespaces", None, {"metadata": {"name": "team-a"}})
    cluster.create("resourcequotas", "team-a", {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "5"}}})
    cluster.create("pods", "team-a", make_pod(random.Random(2), "p"))
    assert cluster.store.get("resourcequotas", "team-a", "pods")["status"]["used"] == {"pods": "1"}
    await cluster.reset()
    cluster.create("namespaces", None, {"metadata": {"name": "team-a"}})
    cluster.create("resourcequotas", "team-a", {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "5"}}})
    assert cluster.store.get("resourcequotas", "team-a", "pods")["status"]["used"] == {"pods": "0"}
