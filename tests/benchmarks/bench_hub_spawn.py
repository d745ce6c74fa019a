"""Spawns through real hubs: PlatformSpawner against stock KubeSpawner, both hubs alive at once.

Run from the repository root::

    .venv/bin/python tests/benchmarks/bench_hub_spawn.py            # 50 spawns each, a storm of 200
    .venv/bin/python tests/benchmarks/bench_hub_spawn.py --quick    # 10 spawns each, a storm of 50

The set-up:

- **The emulator** (``DevCluster``, simulated kubelet, its default node pool: two CPU nodes and
  two tainted 4-GPU A100 nodes) runs in a child process of this script, so it does not share the
  benchmark's event loop; the same child serves the notebook stub (a loopback responder answering
  200, which every pod's URL points at, as tests/gpuhub.py does).
  Every namespace gets the hub's RBAC (tests/hubrbac.py) and both hubs act as ServiceAccount
  ``jhub:hub``, as under z2jh.
- **Two hubs** (JupyterHub with configurable-http-proxy from ``.venv/node_modules``, logging at
  INFO), alive at once against that emulator:

  - *ours*: ``PlatformSpawner`` in namespace ``jhub``, labelled ``enforce: restricted`` as
    helm-values/namespace.yaml labels it;
  - *stock*: KubeSpawner 7.1 in namespace ``stock``, without the Pod Security labels (stock pods
    are not restricted-compliant).

  Both get the same profiles (a CPU profile, and a GPU profile written the plain KubeSpawner way:
  ``extra_resource_limits`` and the GPU toleration), the same ResourceQuota
  (``requests.nvidia.com/gpu: 8``) and the same hub settings: z2jh's
  ``slow_spawn_timeout: 0`` (a REST spawn answers 202 at once; z2jh-hub-loader.md step 3),
  ``concurrent_spawn_limit`` raised to the storm's size so every spawn of the storm runs at once
  (z2jh's default is 64), and ``consecutive_failure_limit`` 0 (JupyterHub's default; z2jh's is 5).

Measured:

1. **spawn -> ready**, sequential, alternating ours/stock (who goes first alternates too): the
   time from the REST ``POST /hub/api/users/<name>/server`` to the progress stream's ready event,
   and the hub process's own CPU time over the same span: user + system of the hub's pid (not
   the proxy's), read from the process's CPU clock (``clock_getcpuclockid``, nanoseconds) and,
   for the record, from psutil (which counts 10 ms clock ticks, too coarse for one spawn). Each
   server is stopped before the next spawn. One warm-up spawn per hub is not counted. Median,
   p95 and the ratios ours/stock.
2. **The storm**: N users POST a spawn at once to one hub, then to the other. A tenth of them,
   and at least 12, spread through the list, ask for the GPU profile (8 GPUs free), the rest
   for the CPU profile, so some GPU spawns must be refused. During the storm a
   probe sends ``GET /hub/api/users/probe`` every 50 ms; its latencies and the POSTs' response
   times are the hub API latency. The storm ends when no server is pending (one
   ``GET /hub/api/users?state=active`` every 0.5 s). Every spawn must end running, or, for a GPU
   spawn, refused with a message that says why (the progress stream's failed event, naming the
   GPUs or the quota); anything else fails the benchmark, as does a pod left Pending. Then every
   server is stopped and the namespace is empty again before the other hub's storm.

Prints the figures and writes them to ``tests/benchmarks/out/hub_spawn.json`` (``--out``). Exits
1 if a spawn ends other than as described or a storm leaves pods behind; timings assert nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
for p in (str(REPO), str(HERE.parent)):
    if p not in sys.path:
        sys.path.insert(0, p)

OURS_NS = "jhub"
STOCK_NS = "stock"
GPU = "nvidia.com/gpu"
GPU_QUOTA = 8
PROBE_INTERVAL = 0.05
Z2JH_CONCURRENT_SPAWN_LIMIT = 64
TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
# The same profiles for both hubs. Small guarantees so 200 CPU servers fit the two 8-CPU nodes.
PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "description": "2 CPUs",
     "kubespawner_override": {"cpu_limit": 2, "cpu_guarantee": 0.05, "mem_limit": "2G", "mem_guarantee": "128M"}},
    {"display_name": "GPU", "slug": "gpu", "description": "One GPU",
     "kubespawner_override": {"cpu_limit": 2, "cpu_guarantee": 0.05, "mem_limit": "2G", "mem_guarantee": "128M",
                              "extra_resource_limits": {GPU: "1"}, "tolerations": [TOLERATION]}},
]


# -- the emulator's child process -----------------------------------------------------------

def restricted_labels() -> dict:
    """The Pod Security labels helm-values/namespace.yaml puts on the hub's namespace."""
    import yaml

    docs = [d for d in yaml.safe_load_all((REPO / "helm-values" / "namespace.yaml").read_text()) if d]
    return next(d for d in docs if d["kind"] == "Namespace")["metadata"]["labels"]


