"""GPU quota decisions with 5,000 running pods, against the stock way of answering the same question.

Run from the repository root::

    .venv/bin/python tests/benchmarks/bench_gpu_quota.py            # full (about 4 minutes)
    .venv/bin/python tests/benchmarks/bench_gpu_quota.py --quick    # a short smoke run

Figures (goal: a decision < 1 ms median):

1. **Decisions** on the hub's :class:`~jhplatform.policy.gpu_ledger.GpuLedger`, fed as the hub feeds it
   (``rebuild`` with the pod reflector's ``{"namespace/name": pod}`` dict, ``set_quotas`` with a
   ResourceQuota) with 5,000 running hub pods: KubeSpawner's labels and annotations plus the GPU
   annotations PlatformSpawner writes, 4,000 users, 41 groups, about 12 % of the pods on GPUs
   (A100 and MIG slices), the rest CPU. Timed, for 10,000 random users and GPU choices:

   - ``decide`` alone;
   - the decision as ``run_options_from_form`` / ``load_user_options`` make it: ``gpu_request``,
     ``decide`` and, when allowed, ``reserve`` (the synchronous block), the reservation released
     untimed afterwards so every decision sees the same state;
   - ``await PlatformSpawner.run_options_from_form(form)`` itself (KubeSpawner's form parsing
     included), with the watches already running (``_gpu_ensure_sources`` only syncs the policy).

2. **Form**: the view model for one user (``ledger.view`` + ``build_form_view``) and the whole
   HTML (``PlatformSpawner._render_options_form``), against stock KubeSpawner's
   ``_render_options_form`` of the same profiles.

3. **Stock baselines**, answering the same question without a ledger:

   - summing ``requests.<gpu>`` (and the user's and groups' GPUs) over all 5,000 pod dicts on
     every decision; every answer is checked against the ledger's;
   - a Kubernetes API request per decision against the emulator (``DevCluster``, same process,
     holding the quota and the 5,000 pods): ``GET /api/v1/namespaces/jhub/resourcequotas``
     through kubernetes_asyncio (models, and raw), and the pod list a spawner would also need for
     per-user and per-group counts (``GET .../pods?labelSelector=component=singleuser-server``,
     raw + ``json.loads`` + the sum).

4. **The race** of tests/reliability/test_gpu_race.py, 20 rounds on one real JupyterHub
   (PlatformSpawner, configurable-http-proxy) against the emulator's default tainted pool: 100
   concurrent REST spawns of the plain KubeSpawner GPU profile (``extra_resource_limits`` only)
   for 8 free GPUs (ResourceQuota ``requests.nvidia.com/gpu: 8``). Per round: servers running,
   refusals, pods Pending, timings, quota requests made by decisions (expected: none), and the
   ``jhplatform_gpus_*`` metrics before and after. The scenario is replicated here (the test's
   code lives in a pytest test function and fixtures).

Prints the figures and writes them as JSON to ``tests/benchmarks/out/gpu_quota.json``, with
the machine's load average sampled during the run. Asserts nothing about timings; it exits
non-zero only if the ledger and the stock computation disagree or a race round goes wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = Path(tempfile.mkdtemp(prefix="jhplatform-bench-gpu-"))
# kubernetes_asyncio reads KUBECONFIG at import time.
os.environ["KUBECONFIG"] = str(WORK / "kubeconfig")
# The hub subprocess must find configurable-http-proxy and the venv's tools.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), str(REPO / ".venv" / "node_modules" / ".bin"),
                                      os.environ.get("PATH", "")])
for p in (str(REPO), str(HERE.parent)):
    if p not in sys.path:
        sys.path.insert(0, p)

from doubles import make_spawner  # noqa: E402
from jhplatform.devcluster.runtime import DevCluster  # noqa: E402
from jhplatform.policy.profiles import build_form_view, gpu_request  # noqa: E402
from jhplatform.policy.gpu_ledger import GPU_GROUPS_ANNOTATION, USER_ANNOTATION, gpu_annotations  # noqa: E402
from jhplatform.spawner.gpu import gpu_ledger, reset_gpu_ledger  # noqa: E402

NS = "jhub"
GPU = "nvidia.com/gpu"
MIG = "nvidia.com/mig-1g.10gb"
PRODUCT = "nvidia.com/gpu.product"
A100_PRODUCT = "NVIDIA-A100-SXM4-40GB"
N_PODS = 5000
N_USERS = 4000
COURSES = [f"course-{k:02d}" for k in range(40)]
USER_LIMIT = 1
RESEARCHER_LIMIT = 4
COURSE_LIMIT = 20
QUOTA_HARD = {GPU: 448, MIG: 190}
OTHER_WORKLOADS = {GPU: 12, MIG: 0}  # GPUs of non-hub pods that the quota's status.used counts

A100 = {"resource": GPU, "type": "A100", "type_label": PRODUCT, "type_value": A100_PRODUCT}
PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "description": "2 CPUs", "kubespawner_override": {"cpu_limit": 2}},
    {"display_name": "A100", "slug": "a100", "description": "One NVIDIA A100", "gpu": {**A100, "count": 1}},
    {
        "display_name": "A100 (several)",
        "slug": "a100-multi",
        "gpu": {**A100, "option": "gpus"},
        "profile_options": {"gpus": {"display_name": "GPUs", "choices": {
            "1": {"display_name": "1 GPU", "default": True}, "2": {"display_name": "2 GPUs"}, "4": {"display_name": "4 GPUs"}}}},
    },
    {"display_name": "A100 slice (MIG 1g.10gb)", "slug": "mig", "gpu": {"resource": MIG, "count": 1, "type": "MIG 1g.10gb"}},
]
GPU_CHOICES = [("a100", None, 1), ("a100-multi", "1", 1), ("a100-multi", "2", 2), ("a100-multi", "4", 4), ("mig", None, 1)]


def spawner_config(namespace: str = NS) -> dict:
    return {"PlatformSpawner": {
        "namespace": namespace,
        "profile_list": PROFILES,
        "gpu_user_limit": USER_LIMIT,
        "gpu_user_limit_by_group": {"researchers": RESEARCHER_LIMIT},
        "gpu_group_limits": {c: COURSE_LIMIT for c in COURSES},
    }}


# -- statistics and load -------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summary_us(ns: list[int]) -> dict:
    us = [v / 1e3 for v in ns]
    return {"n": len(us), "median_us": statistics.median(us), "p95_us": pct(us, 95), "p99_us": pct(us, 99),
            "mean_us": statistics.fmean(us), "max_us": max(us)}


class LoadSampler:
    """Samples the 1-minute load average every few seconds in a thread."""

    def __init__(self, every: float = 5.0):
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((round(time.monotonic() - self._t0, 1), os.getloadavg()[0]))
            self._stop.wait(self.every)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        loads = [v for _, v in self.samples] or [os.getloadavg()[0]]
        return {"samples": len(loads), "min": min(loads), "median": statistics.median(loads), "max": max(loads),
                "first": loads[0], "last": loads[-1]}


def machine() -> dict:
    try:
        top = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()[:8]
    except (OSError, subprocess.SubprocessError):
        top = []
    return {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(), "top_processes_at_start": [" ".join(t.split()) for t in top]}


# -- the 5,000 pods ------------------------------------------------------------------------------


def users_and_groups(rng: random.Random) -> dict[str, list[str]]:
    out = {}
    for i in range(N_USERS):
        groups = [COURSES[i % len(COURSES)]]
        if rng.random() < 0.1:
            groups.append("researchers")
        out[f"user{i:04d}"] = sorted(groups)
    return out


def hub_pod(i: int, user: str, server: str, groups: list[str], gpu: tuple[str, int, str] | None, body_only: bool = False) -> dict:
    """A pod as KubeSpawner 7.1 makes it for PlatformSpawner (as the reflector stores it unless ``body_only``)."""
    name = f"jupyter-{user}" + (f"--{server}" if server else "")
    limits = {"cpu": "2", "memory": "8G"}
    requests = {"cpu": "500m", "memory": "2G"}
    annotations = {"hub.jupyter.org/username": user, "hub.jupyter.org/servername": server}
    tolerations = [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
                   {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}]
    node_selector = {}
    if gpu is not None:
        resource, count, type_ = gpu
        limits[resource] = requests[resource] = str(count)
        annotations.update(gpu_annotations(resource, count, type_, groups))
        tolerations.append({"key": GPU, "operator": "Exists", "effect": "NoSchedule"})
        if resource == GPU:
            node_selector[PRODUCT] = A100_PRODUCT
    env = [{"name": k, "value": v} for k, v in {
        "JUPYTERHUB_API_URL": "http://hub:8081/hub/api", "JUPYTERHUB_USER": user, "JUPYTERHUB_SERVER_NAME": server,
        "JUPYTERHUB_SERVICE_PREFIX": f"/user/{user}/{server}", "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}",
        "JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_OAUTH_SCOPES": "[]", "JUPYTERHUB_ACTIVITY_URL": "http://hub:8081/hub/api/activity",
        "JUPYTER_IMAGE": "quay.io/jupyter/pytorch-notebook:2025-01-06", "MEM_LIMIT": "8000000000", "CPU_LIMIT": "2.0",
    }.items()]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"app": "jupyterhub", "component": "singleuser-server", "chart": "jupyterhub-4.4.0", "heritage": "jupyterhub",
                       "release": "jhub", "hub.jupyter.org/network-access-hub": "true", "hub.jupyter.org/servername": server,
                       "hub.jupyter.org/username": user},
            "annotations": annotations,
        },
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [{
                "name": "notebook",
                "image": "quay.io/jupyter/pytorch-notebook:2025-01-06",
                "args": ["jupyterhub-singleuser"],
                "env": env,
                "ports": [{"containerPort": 8888, "name": "notebook-port", "protocol": "TCP"}],
                "resources": {"limits": limits, "requests": requests},
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                                    "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
            }],
            "securityContext": {"fsGroup": 100, "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "tolerations": tolerations,
            "nodeSelector": node_selector,
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": f"claim-{user}"}}],
        },
    }
    if body_only:
        # For the emulator: nobody schedules it (it stays Pending), the quota still counts it.
        pod["spec"]["schedulerName"] = "none"
        pod["spec"]["volumes"] = [{"name": "home", "emptyDir": {}}]
        return pod
    pod["metadata"].update(uid=f"00000000-0000-4000-8000-{i:012d}", resourceVersion=str(1000 + i),
                           creationTimestamp="2026-11-22T08:00:00Z")
    pod["spec"]["nodeName"] = f"node-{i % 60}"
    pod["status"] = {"phase": "Running", "podIP": f"10.1.{i // 250}.{i % 250}", "hostIP": f"10.0.0.{i % 60}",
                     "qosClass": "Burstable", "startTime": "2026-11-22T08:00:01Z",
                     "conditions": [{"type": t, "status": "True"} for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]}
    return pod


def running_pods(groups_of: dict[str, list[str]], rng: random.Random, body_only: bool = False) -> tuple[dict, dict]:
    """5,000 pods keyed ``namespace/name`` and the hub's GPU use per resource."""
    users = list(groups_of)
    owners = [(u, "") for u in users] + [(users[i], "extra") for i in range(N_PODS - N_USERS)]
    by_user: Counter = Counter()
    by_group: Counter = Counter()
    used = Counter()
    pods = {}
    for i, (user, server) in enumerate(owners):
        groups = groups_of[user]
        cap = RESEARCHER_LIMIT if "researchers" in groups else USER_LIMIT
        gpu = None
        r = rng.random()
        if r < 0.12:
            resource, type_ = (MIG, "MIG 1g.10gb") if r < 0.035 else (GPU, "A100")
            count = 2 if resource == GPU and "researchers" in groups and rng.random() < 0.5 else 1
            fits = (by_user[user] + count <= cap and all(by_group[g] + count <= COURSE_LIMIT for g in groups if g in COURSES)
                    and used[resource] + count + OTHER_WORKLOADS[resource] <= QUOTA_HARD[resource] - 8)
            if fits:
                gpu = (resource, count, type_)
                by_user[user] += count
                for g in groups:
                    by_group[g] += count
                used[resource] += count
        pod = hub_pod(i, user, server, groups, gpu, body_only)
        pods[f"{NS}/{pod['metadata']['name']}"] = pod
    return pods, dict(used)


