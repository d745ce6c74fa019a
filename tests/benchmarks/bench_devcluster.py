"""Benchmark of the Kubernetes API emulator (``jhplatform.devcluster``) against kmock 0.8.

Run from the repository root::

    .venv/bin/python tests/benchmarks/bench_devcluster.py            # full (several minutes)
    .venv/bin/python tests/benchmarks/bench_devcluster.py --quick    # a short smoke run

Everything goes over HTTP on loopback with the clients KubeSpawner uses (kubernetes_asyncio 36.1
and its aiohttp). Figures:

1. list of 1,000 pods in one namespace: the reflector's raw list (``_preload_content=False`` and
   ``await resp.read()``, goal < 50 ms), the same plus ``json.loads`` (what the reflector then does)
   and ``list_namespaced_pod`` with model deserialisation;
2. watch fan-out: 100 raw watch streams, then label patches one at a time; per write, the time from
   just before the PATCH to the moment the last of the 100 watchers has read the event (goal < 20 ms);
3. create+delete (grace 0) pairs from 8 concurrent workers, as raw aiohttp requests and through
   kubernetes_asyncio's ``create_namespaced_pod`` / ``delete_namespaced_pod``.

The stock component is kmock 0.8's ``KubernetesEmulator``, measured in the same run and interleaved
round by round with ours so that both see the same machine load. kmock is installed into the
running venv with pip if it is missing (it is not a project dependency); if it cannot be installed
or cannot do a measurement, the script says so and still reports our figures.

By default each server runs in its own child process (like ``make demo``: the emulator and the hub
are separate processes), so the client's cost of reading 100 streams does not run on the server's
event loop. ``--same-process`` serves from the benchmark's own event loop instead, as the pytest
fixtures do. ``--profile DIR`` runs our server under cProfile per phase and prints where its time goes.

Prints a table and writes the figures as JSON to ``tests/benchmarks/out/devcluster.json``. This is
a script that reports numbers; it asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import importlib.util
import io
import json
import math
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OUT_DEFAULT = REPO / "tests" / "benchmarks" / "out" / "devcluster.json"
KMOCK_REQUIREMENT = "kmock==0.8"

LIST_NS = "bench-list"
WATCH_NS = "bench-watch"
CHURN_NS = "bench-churn"
WATCH_TARGET = "jupyter-fanout0000"  # seeded as prefix "fanout", index 0
SELECTOR = "component=singleuser-server"  # the label selector KubeSpawner's pod reflector sends

GOAL_LIST_MS = 50.0
GOAL_FANOUT_MS = 20.0

SEQ_RE = re.compile(rb'"bench-seq":\s*"(\d+)"')


# -- workload --------------------------------------------------------------------------------


def pod_body(name: str, namespace: str, user: str) -> dict[str, Any]:
    """A pod as KubeSpawner 7.1.0's ``make_pod`` sends it (kube-emulator-spec §1.4), with cpu and
    memory limits/guarantees, the usual JupyterHub environment and ``schedulerName: none`` so
    that no scheduler or kubelet touches it (it stays Pending).

    It also carries ``metadata.namespace``, which KubeSpawner does not send: kmock stores bodies
    verbatim and its namespaced watch filters events on the stored object's namespace.
    """
    server_name = ""
    prefix = f"/user/{user}/"
    env = {
        "CPU_GUARANTEE": "0.5",
        "CPU_LIMIT": "2.0",
        "JPY_API_TOKEN": "0123456789abcdef0123456789abcdef",
        "JUPYTERHUB_ACTIVITY_URL": f"http://hub:8081/hub/api/users/{user}/activity",
        "JUPYTERHUB_ADMIN_ACCESS": "1",
        "JUPYTERHUB_API_TOKEN": "0123456789abcdef0123456789abcdef",
        "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}",
        "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "0",
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps([f"access:servers!server={user}/", f"access:servers!user={user}"]),
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
        "JUPYTERHUB_OAUTH_SCOPES": json.dumps([f"access:servers!server={user}/", f"access:servers!user={user}"]),
        "JUPYTERHUB_PUBLIC_HUB_URL": "",
        "JUPYTERHUB_PUBLIC_URL": "",
        "JUPYTERHUB_SERVER_NAME": server_name,
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888" + prefix,
        "JUPYTERHUB_USER": user,
        "JUPYTER_IMAGE": "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0",
        "JUPYTER_IMAGE_SPEC": "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0",
        "MEM_GUARANTEE": "1073741824",
        "MEM_LIMIT": "4294967296",
    }
    labels = {
        "hub.jupyter.org/username": user,
        "app.kubernetes.io/name": "jupyterhub",
        "app.kubernetes.io/managed-by": "kubespawner",
        "app": "jupyterhub",
        "heritage": "jupyterhub",
        "app.kubernetes.io/component": "singleuser-server",
        "component": "singleuser-server",
        "hub.jupyter.org/servername": server_name,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {
                "hub.jupyter.org/username": user,
                "hub.jupyter.org/servername": server_name,
                "hub.jupyter.org/kubespawner-version": "7.1.0",
                "hub.jupyter.org/jupyterhub-version": "5.5.0",
            },
            "labels": labels,
            "name": name,
            "namespace": namespace,
        },
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "args": ["jupyterhub-singleuser"],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "image": "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0",
                    "lifecycle": {},
                    "name": "notebook",
                    "ports": [{"containerPort": 8888, "name": "notebook-port"}],
                    "resources": {
                        "limits": {"cpu": "2", "memory": "4294967296"},
                        "requests": {"cpu": "500m", "memory": "1073741824"},
                    },
                    "securityContext": {"allowPrivilegeEscalation": False, "runAsUser": 1000, "runAsGroup": 100},
                    "volumeMounts": [],
                }
            ],
            "imagePullSecrets": [],
            "restartPolicy": "OnFailure",
            "schedulerName": "none",
            "securityContext": {"fsGroup": 100},
            "volumes": [],
        },
    }


# -- statistics ------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in seconds]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p95_ms": round(pct(ms, 95), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
    }


# -- servers (run in a child process, or in-process with --same-process) ----------------------


class _Profiled:
    """cProfile around a phase, on the server's side."""

    def __init__(self) -> None:
        self.profile: cProfile.Profile | None = None

    def start(self) -> dict:
        self.profile = cProfile.Profile()
        self.profile.enable()
        return {"ok": True}

    def stop(self, path: str, top: int = 25) -> dict:
        if self.profile is None:
            return {"ok": False, "error": "no profile running"}
        self.profile.disable()
        self.profile.dump_stats(path)
        out = io.StringIO()
        stats = pstats.Stats(self.profile, stream=out)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        self.profile = None
        return {"ok": True, "path": path, "text": out.getvalue()}


