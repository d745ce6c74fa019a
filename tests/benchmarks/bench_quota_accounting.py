"""Pod create latency in a namespace under a ResourceQuota, at 50, 500 and 5,000 pods.

Run from the repository root::

    .venv/bin/python tests/benchmarks/bench_quota_accounting.py           # 50 / 500 / 5,000 pods
    .venv/bin/python tests/benchmarks/bench_quota_accounting.py --quick   # 50 / 500

Each size is measured twice in the same run, alternating, on a fresh emulator each time:

- **incremental**: the emulator as shipped; the quota controller moves ``status.used`` by each
  write's difference (``quota.UsageTracker``);
- **full recompute**: the same emulator with the tracker told it is never in sync, so every pod
  write re-sums the usage of every object in the namespace — what the emulator did before, and
  what the cost would be without incremental accounting.

A create is a real ``POST /api/v1/namespaces/<ns>/pods`` over HTTP (aiohttp, one connection,
KubeSpawner's pod body), timed from request to response; the namespace has the GPU quota the
platform uses (``requests.nvidia.com/gpu``, ``pods``, ``requests.cpu``, ``requests.memory``)
and the pods already there are created in-process first. Pods carry ``schedulerName: none``
so no scheduler or kubelet write competes with the measured ones. Prints medians and p95s, the
ratio of 5,000 to 50 pods for each variant, and the ratio full/incremental; writes
``tests/benchmarks/out/quota_accounting.json``. Asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from jhplatform.devcluster import quota  # noqa: E402
from jhplatform.devcluster.runtime import DevCluster  # noqa: E402
from jhplatform.policy.quantity import Quantity  # noqa: E402

NS = "bench-quota"
QUOTA = {
    "apiVersion": "v1",
    "kind": "ResourceQuota",
    "metadata": {"name": "platform", "namespace": NS},
    "spec": {"hard": {"requests.nvidia.com/gpu": "100000", "pods": "100000", "requests.cpu": "100000", "requests.memory": "1000Ti"}},
}


class NeverInSync(quota.UsageTracker):
    """The quota controller without incremental accounting: a full re-sum on every write."""

    def is_synced(self, quota_obj: dict) -> bool:
        return False


def pod(name: str, gpu: bool) -> dict:
    requests = {"cpu": "500m", "memory": "1Gi"}
    limits = {"cpu": "2", "memory": "4Gi"}
    if gpu:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = "1"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"component": "singleuser-server", "app": "jupyterhub", "hub.jupyter.org/username": name},
        },
        "spec": {
            "schedulerName": "none",
            "containers": [
                {
                    "name": "notebook",
                    "image": "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0",
                    "ports": [{"containerPort": 8888, "name": "notebook-port"}],
                    "resources": {"requests": requests, "limits": limits},
                    "env": [{"name": "JUPYTERHUB_USER", "value": name}],
                }
            ],
        },
    }


async def measure(size: int, incremental: bool, creates: int) -> list[float]:
    server = DevCluster(namespaces=("default", NS))
    await server.start("127.0.0.1", 0)
    try:
        server.apply([QUOTA])
        # Seeding always uses the incremental tracker (re-summing on each seed write would be
        # quadratic); the variant under test takes over for the timed creates.
        for i in range(size):
            server.cluster.create("pods", NS, pod(f"seed-{i:05d}", gpu=i % 8 == 0))
        used = server.cluster.get("resourcequotas", NS, "platform")["status"]["used"]
        assert Quantity(used["pods"]) == Quantity(size), used
        if not incremental:
            server.cluster.quota_usage = NeverInSync()
        url = f"{server.url}/api/v1/namespaces/{NS}/pods"
        times = []
        # As the cluster admin (the default kubeconfig's token): the emulator enforces RBAC and
        # refuses an anonymous create.
        auth = {"Authorization": f"Bearer {server.tokens.admin_token}"}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), headers=auth) as s:
            for i in range(creates):
                body = json.dumps(pod(f"timed-{i:05d}", gpu=i % 8 == 0))
                t0 = time.perf_counter()
                async with s.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    assert r.status == 201, r.status
                times.append((time.perf_counter() - t0) * 1000)
        used = server.cluster.get("resourcequotas", NS, "platform")["status"]["used"]
        assert Quantity(used["pods"]) == Quantity(size + creates), used
        return times
    finally:
        await server.stop()


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 and 500 pods only")
    parser.add_argument("--creates", type=int, default=60, help="timed creates per size and variant (default 60)")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "benchmarks" / "out" / "quota_accounting.json")
    args = parser.parse_args(argv)
    sizes = [50, 500] if args.quick else [50, 500, 5000]
    load_start = os.getloadavg()
    results: dict[str, dict[int, dict]] = {"incremental": {}, "full": {}}
    for size in sizes:
        for variant in ("full", "incremental"):
            times = await measure(size, variant == "incremental", args.creates)
            results[variant][size] = {"median_ms": statistics.median(times), "p95_ms": p95(times), "n": len(times)}
    load_end = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, load average {load_start[0]:.2f} -> {load_end[0]:.2f}")
    print(f"{'pods in namespace':>18} {'incremental median/p95 ms':>28} {'full recompute median/p95 ms':>31} {'full/incr':>10}")
    for size in sizes:
        inc, full = results["incremental"][size], results["full"][size]
        print(
            f"{size:>18} {inc['median_ms']:>14.2f} / {inc['p95_ms']:<11.2f} {full['median_ms']:>16.2f} / {full['p95_ms']:<12.2f}"
            f" {full['median_ms'] / inc['median_ms']:>9.1f}x"
        )
    big = sizes[-1]
    for variant in ("incremental", "full"):
        r = results[variant]
        print(f"{variant}: median at {big} pods / median at 50 pods = {r[big]['median_ms'] / r[50]['median_ms']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "command": "python tests/benchmarks/bench_quota_accounting.py" + (" --quick" if args.quick else ""),
                "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "loadavg": [load_start[0], load_end[0]]},
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