def quota_object(hub_used: dict) -> dict:
    return {
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "gpu-quota", "namespace": NS, "resourceVersion": "42"},
        "spec": {"hard": {f"requests.{r}": str(n) for r, n in QUOTA_HARD.items()}},
        "status": {"hard": {f"requests.{r}": str(n) for r, n in QUOTA_HARD.items()},
                   "used": {f"requests.{r}": str(hub_used.get(r, 0) + OTHER_WORKLOADS[r]) for r in QUOTA_HARD}},
    }


# -- the stock way: one pass over every pod per decision --------------------------------------------

_GPU_NAMES = re.compile(r"^(nvidia\.com/(gpu|mig-[0-9a-z.\-]+)|amd\.com/gpu|gpu\.intel\.com/[0-9a-z.\-]+)$")


def stock_decide(pods, quota: dict, user: str, groups: list[str], resource: str, count: int) -> tuple:
    """What a spawner without a ledger computes per decision: a pass over all pods.

    Returns (allowed, reason, free, user_used) with the same rules as the ledger (caps first,
    then the quota: other workloads are status.used minus the hub's pods).
    """
    cap = RESEARCHER_LIMIT if "researchers" in groups else USER_LIMIT
    limited = {g: 0 for g in groups if g in COURSES}
    hub = user_used = 0
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        gpus: dict[str, int] = {}
        for c in pod["spec"].get("containers") or []:
            res = c.get("resources") or {}
            req, lim = res.get("requests") or {}, res.get("limits") or {}
            for name in req.keys() | lim.keys():
                if _GPU_NAMES.match(name):
                    gpus[name] = gpus.get(name, 0) + int(req.get(name, lim.get(name)))
        if not gpus:
            continue
        total = sum(gpus.values())
        hub += gpus.get(resource, 0)
        ann = pod["metadata"].get("annotations") or {}
        if ann.get(USER_ANNOTATION) == user:
            user_used += total
        if limited:
            for g in json.loads(ann.get(GPU_GROUPS_ANNOTATION) or "[]"):
                if g in limited:
                    limited[g] += total
    hard = int(quota["status"]["hard"][f"requests.{resource}"])
    others = max(0, int(quota["status"]["used"][f"requests.{resource}"]) - hub)
    free = hard - others - hub
    if user_used + count > cap:
        return False, "user_cap", free, user_used
    for g in sorted(limited):
        if limited[g] + count > COURSE_LIMIT:
            return False, "group_cap", free, user_used
    if free < count:
        return False, "quota", free, user_used
    return True, None, free, user_used