class DevClusterServer:
    """Our emulator, as ``DevCluster(kubelet="simulated")``."""

    kind = "devcluster"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.server = None
        self.profiler = _Profiled()

    async def start(self) -> dict:
        from jhplatform.devcluster.runtime import DevCluster

        self.server = DevCluster(kubelet="simulated", state_dir=self.workdir / "devcluster-state")
        await self.server.start("127.0.0.1", 0)
        kubeconfig = self.server.write_kubeconfig(self.workdir / "devcluster.kubeconfig")
        return {"url": self.server.url, "kubeconfig": str(kubeconfig)}

    def seed(self, namespace: str, n: int, prefix: str) -> dict:
        c = self.server.cluster
        if c.store.find("namespaces", "", namespace) is None:
            c.create("namespaces", None, {"metadata": {"name": namespace}})
        t0 = time.perf_counter()
        for i in range(n):
            user = f"{prefix}{i:04d}"
            c.create("pods", namespace, pod_body(f"jupyter-{user}", namespace, user))
        return {"created": n, "seconds": round(time.perf_counter() - t0, 4), "rv": str(c.store.rv)}

    def request_times(self, verb: str, resource: str, clear: bool) -> dict:
        ms = [e["ms"] for e in self.server.requests if e.get("verb") == verb and e.get("resource") == resource and "ms" in e]
        if clear:
            self.server.requests.clear()
        return {"ms": ms}

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None


class KmockServer:
    """kmock 0.8's ``KubernetesEmulator`` behind its own aiohttp ``Server``."""

    kind = "kmock"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.emulator = None
        self.http = None
        self.profiler = _Profiled()

    async def start(self) -> dict:
        import kmock

        self.emulator = kmock.KubernetesEmulator()
        await self.emulator.__aenter__()
        self.http = kmock.Server(self.emulator)
        await self.http.__aenter__()
        # Unknown resources 404 on LIST until declared (kube-emulator-spec §5.1).
        self.emulator.resources["v1/pods"] = {}
        url = str(self.http.url).rstrip("/")
        path = self.workdir / "kmock.kubeconfig"
        path.write_text(json.dumps(_kubeconfig(url)))  # JSON is valid YAML
        return {"url": url, "kubeconfig": str(path), "version": kmock.__version__}

    def seed(self, namespace: str, n: int, prefix: str) -> dict:
        t0 = time.perf_counter()
        for i in range(n):
            user = f"{prefix}{i:04d}"
            name = f"jupyter-{user}"
            self.emulator.objects["v1/pods", namespace, name] = pod_body(name, namespace, user)
        return {"created": n, "seconds": round(time.perf_counter() - t0, 4), "rv": None}

    def request_times(self, verb: str, resource: str, clear: bool) -> dict:
        return {"ms": []}

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.__aexit__(None, None, None)
            self.http = None
        if self.emulator is not None:
            await self.emulator.__aexit__(None, None, None)
            self.emulator = None


