"""The culler's test bench: a real JupyterHub (PlatformSpawner on the emulator), a movable clock,
a fault proxy in front of the hub API, and Prometheus (Debian's) scraping a DCGM-format exporter.

Used by tests/contract/culler/ (its conftest re-exports these) and tests/reliability/; import a
fixture into a test module to use it. The culler's cycle runs in the test process against the
hub's REST API with the service's own token and role (exactly the scopes
``jhplatform.culler.hubconfig.SCOPES``), so that time can be moved: the clock is
jupyterhub-idle-culler's ``utcnow``, which its loop and our policy share. Notebook servers are a
stub HTTP responder (``get_pod_url`` points the hub at it).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import signal
import subprocess
from datetime import datetime, timedelta, timezone

import aiohttp
import jupyterhub_idle_culler
import pytest
from aiohttp import web

from helpers import wait_for
from hubstack import HubStack, free_port
from jhplatform.culler.cycle import Cycle, Metrics, Settings
from jhplatform.culler.hubconfig import SCOPES
from jhplatform.culler.prometheus import DEFAULT_QUERY, gpu_utilisation
from jhplatform.policy.culling import CullPolicy, Limits

NS = "gpu"
GPU = "nvidia.com/gpu"
A100 = {"resource": GPU, "count": 1, "type": "A100", "type_label": "nvidia.com/gpu.product", "type_value": "NVIDIA-A100-SXM4-40GB"}
PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "kubespawner_override": {"cpu_limit": 2}},
    # A display name that says nothing about GPUs: the culler must not care.
    {"display_name": "Fast lane", "slug": "fast", "gpu": A100},
]
CULLER_TOKEN = secrets.token_hex(16)

#: Short limits so the clock never needs to pass the hub's one-hour limit on future activity.
POLICY = CullPolicy(
    gpu=Limits(idle_timeout=10 * 60, max_age=40 * 60),
    cpu=Limits(idle_timeout=30 * 60, max_age=55 * 60),
    gpu_util_threshold=5.0,
    warn_before=5 * 60,
)


PROMETHEUS = "/usr/bin/prometheus"
#: The utilisation window the tests query (the default query with this window).
WINDOW = "5s"


class Clock:
    """Real UTC time plus an offset the test moves."""

    def __init__(self):
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, minutes: float) -> datetime:
        self.offset += timedelta(minutes=minutes)
        return self()


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(jupyterhub_idle_culler, "utcnow", c)
    return c


def hub_config(stub_port: int, warnings_file, extra: str = "") -> str:
    return f"""