async def serve_emulator(workdir: Path) -> None:
    """Child main: the emulator, the hub's RBAC and namespaces, and the notebook stub; answers
    JSON-line commands on stdin until ``quit`` or end of input."""
    from aiohttp import web

    from helpers import start_stub
    from hubrbac import HUB_NAMESPACE, HUB_SERVICE_ACCOUNT, HubRbac
    from jhplatform.devcluster.runtime import DevCluster

    server = DevCluster(kubelet="simulated", state_dir=workdir / "emulator-state")
    server.hub_rbac = HubRbac()
    server.hub_rbac.install(server.cluster)
    await server.start("127.0.0.1", 0)
    stub: web.AppRunner | None = None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        assert HUB_NAMESPACE == OURS_NS
        server.cluster.create("namespaces", None, {"metadata": {"name": OURS_NS, "labels": restricted_labels()}})
        server.cluster.create("namespaces", None, {"metadata": {"name": STOCK_NS}})
        for ns in (OURS_NS, STOCK_NS):
            server.cluster.create("resourcequotas", ns, {"metadata": {"name": "gpu-quota"},
                                                         "spec": {"hard": {f"requests.{GPU}": str(GPU_QUOTA)}}})
        kubeconfig = server.write_serviceaccount_kubeconfig(workdir / "hub.kubeconfig", HUB_NAMESPACE, HUB_SERVICE_ACCOUNT)
        stub, stub_port = await start_stub()
        reply({"ready": True, "url": server.url, "kubeconfig": str(kubeconfig), "stub_port": stub_port, "pid": os.getpid()})
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = json.loads(line)
            if cmd["op"] == "quit":
                break
            if cmd["op"] == "requests":
                counts: dict[str, Counter] = {}
                for e in server.requests:
                    counts.setdefault(e.get("namespace") or "(cluster)", Counter())[f"{e.get('verb')} {e.get('resource')}"] += 1
                if cmd.get("clear"):
                    server.requests.clear()
                reply({ns: dict(c) for ns, c in counts.items()})
            elif cmd["op"] == "pods":
                pods = server.cluster.store.list("pods", cmd["namespace"])
                reply({"total": len(pods), "phases": dict(Counter((p.get("status") or {}).get("phase", "") for p in pods))})
            else:
                reply({"error": f"unknown op {cmd['op']!r}"})
    except Exception as e:
        reply({"ready": False, "error": f"{type(e).__name__}: {e}"})
        raise
    finally:
        if stub is not None:
            await stub.cleanup()
        await server.stop()


