"""Shared set-up of the storm tests (test_fault_storm.py, test_hub_restart.py).

A real JupyterHub with PlatformSpawner (as jhub:hub, tests/hubrbac.py) on the session emulator
(simulated kubelet), notebook servers answered by the loopback stub: the GPU hub of
tests/gpuhub.py (its profiles, config and metrics are imported from there), in an ``enforce=restricted`` namespace with an 8-GPU ResourceQuota, home volumes on and a
Service per server (``services_enabled``), under z2jh's hub settings where they matter
(``slow_spawn_timeout: 0``, z2jh-hub-loader.md step 3: a REST spawn answers 202 and the outcome is
the progress stream's last event; ``startTimeout: 300``, "Other z2jh defaults"). Failures are not
counted toward ``consecutive_failure_limit`` (0), so a storm of faults cannot stop the hub.
"""

from __future__ import annotations

import json
from collections import deque

import pytest

from gpuhub import GPU, NS, PROFILES, hub_config, metrics
from hubrbac import HUB_NAMESPACE, HUB_SERVICE_ACCOUNT
from hubstack import HubStack

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}
QUOTA_GPUS = 8

# The GPU hub's A100 profiles, and a CPU profile that asks the scheduler for little, so that the
# two 8-CPU nodes fit every CPU server of a full-size storm (capacity is not what is tested here).
STORM_PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "description": "Up to 2 CPUs",
     "kubespawner_override": {"cpu_limit": 2, "cpu_guarantee": 0.05}},
] + [p for p in PROFILES if p["slug"] in ("a100", "a100-multi")]

HOME_VOLUMES = [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
HOME_MOUNTS = [{"name": "home", "mountPath": "/home/jovyan"}]

STORM_CONFIG = f"""
c.KubeSpawner.profile_list = {STORM_PROFILES!r}
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = "10Gi"
c.KubeSpawner.volumes = {HOME_VOLUMES!r}
c.KubeSpawner.volume_mounts = {HOME_MOUNTS!r}
c.KubeSpawner.services_enabled = True
c.Spawner.consecutive_failure_limit = 0
c.KubeSpawner.start_timeout = 300  # z2jh's singleuser.startTimeout
"""


def storm_namespace(cluster) -> None:
    """The restricted namespace with the 8-GPU quota."""
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS, "labels": RESTRICTED}})
    cluster.cluster.create("resourcequotas", NS, {"metadata": {"name": "gpu-quota"},
                                                  "spec": {"hard": {f"requests.{GPU}": str(QUOTA_GPUS)}}})


class ClaimLog:
    """Every PVC the store ever added or deleted in the namespace (a store hook: nothing is missed,
    however long the run)."""

    def __init__(self, cluster):
        self.created: set[str] = set()
        self.deleted: list[str] = []
        self._store = cluster.cluster.store
        self._store.hooks.append(self)

    def __call__(self, change) -> None:
        if change.resource != "persistentvolumeclaims" or change.obj["metadata"].get("namespace") != NS:
            return
        if change.type == "ADDED":
            self.created.add(change.obj["metadata"]["name"])
        elif change.type == "DELETED":
            self.deleted.append(change.obj["metadata"]["name"])

    def close(self) -> None:
        if self in self._store.hooks:
            self._store.hooks.remove(self)


@pytest.fixture
async def storm(cluster, tmp_path, notebook_stub, chp_path):
    """``start(extra="")`` starts (or restarts on the same database) the storm hub; the request
    log is made long enough for a full-size run and restored afterwards."""
    storm_namespace(cluster)
    claims = ClaimLog(cluster)
    saved = cluster.requests
    cluster.requests = deque(maxlen=2_000_000)
    kubeconfig = cluster.write_serviceaccount_kubeconfig(tmp_path / "kubeconfig", HUB_NAMESPACE, HUB_SERVICE_ACCOUNT)
    hubs: list[HubStack] = []

    class Storm:
        def __init__(self):
            self.claims = claims
            self.notebook_port = notebook_stub

        async def start(self, extra: str = "", hub: HubStack | None = None) -> HubStack:
            hub = hub or HubStack(tmp_path, kubeconfig, hub_config(notebook_stub, STORM_CONFIG + extra), spawner_class="jhplatform")
            await hub.start()
            if hub not in hubs:
                hubs.append(hub)
            return hub

    try:
        yield Storm()
    finally:
        cluster.faults.clear()
        for hub in hubs:
            await hub.stop()
        claims.close()
        cluster.requests = saved


def pods(cluster) -> list[dict]:
    return cluster.cluster.store.list("pods", NS)


def user_pods(cluster) -> list[dict]:
    return [p for p in pods(cluster) if (p["metadata"].get("labels") or {}).get("component") == "singleuser-server"]


def gpus_of(pod: dict) -> int:
    return sum(int((c.get("resources") or {}).get("limits", {}).get(GPU, 0)) for c in pod["spec"]["containers"])


def gpus_in_pods(cluster) -> int:
    """GPUs asked for by the pods that exist and are not terminating (what the quota counts)."""
    return sum(gpus_of(p) for p in pods(cluster) if not p["metadata"].get("deletionTimestamp"))


def owner(pod: dict) -> tuple[str, str]:
    ann = pod["metadata"].get("annotations") or {}
    return ann.get("hub.jupyter.org/username", ""), ann.get("hub.jupyter.org/servername", "")


async def hub_servers(hub: HubStack) -> dict[str, dict]:
    """{user: default server model} for every user with a server (one paged REST walk)."""
    out, offset = {}, 0
    while True:
        status, page = await hub.request("GET", f"/users?limit=200&offset={offset}")
        assert status == 200, page
        for model in page:
            server = (model.get("servers") or {}).get("")
            if server:
                out[model["name"]] = server
        if len(page) < 200:
            return out
        offset += 200


async def last_event(hub: HubStack, user: str) -> dict:
    """The last event of the user's progress stream (it ends when the spawn is ready or failed)."""
    status, stream = await hub.request("GET", f"/users/{user}/server/progress")
    assert status == 200, stream
    events = [line[len("data: "):] for line in stream.splitlines() if line.startswith("data: ")]
    return json.loads(events[-1]) if events else {}


async def ledger(hub: HubStack) -> tuple[float, float | None]:
    """(GPUs in use, GPUs free) of ``nvidia.com/gpu`` from the hub's metrics: in use summed over
    the GPU types, free the tightest (the quota counts the resource, whatever the type)."""
    m = await metrics(hub)
    in_use = sum(v for k, v in m.items() if k.startswith(f'jhplatform_gpus_in_use{{resource="{GPU}"'))
    free = [v for k, v in m.items() if k.startswith(f'jhplatform_gpus_free{{resource="{GPU}"')]
    return in_use, min(free, default=None)