def _kubeconfig(url: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bench", "cluster": {"server": url}}],
        "users": [{"name": "bench", "user": {"token": "bench"}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench", "namespace": "default"}}],
        "current-context": "bench",
    }


SERVER_KINDS = {"devcluster": DevClusterServer, "kmock": KmockServer}


async def dispatch(server, cmd: dict) -> dict:
    """One control command for a server (the same for in-process and child-process servers)."""
    op = cmd["op"]
    if op == "seed":
        return server.seed(cmd["namespace"], cmd["n"], cmd["prefix"])
    if op == "profile_start":
        return server.profiler.start()
    if op == "profile_stop":
        return server.profiler.stop(cmd["path"])
    if op == "cpu":
        return {"process_time": time.process_time()}
    if op == "request_times":
        return server.request_times(cmd["verb"], cmd["resource"], cmd.get("clear", False))
    return {"error": f"unknown op {op!r}"}


async def serve_child(kind: str, workdir: Path, max_seconds: float) -> None:
    """Child-process main: start a server, answer JSON-line commands on stdin until 'quit',
    end of input or ``max_seconds``; always stop the server."""
    server = SERVER_KINDS[kind](workdir)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    deadline = loop.time() + max_seconds
    try:
        info = await server.start()
        reply({"ready": True, **info})
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                print(f"bench server {kind}: max time reached, stopping", file=sys.stderr)
                break
            try:
                line = await asyncio.wait_for(reader.readline(), remaining)
            except asyncio.TimeoutError:
                continue
            if not line:
                break
            cmd = json.loads(line)
            if cmd.get("op") == "quit":
                break
            try:
                reply(await dispatch(server, cmd))
            except Exception as e:  # report, keep serving
                reply({"error": f"{type(e).__name__}: {e}"})
    except Exception as e:
        reply({"ready": False, "error": f"{type(e).__name__}: {e}"})
        raise
    finally:
        await server.stop()


class ChildServer:
    """A server in a child process of this script, driven over its stdin/stdout."""

    def __init__(self, kind: str, workdir: Path, max_seconds: float):
        self.kind = kind
        self.workdir = workdir
        self.max_seconds = max_seconds
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = workdir / f"{kind}-server.log"
        self.info: dict = {}

    async def start(self) -> dict:
        self._log = open(self.log_path, "wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--serve", self.kind,
            "--workdir", str(self.workdir), "--max-seconds", str(self.max_seconds),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._log,
            limit=2**22,
        )
        self.info = await self._read(60)
        if not self.info.get("ready"):
            raise RuntimeError(f"{self.kind} server did not start: {self.info.get('error')}; log: {self.log_tail()}")
        self.info["pid"] = self.proc.pid
        return self.info

    async def _read(self, timeout: float) -> dict:
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.kind} server exited; log: {self.log_tail()}")
        return json.loads(line)

    async def call(self, cmd: dict, timeout: float = 120) -> dict:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read(timeout)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    async def stop(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.returncode is None:
                self.proc.stdin.write(b'{"op": "quit"}\n')
                await self.proc.stdin.drain()
                self.proc.stdin.close()
                await asyncio.wait_for(self.proc.wait(), 15)
        except (asyncio.TimeoutError, ConnectionError, BrokenPipeError):
            pass
        finally:
            if self.proc.returncode is None:
                self.proc.kill()  # only the child this script started, by its own handle
                await self.proc.wait()
            self._log.close()
            self.proc = None


class LocalServer:
    """A server on this process's event loop (``--same-process``)."""

    def __init__(self, kind: str, workdir: Path):
        self.kind = kind
        self.server = SERVER_KINDS[kind](workdir)
        self.info: dict = {}

    async def start(self) -> dict:
        self.info = await self.server.start()
        self.info["pid"] = os.getpid()
        return self.info

    async def call(self, cmd: dict, timeout: float = 120) -> dict:
        return await dispatch(self.server, cmd)

    def log_tail(self, n: int = 2000) -> str:
        return ""

    async def stop(self) -> None:
        await self.server.stop()


# -- client side -----------------------------------------------------------------------------


def kubeconfig_token(path: str) -> str:
    """The bearer token of a kubeconfig's first user (both servers' kubeconfigs have one)."""
    import yaml

    return yaml.safe_load(Path(path).read_text())["users"][0]["user"]["token"]


class Target:
    """One server under test, seen from the benchmark client."""

    def __init__(self, kind: str, handle):
        self.kind = kind
        self.handle = handle
        self.url = ""
        self.api = None
        self.v1 = None
        self.session = None
        self.headers: dict[str, str] = {}
        self.results: dict[str, Any] = {}
        self.notes: list[str] = []
        # kmock classifies only ``watch=true`` as a watch (kube-emulator-spec §5.1).
        self.watch_flag = "True" if kind == "devcluster" else "true"

    async def start(self) -> None:
        import aiohttp
        from kubernetes_asyncio import client, config

        info = await self.handle.start()
        self.url = info["url"]
        self.results["server"] = {k: v for k, v in info.items() if k in ("url", "version", "pid")}
        cfg = client.Configuration()
        await config.load_kube_config(config_file=info["kubeconfig"], client_configuration=cfg)
        self.api = client.ApiClient(configuration=cfg)
        self.v1 = client.CoreV1Api(self.api)
        # The raw requests authenticate as the kubeconfig's user does (the emulator enforces RBAC;
        # an anonymous request is refused).
        self.headers = {"Authorization": f"Bearer {kubeconfig_token(info['kubeconfig'])}"}
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64), headers=self.headers)

    async def server_cpu(self) -> float | None:
        """CPU seconds the server's process has used; None when it shares this process."""
        if isinstance(self.handle, LocalServer):
            return None
        return (await self.handle.call({"op": "cpu"}))["process_time"]

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.session is not None:
                await self.session.close()
        with contextlib.suppress(Exception):
            if self.api is not None:
                await self.api.close()
        await self.handle.stop()


async def bench_list(t: Target, iterations: int, warmup: int) -> dict:
    """The reflector's initial list (R1), raw and with model deserialisation."""
    from kubernetes_asyncio.client import V1PodList

    kwargs = {"label_selector": SELECTOR, "field_selector": "", "_request_timeout": 60}
    raw, parsed, model = [], [], []
    size = count = lists = 0
    cpu0 = await t.server_cpu()
    for i in range(warmup + iterations):
        lists += 1
        t0 = time.perf_counter()
        resp = await t.v1.list_namespaced_pod(LIST_NS, _preload_content=False, **kwargs)
        body = await resp.read()
        t1 = time.perf_counter()
        doc = json.loads(body)
        t2 = time.perf_counter()
        if not resp.ok:
            raise RuntimeError(f"list answered {resp.status}: {body[:200]!r}")
        if i >= warmup:
            raw.append(t1 - t0)
            parsed.append(t2 - t0)
        size, count = len(body), len(doc.get("items", []))
    model_error = None
    for i in range(warmup + iterations):
        lists += 1
        t0 = time.perf_counter()
        try:
            pods = await t.v1.list_namespaced_pod(LIST_NS, **kwargs)
        except Exception as e:  # kmock's bodies may not deserialise; report instead of failing
            model_error = f"{type(e).__name__}: {e}"
            break
        t1 = time.perf_counter()
        if not isinstance(pods, V1PodList) or len(pods.items) != count:
            model_error = f"unexpected result: {type(pods).__name__} with {len(getattr(pods, 'items', []) or [])} items"
            break
        if i >= warmup:
            model.append(t1 - t0)
    cpu1 = await t.server_cpu()
    out = {"items": count, "bytes": size, "raw": summary_ms(raw), "raw_json": summary_ms(parsed)}
    if cpu0 is not None and cpu1 is not None:
        out["server_cpu_ms_per_list"] = round((cpu1 - cpu0) * 1000 / lists, 3)
    out["model"] = summary_ms(model) if model and not model_error else {"error": model_error}
    return out