class Emulator:
    """The emulator child, driven over its stdin/stdout."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.log_path = workdir / "emulator.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict = {}

    async def start(self) -> dict:
        self._log = open(self.log_path, "wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--serve-emulator", str(self.workdir),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._log)
        self.info = await self._read(60)
        if not self.info.get("ready"):
            raise RuntimeError(f"the emulator did not start: {self.info.get('error')}\n{self.log_tail()}")
        return self.info

    async def _read(self, timeout: float) -> dict:
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"the emulator exited:\n{self.log_tail()}")
        return json.loads(line)

    async def call(self, cmd: dict) -> dict:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read(60)

    async def pods(self, namespace: str) -> dict:
        return await self.call({"op": "pods", "namespace": namespace})

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            try:
                self.proc.stdin.write(b'{"op": "quit"}\n')
                await self.proc.stdin.drain()
                self.proc.stdin.close()
                await asyncio.wait_for(self.proc.wait(), 30)
            except (asyncio.TimeoutError, ConnectionError, BrokenPipeError):
                self.proc.kill()
                await self.proc.wait()
        self._log.close()
        self.proc = None


# -- the hubs --------------------------------------------------------------------------------

class Failed(Exception):
    """A spawn or a storm ended in a way the benchmark does not accept."""


def hub_config(namespace: str, stub_port: int, spawn_limit: int) -> str:
    return f"""
c.KubeSpawner.namespace = {namespace!r}
c.KubeSpawner.profile_list = {PROFILES!r}
c.KubeSpawner.get_pod_url = lambda spawner, pod: "http://127.0.0.1:{stub_port}"
c.KubeSpawner.start_timeout = 300
c.Spawner.http_timeout = 120
c.Spawner.consecutive_failure_limit = 0
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.JupyterHub.concurrent_spawn_limit = {spawn_limit}
"""


def process_cpu_clock(pid: int) -> int | None:
    """The clock id of another process's CPU time (``clock_getcpuclockid``), or None.

    psutil's user + system time of a process counts in clock ticks (10 ms), coarser than the
    ~60 ms a spawn costs the hub; this clock is the same sum to the nanosecond.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        clock = ctypes.c_int()
        if libc.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
            return None
        time.clock_gettime_ns(clock.value)
        return clock.value
    except (OSError, AttributeError):
        return None


class Hub:
    """One hub under test, with the client's sessions and the hub process's CPU clock."""

    def __init__(self, name: str, stack):
        import aiohttp
        import psutil

        self.name = name
        self.stack = stack
        self.headers = {"Authorization": f"token {stack.token}"}
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=self.headers,
                                             timeout=aiohttp.ClientTimeout(total=600))
        # The probe's own connection, so it never queues behind the storm's requests in the pool.
        self.probe_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), headers=self.headers,
                                                   timeout=aiohttp.ClientTimeout(total=600))
        self.process = psutil.Process(stack.proc.pid)
        self.clock = process_cpu_clock(stack.proc.pid)

    def cpu(self) -> float:
        """The hub process's CPU seconds (user + system, all its threads), to the nanosecond."""
        if self.clock is None:
            return self.cpu_ticks()
        return time.clock_gettime_ns(self.clock) / 1e9

    def cpu_ticks(self) -> float:
        """The same from psutil (user + system), which counts in clock ticks of 10 ms."""
        t = self.process.cpu_times()
        return t.user + t.system

    async def json(self, method: str, path: str, body=None, session=None, resend: bool = True):
        import aiohttp

        # The proxy (node) closes keep-alive connections idle for 5 s; the client can pick one up
        # in the same instant and read a reset. A GET or a stop's DELETE is safe to send again;
        # a spawn's POST and the probe's GET are measured and never sent again.
        attempts = 3 if resend and method in ("GET", "DELETE") else 1
        for attempt in range(attempts):
            try:
                async with (session or self.session).request(method, self.stack.api + path, json=body) as r:
                    text = await r.text()
                    try:
                        return r.status, json.loads(text) if text else None
                    except ValueError:
                        return r.status, text
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
                if attempt == attempts - 1:
                    raise

    async def progress_end(self, user: str) -> dict:
        """The last event of the user's spawn progress stream (ready, or failed with a message)."""
        last: dict = {}
        async with self.session.get(f"{self.stack.api}/users/{user}/server/progress") as r:
            if r.status != 200:
                return {"failed": True, "message": f"progress stream answered {r.status}: {(await r.text())[:300]}"}
            async for raw in r.content:
                line = raw.decode().strip()
                if line.startswith("data:"):
                    last = json.loads(line[5:])
                    if last.get("ready") or last.get("failed"):
                        break
        return last

    async def stop_server(self, user: str, timeout: float = 120) -> None:
        status, body = await self.json("DELETE", f"/users/{user}/server")
        if status not in (202, 204):
            raise Failed(f"{self.name}: stopping {user}'s server answered {status}: {body}")
        deadline = time.monotonic() + timeout
        while True:
            status, model = await self.json("GET", f"/users/{user}")
            if status == 200 and "" not in (model.get("servers") or {}):
                return
            if time.monotonic() > deadline:
                raise Failed(f"{self.name}: {user}'s server did not stop within {timeout} s")
            await asyncio.sleep(0.05)

    async def active_users(self) -> list[dict]:
        """Users with a server ready or pending, every page."""
        out, offset = [], 0
        while True:
            status, page = await self.json("GET", f"/users?state=active&offset={offset}&limit=200")
            if status != 200:
                raise Failed(f"{self.name}: GET /users?state=active answered {status}: {page}")
            out += page
            if len(page) < 200:
                return out
            offset += 200

    async def close(self) -> None:
        await self.session.close()
        await self.probe_session.close()


