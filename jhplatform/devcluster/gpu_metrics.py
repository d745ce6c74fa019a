"""GPU metrics for the emulator's GPU pods, in the DCGM exporter's format.

On a cluster, NVIDIA's DCGM exporter runs on every GPU node and reports each GPU's utilisation
with the namespace and pod that hold it (``DCGM_FI_DEV_GPU_UTIL{gpu, UUID, modelName, Hostname,
namespace, pod, container}``); Prometheus scrapes it and the culler reads it. The emulator has no
GPUs, so :class:`GpuMetrics` stands in for that exporter for ``make demo``:

- each running pod bound to a node that asks for a GPU resource (the platform's one notion of a
  GPU resource, :func:`jhplatform.policy.gpu_ledger.is_gpu_resource`) gets that many devices of its node, numbered
  per node in the order pods were bound, with a stable UUID and the node's
  ``nvidia.com/gpu.product`` label as ``modelName``;
- a device's utilisation is what a GPU would show for the work the pod does: with the process
  kubelet, the CPU share of the pod's process tree (the notebook server and its kernels) since the
  last scrape, 0–100; with the simulated kubelet, whatever :meth:`GpuMetrics.set_utilisation` last
  set for the pod (0 until then), so tests can drive it.

The series names, label names and help texts are the DCGM exporter's; only the values are
derived. Served by :meth:`GpuMetrics.app` at ``/metrics`` (an aiohttp application).
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any, Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from ..policy.gpu_ledger import is_gpu_resource

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import DevCluster

DRIVER_VERSION = "550.90.07"


def pod_gpus(pod: dict) -> int:
    """How many GPU devices a pod holds: the sum of its containers' GPU limits."""
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        limits = (c.get("resources") or {}).get("limits") or {}
        for name, value in limits.items():
            if is_gpu_resource(name):
                try:
                    total += int(str(value))
                except ValueError:
                    continue
    return total


def device_uuid(node: str, index: int) -> str:
    digest = hashlib.sha1(f"{node}/{index}".encode()).hexdigest()
    return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


class _CpuShare:
    """CPU share of a process tree between two readings (0–100, capped)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def read(self, key: str, pids: Iterable[int]) -> float:
        pids = list(pids)
        if not pids:
            self._last.pop(key, None)
            return 0.0
        import psutil  # only where pods run as processes: the demo's and the tests' environments

        cpu = 0.0
        for pid in pids:
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for p in procs:
                try:
                    t = p.cpu_times()
                    cpu += t.user + t.system
                except psutil.Error:
                    continue
        now = time.monotonic()
        last = self._last.get(key)
        self._last[key] = (now, cpu)
        if last is None or now <= last[0]:
            return 0.0
        return max(0.0, min(100.0, 100.0 * (cpu - last[1]) / (now - last[0])))

    def forget(self, keep: set[str]) -> None:
        for key in set(self._last) - keep:
            del self._last[key]


class GpuMetrics:
    """A DCGM-format exporter for the GPU pods of one :class:`DevCluster`."""

    def __init__(self, devcluster: "DevCluster"):
        self.devcluster = devcluster
        self._set: dict[tuple[str, str], float] = {}
        self._cpu = _CpuShare()

    def set_utilisation(self, namespace: str, pod: str, percent: float) -> None:
        """Pin a pod's GPU utilisation (used when its kubelet runs no process)."""
        self._set[(namespace, pod)] = float(percent)

    def devices(self) -> list[dict[str, Any]]:
        """One entry per GPU device held by a running pod, with the labels DCGM gives it."""
        store = self.devcluster.cluster.store
        nodes = {n["metadata"]["name"]: n for n in store.list("nodes")}
        pods = [
            p
            for p in store.list("pods")
            if (p.get("status") or {}).get("phase") == "Running" and (p.get("spec") or {}).get("nodeName")
        ]
        pods.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        next_index: dict[str, int] = {}
        out = []
        for pod in pods:
            n = pod_gpus(pod)
            if not n:
                continue
            node = pod["spec"]["nodeName"]
            labels = (nodes.get(node, {}).get("metadata") or {}).get("labels") or {}
            container = ((pod["spec"].get("containers") or [{}])[0]).get("name", "")
            for _ in range(n):
                index = next_index.get(node, 0)
                next_index[node] = index + 1
                out.append(
                    {
                        "gpu": str(index),
                        "UUID": device_uuid(node, index),
                        "device": f"nvidia{index}",
                        "modelName": labels.get("nvidia.com/gpu.product", "NVIDIA GPU").replace("-", " "),
                        "Hostname": node,
                        "DCGM_FI_DRIVER_VERSION": DRIVER_VERSION,
                        "container": container,
                        "namespace": pod["metadata"]["namespace"],
                        "pod": pod["metadata"]["name"],
                    }
                )
        return out

    def utilisation(self, namespace: str, pod: str) -> float:
        if (namespace, pod) in self._set:
            return self._set[(namespace, pod)]
        kubelet = self.devcluster.kubelet
        pids_for = getattr(kubelet, "pids_for", None)
        if pids_for is None:
            return 0.0
        return self._cpu.read(f"{namespace}/{pod}", pids_for((namespace, pod)))

    def collect(self):
        devices = self.devices()
        util = GaugeMetricFamily("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", labels=list(devices[0]) if devices else [])
        fb = GaugeMetricFamily("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", labels=list(devices[0]) if devices else [])
        per_pod: dict[tuple[str, str], float] = {}
        for d in devices:
            key = (d["namespace"], d["pod"])
            if key not in per_pod:
                per_pod[key] = self.utilisation(*key)
            value = per_pod[key]
            util.add_metric(list(d.values()), round(value))
            fb.add_metric(list(d.values()), 512 + round(value * 100))
        self._cpu.forget({f"{ns}/{name}" for ns, name in per_pod})
        yield util
        yield fb

    def app(self) -> web.Application:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(registry), content_type="text/plain", charset="utf-8")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        return app


__all__ = ["GpuMetrics", "device_uuid", "pod_gpus"]