async def bench_fanout(t: Target, watchers: int, writes: int, rv: str | None) -> dict:
    """Watch fan-out: ``watchers`` raw streams, ``writes`` label patches one at a time."""
    import aiohttp

    params = {"labelSelector": SELECTOR, "fieldSelector": "", "watch": t.watch_flag, "timeoutSeconds": "60"}
    if rv:
        params["resourceVersion"] = rv
    path = f"{t.url}/api/v1/namespaces/{WATCH_NS}/pods"
    pending: dict[int, dict] = {}
    connected = 0
    all_connected = asyncio.Event()
    errors: list[str] = []

    async def watcher(session: aiohttp.ClientSession) -> None:
        nonlocal connected
        try:
            async with session.get(path, params=params, headers={"Accept": "application/json"}) as resp:
                if resp.status != 200:
                    errors.append(f"watch answered {resp.status}")
                    return
                ctype = resp.headers.get("Content-Type", "")
                connected += 1
                if connected == watchers:
                    all_connected.set()
                first = True
                while True:
                    line = await resp.content.readline()
                    if not line:
                        return
                    now = time.perf_counter()
                    if first and line.strip():
                        first = False
                        if not line.startswith(b'{"type"'):
                            # e.g. a list body where a watch stream was asked for.
                            errors.append(f"not a watch stream ({ctype}): {line[:80]!r}")
                            return
                    m = SEQ_RE.search(line)
                    if m is None:
                        continue
                    rec = pending.get(int(m.group(1)))
                    if rec is None:
                        continue
                    rec["n"] += 1
                    rec["last"] = now
                    if rec["first"] is None:
                        rec["first"] = now
                    if rec["n"] >= watchers:
                        rec["done"].set()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        headers=t.headers,
    )
    tasks = [asyncio.create_task(watcher(session)) for _ in range(watchers)]
    seq = 0

    async def write_and_wait(timeout: float) -> tuple[float, float, float, float] | None:
        """PATCH a new bench-seq label; (write rtt, first, last, t0) or None on timeout."""
        nonlocal seq
        seq += 1
        rec = pending[seq] = {"n": 0, "first": None, "last": None, "done": asyncio.Event()}
        body = json.dumps({"metadata": {"labels": {"bench-seq": str(seq)}}})
        t0 = time.perf_counter()
        async with t.session.patch(
            f"{path}/{WATCH_TARGET}", data=body, headers={"Content-Type": "application/merge-patch+json"}
        ) as resp:
            await resp.read()
            t_resp = time.perf_counter()
            if resp.status != 200:
                raise RuntimeError(f"patch answered {resp.status}")
        try:
            await asyncio.wait_for(rec["done"].wait(), timeout)
        except asyncio.TimeoutError:
            pending.pop(seq, None)
            return None
        pending.pop(seq, None)
        return t_resp - t0, rec["first"] - t0, rec["last"] - t0, t0

    try:
        try:
            await asyncio.wait_for(all_connected.wait(), 30)
        except asyncio.TimeoutError:
            return {"error": f"only {connected}/{watchers} watch streams opened; {errors[:3]}"}
        # Barrier: a write that every watcher must see before timing starts (kmock registers its
        # bus reader only after the headers and the replay, so "headers received" is not enough).
        for _ in range(5):
            if errors:
                break
            if await write_and_wait(5) is not None:
                break
        else:
            return {"error": f"the watchers did not all receive a warm-up write within 5 s ({errors[:3]})"}
        if errors:
            return {"error": f"watch failed: {errors[0]}"}
        rtt, first, last = [], [], []
        missed = 0
        cpu0 = await t.server_cpu()
        for _ in range(writes):
            r = await write_and_wait(5)
            if r is None:
                missed += 1
                if missed >= 3:
                    break
                continue
            rtt.append(r[0])
            first.append(r[1])
            last.append(r[2])
        cpu1 = await t.server_cpu()
        if not last:
            return {"error": f"no write reached all {watchers} watchers within 5 s ({errors[:3]})"}
        out = {
            "watchers": watchers,
            "writes": len(last),
            "missed": missed,
            "last_watcher": summary_ms(last),
            "first_watcher": summary_ms(first),
            "patch_rtt": summary_ms(rtt),
        }
        if cpu0 is not None and cpu1 is not None:
            # The PATCH itself plus one event line written to each of the watchers.
            out["server_cpu_ms_per_write"] = round((cpu1 - cpu0) * 1000 / (len(last) + missed), 3)
        return out
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()