# -- 1-3: decisions, form, stock ----------------------------------------------------------------


async def decisions_and_form(n_decisions: int, n_stock: int, n_form: int, seed: int) -> tuple[dict, list, dict]:
    from kubespawner import KubeSpawner

    from jhplatform.spawner import PlatformSpawner

    rng = random.Random(seed)
    groups_of = users_and_groups(rng)
    pods, hub_used = running_pods(groups_of, rng)
    quota = quota_object(hub_used)
    ledger = reset_gpu_ledger()
    t0 = time.perf_counter()
    ledger.rebuild(pods, namespace=NS)  # what GpuPodReflector does on its list
    ledger.set_quotas(NS, [quota])
    rebuild_s = time.perf_counter() - t0

    # The spawner's own profile list and policy (validated, normalized, initialized).
    spawner = make_spawner(PlatformSpawner, user="user0001", config=spawner_config(), groups=tuple(groups_of["user0001"]))
    profile_list = await spawner._gpu_profile_list()
    spawner._gpu_sync_policy(profile_list)
    assert gpu_ledger() is ledger
    gpu_pods = sum(1 for p in pods.values() if "jhplatform.io/gpu" in p["metadata"]["annotations"])
    setup = {"pods": len(pods), "gpu_pods": gpu_pods, "cpu_pods": len(pods) - gpu_pods, "users": len(groups_of),
             "groups": len(COURSES) + 1, "hub_gpus_in_use": hub_used, "quota_hard": QUOTA_HARD,
             "quota_used_by_other_workloads": OTHER_WORKLOADS, "user_limit": USER_LIMIT,
             "user_limit_by_group": {"researchers": RESEARCHER_LIMIT}, "group_limit_per_course": COURSE_LIMIT,
             "ledger_rebuild_from_5000_pods_ms": rebuild_s * 1e3}

    # The questions: users with and without GPU servers, and users the hub has not seen yet.
    users = list(groups_of)
    asks = []
    for i in range(n_decisions):
        if rng.random() < 0.2:
            user, groups = f"new{i:05d}", sorted({rng.choice(COURSES)} | ({"researchers"} if rng.random() < 0.1 else set()))
        else:
            user = rng.choice(users)
            groups = groups_of[user]
        slug, choice, count = rng.choice(GPU_CHOICES)
        options = {"profile": slug, **({"gpus": choice} if choice else {})}
        asks.append((user, groups, options, count, f"{NS}/jupyter-{user}--bench"))

    now = time.monotonic()
    alternative = "CPU"

    # decide alone
    decide_ns, outcomes = [], Counter()
    for user, groups, options, _, key in asks:
        req = gpu_request(profile_list, options)
        t = time.perf_counter_ns()
        d = ledger.decide(user, groups, req.resource, req.type, req.count, namespace=NS, selector=req.selector, key=key,
                          now=now, alternative=alternative)
        decide_ns.append(time.perf_counter_ns() - t)
        outcomes[d.reason or "allowed"] += 1

    # decide + reserve, as run_options_from_form / load_user_options do (no await in between)
    reserve_ns = []
    for user, groups, options, _, key in asks:
        t = time.perf_counter_ns()
        req = gpu_request(profile_list, options)
        d = ledger.decide(user, groups, req.resource, req.type, req.count, namespace=NS, selector=req.selector, key=key,
                          now=now, alternative=alternative)
        if d.allowed:
            ledger.reserve(key, spawner._gpu_usage_for(req.resource, req.count, req.type), expires=now + 60)
        reserve_ns.append(time.perf_counter_ns() - t)
        ledger.release(key)
    assert not ledger.reservations, "every reservation released"

    # the spawner's own run_options_from_form, watches already running
    async def sources_running(profile_list):
        return spawner._gpu_sync_policy(profile_list)

    spawners = {}
    form_ns = []
    for user, groups, options, _, key in asks:
        s = spawners.get((user, tuple(groups)))
        if s is None:
            if len(spawners) >= 300:
                spawners.clear()
            s = spawners[(user, tuple(groups))] = make_spawner(PlatformSpawner, user=user, server_name="bench",
                                                               config=spawner_config(), groups=tuple(groups))
            s._gpu_ensure_sources = sources_running
        form = {"profile": [options["profile"]]}
        if "gpus" in options:
            form[f"profile-option-{options['profile']}--gpus"] = [options["gpus"]]
        t = time.perf_counter_ns()
        try:
            await s.run_options_from_form(form)
        except Exception as e:  # a refusal: the tornado HTTPError the form shows
            if getattr(e, "gpu_reason", None) is None:
                raise
        form_ns.append(time.perf_counter_ns() - t)
        if s._gpu_form_key:
            ledger.release(s._gpu_form_key)
            s._gpu_form_key = None
    assert not ledger.reservations
    spawners.clear()

    # the stock way, on a subset of the same questions; every answer checked against the ledger's
    pod_list = list(pods.values())
    stock_ns, mismatches = [], []
    for user, groups, options, _, key in asks[:n_stock]:
        req = gpu_request(profile_list, options)
        t = time.perf_counter_ns()
        answer = stock_decide(pod_list, quota, user, groups, req.resource, req.count)
        stock_ns.append(time.perf_counter_ns() - t)
        d = ledger.decide(user, groups, req.resource, req.type, req.count, namespace=NS, selector=req.selector, key=key,
                          now=now, alternative=alternative)
        if answer != (d.allowed, d.reason, d.free, d.user_used):
            mismatches.append({"user": user, "options": options, "stock": answer, "ledger": [d.allowed, d.reason, d.free, d.user_used]})

    # the form for one user: view model, then the whole HTML; and stock KubeSpawner's form
    fuser = "user0001"
    fgroups = groups_of[fuser]
    spawner = make_spawner(PlatformSpawner, user=fuser, config=spawner_config(), groups=tuple(fgroups))
    profile_list = await spawner._gpu_profile_list()
    view_ns, html_ns = [], []
    for _ in range(n_form):
        t = time.perf_counter_ns()
        view = ledger.view(fuser, fgroups, NS, key=f"{NS}/jupyter-{fuser}", now=now, alternative=alternative)
        build_form_view(profile_list, view, {})
        view_ns.append(time.perf_counter_ns() - t)
    html = spawner._render_options_form(profile_list)
    for _ in range(n_form):
        t = time.perf_counter_ns()
        spawner._render_options_form(profile_list)
        html_ns.append(time.perf_counter_ns() - t)
    stock_profiles = [{k: v for k, v in p.items() if k != "gpu"} for p in PROFILES]
    stock = make_spawner(KubeSpawner, user=fuser, config={"KubeSpawner": {"namespace": NS, "profile_list": stock_profiles}})
    stock_list = stock._get_initialized_profile_list(stock._sorted_dict_values(stock.profile_list))
    stock_html_ns = []
    stock._render_options_form(stock_list)
    for _ in range(n_form):
        t = time.perf_counter_ns()
        stock._render_options_form(stock_list)
        stock_html_ns.append(time.perf_counter_ns() - t)
    texts = re.findall(r'id="gpu-availability-([^"]+)">([^<]*)<', html)

    results = {
        "setup": setup,
        "decide": summary_us(decide_ns),
        "decide_outcomes": dict(outcomes),
        "decide_and_reserve": summary_us(reserve_ns),
        "run_options_from_form": summary_us(form_ns),
        "stock_sum_over_pods": {**summary_us(stock_ns), "answers_checked": len(stock_ns), "mismatches": len(mismatches)},
        "form_view_model": summary_us(view_ns),
        "form_html": {**summary_us(html_ns), "bytes": len(html), "availability": dict(texts)},
        "stock_kubespawner_form_html": summary_us(stock_html_ns),
    }
    results["ratios"] = {
        "stock_sum_over_pods / decide_and_reserve (median)": results["stock_sum_over_pods"]["median_us"] / results["decide_and_reserve"]["median_us"],
        "form_html / stock_kubespawner_form_html (median)": results["form_html"]["median_us"] / results["stock_kubespawner_form_html"]["median_us"],
    }
    return results, mismatches, {"groups_of": groups_of, "seed": seed}


