"""The spawn form with 5,000 pods in the namespace: PlatformSpawner against stock KubeSpawner.

Run from the repository root::

    .venv/bin/python tests/benchmarks/bench_spawn_form.py            # 2,000 renders each
    .venv/bin/python tests/benchmarks/bench_spawn_form.py --quick    # 200 renders each

Writes the figures to ``tests/benchmarks/out/spawn_form.json`` (``--out`` to change it).

Goal: PlatformSpawner's form at most 1.5 times stock KubeSpawner's, and under 3 ms a render.

Both spawners render the same profiles (CPU, a plain KubeSpawner GPU profile, an A100 profile
with a ``gpu`` entry, an A100 profile with a GPU-count option, a MIG slice; stock KubeSpawner
gets them without the ``gpu`` entries) through their own ``_render_options_form``.
PlatformSpawner's ledger holds 5,000 running pods of the namespace (about 12 % on GPUs) and a
GPU ResourceQuota, fed as the hub feeds it (the pod reflector's dict, the quota watch). Printed:

- the whole form HTML, ours and stock, median/p90/p99 over the same number of renders;
- the form's view model alone (``ledger.view`` + ``build_form_view``);
- the form HTML after each of 2,000 pod watch events (one pod changes between renders: the
  availability follows each event incrementally, with no pass over the 5,000 pods);
- the same view model with 500 pods, to show the cost does not grow with the pod count.

Asserts nothing about timings (figures vary with the machine's load, printed with them); it
exits non-zero only if a rendered form does not show the availability it should.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
# The spawners load a kubeconfig when made; rendering the form makes no request, so it points
# at a closed loopback port.
_KUBECONFIG = Path(tempfile.mkdtemp(prefix="jhplatform-bench-form-")) / "kubeconfig"
_KUBECONFIG.write_text(json.dumps({
    "apiVersion": "v1", "kind": "Config", "current-context": "bench",
    "clusters": [{"name": "bench", "cluster": {"server": "http://127.0.0.1:9"}}],
    "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench", "namespace": "jhub"}}],
    "users": [{"name": "bench", "user": {"token": "unused"}}],
}))
os.environ["KUBECONFIG"] = str(_KUBECONFIG)

from doubles import make_spawner  # noqa: E402
from jhplatform.policy.gpu_ledger import gpu_annotations  # noqa: E402
from jhplatform.policy.profiles import build_form_view  # noqa: E402
from jhplatform.spawner import PlatformSpawner  # noqa: E402
from jhplatform.spawner.gpu import gpu_ledger, reset_gpu_ledger  # noqa: E402
from kubespawner import KubeSpawner  # noqa: E402

NS = "jhub"
GPU = "nvidia.com/gpu"
MIG = "nvidia.com/mig-1g.10gb"
PRODUCT = "nvidia.com/gpu.product"
A100 = {"resource": GPU, "type": "A100", "type_label": PRODUCT, "type_value": "NVIDIA-A100-SXM4-40GB"}
PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "description": "2 CPUs", "kubespawner_override": {"cpu_limit": 2}},
    {"display_name": "GPU", "slug": "gpu", "description": "One GPU", "kubespawner_override": {"extra_resource_limits": {GPU: "1"}}},
    {"display_name": "A100", "slug": "a100", "description": "One NVIDIA A100", "gpu": {**A100, "count": 1}},
    {"display_name": "A100 (several)", "slug": "a100-multi", "gpu": {**A100, "option": "gpus"},
     "profile_options": {"gpus": {"display_name": "GPUs", "choices": {
         "1": {"display_name": "1 GPU", "default": True}, "2": {"display_name": "2 GPUs"}, "4": {"display_name": "4 GPUs"}}}}},
    {"display_name": "A100 slice (MIG 1g.10gb)", "slug": "mig", "gpu": {"resource": MIG, "count": 1, "type": "MIG 1g.10gb"}},
]
QUOTA = {GPU: 600, MIG: 200}


def pod(i: int, gpu: tuple[str, int, str] | None) -> dict:
    user = f"user{i:04d}"
    limits = {"cpu": "2", "memory": "8G"}
    annotations = {"hub.jupyter.org/username": user, "hub.jupyter.org/servername": ""}
    if gpu:
        limits[gpu[0]] = str(gpu[1])
        annotations.update(gpu_annotations(gpu[0], gpu[1], gpu[2], ["course"]))
    return {
        "metadata": {"name": f"jupyter-{user}", "namespace": NS, "resourceVersion": str(1000 + i), "annotations": annotations,
                     "labels": {"component": "singleuser-server", "hub.jupyter.org/username": user}},
        "spec": {"nodeName": f"node-{i % 60}", "containers": [{"name": "notebook", "resources": {"limits": limits, "requests": dict(limits)}}]},
        "status": {"phase": "Running"},
    }


def pods(n: int, rng: random.Random) -> tuple[dict, dict]:
    out, used = {}, {GPU: 0, MIG: 0}
    for i in range(n):
        r = rng.random()
        gpu = None
        if r < 0.12:
            gpu = (MIG, 1, "MIG 1g.10gb") if r < 0.035 else (GPU, 1, "A100" if r < 0.09 else "")
            used[gpu[0]] += 1
        p = pod(i, gpu)
        out[f"{NS}/{p['metadata']['name']}"] = p
    return out, used


def quota(used: dict) -> dict:
    return {"metadata": {"name": "gpu-quota", "namespace": NS},
            "status": {"hard": {f"requests.{r}": str(n) for r, n in QUOTA.items()},
                       "used": {f"requests.{r}": str(used[r]) for r in QUOTA}}}


def figures(ns: list[int]) -> dict:
    ms = sorted(x / 1e6 for x in ns)
    q = statistics.quantiles(ms, n=100)
    return {"median_ms": statistics.median(ms), "p90_ms": q[89], "p99_ms": q[98], "n": len(ms)}


def stats(ns: list[int]) -> str:
    f = figures(ns)
    return f"median {f['median_ms']:7.3f} ms   p90 {f['p90_ms']:7.3f} ms   p99 {f['p99_ms']:7.3f} ms   (n={f['n']})"


def timed(fn, n: int) -> list[int]:
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t)
    return out


async def main(n: int, out: Path) -> int:
    load_start = os.getloadavg()
    rng = random.Random(7)
    reset_gpu_ledger()
    ledger = gpu_ledger()
    running, used = pods(5000, rng)
    ledger.rebuild(running, namespace=NS)
    ledger.set_quotas(NS, [quota(used)])

    ours = make_spawner(PlatformSpawner, user="ada", config={"PlatformSpawner": {"namespace": NS, "profile_list": PROFILES}})
    profile_list = await ours._gpu_profile_list()
    stock_profiles = [{k: v for k, v in p.items() if k != "gpu"} for p in PROFILES]
    stock = make_spawner(KubeSpawner, user="ada", config={"KubeSpawner": {"namespace": NS, "profile_list": stock_profiles}})
    stock_list = stock._get_initialized_profile_list(stock._sorted_dict_values(stock.profile_list))

    html = ours._render_options_form(profile_list)
    free_gpu = QUOTA[GPU] - used[GPU]
    expected = f'id="gpu-availability-gpu">{free_gpu} of {QUOTA[GPU]} GPUs free'
    if expected not in html:
        print(f"FAIL: the form does not show {expected!r}", file=sys.stderr)
        return 1
    stock._render_options_form(stock_list)

    # Interleaved so both see the same machine load.
    ours_ns, stock_ns = [], []
    for _ in range(n):
        ours_ns += timed(lambda: ours._render_options_form(profile_list), 1)
        stock_ns += timed(lambda: stock._render_options_form(stock_list), 1)

    def view_model():
        view = ledger.view("ada", (), NS, key=f"{NS}/jupyter-ada", now=time.monotonic(), alternative="CPU")
        build_form_view(profile_list, view, {})

    view_ns = timed(view_model, n)

    # One pod watch event between renders: a GPU pod stops or starts.
    keys = [k for k, p in running.items() if "jhplatform.io/gpu" in p["metadata"]["annotations"]]
    event_ns = []
    for i in range(n):
        key = keys[i % len(keys)]
        t = time.perf_counter_ns()
        if i % 2 == 0:
            ledger.pod_removed(key)
        else:
            ledger.pod_updated(key, {**running[key], "metadata": {**running[key]["metadata"], "resourceVersion": f"r{i}"}})
        ours._render_options_form(profile_list)
        event_ns.append(time.perf_counter_ns() - t)

    reset_gpu_ledger()
    small, small_used = pods(500, random.Random(7))
    gpu_ledger().rebuild(small, namespace=NS)
    gpu_ledger().set_quotas(NS, [quota(small_used)])
    ledger = gpu_ledger()
    view_small_ns = timed(view_model, n)

    load = os.getloadavg()
    print(f"Spawn form, 5 profiles, 5,000 pods in the namespace; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"  PlatformSpawner._render_options_form   {stats(ours_ns)}")
    print(f"  KubeSpawner._render_options_form       {stats(stock_ns)}")
    ratio = statistics.median(ours_ns) / statistics.median(stock_ns)
    print(f"  ratio ours / stock (median)            {ratio:.2f}  (goal <= 1.5; goal < 3 ms: "
          f"{'yes' if statistics.median(ours_ns) < 3e6 else 'no'})")
    print(f"  form after one pod event (incremental) {stats(event_ns)}")
    print(f"  view model, 5,000 pods                 {stats(view_ns)}")
    print(f"  view model,   500 pods                 {stats(view_small_ns)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pods": 5000, "profiles": len(PROFILES), "renders": n,
        "machine": {"cores": os.cpu_count(), "loadavg": [load_start[0], load[0]]},
        "ours_render": figures(ours_ns), "stock_render": figures(stock_ns),
        "ours_render_after_pod_event": figures(event_ns),
        "view_model_5000": figures(view_ns), "view_model_500": figures(view_small_ns),
        "ratio_median": ratio, "goal": {"ratio_max": 1.5, "ours_median_max_ms": 3.0},
    }, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 renders each instead of 2,000")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "spawn_form.json", help="where the JSON figures go")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(200 if args.quick else 2000, args.out)))
