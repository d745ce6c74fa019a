"""Unmodified KubeSpawner 7.1.0 against the emulator, through the real kubernetes_asyncio client.

We test these aspects:
- poll -> start -> poll -> stop -> poll in each of: default config with ``storage_pvc_ensure``,
  ``internal_ssl``, a named server, ``enable_user_namespaces``, and a pre-existing pod of the same
  name (the 409 path: delete with grace 0, then create again);
- the requests KubeSpawner makes match the recorded reference sequences (method and path);
- the home PVC and the internal-SSL secret/service: created, kept or garbage-collected as on a
  real cluster;
- a namespace labelled ``enforce=restricted`` refuses KubeSpawner's default pod with HTTP 403 and
  the exact PodSecurity message;
- a ``requests.nvidia.com/gpu: "2"`` quota refuses a third one-GPU pod with the exact
  "exceeded quota" message;
- a GPU pod in a pool without free GPUs stays Pending with a FailedScheduling event.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from kubespawner import KubeSpawner

from doubles import make_spawner
from helpers import TEST_DATA, wait_for

REFERENCE = TEST_DATA / "kubespawner-requests"

PSA_403 = (
    'pods "jupyter-start" is forbidden: violates PodSecurity "restricted:latest": '
    'unrestricted capabilities (container "notebook" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "notebook" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "notebook" must set securityContext.seccompProfile.type to '
    '"RuntimeDefault" or "Localhost")'
)


def fast(config: dict | None = None) -> dict:
    """KubeSpawner settings that keep contract tests quick without changing behaviour."""
    base = {"start_timeout": 30, "http_timeout": 10, "image": "quay.io/jupyterhub/singleuser:5.5"}
    base.update(config or {})
    return {"KubeSpawner": base}


def api_requests(cluster, since: int = 0) -> list[tuple[str, str]]:
    return [(r["method"], r["path_qs"].split("?")[0]) for r in list(cluster.requests)[since:]]


async def lifecycle(spawner) -> str:
    """poll -> start -> poll -> stop -> poll, asserting KubeSpawner's view at each step."""
    assert await spawner.poll() == 1, "no pod yet: poll must say 'not running'"
    url = await spawner.start()
    assert url.startswith("http"), url
    assert await spawner.poll() is None, "a running pod polls as None"
    await spawner.stop()
    assert await spawner.poll() == 1
    return url


async def test_default_config_with_pvc(cluster):
    spawner = make_spawner(KubeSpawner, config=fast({"storage_pvc_ensure": True, "storage_capacity": "1Gi"}))
    url = await lifecycle(spawner)
    assert url.endswith(":8888")
    pvc = cluster.cluster.get("persistentvolumeclaims", "default", "claim-start")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert pvc["metadata"]["labels"]["component"] == "singleuser-storage"
    assert cluster.cluster.store.find("pods", "default", "jupyter-start") is None
    seen = api_requests(cluster)
    assert ("POST", "/api/v1/namespaces/default/persistentvolumeclaims") in seen
    assert ("POST", "/api/v1/namespaces/default/pods") in seen
    assert ("DELETE", "/api/v1/namespaces/default/pods/jupyter-start") in seen
    # Every request KubeSpawner made succeeded (watches included).
    assert all(r.get("status", 200) < 400 for r in cluster.requests), list(cluster.requests)


async def test_request_sequence_matches_reference(cluster):
    """The same calls, in the same kinds, as the recording made against a real apiserver."""
    reference = json.loads((REFERENCE / "log-basic.json").read_text())

    def shape(method: str, path_qs: str) -> tuple[str, str, bool]:
        path, _, query = path_qs.partition("?")
        path = path.replace("/namespaces/kubespawner-test/", "/namespaces/NS/").replace("/namespaces/default/", "/namespaces/NS/")
        return (method, path, "watch=True" in query)

    spawner = make_spawner(KubeSpawner, config=fast({"storage_pvc_ensure": True, "storage_capacity": "1Gi"}))
    await spawner.start()
    await spawner.stop()
    ours = {shape(r["method"], r["path_qs"]) for r in cluster.requests}
    theirs = {shape(r["method"], r["path_qs"]) for r in reference}
    assert theirs <= ours, f"missing: {theirs - ours}"