async def api_baseline(server: DevCluster, groups_of: dict, seed: int, n_quota: int, n_pods: int, reference_us: float) -> dict:
    """A Kubernetes request per decision, against the emulator holding the quota and the 5,000 pods."""
    from kubernetes_asyncio import client, config

    await server.reset()
    kubeconfig = os.environ["KUBECONFIG"]
    api_client = None
    try:
        server.cluster.create("namespaces", None, {"metadata": {"name": NS}})
        pods, hub_used = running_pods(groups_of, random.Random(seed + 1), body_only=True)
        t0 = time.perf_counter()
        for pod in pods.values():
            server.cluster.create("pods", NS, pod)
        # The quota last: the emulator's quota controller recomputes usage over every pod of the
        # namespace on each pod write, which is quadratic for 5,000 creates.
        server.cluster.create("resourcequotas", NS, {"metadata": {"name": "gpu-quota"},
                                                     "spec": {"hard": {f"requests.{r}": str(n) for r, n in QUOTA_HARD.items()}}})
        seed_s = time.perf_counter() - t0
        q = server.cluster.get("resourcequotas", NS, "gpu-quota")

        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        api_client = client.ApiClient(configuration=cfg)
        core = client.CoreV1Api(api_client)
        for _ in range(5):  # warm up the connection pool
            await core.list_namespaced_resource_quota(NS)

        quota_models, quota_raw = [], []
        for _ in range(n_quota):
            t = time.perf_counter_ns()
            await core.list_namespaced_resource_quota(NS)
            quota_models.append(time.perf_counter_ns() - t)
        for _ in range(n_quota):
            t = time.perf_counter_ns()
            resp = await core.list_namespaced_resource_quota(NS, _preload_content=False)
            json.loads(await resp.read())
            quota_raw.append(time.perf_counter_ns() - t)

        list_ns, size = [], 0
        for _ in range(n_pods):
            t = time.perf_counter_ns()
            resp = await core.list_namespaced_pod(NS, label_selector="component=singleuser-server", _preload_content=False)
            body = await resp.read()
            items = json.loads(body)["items"]
            stock_decide(items, q, "user0001", ["course-01"], GPU, 1)
            list_ns.append(time.perf_counter_ns() - t)
            size = len(body)
        out = {
            "emulator": "DevCluster (simulated kubelet), same process as the client, loopback HTTP",
            "seeded_pods": len(pods), "seed_seconds": seed_s, "quota_status_used": q["status"]["used"],
            "get_resourcequotas_models": summary_us(quota_models),
            "get_resourcequotas_raw_json": summary_us(quota_raw),
            "list_pods_raw_json_and_sum": {**summary_us(list_ns), "body_bytes": size},
        }
        out["ratios"] = {
            "get_resourcequotas_models / decide_and_reserve (median)": out["get_resourcequotas_models"]["median_us"] / reference_us,
            "get_resourcequotas_raw_json / decide_and_reserve (median)": out["get_resourcequotas_raw_json"]["median_us"] / reference_us,
            "list_pods_raw_json_and_sum / decide_and_reserve (median)": out["list_pods_raw_json_and_sum"]["median_us"] / reference_us,
        }
        return out
    finally:
        if api_client is not None:
            await api_client.close()
        await server.reset()