async def create_users(hub: Hub, names: list[str]) -> None:
    status, body = await hub.json("POST", "/users", {"usernames": names})
    if status != 201:
        raise Failed(f"{hub.name}: creating users answered {status}: {body}")


# -- 1. spawn -> ready ---------------------------------------------------------------------------

async def spawn_to_ready(hub: Hub, user: str, profile: str = "cpu") -> tuple[float, float, float]:
    """(seconds, hub CPU seconds, hub CPU seconds by psutil) from the POST to the ready event."""
    ticks0 = hub.cpu_ticks()
    cpu0 = hub.cpu()
    t0 = time.perf_counter()
    status, body = await hub.json("POST", f"/users/{user}/server", {"profile": profile})
    if status == 202:
        end = await hub.progress_end(user)
        if not end.get("ready"):
            raise Failed(f"{hub.name}: {user}'s spawn did not become ready: {end}")
    elif status != 201:
        raise Failed(f"{hub.name}: spawning {user} answered {status}: {body}")
    elapsed = time.perf_counter() - t0
    cpu = hub.cpu() - cpu0
    return elapsed, cpu, hub.cpu_ticks() - ticks0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summary(values: list[float], scale: float = 1000.0) -> dict:
    """median/p95/mean/max of ``values`` (seconds) in ms, and the values themselves."""
    ms = [v * scale for v in values]
    return {"n": len(ms), "median_ms": statistics.median(ms), "p95_ms": pct(ms, 95), "mean_ms": statistics.mean(ms),
            "max_ms": max(ms), "values_ms": [round(v, 3) for v in ms]}