from jhplatform.culler.announce import CullWarnings
c.KubeSpawner.namespace = {NS!r}
c.KubeSpawner.profile_list = {PROFILES!r}
c.KubeSpawner.get_pod_url = lambda spawner, pod: "http://127.0.0.1:{stub_port}"
c.KubeSpawner.start_timeout = 30
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = "1Gi"
c.KubeSpawner.volumes = [{{"name": "home", "persistentVolumeClaim": {{"claimName": "{{pvc_name}}"}}}}]
c.KubeSpawner.volume_mounts = [{{"name": "home", "mountPath": "/home/jovyan"}}]
c.JupyterHub.allow_named_servers = True
c.JupyterHub.services.append({{"name": "jhplatform-culler", "api_token": {CULLER_TOKEN!r}}})
c.JupyterHub.load_roles.append({{"name": "jhplatform-culler", "scopes": {SCOPES!r}, "services": ["jhplatform-culler"]}})
c.JupyterHub.template_vars = {{"announcement_home": CullWarnings({str(warnings_file)!r})}}
""" + extra


@pytest.fixture
async def culler_hub(cluster, tmp_path, chp_path, notebook_stub):
    hubs = []
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS}})

    async def start(extra: str = "") -> HubStack:
        hub = HubStack(tmp_path, cluster.write_kubeconfig(tmp_path / "kubeconfig"),
                       hub_config(notebook_stub, tmp_path / "warnings.json", extra), spawner_class="jhplatform")
        await hub.start()
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        await hub.stop()


def make_cycle(hub: HubStack, tmp_path, policy: CullPolicy = POLICY, **kw) -> Cycle:
    settings = Settings(hub_api_url=kw.pop("hub_api_url", hub.api), api_token=CULLER_TOKEN, policy=policy,
                        warnings_file=str(tmp_path / "warnings.json"), namespace=NS, **kw)
    return Cycle(settings, Metrics())


async def spawn(hub: HubStack, user: str, profile: str, server: str = "") -> dict:
    status, body = await hub.request("POST", "/users", {"usernames": [user]})
    assert status in (201, 409), body
    path = f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"
    status, body = await hub.request("POST", path, {"profile": profile})
    assert status in (201, 202), body
    return await hub.wait_ready(user, server)


async def touch(hub: HubStack, user: str, at: datetime, server: str = "") -> None:
    """Jupyter activity, as a notebook server reports it to the hub."""
    status, body = await hub.request("POST", f"/users/{user}/activity",
                                     {"servers": {server: {"last_activity": at.isoformat()}}})
    assert status in (200, 204), body


async def running(hub: HubStack, user: str, server: str = "") -> bool:
    status, model = await hub.request("GET", f"/users/{user}")
    assert status == 200, model
    s = (model.get("servers") or {}).get(server)
    return bool(s and s.get("ready"))


def sample(metrics: Metrics, name: str, **labels) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


@pytest.fixture
async def faulty_proxy(culler_hub):
    """A proxy in front of the hub API that can answer 503 or hold requests past the timeout.

    ``mode["fault"]``: None (forward), ``"503"``, ``"hang"``, or ``"random"``: each request, with
    probability ``mode["rate"]`` (default 0.1, seeded by ``mode["seed"]``), gets one of a 503
    (not forwarded), a hang past the client's timeout (not forwarded), or a 502 after the hub
    has acted on it (the answer lost); ``mode["injected"]`` counts them by kind and
    ``mode["requests"]`` counts every request. ``mode["only"]`` (e.g. ``"DELETE"``) limits faults to
    one HTTP method.
    """
    mode = {"fault": None, "rate": 0.1, "seed": 15, "injected": {"503": 0, "hang": 0, "502-after": 0}, "requests": 0}
    held = []
    rng: list[random.Random] = []

    def pick(method: str) -> str | None:
        if mode.get("only") and method != mode["only"]:
            return None
        if mode["fault"] != "random":
            return mode["fault"]
        if not rng:
            rng.append(random.Random(mode["seed"]))
        if rng[0].random() >= mode["rate"]:
            return None
        kind = rng[0].choice(["503", "hang", "502-after"])
        mode["injected"][kind] += 1
        return kind

    async def forward(request: web.Request):
        mode["requests"] += 1
        fault = pick(request.method)
        if fault == "503":
            return web.Response(status=503, text="hub unavailable")
        if fault == "hang":
            fut = asyncio.get_running_loop().create_future()
            held.append(fut)
            await fut  # released at teardown; the culler's request times out first
            return web.Response(status=504)
        url = mode["hub"].api + "/" + request.match_info["tail"]
        async with aiohttp.ClientSession() as s:
            async with s.request(request.method, url, params=request.query, headers={
                k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept", "content-type")
            }, data=await request.read()) as r:
                body = await r.read()
                if fault == "502-after":
                    return web.Response(status=502, text="bad gateway")
                return web.Response(status=r.status, body=body, headers={"Content-Type": r.headers.get("Content-Type", "")})

    app = web.Application()
    app.router.add_route("*", "/hub/api/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    mode["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hub/api"
    yield mode
    for fut in held:
        if not fut.done():
            fut.set_result(None)
    await runner.cleanup()


@pytest.fixture
async def exporter():
    """Serves DCGM_FI_DEV_GPU_UTIL for {pod: utilisation} (one GPU per pod)."""
    values: dict[str, float] = {}

    async def metrics(request):
        lines = ["# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).", "# TYPE DCGM_FI_DEV_GPU_UTIL gauge"]
        for i, (pod, v) in enumerate(sorted(values.items())):
            lines.append(
                f'DCGM_FI_DEV_GPU_UTIL{{gpu="{i}",UUID="GPU-{i:08d}-test",device="nvidia{i}",modelName="NVIDIA A100-SXM4-40GB",'
                f'Hostname="gpu-node-1",container="notebook",namespace="{NS}",pod="{pod}"}} {v}'
            )
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield values, site._server.sockets[0].getsockname()[1]
    await runner.cleanup()


class Prometheus:
    """``/usr/bin/prometheus`` on loopback scraping the exporter every second; stopped and started
    again on the same port and storage, as a restarted Prometheus pod would come back."""

    def __init__(self, workdir, exporter_port: int):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        self.config.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: dcgm
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:{exporter_port}"]
""")
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "prometheus.log"
        self._log = None

    async def start(self) -> None:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

        async def ready():
            assert self.proc.poll() is None, self.log_path.read_text()[-2000:]
            try:
                async with aiohttp.ClientSession() as s, s.get(f"{self.url}/-/ready") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(ready, 60, 0.2, message="Prometheus ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
async def prometheus_process(exporter, tmp_path):
    """A started :class:`Prometheus`, stopped at teardown."""
    prom = Prometheus(tmp_path, exporter[1])
    await prom.start()
    yield prom
    prom.stop()


@pytest.fixture
async def prometheus(prometheus_process):
    """Prometheus' URL and a function that stops it."""
    yield prometheus_process.url, prometheus_process.stop


async def until_prometheus_shows(url: str, expected: dict):
    """Wait for scrapes to reach Prometheus: each pod's windowed mean on the expected side of 5%."""
    query = DEFAULT_QUERY.replace("{window}", WINDOW)

    async def seen():
        values = await gpu_utilisation(url, query, 5)
        return all((NS, pod) in values and (values[(NS, pod)] < 5) == (v < 5) for pod, v in expected.items())

    await wait_for(seen, 60, 0.5, message=f"Prometheus to show {expected}")