# -- 4: the race ---------------------------------------------------------------------------------

RACE_NS = "gpu"
# The plain KubeSpawner GPU profile (no gpu: entry, no toleration), as the race uses it
# on the emulator's default tainted pool.
RACE_PROFILES = PROFILES[:3] + [{"display_name": "GPU", "slug": "gpu", "kubespawner_override": {"extra_resource_limits": {GPU: "1"}}}]
QUOTA_FULL_8 = "All 8 GPUs are in use (yours: 0). Pick the CPU profile or try again later."
IN_USE = 'jhplatform_gpus_in_use{resource="nvidia.com/gpu",type=""}'
FREE = 'jhplatform_gpus_free{resource="nvidia.com/gpu",type=""}'


async def race(server: DevCluster, rounds: int) -> dict:
    import aiohttp
    from aiohttp import web

    from helpers import wait_for
    from hubstack import HubStack

    async def ok(request):
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stub_port = site._server.sockets[0].getsockname()[1]

    await server.reset()
    workdir = WORK / "hub"
    workdir.mkdir()
    kubeconfig = server.write_kubeconfig(workdir / "kubeconfig")
    server.cluster.create("namespaces", None, {"metadata": {"name": RACE_NS}})
    server.cluster.create("resourcequotas", RACE_NS, {"metadata": {"name": "gpu-quota"}, "spec": {"hard": {f"requests.{GPU}": "8"}}})
    config = f"""
c.KubeSpawner.namespace = {RACE_NS!r}
c.KubeSpawner.profile_list = {RACE_PROFILES!r}
c.KubeSpawner.get_pod_url = lambda spawner, pod: "http://127.0.0.1:{stub_port}"
c.KubeSpawner.start_timeout = 30
c.Spawner.consecutive_failure_limit = 5
c.JupyterHub.allow_named_servers = True
c.JupyterHub.load_roles.append({{"name": "bench", "scopes": ["read:metrics"], "services": ["operator"]}})
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 60}}
"""
    hub = HubStack(workdir, kubeconfig, config, spawner_class="jhplatform")
    out: dict = {"rounds": []}
    try:
        await hub.start()
        users = [f"racer{i:03d}" for i in range(100)]
        status, body = await hub.request("POST", "/users", {"usernames": users})
        assert status == 201, body

        async def metrics() -> dict:
            status, text = await hub.request("GET", "/metrics", base=f"{hub.url}/hub")
            assert status == 200, text
            return {n: float(v) for n, v in (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("jhplatform_"))}

        # A user opens the spawn form first: the watches start, as on a live hub.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(f"{hub.url}/hub/login") as r:
                xsrf = re.search(r'name="_xsrf" value="([^"]+)"', await r.text()).group(1)
            async with s.post(f"{hub.url}/hub/login", data={"username": users[0], "password": "x", "_xsrf": xsrf},
                              allow_redirects=False) as r:
                assert r.status == 302
            async with s.get(f"{hub.url}/hub/spawn/{users[0]}", allow_redirects=False) as r:
                assert r.status == 200

        async def spawn(user):
            return await hub.request("POST", f"/users/{user}/server", {"profile": "gpu"})

        async def stop(user):
            status, body = await hub.request("DELETE", f"/users/{user}/server")
            assert status in (202, 204), body

            async def gone():
                _, model = await hub.request("GET", f"/users/{user}")
                return "" not in (model.get("servers") or {})

            await wait_for(gone, 60, 0.1, message=f"{user}'s server stopped")

        for rnd in range(1, rounds + 1):
            before = await metrics()
            mark = len(server.requests)
            load_before = os.getloadavg()[0]
            t0 = time.monotonic()
            results = await asyncio.gather(*(spawn(u) for u in users))
            answered = time.monotonic() - t0
            accepted = [u for u, (st, _) in zip(users, results) if st in (201, 202)]
            refused = [b for st, b in results if st == 400]
            messages = Counter((b or {}).get("message") if isinstance(b, dict) else str(b) for b in refused)
            other = Counter(st for st, _ in results if st not in (201, 202, 400))
            await asyncio.gather(*(hub.wait_ready(u) for u in accepted))
            ready = time.monotonic() - t0
            phases = Counter(p["status"].get("phase") for p in server.cluster.store.list("pods", RACE_NS))
            window = list(server.requests)[mark:]
            kinds = Counter((e.get("verb"), e.get("resource")) for e in window)
            decision_requests = sum(n for (verb, res), n in kinds.items() if res in ("resourcequotas", "nodes") and verb not in ("list", "watch"))
            during = await metrics()
            t1 = time.monotonic()
            await asyncio.gather(*(stop(u) for u in accepted))
            await wait_for(lambda: not server.cluster.store.list("pods", RACE_NS), 60, message="GPU pods deleted")

            async def freed():
                m = await metrics()
                return m.get(IN_USE) == 0 and m.get(FREE) == 8

            await wait_for(freed, 20, message="GPUs free again")
            stopped = time.monotonic() - t1
            r = {
                "round": rnd,
                "running": phases.get("Running", 0),
                "pending": phases.get("Pending", 0),
                "accepted": len(accepted),
                "refused": len(refused),
                "other_statuses": dict(other),
                "refusal_messages": dict(messages),
                "answered_s": answered,
                "ready_s": ready,
                "stopped_and_freed_s": stopped,
                "pod_creates": kinds.get(("create", "pods"), 0),
                "quota_or_node_requests_by_decisions": decision_requests,
                "metrics_before": {"in_use": before.get(IN_USE), "free": before.get(FREE)},
                "metrics_after_spawns": {"in_use": during.get(IN_USE), "free": during.get(FREE)},
                "loadavg_1m_at_start": load_before,
                "ok": (len(accepted), len(refused), phases.get("Running", 0), phases.get("Pending", 0)) == (8, 92, 8, 0)
                      and set(messages) == {QUOTA_FULL_8} and decision_requests == 0,
            }
            if not r["ok"]:
                # What the apiserver saw for pods, and what the hub logged about the odd spawns.
                r["pod_requests"] = [{k: e.get(k) for k in ("verb", "path_qs", "status", "duration_ms")}
                                     for e in window if e.get("resource") == "pods" and e.get("verb") not in ("list", "watch", "get")]
                odd = [u for u, (st, b) in zip(users, results) if st == 400 and (b or {}).get("message") != QUOTA_FULL_8]
                log = hub.log_path.read_text(errors="replace").splitlines()
                r["hub_log_for_odd_spawns"] = [ln for ln in log if any(u in ln for u in odd)][-40:]
            out["rounds"].append(r)
            print(f"  round {rnd:2d}: running {r['running']}, refused {r['refused']}, pending {r['pending']}"
                  f"{', other ' + str(dict(other)) if other else ''}; answered in {answered:5.2f} s, 8 ready after {ready:5.2f} s, "
                  f"stopped+freed in {stopped:5.2f} s; metrics in use/free {during.get(IN_USE):.0f}/{during.get(FREE):.0f}; "
                  f"quota requests by decisions {decision_requests}; load {load_before:.2f}{'' if r['ok'] else '  <-- NOT OK'}",
                  flush=True)
        rs = out["rounds"]
        out["summary"] = {
            "rounds": len(rs),
            "rounds_ok": sum(r["ok"] for r in rs),
            "outcomes": dict(Counter(f"{r['running']} running / {r['refused']} refused / {r['pending']} pending" for r in rs)),
            "answered_s": {"median": statistics.median(r["answered_s"] for r in rs), "max": max(r["answered_s"] for r in rs),
                           "min": min(r["answered_s"] for r in rs)},
            "ready_s": {"median": statistics.median(r["ready_s"] for r in rs), "max": max(r["ready_s"] for r in rs),
                        "min": min(r["ready_s"] for r in rs)},
            "stopped_and_freed_s": {"median": statistics.median(r["stopped_and_freed_s"] for r in rs)},
            "hub_alive": hub.proc is not None and hub.proc.poll() is None,
        }
        return out
    except BaseException:
        print(hub.log_tail(40), file=sys.stderr)
        raise
    finally:
        await hub.stop()
        from kubespawner import KubeSpawner

        await KubeSpawner._stop_all_reflectors()
        await runner.cleanup()