async def sequential(hubs: dict[str, Hub], emulator: Emulator, n: int) -> dict:
    times: dict[str, list[float]] = {k: [] for k in hubs}
    cpus: dict[str, list[float]] = {k: [] for k in hubs}
    ticks: dict[str, list[float]] = {k: [] for k in hubs}
    for hub in hubs.values():  # warm-up: the reflectors start with a hub's first spawn
        await spawn_to_ready(hub, "warm")
        await hub.stop_server("warm")
    await emulator.call({"op": "requests", "clear": True})
    for i in range(n):
        order = list(hubs) if i % 2 == 0 else list(reversed(hubs))
        for name in order:
            hub = hubs[name]
            user = f"seq-{i:03d}"
            elapsed, cpu, tick = await spawn_to_ready(hub, user)
            times[name].append(elapsed)
            cpus[name].append(cpu)
            ticks[name].append(tick)
            await hub.stop_server(user)
        if (i + 1) % 10 == 0:
            print(f"  {i + 1}/{n} spawns each", flush=True)
    out = {"spawns": n, "time": {k: summary(v) for k, v in times.items()}, "hub_cpu": {k: summary(v) for k, v in cpus.items()},
           "hub_cpu_psutil": {k: summary(v) for k, v in ticks.items()},
           "hub_cpu_clock": "clock_getcpuclockid" if all(h.clock is not None for h in hubs.values()) else "psutil"}
    # Kubernetes requests per spawn and stop, by the hub's namespace (cluster-scoped ones apart).
    requests = await emulator.call({"op": "requests", "clear": True})
    out["kubernetes_requests_per_spawn"] = {
        name: {k: round(v / n, 2) for k, v in sorted(requests.get(ns, {}).items())}
        for name, ns in (("ours", OURS_NS), ("stock", STOCK_NS), ("cluster-scoped, both hubs", "(cluster)"))}
    for what in ("time", "hub_cpu", "hub_cpu_psutil"):
        o, s = out[what]["ours"], out[what]["stock"]
        out[what]["ratio_median"] = o["median_ms"] / s["median_ms"]
        out[what]["ratio_p95"] = o["p95_ms"] / s["p95_ms"]
    return out


# -- 2. the storm --------------------------------------------------------------------------------

async def probe(hub: Hub, stop: asyncio.Event, latencies: list[float], errors: list[str]) -> None:
    """``GET /users/probe`` every PROBE_INTERVAL (the next right after a slower one)."""
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            status, _ = await hub.json("GET", "/users/probe", session=hub.probe_session, resend=False)
            if status != 200:
                errors.append(f"probe answered {status}")
        except Exception as e:  # a refused or broken request is a finding, not a crash
            errors.append(f"probe: {type(e).__name__}: {e}")
        latencies.append(time.perf_counter() - t0)
        wait = PROBE_INTERVAL - (time.perf_counter() - t0)
        if wait > 0:
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except asyncio.TimeoutError:
                pass


def classify(profile: str, end: dict | None) -> tuple[str, str]:
    """("running" | "refused" | "other", message) for one spawn's end (``None``: it is running)."""
    if end is None:
        return "running", ""
    message = str(end.get("message") or "")
    reason = message.removeprefix("Spawn failed: ").strip()
    says_why = any(word in reason.lower() for word in ("gpu", "quota"))
    if profile == "gpu" and end.get("failed") and reason and says_why:
        return "refused", reason
    return "other", message or json.dumps(end)