async def test_internal_ssl(cluster, tmp_path):
    from certipy import Certipy

    certipy = Certipy(store_dir=str(tmp_path))
    hub_ca = certipy.create_ca("hub-ca")
    notebooks_ca = certipy.create_ca("notebooks-ca")
    pair = certipy.create_signed_pair("user-start", "notebooks-ca", alt_names=["DNS:localhost"])
    spawner = make_spawner(KubeSpawner, config=fast())
    spawner.internal_ssl = True
    spawner.internal_trust_bundles = {"hub-ca": hub_ca["files"]["cert"]}
    spawner.cert_paths = {
        "keyfile": pair["files"]["key"],
        "certfile": pair["files"]["cert"],
        "cafile": notebooks_ca["files"]["cert"],
    }

    assert await spawner.poll() == 1
    url = await spawner.start()
    assert url.startswith("https://jupyter-start.default.svc"), url
    secret = cluster.cluster.get("secrets", "default", "jupyter-start")
    pod = cluster.cluster.get("pods", "default", "jupyter-start")
    assert secret["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]
    assert set(secret["data"]) == {"ssl.key", "ssl.crt", "notebooks-ca_trust.crt"}
    assert cluster.cluster.get("services", "default", "jupyter-start")["spec"]["clusterIP"]
    assert await spawner.poll() is None
    await spawner.stop()
    assert await spawner.poll() == 1
    # The garbage collector removes what the pod owned.
    store = cluster.cluster.store
    await wait_for(lambda: store.find("secrets", "default", "jupyter-start") is None, 5, message="secret GC")
    await wait_for(lambda: store.find("services", "default", "jupyter-start") is None, 5, message="service GC")


async def test_named_server(cluster):
    spawner = make_spawner(KubeSpawner, server_name="srv1", config=fast({"storage_pvc_ensure": True, "storage_capacity": "1Gi"}))
    await lifecycle(spawner)
    names = [r["path_qs"] for r in cluster.requests if r["method"] == "POST"]
    assert "/api/v1/namespaces/default/pods" in names
    created = [r for r in cluster.requests if r["method"] == "DELETE"]
    assert created[-1]["path_qs"].startswith("/api/v1/namespaces/default/pods/jupyter-start--srv1?")


async def test_user_namespaces(cluster):
    cluster.hub_rbac.grant_user_namespaces()
    spawner = make_spawner(
        KubeSpawner, config=fast({"enable_user_namespaces": True, "storage_pvc_ensure": True, "storage_capacity": "1Gi"})
    )
    assert spawner.namespace == "user-start"
    await lifecycle(spawner)
    ns = cluster.cluster.get("namespaces", None, "user-start")
    assert ns["status"]["phase"] == "Active"
    assert cluster.cluster.get("persistentvolumeclaims", "user-start", "claim-start")
    paths = [r["path_qs"] for r in cluster.requests]
    assert any(p.startswith("/api/v1/pods?") for p in paths), "user namespaces list pods across namespaces"
    assert ("POST", "/api/v1/namespaces") in api_requests(cluster)


async def test_preexisting_pod_conflict(cluster):
    squatter = {
        "metadata": {"name": "jupyter-start", "labels": {"component": "singleuser-server"}},
        "spec": {"containers": [{"name": "notebook", "image": "busybox:1.36"}]},
    }
    cluster.cluster.create("pods", "default", squatter)
    await wait_for(lambda: (cluster.cluster.get("pods", "default", "jupyter-start").get("status") or {}).get("phase") == "Running", 5)
    old_uid = cluster.cluster.get("pods", "default", "jupyter-start")["metadata"]["uid"]
    before = len(cluster.requests)
    spawner = make_spawner(KubeSpawner, config=fast())
    await spawner.start()
    calls = [(r["method"], r["path_qs"], r.get("status")) for r in list(cluster.requests)[before:] if r["method"] != "GET"]
    assert calls[0] == ("POST", "/api/v1/namespaces/default/pods", 409)
    assert calls[1] == ("DELETE", "/api/v1/namespaces/default/pods/jupyter-start?gracePeriodSeconds=0", 200)
    assert calls[2] == ("POST", "/api/v1/namespaces/default/pods", 201)
    pod = cluster.cluster.get("pods", "default", "jupyter-start")
    assert pod["metadata"]["uid"] != old_uid
    assert pod["spec"]["containers"][0]["image"] == "quay.io/jupyterhub/singleuser:5.5"
    assert await spawner.poll() is None
    await spawner.stop()
    assert await spawner.poll() == 1


async def test_restricted_namespace_refuses_default_pod(cluster):
    cluster.cluster.create(
        "namespaces",
        None,
        {"metadata": {"name": "restricted", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
    )
    spawner = make_spawner(KubeSpawner, config=fast({"namespace": "restricted", "start_timeout": 5}))
    with pytest.raises(ApiException) as info:
        await spawner.start()
    assert info.value.status == 403
    body = json.loads(info.value.body)
    assert body["message"] == PSA_403
    assert body["reason"] == "Forbidden" and body["code"] == 403
    assert body["details"] == {"name": "jupyter-start", "kind": "pods"}
    assert cluster.cluster.store.find("pods", "restricted", "jupyter-start") is None


async def test_gpu_quota_refuses_third_pod(cluster):
    cluster.cluster.create("namespaces", None, {"metadata": {"name": "gpu"}})
    cluster.cluster.create(
        "resourcequotas", "gpu", {"metadata": {"name": "gpu-quota"}, "spec": {"hard": {"requests.nvidia.com/gpu": "2"}}}
    )
    gpu = {
        "namespace": "gpu",
        "extra_resource_limits": {"nvidia.com/gpu": "1"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    first = make_spawner(KubeSpawner, user="ada", config=fast(gpu))
    second = make_spawner(KubeSpawner, user="bob", config=fast(gpu))
    await first.start()
    await second.start()
    third = make_spawner(KubeSpawner, user="cy", config=fast({**gpu, "start_timeout": 5}))
    with pytest.raises(ApiException) as info:
        await third.start()
    assert info.value.status == 403
    assert json.loads(info.value.body)["message"] == (
        'pods "jupyter-cy" is forbidden: exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=1, '
        "used: requests.nvidia.com/gpu=2, limited: requests.nvidia.com/gpu=2"
    )
    quota = cluster.cluster.get("resourcequotas", "gpu", "gpu-quota")
    assert quota["status"]["used"] == {"requests.nvidia.com/gpu": "2"}
    await first.stop()
    quota = await wait_for(
        lambda: cluster.cluster.get("resourcequotas", "gpu", "gpu-quota")["status"]["used"] == {"requests.nvidia.com/gpu": "1"}, 5
    )
    await second.stop()


async def test_gpu_pod_pending_when_pool_is_full(cluster):
    # The default pool has 8 GPUs on two nodes; ask for more than any node has.
    spawner = make_spawner(
        KubeSpawner,
        config=fast(
            {
                "start_timeout": 3,
                "extra_resource_limits": {"nvidia.com/gpu": "5"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            }
        ),
    )
    with pytest.raises(TimeoutError):
        await spawner.start()
    events = [e for e in cluster.cluster.list("events", "default") if e["reason"] == "FailedScheduling"]
    assert events, "the scheduler reports why the pod cannot be placed"
    assert events[-1]["type"] == "Warning"
    assert events[-1]["message"].startswith("0/4 nodes are available: ")
    assert events[-1]["message"] == (
        "0/4 nodes are available: 4 Insufficient nvidia.com/gpu. "
        "preemption: 0/4 nodes are available: 4 No preemption victims found for incoming pod."
    )
    pod = cluster.cluster.get("pods", "default", "jupyter-start")
    assert pod["status"]["phase"] == "Pending"
    assert "nodeName" not in pod["spec"]
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"][0]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert scheduled["message"] == events[-1]["message"]
    # The hub stops a server whose start failed; that removes the Pending pod at once.
    await spawner.stop()
    assert cluster.cluster.store.find("pods", "default", "jupyter-start") is None