# -- report --------------------------------------------------------------------------------------


def line(label: str, s: dict, unit: str = "us") -> str:
    f = 1 if unit == "us" else 1e-3
    return f"  {label:<52} median {s['median_us'] * f:9.2f} {unit}  p95 {s['p95_us'] * f:9.2f} {unit}  p99 {s['p99_us'] * f:9.2f} {unit}  (n={s['n']})"


def report(r: dict) -> None:
    d = r["decisions"]
    st = d["setup"]
    print(f"\nLedger fed with {st['pods']} running pods ({st['gpu_pods']} on GPUs, {st['cpu_pods']} CPU), {st['users']} users, "
          f"{st['groups']} groups; hub GPUs in use {st['hub_gpus_in_use']}, quota {st['quota_hard']}; "
          f"rebuild from the pods {st['ledger_rebuild_from_5000_pods_ms']:.1f} ms")
    print("Decisions (goal: < 1 ms median):")
    print(line("ledger.decide", d["decide"]))
    print(line("gpu_request + decide + reserve (spawner block)", d["decide_and_reserve"]))
    print(line("await PlatformSpawner.run_options_from_form", d["run_options_from_form"]))
    print(f"  outcomes: {d['decide_outcomes']}")
    print("Form for one user:")
    print(line("view model (ledger.view + build_form_view)", d["form_view_model"]))
    print(line("PlatformSpawner._render_options_form (HTML)", d["form_html"]))
    print(line("stock KubeSpawner._render_options_form (HTML)", d["stock_kubespawner_form_html"]))
    print(f"  availability shown: {d['form_html']['availability']}")
    print("Stock, per decision:")
    print(line("sum over the 5,000 pod dicts", d["stock_sum_over_pods"], "ms"))
    print(f"  answers checked against the ledger: {d['stock_sum_over_pods']['answers_checked']}, "
          f"mismatches: {d['stock_sum_over_pods']['mismatches']}")
    a = r.get("api")
    if a:
        print(line("GET resourcequotas (kubernetes_asyncio models)", a["get_resourcequotas_models"], "ms"))
        print(line("GET resourcequotas (raw + json.loads)", a["get_resourcequotas_raw_json"], "ms"))
        print(line("list 5,000 pods (raw + json.loads + sum)", a["list_pods_raw_json_and_sum"], "ms"))
    print("Ratios (stock / ours, median):")
    for k, v in {**d["ratios"], **(a or {}).get("ratios", {})}.items():
        print(f"  {k:<66} {v:10.1f}x")
    race_ = r.get("race")
    if race_:
        s = race_["summary"]
        print(f"Race, 100 concurrent spawns for 8 GPUs, {s['rounds']} rounds: {s['rounds_ok']} as expected; outcomes {s['outcomes']}; "
              f"answered median {s['answered_s']['median']:.2f} s (max {s['answered_s']['max']:.2f}), "
              f"8 ready median {s['ready_s']['median']:.2f} s (max {s['ready_s']['max']:.2f}); hub alive: {s['hub_alive']}")
    ld = r["load"]
    print(f"Load average (1 min) during the run: min {ld['min']:.2f}, median {ld['median']:.2f}, max {ld['max']:.2f} "
          f"({ld['samples']} samples); {r['machine']['cores']} cores, Python {r['machine']['python']}")


