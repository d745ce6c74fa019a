"""A real JupyterHub (PlatformSpawner on the emulator) for the culler, and a movable clock.

The culler's cycle runs in the test process against the hub's REST API with the service's own
token and role (exactly the scopes ``jhplatform.culler.hubconfig.SCOPES``), so that time can be
moved: the clock is jupyterhub-idle-culler's ``utcnow``, which its loop and our policy share.
Notebook servers are a stub HTTP responder (``get_pod_url`` points the hub at it).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import jupyterhub_idle_culler
import pytest

from hubstack import HubStack
from jhplatform.culler.cycle import Cycle, Metrics, Settings
from jhplatform.culler.hubconfig import SCOPES
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
