"""The emulator's DCGM-format GPU metrics (``jhplatform.devcluster.gpu_metrics``).

We test these aspects:
- a running GPU pod on the default tainted A100 pool gets one ``DCGM_FI_DEV_GPU_UTIL`` series per
  device it holds, with the DCGM exporter's label names, its namespace and pod, the node as
  ``Hostname`` and the node's product label as ``modelName``; CPU pods and pods not yet Running
  get none; devices are numbered per node and their UUIDs are stable;
- the output parses as Prometheus text exposition (prometheus_client's own parser);
- with the process kubelet, a pod whose process burns CPU reports a high utilisation and an idle
  one reports about 0; ``set_utilisation`` pins a value;
- how many GPUs a pod holds: the platform's notion of a GPU resource, summed over containers (table).
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from helpers import wait_for
from jhplatform.devcluster.gpu_metrics import GpuMetrics, device_uuid, pod_gpus

NS = "default"
GPU_TOLERATION = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def pod(name: str, gpus: int = 0, command: list[str] | None = None) -> dict:
    container = {"name": "notebook", "image": "python:3", "resources": {}}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"nvidia.com/gpu": str(gpus)}}
    if command:
        container["command"] = command
    spec = {"containers": [container], "restartPolicy": "Never"}
    if gpus:
        spec["tolerations"] = GPU_TOLERATION
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def scrape(app: web.Application) -> dict[str, list]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 200
                text = await r.text()
    finally:
        await runner.cleanup()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def running(cluster, name: str) -> bool:
    p = cluster.cluster.store.find("pods", NS, name)
    return bool(p and (p.get("status") or {}).get("phase") == "Running")


async def test_series_per_device_with_dcgm_labels(cluster):
    metrics = GpuMetrics(cluster)
    cluster.cluster.create("pods", NS, pod("two-gpus", gpus=2))
    cluster.cluster.create("pods", NS, pod("one-gpu", gpus=1))
    cluster.cluster.create("pods", NS, pod("cpu-only"))
    for name in ("two-gpus", "one-gpu", "cpu-only"):
        await wait_for(lambda: running(cluster, name), message=f"{name} Running")
    metrics.set_utilisation(NS, "two-gpus", 87)

    families = await scrape(metrics.app())
    util = families["DCGM_FI_DEV_GPU_UTIL"]
    assert sorted((s.labels["pod"], s.value) for s in util) == [("one-gpu", 0.0), ("two-gpus", 87.0), ("two-gpus", 87.0)]
    labels = util[0].labels
    assert set(labels) == {"gpu", "UUID", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION", "container", "namespace", "pod"}
    assert labels["modelName"] == "NVIDIA A100 SXM4 40GB"
    assert labels["namespace"] == NS and labels["container"] == "notebook"
    by_node: dict[str, list[str]] = {}
    for s in util:
        by_node.setdefault(s.labels["Hostname"], []).append(s.labels["gpu"])
        assert s.labels["UUID"] == device_uuid(s.labels["Hostname"], int(s.labels["gpu"]))
    for indices in by_node.values():
        assert sorted(indices) == [str(i) for i in range(len(indices))]
    assert len(families["DCGM_FI_DEV_FB_USED"]) == 3


async def test_no_series_without_gpu_pods(cluster):
    cluster.cluster.create("pods", NS, pod("cpu-only"))
    await wait_for(lambda: running(cluster, "cpu-only"), message="cpu-only Running")
    families = await scrape(GpuMetrics(cluster).app())
    assert families["DCGM_FI_DEV_GPU_UTIL"] == []


async def test_process_cpu_share_is_the_utilisation(process_cluster):
    import sys

    busy = [sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<30: pass"]
    idle = [sys.executable, "-c", "import time; time.sleep(30)"]
    process_cluster.cluster.create("pods", NS, pod("busy", gpus=1, command=busy))
    process_cluster.cluster.create("pods", NS, pod("idle", gpus=1, command=idle))
    for name in ("busy", "idle"):
        await wait_for(lambda: running(process_cluster, name), message=f"{name} Running")
    metrics = GpuMetrics(process_cluster)
    app = metrics.app()
    await scrape(app)  # the first reading sets the baseline
    await asyncio.sleep(1.0)
    values = {s.labels["pod"]: s.value for s in (await scrape(app))["DCGM_FI_DEV_GPU_UTIL"]}
    assert values["busy"] >= 30, values
    assert values["idle"] <= 5, values


def limits(**resources) -> dict:
    return {"spec": {"containers": [{"name": "c", "resources": {"limits": resources}}]}}


@pytest.mark.parametrize(
    "pod, gpus",
    [
        (limits(**{"nvidia.com/gpu": "2"}), 2),
        (limits(**{"amd.com/gpu": 1}), 1),
        (limits(**{"nvidia.com/mig-1g.5gb": "3"}), 3),
        (limits(**{"nvidia.com/gpu.shared": "1"}), 0),
        (limits(cpu="2", memory="4Gi"), 0),
        ({"spec": {"containers": [{"name": "a", "resources": {"limits": {"nvidia.com/gpu": "1"}}},
                                  {"name": "b", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}, 2),
    ],
    ids=["nvidia", "amd", "mig", "prefix-of-another-name", "cpu-only", "two-containers"],
)
def test_pod_gpus(pod, gpus):
    assert pod_gpus(pod) == gpus