async def main(args) -> dict:
    results: dict = {"date": datetime.date.today().isoformat(), "machine": machine(),
                     "command": "python tests/benchmarks/bench_gpu_quota.py" + (" --quick" if args.quick else "")}
    sampler = LoadSampler().start()
    t0 = time.monotonic()
    # One emulator for the whole run: KubeSpawner caches its client configuration per process, so
    # the kubeconfig must exist (and keep its URL) before the first spawner is made.
    server = DevCluster(kubelet="simulated")
    await server.start("127.0.0.1", 0)
    server.write_kubeconfig(os.environ["KUBECONFIG"])
    try:
        n = 2000 if args.quick else args.decisions
        print(f"Decisions on the ledger ({n}), the form, and the stock sum ...", flush=True)
        decisions, mismatches, ctx = await decisions_and_form(n, 100 if args.quick else 1000, 200 if args.quick else 2000, args.seed)
        results["decisions"] = decisions
        if mismatches:
            results["mismatches"] = mismatches[:20]
        gc.collect()
        if not args.no_api:
            print("A Kubernetes request per decision, against the emulator ...", flush=True)
            results["api"] = await api_baseline(server, ctx["groups_of"], args.seed, 100 if args.quick else 1000, 5 if args.quick else 30,
                                                decisions["decide_and_reserve"]["median_us"])
        if args.rounds:
            print(f"The race: 100 concurrent spawns for 8 GPUs, {args.rounds} rounds on one hub ...", flush=True)
            results["race"] = await race(server, args.rounds)
    finally:
        await server.stop()
        results["load"] = sampler.stop()
        results["elapsed_s"] = time.monotonic() - t0
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer decisions and 2 race rounds, for a smoke run")
    parser.add_argument("--decisions", type=int, default=10000, help="decisions to time (default 10,000)")
    parser.add_argument("--rounds", type=int, default=None, help="race rounds (default 20; 0 skips the race)")
    parser.add_argument("--no-api", action="store_true", help="skip the Kubernetes-request baseline")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "out" / "gpu_quota.json")
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 2 if args.quick else 20
    results = asyncio.run(main(args))
    report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nWritten to {args.out}")
    bad = results["decisions"]["stock_sum_over_pods"]["mismatches"] or (
        "race" in results and results["race"]["summary"]["rounds_ok"] != results["race"]["summary"]["rounds"])
    sys.exit(1 if bad else 0)