async def bench_churn(t: Target, pairs: int, workers: int, tag: str, via: str, max_seconds: float) -> dict:
    """create+delete (grace 0) pairs from ``workers`` concurrent workers.

    Workers start no new pair after ``max_seconds`` (kmock manages a few pairs per second once it
    holds a thousand objects), so the figure is pairs done over the time taken.

    ``via="raw"``: aiohttp requests as KubeSpawner's wire shows them; ``via="client"``:
    ``create_namespaced_pod`` / ``delete_namespaced_pod`` of kubernetes_asyncio (model (de)serialisation
    included, as KubeSpawner's own calls do).
    """
    from kubernetes_asyncio.client import V1DeleteOptions

    base = f"{t.url}/api/v1/namespaces/{CHURN_NS}/pods"
    create_s: list[float] = []
    delete_s: list[float] = []
    failures: list[str] = []
    share = [pairs // workers + (1 if w < pairs % workers else 0) for w in range(workers)]

    async def worker(w: int) -> None:
        for i in range(share[w]):
            if len(failures) > 20 or time.perf_counter() > deadline:
                return
            user = f"churn-{tag}-w{w}-{i:05d}"
            name = f"jupyter-{user}"
            body = pod_body(name, CHURN_NS, user)
            t0 = time.perf_counter()
            try:
                if via == "raw":
                    async with t.session.post(base, data=json.dumps(body), headers={"Content-Type": "application/json"}) as resp:
                        await resp.read()
                        if resp.status not in (200, 201):
                            failures.append(f"create {resp.status}")
                            continue
                else:
                    await t.v1.create_namespaced_pod(CHURN_NS, body, _request_timeout=30)
                t1 = time.perf_counter()
                if via == "raw":
                    async with t.session.delete(
                        f"{base}/{name}", params={"gracePeriodSeconds": "0"}, data=b'{"gracePeriodSeconds": 0}',
                        headers={"Content-Type": "application/json"},
                    ) as resp:
                        await resp.read()
                        if resp.status not in (200, 202):
                            failures.append(f"delete {resp.status}")
                            continue
                else:
                    await t.v1.delete_namespaced_pod(
                        name, CHURN_NS, grace_period_seconds=0, body=V1DeleteOptions(grace_period_seconds=0), _request_timeout=30
                    )
                t2 = time.perf_counter()
            except Exception as e:
                failures.append(f"{type(e).__name__}: {str(e)[:200]}")
                continue
            create_s.append(t1 - t0)
            delete_s.append(t2 - t1)

    cpu0 = await t.server_cpu()
    t0 = time.perf_counter()
    deadline = t0 + max_seconds
    await asyncio.wait_for(asyncio.gather(*(worker(w) for w in range(workers))), max_seconds + 120)
    elapsed = time.perf_counter() - t0
    cpu1 = await t.server_cpu()
    done = len(create_s)
    out: dict[str, Any] = {
        "pairs": done, "pairs_asked": pairs, "stopped_by_time_limit": done + len(failures) < pairs,
        "workers": workers, "seconds": round(elapsed, 3), "failures": len(failures),
    }
    if failures:
        out["first_failure"] = failures[0]
    if done:
        out["pairs_per_s"] = round(done / elapsed, 1)
        out["requests_per_s"] = round(2 * done / elapsed, 1)
        out["create"] = summary_ms(create_s)
        out["delete"] = summary_ms(delete_s)
        if cpu0 is not None and cpu1 is not None:
            out["server_cpu_ms_per_pair"] = round((cpu1 - cpu0) * 1000 / (done + len(failures)), 3)
    return out


# -- orchestration ---------------------------------------------------------------------------


def ensure_kmock(no_install: bool) -> tuple[bool, str]:
    """Make kmock importable in this venv; (available, what happened)."""
    if importlib.util.find_spec("kmock") is not None:
        from importlib.metadata import version

        v = version("kmock")
        note = f"kmock {v} already installed in this venv"
        if v != "0.8":
            note += " (the baseline was specified as 0.8)"
        return True, note
    if no_install:
        return False, "kmock is not installed and --no-install was given"
    print(f"kmock is not installed: installing {KMOCK_REQUIREMENT} into {sys.prefix} for the baseline only "
          "(it is not a project dependency and stays out of pyproject.toml)", flush=True)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", KMOCK_REQUIREMENT],
            capture_output=True, text=True, timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"pip install {KMOCK_REQUIREMENT} failed: {e}"
    if proc.returncode != 0:
        return False, f"pip install {KMOCK_REQUIREMENT} failed: {(proc.stderr or proc.stdout).strip()[-300:]}"
    importlib.invalidate_caches()
    if importlib.util.find_spec("kmock") is None:
        return False, "pip reported success but kmock is still not importable"
    return True, f"installed {KMOCK_REQUIREMENT} into this venv for the baseline"


def machine_facts() -> dict:
    facts = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        facts["aiohttp"] = version("aiohttp")
        facts["kubernetes_asyncio"] = version("kubernetes_asyncio")
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    return facts


async def profiled(args, t: Target, phase: str, coro):
    """Run a client coroutine with our server under cProfile when --profile is given."""
    if not args.profile or t.kind != "devcluster":
        return await coro
    await t.handle.call({"op": "profile_start"})
    try:
        return await coro
    finally:
        path = Path(args.profile) / f"devcluster-{phase}.pstats"
        r = await t.handle.call({"op": "profile_stop", "path": str(path)})
        t.results.setdefault("profiles", {})[phase] = str(path)
        print(f"\n--- server-side cProfile of our emulator during {phase} ({path}) ---")
        print("\n".join(r.get("text", r.get("error", "")).splitlines()[:80]))


def merge_runs(runs: list[dict], keys: tuple[str, ...]) -> dict:
    """Combine per-round summaries: samples are pooled by taking the median of the round medians
    and the median of the round p95s (each round's own numbers are kept too)."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1] if runs else {"error": "not measured"}
    out: dict[str, Any] = {}
    for k, v in ok[-1].items():
        if isinstance(v, dict):
            continue
        values = [r.get(k) for r in ok]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
            out[k] = round(statistics.median(values), 3)  # median over rounds
        else:
            out[k] = v
    for key in keys:
        parts = [r[key] for r in ok if isinstance(r.get(key), dict) and "median_ms" in r[key]]
        if parts:
            out[key] = {
                "n": sum(p["n"] for p in parts),
                "median_ms": round(statistics.median(p["median_ms"] for p in parts), 3),
                "p95_ms": round(statistics.median(p["p95_ms"] for p in parts), 3),
                "max_ms": round(max(p["max_ms"] for p in parts), 3),
            }
        elif ok and isinstance(ok[-1].get(key), dict):
            out[key] = ok[-1][key]
    out["rounds"] = len(ok)
    out["per_round"] = runs
    return out


def merge_churn(runs: list[dict]) -> dict:
    ok = [r for r in runs if "pairs_per_s" in r]
    if not ok:
        return runs[-1] if runs else {"error": "not measured"}
    return {
        "pairs_per_s": round(statistics.median(r["pairs_per_s"] for r in ok), 1),
        "requests_per_s": round(statistics.median(r["requests_per_s"] for r in ok), 1),
        "pairs": sum(r["pairs"] for r in ok),
        "stopped_by_time_limit": any(r.get("stopped_by_time_limit") for r in ok),
        "workers": ok[0]["workers"],
        "failures": sum(r["failures"] for r in runs),
        "create_median_ms": round(statistics.median(r["create"]["median_ms"] for r in ok), 3),
        "delete_median_ms": round(statistics.median(r["delete"]["median_ms"] for r in ok), 3),
        **({"server_cpu_ms_per_pair": round(statistics.median(r["server_cpu_ms_per_pair"] for r in ok), 3)}
           if all("server_cpu_ms_per_pair" in r for r in ok) else {}),
        "rounds": len(ok),
        "per_round": runs,
    }


async def run(args) -> int:
    quick = args.quick
    cfg = {
        "rounds": 1 if quick else 3,
        "list_iterations": 20 if quick else 30,
        "list_warmup": 2 if quick else 3,
        "watchers": 100,
        "writes": 50 if quick else 60,
        "workers": 8,
        "pairs_raw": 400 if quick else 2000,
        "pairs_client": 200 if quick else 1000,
        "churn_max_seconds": 10 if quick else 20,
        "server_process": "same process as the client" if args.same_process else "one child process per server",
    }
    facts = machine_facts()
    print(f"Kubernetes API emulator benchmark ({'quick' if quick else 'full'}), {datetime.date.today().isoformat()}")
    print(f"machine: {facts['cores']} cores, Python {facts['python']}, load average at start {facts['loadavg_start']}")
    print("pods: KubeSpawner-like bodies with spec.schedulerName 'none' (no scheduler or kubelet acts on them; "
          "they stay Pending), in namespaces without Pod Security labels; list and churn run while the "
          "1,000 listed pods are stored")
    print(f"create+delete: no new pair starts after {cfg['churn_max_seconds']} s (kmock manages only a few pairs/s)")

    kinds = ["devcluster"]
    kmock_note = "skipped (--no-kmock)"
    if not args.no_kmock:
        available, kmock_note = ensure_kmock(args.no_install)
        if available:
            kinds.append("kmock")
        else:
            kmock_note += "; reporting our figures only"
    print(f"baseline: {kmock_note}")
    print(f"servers: {cfg['server_process']}; {cfg['rounds']} round(s)"
          + (", ours and kmock interleaved per round" if len(kinds) > 1 else ""))

    workdir = Path(tempfile.mkdtemp(prefix="jhplatform-bench-"))
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    targets: list[Target] = []
    max_seconds = 900 if quick else 3600
    try:
        for kind in kinds:
            handle = LocalServer(kind, workdir) if args.same_process else ChildServer(kind, workdir, max_seconds)
            t = Target(kind, handle)
            try:
                await t.start()
            except Exception as e:
                if kind == "devcluster":
                    raise
                print(f"kmock: could not start ({type(e).__name__}: {e}); reporting our figures only")
                kmock_note += f"; could not start: {e}"
                with contextlib.suppress(Exception):
                    await t.stop()
                continue
            targets.append(t)

        # Seed: 1,000 pods to list, one pod to patch for the fan-out, an empty namespace to churn in.
        for t in list(targets):
            try:
                for namespace, n, prefix in ((LIST_NS, 1000, "user"), (WATCH_NS, 1, "fanout"), (CHURN_NS, 0, "none")):
                    r = await t.handle.call({"op": "seed", "namespace": namespace, "n": n, "prefix": prefix})
                    if "error" in r:
                        raise RuntimeError(r["error"])
                    if n == 1000:
                        t.results["seed_1000_seconds"] = r["seconds"]
            except Exception as e:
                if t.kind == "devcluster":
                    raise
                print(f"kmock: seeding failed ({type(e).__name__}: {e}); reporting our figures only")
                kmock_note += f"; seeding failed: {e}"
                targets.remove(t)
                with contextlib.suppress(Exception):
                    await t.stop()

        # 1. list
        print("\n[1/3] list 1,000 pods (raw reflector list, raw + json.loads, list_namespaced_pod models)")
        runs: dict[str, list] = {t.kind: [] for t in targets}
        for rnd in range(cfg["rounds"]):
            for t in targets:
                try:
                    if t.kind == "devcluster":
                        await t.handle.call({"op": "request_times", "verb": "list", "resource": "pods", "clear": True})
                    r = await profiled(args, t, f"list-r{rnd + 1}", bench_list(t, cfg["list_iterations"], cfg["list_warmup"]))
                    if t.kind == "devcluster":
                        ms = (await t.handle.call({"op": "request_times", "verb": "list", "resource": "pods"}))["ms"]
                        if ms:
                            r["server_handler_median_ms"] = round(statistics.median(ms), 3)
                except Exception as e:
                    r = {"error": f"{type(e).__name__}: {e}"}
                runs[t.kind].append(r)
                _print_list(t.kind, rnd, r)
        for t in targets:
            t.results["list_1000"] = merge_runs(runs[t.kind], ("raw", "raw_json", "model"))
            if t.kind == "devcluster":
                hs = [r["server_handler_median_ms"] for r in runs[t.kind] if "server_handler_median_ms" in r]
                if hs:
                    t.results["list_1000"]["server_handler_median_ms"] = round(statistics.median(hs), 3)

        # 2. fan-out
        print(f"\n[2/3] watch fan-out: {cfg['watchers']} raw watch streams, label patches one at a time")
        runs = {t.kind: [] for t in targets}
        for rnd in range(cfg["rounds"]):
            for t in targets:
                rv = None
                try:
                    if t.kind == "devcluster":
                        resp = await t.v1.list_namespaced_pod(WATCH_NS, _preload_content=False)
                        rv = json.loads(await resp.read())["metadata"]["resourceVersion"]
                    r = await profiled(
                        args, t, f"fanout-r{rnd + 1}", asyncio.wait_for(bench_fanout(t, cfg["watchers"], cfg["writes"], rv), 300)
                    )
                except Exception as e:
                    r = {"error": f"{type(e).__name__}: {e}"}
                runs[t.kind].append(r)
                _print_fanout(t.kind, rnd, r)
        for t in targets:
            t.results["fanout_100"] = merge_runs(runs[t.kind], ("last_watcher", "first_watcher", "patch_rtt"))

        # 3. create+delete
        print(f"\n[3/3] create+delete pairs (grace 0), {cfg['workers']} concurrent workers")
        for via, pairs in (("raw", cfg["pairs_raw"]), ("client", cfg["pairs_client"])):
            runs = {t.kind: [] for t in targets}
            for rnd in range(cfg["rounds"]):
                for t in targets:
                    try:
                        r = await profiled(args, t, f"churn-{via}-r{rnd + 1}", bench_churn(t, pairs, cfg["workers"], f"{via}{rnd}", via, cfg["churn_max_seconds"]))
                    except Exception as e:
                        r = {"error": f"{type(e).__name__}: {e}"}
                    runs[t.kind].append(r)
                    _print_churn(t.kind, via, rnd, r)
            for t in targets:
                t.results[f"churn_{via}"] = merge_churn(runs[t.kind])
    finally:
        for t in targets:
            try:
                await asyncio.wait_for(t.stop(), 30)
            except Exception as e:
                print(f"{t.kind}: stopping failed: {type(e).__name__}: {e}")
        shutil.rmtree(workdir, ignore_errors=True)

    facts["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report = build_report(args, cfg, facts, kmock_note, targets)
    print_table(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nfigures written to {out}")
    return 0


def _fmt(d: dict | None, key: str = "median_ms") -> str:
    if not isinstance(d, dict):
        return "-"
    if "error" in d:
        return "n/a"
    v = d.get(key)
    return f"{v:.2f}" if isinstance(v, (int, float)) else "-"


def _print_list(kind: str, rnd: int, r: dict) -> None:
    if "error" in r:
        print(f"  {kind:<10} round {rnd + 1}: ERROR {r['error']}")
        return
    model = r["model"]
    model_s = f"median {model['median_ms']:.2f} p95 {model['p95_ms']:.2f}" if "median_ms" in model else f"n/a ({model.get('error')})"
    print(
        f"  {kind:<10} round {rnd + 1}: {r['items']} items, {r['bytes'] / 1e6:.2f} MB | raw median {r['raw']['median_ms']:.2f} "
        f"p95 {r['raw']['p95_ms']:.2f} ms | raw+json median {r['raw_json']['median_ms']:.2f} ms | models {model_s} ms"
        + (f" | server handler median {r['server_handler_median_ms']:.2f} ms" if "server_handler_median_ms" in r else "")
        + (f" | server CPU {r['server_cpu_ms_per_list']:.2f} ms/list" if "server_cpu_ms_per_list" in r else "")
    )


def _print_fanout(kind: str, rnd: int, r: dict) -> None:
    if "error" in r:
        print(f"  {kind:<10} round {rnd + 1}: cannot measure: {r['error']}")
        return
    lw, fw, rt = r["last_watcher"], r["first_watcher"], r["patch_rtt"]
    print(
        f"  {kind:<10} round {rnd + 1}: {r['writes']} writes ({r['missed']} missed) | last of {r['watchers']} watchers "
        f"median {lw['median_ms']:.2f} p95 {lw['p95_ms']:.2f} ms | first watcher median {fw['median_ms']:.2f} ms | "
        f"PATCH round trip median {rt['median_ms']:.2f} ms"
        + (f" | server CPU {r['server_cpu_ms_per_write']:.2f} ms/write" if "server_cpu_ms_per_write" in r else "")
    )


def _print_churn(kind: str, via: str, rnd: int, r: dict) -> None:
    if "pairs_per_s" not in r:
        print(f"  {kind:<10} {via:<6} round {rnd + 1}: ERROR {r.get('error') or r.get('first_failure')}")
        return
    print(
        f"  {kind:<10} {via:<6} round {rnd + 1}: {r['pairs']} pairs in {r['seconds']:.2f} s = {r['pairs_per_s']:.0f} pairs/s, "
        f"{r['requests_per_s']:.0f} requests/s | create median {r['create']['median_ms']:.2f} ms, delete median "
        f"{r['delete']['median_ms']:.2f} ms | failures {r['failures']}"
        + (f" | server CPU {r['server_cpu_ms_per_pair']:.2f} ms/pair" if "server_cpu_ms_per_pair" in r else "")
        + (f" | stopped at the {r['seconds']:.0f} s limit after {r['pairs']} of {r['pairs_asked']} pairs" if r.get("stopped_by_time_limit") else "")
        + (f" (first: {r['first_failure']})" if r.get("first_failure") else "")
    )


def _ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return round(a / b, 3)
    return None


def build_report(args, cfg: dict, facts: dict, kmock_note: str, targets: list[Target]) -> dict:
    res = {t.kind: {k: v for k, v in t.results.items() if not k.startswith("_")} for t in targets}
    ours = res.get("devcluster", {})
    km = res.get("kmock", {})

    def get(d: dict, *path: str) -> Any:
        for p in path:
            if not isinstance(d, dict):
                return None
            d = d.get(p)
        return d

    ratios = {
        "list_raw_median_time": _ratio(get(ours, "list_1000", "raw", "median_ms"), get(km, "list_1000", "raw", "median_ms")),
        "list_raw_json_median_time": _ratio(get(ours, "list_1000", "raw_json", "median_ms"), get(km, "list_1000", "raw_json", "median_ms")),
        "list_model_median_time": _ratio(get(ours, "list_1000", "model", "median_ms"), get(km, "list_1000", "model", "median_ms")),
        "fanout_last_watcher_median_time": _ratio(get(ours, "fanout_100", "last_watcher", "median_ms"), get(km, "fanout_100", "last_watcher", "median_ms")),
        "churn_raw_throughput": _ratio(get(ours, "churn_raw", "pairs_per_s"), get(km, "churn_raw", "pairs_per_s")),
        "churn_client_throughput": _ratio(get(ours, "churn_client", "pairs_per_s"), get(km, "churn_client", "pairs_per_s")),
        "list_server_cpu": _ratio(get(ours, "list_1000", "server_cpu_ms_per_list"), get(km, "list_1000", "server_cpu_ms_per_list")),
        "fanout_server_cpu": _ratio(get(ours, "fanout_100", "server_cpu_ms_per_write"), get(km, "fanout_100", "server_cpu_ms_per_write")),
        "churn_raw_server_cpu": _ratio(get(ours, "churn_raw", "server_cpu_ms_per_pair"), get(km, "churn_raw", "server_cpu_ms_per_pair")),
        "churn_client_server_cpu": _ratio(get(ours, "churn_client", "server_cpu_ms_per_pair"), get(km, "churn_client", "server_cpu_ms_per_pair")),
    }
    list_med = get(ours, "list_1000", "raw", "median_ms")
    list_p95 = get(ours, "list_1000", "raw", "p95_ms")
    fan_med = get(ours, "fanout_100", "last_watcher", "median_ms")
    fan_p95 = get(ours, "fanout_100", "last_watcher", "p95_ms")
    goals = {
        "list_1000_raw_lt_50ms": {"goal_ms": GOAL_LIST_MS, "median_ms": list_med, "p95_ms": list_p95,
                                  "met_by_median": list_med is not None and list_med < GOAL_LIST_MS,
                                  "met_by_p95": list_p95 is not None and list_p95 < GOAL_LIST_MS},
        "fanout_100_lt_20ms": {"goal_ms": GOAL_FANOUT_MS, "median_ms": fan_med, "p95_ms": fan_p95,
                               "met_by_median": fan_med is not None and fan_med < GOAL_FANOUT_MS,
                               "met_by_p95": fan_p95 is not None and fan_p95 < GOAL_FANOUT_MS},
    }
    argv = " ".join(sys.argv[1:])
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": f".venv/bin/python tests/benchmarks/bench_devcluster.py {argv}".strip(),
        "machine": facts,
        "config": cfg,
        "baseline": kmock_note,
        "setup": {
            "pods": "KubeSpawner 7.1.0-like bodies (kube-emulator-spec §1.4) plus spec.schedulerName 'none' and "
                    "metadata.namespace; Pending, untouched by the scheduler and kubelet",
            "list": f"GET /api/v1/namespaces/{LIST_NS}/pods?fieldSelector=&labelSelector=component%3Dsingleuser-server "
                    "through kubernetes_asyncio; raw = _preload_content=False + resp.read()",
            "watch": f"GET /api/v1/namespaces/{WATCH_NS}/pods?labelSelector=...&fieldSelector=&watch=True (kmock: watch=true)"
                     "&timeoutSeconds=60[&resourceVersion=<list rv>] read with aiohttp readline; writes are merge-patches of a label",
            "churn": "POST pod then DELETE ?gracePeriodSeconds=0 with body {gracePeriodSeconds: 0}, 8 workers; "
                     "raw = aiohttp, client = kubernetes_asyncio create_namespaced_pod/delete_namespaced_pod; "
                     f"no new pair starts after {cfg['churn_max_seconds']} s",
            "state": "both servers hold the 1,000 listed pods throughout; kmock also keeps every deleted "
                     "object (soft delete) and matches each request against every stored object, so its "
                     "per-request cost grows with what it has stored",
        },
        "results": res,
        "ratios_ours_over_kmock": ratios,
        "goals": goals,
    }


def print_table(report: dict) -> None:
    ours = report["results"].get("devcluster", {})
    km = report["results"].get("kmock", {})
    r = report["ratios_ours_over_kmock"]
    rows = []

    def ms_row(label, key, sub, stat, ratio_key=None, goal=""):
        a = _fmt(ours.get(key, {}).get(sub) if isinstance(ours.get(key), dict) else None, stat)
        b = _fmt(km.get(key, {}).get(sub) if isinstance(km.get(key), dict) else None, stat) if km else "-"
        ratio = r.get(ratio_key) if ratio_key else None
        rows.append((label, a, b, f"{ratio:.2f}" if ratio is not None else "-", goal))

    ms_row("list 1000 raw, median ms", "list_1000", "raw", "median_ms", "list_raw_median_time", "< 50")
    ms_row("list 1000 raw, p95 ms", "list_1000", "raw", "p95_ms")
    ms_row("list 1000 raw+json.loads, median ms", "list_1000", "raw_json", "median_ms", "list_raw_json_median_time")
    ms_row("list 1000 models, median ms", "list_1000", "model", "median_ms", "list_model_median_time")
    ms_row("list 1000 models, p95 ms", "list_1000", "model", "p95_ms")
    ms_row("fan-out 100 watchers, median ms", "fanout_100", "last_watcher", "median_ms", "fanout_last_watcher_median_time", "< 20")
    ms_row("fan-out 100 watchers, p95 ms", "fanout_100", "last_watcher", "p95_ms")

    def scalar_row(label, key, field, ratio_key):
        a = ours.get(key, {}).get(field) if isinstance(ours.get(key), dict) else None
        b = km.get(key, {}).get(field) if isinstance(km.get(key), dict) else None
        ratio = r.get(ratio_key)
        rows.append((label, f"{a:.2f}" if a is not None else "-", f"{b:.2f}" if b is not None else "-",
                     f"{ratio:.2f}" if ratio is not None else "-", "lower is better"))

    scalar_row("server CPU per list, ms", "list_1000", "server_cpu_ms_per_list", "list_server_cpu")
    scalar_row("server CPU per fan-out write, ms", "fanout_100", "server_cpu_ms_per_write", "fanout_server_cpu")
    for via in ("raw", "client"):
        a = ours.get(f"churn_{via}", {})
        b = km.get(f"churn_{via}", {}) if km else {}
        ratio = r.get(f"churn_{via}_throughput")
        rows.append((f"create+delete {via}, pairs/s", str(a.get("pairs_per_s", "n/a")), str(b.get("pairs_per_s", "n/a")) if km else "-",
                     f"{ratio:.2f}" if ratio is not None else "-", "higher is better"))
        rows.append((f"create+delete {via}, requests/s", str(a.get("requests_per_s", "n/a")), str(b.get("requests_per_s", "n/a")) if km else "-", "", ""))
        scalar_row(f"server CPU per pair ({via}), ms", f"churn_{via}", "server_cpu_ms_per_pair", f"churn_{via}_server_cpu")
    widths = [max(len(str(row[i])) for row in rows + [("metric", "ours", "kmock 0.8", "ours/kmock", "goal")]) for i in range(5)]
    print("\n" + "  ".join(h.ljust(widths[i]) for i, h in enumerate(("metric", "ours", "kmock 0.8", "ours/kmock", "goal"))))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)))
    fan_km = km.get("fanout_100") if km else None
    if isinstance(fan_km, dict) and "error" in fan_km:
        print(f"\nkmock fan-out: cannot measure: {fan_km['error']}")
    for name, g in report["goals"].items():
        verdict = "met" if g["met_by_median"] and g["met_by_p95"] else ("met by median, not by p95" if g["met_by_median"] else "NOT met")
        print(f"goal {name}: median {g['median_ms']} ms, p95 {g['p95_ms']} ms -> {verdict}")
    print(f"machine: {report['machine']['cores']} cores, Python {report['machine']['python']}, load average "
          f"{report['machine']['loadavg_start']} -> {report['machine']['loadavg_end']}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds, writes and pairs (a smoke run)")
    p.add_argument("--same-process", action="store_true", help="serve from the benchmark's own event loop")
    p.add_argument("--no-kmock", action="store_true", help="skip the kmock baseline")
    p.add_argument("--no-install", action="store_true", help="do not pip-install kmock if it is missing")
    p.add_argument("--profile", metavar="DIR", help="cProfile our server per phase; .pstats files go to DIR")
    p.add_argument("--out", default=str(OUT_DEFAULT), help=f"JSON output (default {OUT_DEFAULT.relative_to(REPO)})")
    # Internal: run one server as a child process.
    p.add_argument("--serve", choices=sorted(SERVER_KINDS), help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--max-seconds", type=float, default=3600, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        asyncio.run(serve_child(args.serve, Path(args.workdir), args.max_seconds))
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
