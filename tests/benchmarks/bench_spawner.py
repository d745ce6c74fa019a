"""PlatformSpawner vs stock KubeSpawner, measured in the same run.

Prints:
- ``get_pod_manifest`` time (median and p95 over many renders, a GPU profile applied), and the
  ratio PlatformSpawner / KubeSpawner (hardening adds a dict round trip and the checks);
- spawn -> ready time against the emulator (simulated kubelet), alternating the two spawners
  so drift affects both, and the ratio (goal: <= 1.05x stock).

Run: ``.venv/bin/python tests/benchmarks/bench_spawner.py [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = Path(tempfile.mkdtemp(prefix="jhplatform-bench-spawner-"))
# kubernetes_asyncio reads KUBECONFIG at import time.
os.environ["KUBECONFIG"] = str(WORK / "kubeconfig")
sys.path.insert(0, str(HERE.parent))

from doubles import make_spawner  # noqa: E402
from jhplatform.devcluster.runtime import DevCluster  # noqa: E402

GPU_PROFILE = [
    {
        "display_name": "GPU",
        "slug": "gpu",
        "kubespawner_override": {
            "cpu_limit": 4,
            "mem_limit": "16G",
            "extra_resource_limits": {"nvidia.com/gpu": "1"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
]


def config(cls_name: str) -> dict:
    return {cls_name: {"image": "quay.io/jupyter/pytorch-notebook:2025-01-06", "profile_list": GPU_PROFILE, "start_timeout": 30}}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def manifest_times(cls, cls_name: str, n: int) -> list[float]:
    spawner = make_spawner(cls, user="bench", config=config(cls_name))
    spawner.user_options = {"profile": "gpu"}
    await spawner.load_user_options()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await spawner.get_pod_manifest()
        times.append(time.perf_counter() - t0)
    return times


async def load_options_times(cls, cls_name: str, n: int) -> list[float]:
    """``load_user_options``: where PlatformSpawner adds its per-spawn work (restore, render,
    harden, check) before KubeSpawner's first API call."""
    times = []
    for i in range(n):
        spawner = make_spawner(cls, user=f"opts-{i}", config=config(cls_name))
        spawner.user_options = {"profile": "gpu"}
        t0 = time.perf_counter()
        await spawner.load_user_options()
        times.append(time.perf_counter() - t0)
    return times


async def spawn_time(server: DevCluster, cls, cls_name: str, user: str) -> float:
    spawner = make_spawner(cls, user=user, config=config(cls_name))
    spawner.user_options = {"profile": "gpu"}
    t0 = time.perf_counter()
    await spawner.start()
    elapsed = time.perf_counter() - t0
    await spawner.stop(now=True)
    return elapsed


async def main(quick: bool) -> dict:
    from kubespawner import KubeSpawner

    from jhplatform.spawner import PlatformSpawner

    server = DevCluster(kubelet="simulated")
    await server.start("127.0.0.1", 0)
    server.write_kubeconfig(os.environ["KUBECONFIG"])
    results: dict = {}
    try:
        n = 100 if quick else 1000
        stock = await manifest_times(KubeSpawner, "KubeSpawner", n)
        ours = await manifest_times(PlatformSpawner, "PlatformSpawner", n)
        results["get_pod_manifest"] = {
            "n": n,
            "stock_median_ms": statistics.median(stock) * 1e3,
            "stock_p95_ms": pct(stock, 95) * 1e3,
            "platform_median_ms": statistics.median(ours) * 1e3,
            "platform_p95_ms": pct(ours, 95) * 1e3,
            "ratio_median": statistics.median(ours) / statistics.median(stock),
        }
        k = 50 if quick else 300
        stock_o = await load_options_times(KubeSpawner, "KubeSpawner", k)
        ours_o = await load_options_times(PlatformSpawner, "PlatformSpawner", k)
        results["load_user_options"] = {
            "n": k,
            "stock_median_ms": statistics.median(stock_o) * 1e3,
            "platform_median_ms": statistics.median(ours_o) * 1e3,
            "added_ms": (statistics.median(ours_o) - statistics.median(stock_o)) * 1e3,
        }
        rounds = 5 if quick else 30
        stock_s, ours_s = [], []
        # Warm up both paths (reflectors, client) before measuring.
        await spawn_time(server, KubeSpawner, "KubeSpawner", "warm-stock")
        await spawn_time(server, PlatformSpawner, "PlatformSpawner", "warm-ours")
        for i in range(rounds):
            stock_s.append(await spawn_time(server, KubeSpawner, "KubeSpawner", f"stock-{i}"))
            ours_s.append(await spawn_time(server, PlatformSpawner, "PlatformSpawner", f"ours-{i}"))
        results["spawn_to_ready"] = {
            "rounds": rounds,
            "stock_median_s": statistics.median(stock_s),
            "platform_median_s": statistics.median(ours_s),
            "stock_mean_s": statistics.mean(stock_s),
            "platform_mean_s": statistics.mean(ours_s),
            "ratio_median": statistics.median(ours_s) / statistics.median(stock_s),
            "ratio_mean": statistics.mean(ours_s) / statistics.mean(stock_s),
            "goal_ratio": 1.05,
        }
    finally:
        from kubespawner import KubeSpawner as _K

        await _K._stop_all_reflectors()
        await server.stop()
    return results


def report(results: dict) -> None:
    m, s, o = results["get_pod_manifest"], results["spawn_to_ready"], results["load_user_options"]
    print(f"get_pod_manifest (GPU profile, n={m['n']}):")
    print(f"  KubeSpawner      median {m['stock_median_ms']:.3f} ms  p95 {m['stock_p95_ms']:.3f} ms")
    print(f"  PlatformSpawner  median {m['platform_median_ms']:.3f} ms  p95 {m['platform_p95_ms']:.3f} ms")
    print(f"  ratio (median)   {m['ratio_median']:.2f}x")
    print(f"load_user_options (n={o['n']}): KubeSpawner {o['stock_median_ms']:.3f} ms, "
          f"PlatformSpawner {o['platform_median_ms']:.3f} ms (adds {o['added_ms']:.3f} ms per spawn)")
    print(f"spawn -> ready against the emulator ({s['rounds']} rounds, alternating):")
    print(f"  KubeSpawner      median {s['stock_median_s'] * 1e3:.1f} ms  mean {s['stock_mean_s'] * 1e3:.1f} ms")
    print(f"  PlatformSpawner  median {s['platform_median_s'] * 1e3:.1f} ms  mean {s['platform_mean_s'] * 1e3:.1f} ms")
    print(f"  ratio (mean)     {s['ratio_mean']:.3f}x")
    verdict = "met" if s["ratio_median"] <= s["goal_ratio"] else "NOT met"
    print(f"  ratio (median)   {s['ratio_median']:.3f}x  (goal <= {s['goal_ratio']}x: {verdict})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    args = parser.parse_args()
    results = asyncio.run(main(args.quick))
    report(results)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "spawner.json").write_text(json.dumps(results, indent=2))