def gpu_spawns(m: int) -> int:
    """How many of a storm's m spawns ask for a GPU: a tenth, and at least 4 more than the quota
    so that some are refused at every size."""
    return min(m, max(m // 10, GPU_QUOTA + 4))


def storm_profiles(users: list[str]) -> dict[str, str]:
    """Each storm user's profile, the GPU ones spread evenly through the list."""
    g = gpu_spawns(len(users))
    gpu = {i * len(users) // g for i in range(g)}
    return {u: "gpu" if i in gpu else "cpu" for i, u in enumerate(users)}


async def storm(hub: Hub, emulator: Emulator, namespace: str, users: list[str], settle_timeout: float) -> dict:
    profiles = storm_profiles(users)
    stop_probe = asyncio.Event()
    probe_ms: list[float] = []
    probe_errors: list[str] = []
    probe_task = asyncio.create_task(probe(hub, stop_probe, probe_ms, probe_errors))
    await asyncio.sleep(0.5)  # a few probes before, as the baseline at the storm's start
    baseline = len(probe_ms)
    cpu0 = hub.cpu()
    t0 = time.perf_counter()

    async def post(user: str):
        t = time.perf_counter()
        status, body = await hub.json("POST", f"/users/{user}/server", {"profile": profiles[user]})
        return user, status, body, time.perf_counter() - t

    posts = await asyncio.gather(*(post(u) for u in users))
    answered = time.perf_counter() - t0
    statuses = Counter(status for _, status, _, _ in posts)
    deadline = time.monotonic() + settle_timeout
    while True:
        active = await hub.active_users()
        pending = [m["name"] for m in active if any(s.get("pending") for s in (m.get("servers") or {}).values())]
        if not pending:
            break
        if time.monotonic() > deadline:
            stop_probe.set()
            await probe_task
            raise Failed(f"{hub.name}: {len(pending)} spawns still pending after {settle_timeout} s, e.g. {pending[:5]}")
        await asyncio.sleep(0.5)
    settled = time.perf_counter() - t0
    hub_cpu = hub.cpu() - cpu0
    stop_probe.set()
    await probe_task

    running = {m["name"] for m in active if (m.get("servers") or {}).get("", {}).get("ready")}
    immediate = {user: (status, body) for user, status, body, _ in posts if status not in (201, 202)}
    ends: dict[str, dict | None] = {}
    for user in users:
        if user in running:
            ends[user] = None
        elif user in immediate:
            status, body = immediate[user]
            msg = body.get("message") if isinstance(body, dict) else str(body)
            ends[user] = {"failed": True, "message": msg or f"HTTP {status}"}
    rest = [u for u in users if u not in ends]
    for user, end in zip(rest, await asyncio.gather(*(hub.progress_end(u) for u in rest))):
        ends[user] = end
    outcomes: Counter = Counter()
    refusals: Counter = Counter()
    others: list[dict] = []
    for user in users:
        kind, message = classify(profiles[user], ends[user])
        outcomes[kind] += 1
        if kind == "running":
            outcomes[f"running_{profiles[user]}"] += 1
        elif kind == "refused":
            refusals[message[:300]] += 1
        else:
            others.append({"user": user, "profile": profiles[user], "end": message[:500]})
    pods = await emulator.pods(namespace)

    # Stop everything, and wait until the namespace is empty for the other hub's storm.
    t_stop = time.perf_counter()
    sem = asyncio.Semaphore(25)

    async def stop_one(user: str):
        async with sem:
            await hub.stop_server(user, timeout=settle_timeout)

    await asyncio.gather(*(stop_one(u) for u in sorted(running)))
    deadline = time.monotonic() + 120
    while (left := await emulator.pods(namespace))["total"]:
        if time.monotonic() > deadline:
            raise Failed(f"{hub.name}: {left} pods left in {namespace} two minutes after every server was stopped")
        await asyncio.sleep(0.25)
    stopped = time.perf_counter() - t_stop

    storm_probe = probe_ms[baseline:]
    posts_s = [elapsed for _, _, _, elapsed in posts]
    return {
        "users": len(users), "gpu_spawns": sum(p == "gpu" for p in profiles.values()), "gpu_quota": GPU_QUOTA,
        "post_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "post": summary(posts_s), "probe": summary(storm_probe) if storm_probe else None,
        "probe_before_storm": summary(probe_ms[:baseline]) if baseline else None, "probe_errors": probe_errors[:20],
        "answered_s": answered, "settled_s": settled, "hub_cpu_s": hub_cpu, "hub_cpu_per_spawn_ms": hub_cpu / len(users) * 1000,
        "outcomes": dict(outcomes), "refusals": dict(refusals), "others": others[:50],
        "pods_at_end": pods, "stop_all_s": stopped,
    }


def storm_problems(name: str, s: dict) -> list[str]:
    """What makes a storm fail the benchmark."""
    problems = []
    o = s["outcomes"]
    if o.get("other"):
        problems.append(f"{name}: {o['other']} spawns ended neither running nor refused with a reason, e.g. {s['others'][:3]}")
    if o.get("running_gpu", 0) > s["gpu_quota"]:
        problems.append(f"{name}: {o['running_gpu']} GPU servers running for a quota of {s['gpu_quota']}")
    phases = s["pods_at_end"]["phases"]
    if set(phases) - {"Running"} or phases.get("Running", 0) != o.get("running", 0):
        problems.append(f"{name}: pods at the end {phases}, servers running {o.get('running', 0)}")
    if s["probe_errors"]:
        problems.append(f"{name}: the probe failed during the storm: {s['probe_errors'][:3]}")
    return problems


# -- main ----------------------------------------------------------------------------------------

def versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("jupyterhub", "jupyterhub-kubespawner", "kubernetes_asyncio")}


async def run(args) -> dict:
    from hubstack import HubStack

    if not shutil.which("configurable-http-proxy"):
        raise SystemExit("configurable-http-proxy is not on PATH: run `make install` and put .venv/node_modules/.bin on PATH "
                         "(`make bench` does)")
    n = args.spawns if args.spawns is not None else (10 if args.quick else 50)
    m = args.storm if args.storm is not None else (50 if args.quick else 200)
    workdir = Path(tempfile.mkdtemp(prefix="jhplatform-bench-hub-spawn-"))
    load_start = os.getloadavg()
    t_start = time.monotonic()
    results: dict = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python tests/benchmarks/bench_hub_spawn.py" + (" --quick" if args.quick else ""),
        "versions": versions(),
        "config": {"spawns_each": n, "storm_users": m, "storm_gpu_spawns": gpu_spawns(m), "gpu_quota": GPU_QUOTA,
                   "concurrent_spawn_limit": m, "z2jh_default_concurrent_spawn_limit": Z2JH_CONCURRENT_SPAWN_LIMIT,
                   "slow_spawn_timeout": 0, "consecutive_failure_limit": 0, "probe_interval_ms": PROBE_INTERVAL * 1000,
                   "namespaces": {"ours": f"{OURS_NS} (Pod Security enforce=restricted)", "stock": f"{STOCK_NS} (no Pod Security labels)"},
                   "profiles": PROFILES},
    }
    print(f"Two hubs on one emulator: ours (PlatformSpawner, namespace {OURS_NS}, restricted) and stock "
          f"(KubeSpawner, namespace {STOCK_NS}); {n} spawns each, a storm of {m}", flush=True)
    print(f"concurrent_spawn_limit = {m} so the whole storm runs at once (z2jh's default is "
          f"{Z2JH_CONCURRENT_SPAWN_LIMIT}: beyond it the hub answers 429 'Too many users trying to log in')", flush=True)
    emulator = Emulator(workdir)
    hubs: dict[str, Hub] = {}
    stacks = []
    try:
        info = await emulator.start()
        kubeconfig = Path(info["kubeconfig"])
        for name, ns, cls in (("ours", OURS_NS, "jhplatform"), ("stock", STOCK_NS, "kubespawner.KubeSpawner")):
            (workdir / name).mkdir()
            stack = HubStack(workdir / name, kubeconfig, hub_config(ns, info["stub_port"], max(m, 1)), spawner_class=cls, debug=False)
            stacks.append(stack)
            await stack.start()
            hubs[name] = Hub(name, stack)
        names = ["warm", "probe"] + [f"seq-{i:03d}" for i in range(n)] + [f"storm-{i:03d}" for i in range(m)]
        for hub in hubs.values():
            await create_users(hub, names)
        print(f"[1/2] spawn -> ready, {n} spawns each, alternating, each stopped before the next", flush=True)
        results["spawn_to_ready"] = await sequential(hubs, emulator, n)
        problems: list[str] = []
        results["storm"] = {}
        for name, ns in (("ours", OURS_NS), ("stock", STOCK_NS)):
            print(f"[2/2] the storm on {name}: {m} spawns at once ({gpu_spawns(m)} of them GPU, "
                  f"{GPU_QUOTA} GPUs)", flush=True)
            s = await storm(hubs[name], emulator, ns, [f"storm-{i:03d}" for i in range(m)], args.settle_timeout)
            results["storm"][name] = s
            problems += storm_problems(name, s)
        so, ss = results["storm"]["ours"], results["storm"]["stock"]
        results["storm"]["ratios"] = {
            f"{what}_{stat}": so[what][stat] / ss[what][stat]
            for what in ("probe", "post") for stat in ("median_ms", "p95_ms") if so[what] and ss[what]
        }
        results["problems"] = problems
        for name, stack in zip(hubs, stacks):
            if stack.proc is None or stack.proc.poll() is not None:
                problems.append(f"{name}: the hub exited during the benchmark:\n{stack.log_tail()}")
    finally:
        for hub in hubs.values():
            await hub.close()
        for stack in stacks:
            await stack.stop()
        await emulator.stop()
        results["machine"] = {"cores": os.cpu_count(), "python": platform.python_version(),
                              "loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg())}
        results["elapsed_s"] = time.monotonic() - t_start
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}")
    return results


def report(r: dict) -> None:
    s = r["spawn_to_ready"]
    print(f"\nspawn -> ready, {s['spawns']} each, alternating (ms):")
    for what, label in (("time", "POST to ready"), ("hub_cpu", "hub CPU"), ("hub_cpu_psutil", "(psutil ticks)")):
        o, st = s[what]["ours"], s[what]["stock"]
        print(f"  {label:<14} ours median {o['median_ms']:8.1f} p95 {o['p95_ms']:8.1f} | stock median {st['median_ms']:8.1f} "
              f"p95 {st['p95_ms']:8.1f} | ratio median {s[what]['ratio_median']:.3f} p95 {s[what]['ratio_p95']:.3f}")
    for name, counts in s["kubernetes_requests_per_spawn"].items():
        print(f"  Kubernetes requests per spawn + stop, {name}: {sum(counts.values()):.1f} {counts}")
    for name in ("ours", "stock"):
        t = r["storm"][name]
        print(f"storm on {name}: {t['users']} spawns ({t['gpu_spawns']} GPU for {t['gpu_quota']}): outcomes {t['outcomes']}; "
              f"POST statuses {t['post_statuses']}; answered in {t['answered_s']:.1f} s, settled in {t['settled_s']:.1f} s; "
              f"hub CPU {t['hub_cpu_s']:.1f} s")
        print(f"  hub API during the storm: probe GET median {t['probe']['median_ms']:.1f} ms p95 {t['probe']['p95_ms']:.1f} ms "
              f"(n={t['probe']['n']}); POST median {t['post']['median_ms']:.1f} ms p95 {t['post']['p95_ms']:.1f} ms")
        for msg, count in t["refusals"].items():
            print(f"  refused x{count}: {msg}")
    print("storm ratios ours/stock: " + ", ".join(f"{k} {v:.2f}" for k, v in r["storm"]["ratios"].items()))
    m = r["machine"]
    print(f"machine: {m['cores']} cores, Python {m['python']}, load average {m['loadavg_start'][0]:.2f} -> "
          f"{m['loadavg_end'][0]:.2f}; {r['elapsed_s']:.0f} s")
    for p in r["problems"]:
        print(f"PROBLEM: {p}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 spawns each and a storm of 50")
    parser.add_argument("--spawns", type=int, help="sequential spawns per hub (default 50; 10 with --quick)")
    parser.add_argument("--storm", type=int, help="users in each storm (default 200; 50 with --quick)")
    parser.add_argument("--settle-timeout", type=float, default=300, help="seconds a storm may take to settle")
    parser.add_argument("--keep", action="store_true", help="keep the hubs' and the emulator's logs")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "hub_spawn.json", help="where the JSON figures go")
    parser.add_argument("--serve-emulator", metavar="WORKDIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        asyncio.run(serve_emulator(Path(args.serve_emulator)))
        return 0
    try:
        results = asyncio.run(run(args))
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 1 if results["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
