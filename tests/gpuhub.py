"""A real JupyterHub (PlatformSpawner) with GPU profiles on the emulator, for the GPU tests.

Shared by tests/contract/spawner/test_gpu_quota_hub.py and tests/reliability/test_gpu_race.py
(import the ``start_hub`` fixture into a test module to use it). The hub runs unmodified
KubeSpawner code against the session emulator (simulated kubelet) in a namespace with a GPU
ResourceQuota; the emulator's default node pool has 2 nodes with 4 A100s each, tainted
``nvidia.com/gpu``. Notebook servers are a stub HTTP responder (``get_pod_url`` points the hub
at it), so spawns end "ready" without running Jupyter.
"""

from __future__ import annotations

import re

import aiohttp
import pytest

from hubrbac import HUB_NAMESPACE, HUB_SERVICE_ACCOUNT
from hubstack import HubStack

NS = "gpu"
GPU = "nvidia.com/gpu"
PRODUCT = "nvidia.com/gpu.product"
A100 = "NVIDIA-A100-SXM4-40GB"
A100_GPU = {"resource": GPU, "count": 1, "type": "A100", "type_label": PRODUCT, "type_value": A100}
PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "description": "2 CPUs", "kubespawner_override": {"cpu_limit": 2}},
    {"display_name": "A100", "slug": "a100", "description": "One NVIDIA A100", "gpu": A100_GPU},
    {
        "display_name": "A100 (several)",
        "slug": "a100-multi",
        "gpu": {"resource": GPU, "option": "gpus", "type": "A100", "type_label": PRODUCT, "type_value": A100},
        "profile_options": {"gpus": {"display_name": "GPUs", "choices": {
            "1": {"display_name": "1 GPU", "default": True}, "2": {"display_name": "2 GPUs"}, "4": {"display_name": "4 GPUs"}}}},
    },
]
# The plain KubeSpawner way, as the seeds and z2jh's docs write a GPU profile.
PLAIN_GPU = {"display_name": "GPU", "slug": "gpu", "description": "One GPU",
             "kubespawner_override": {"extra_resource_limits": {GPU: "1"}}}
# Configuration mistakes: a GPU type no node has, and a profile that turned the toleration off.
NO_SUCH_NODE = {"display_name": "H100", "slug": "h100",
                "kubespawner_override": {"extra_resource_limits": {GPU: "1"}, "node_selector": {PRODUCT: "NVIDIA-H100-80GB-HBM3"}}}
NO_TOLERATION = {"display_name": "GPU (untolerated)", "slug": "untolerated",
                 "kubespawner_override": {"extra_resource_limits": {GPU: "1"}, "gpu_default_toleration": False}}
PROFILES = PROFILES + [PLAIN_GPU, NO_SUCH_NODE, NO_TOLERATION]
QUOTA_FULL_8 = "All 8 GPUs are in use (yours: 0). Pick the CPU profile or try again later."


def gpu_namespace(cluster, gpus: int | None = 8, name: str = NS) -> None:
    cluster.cluster.create("namespaces", None, {"metadata": {"name": name}})
    if gpus is not None:
        cluster.cluster.create("resourcequotas", name, {"metadata": {"name": "gpu-quota"}, "spec": {"hard": {f"requests.{GPU}": str(gpus)}}})


def hub_config(port: int, extra: str = "") -> str:
    return f"""
c.KubeSpawner.namespace = {NS!r}
c.KubeSpawner.profile_list = {PROFILES!r}
c.KubeSpawner.get_pod_url = lambda spawner, pod: "http://127.0.0.1:{port}"
c.KubeSpawner.start_timeout = 60
c.Spawner.consecutive_failure_limit = 5
c.JupyterHub.allow_named_servers = True
c.JupyterHub.load_roles.append({{"name": "gpu-tests", "scopes": ["admin:groups", "read:metrics"], "services": ["operator"]}})
""" + extra


@pytest.fixture
async def start_hub(cluster, tmp_path, chp_path, notebook_stub):
    hubs = []

    async def start(extra: str = "", gpus: int | None = 8) -> HubStack:
        if not hubs:
            gpu_namespace(cluster, gpus)
        hub = HubStack(tmp_path, cluster.write_serviceaccount_kubeconfig(tmp_path / "kubeconfig", HUB_NAMESPACE, HUB_SERVICE_ACCOUNT), hub_config(notebook_stub, extra), spawner_class="jhplatform")
        await hub.start()
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        await hub.stop()


async def create_users(hub: HubStack, *names: str) -> None:
    status, body = await hub.request("POST", "/users", {"usernames": list(names)})
    assert status == 201, body


def pods(cluster, ns: str = NS) -> list[dict]:
    return cluster.cluster.store.list("pods", ns)


class Page(dict):
    """Elements of an HTML page by id: {id: {attr: value, "_text": text}}."""

    @classmethod
    def parse(cls, html: str) -> "Page":
        from html.parser import HTMLParser

        page = cls()
        stack: list[str | None] = []

        class P(HTMLParser):
            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                a["_text"] = ""
                if "id" in a:
                    page[a["id"]] = a
                if tag not in ("input", "meta", "link", "br", "img"):
                    stack.append(a.get("id"))

            def handle_endtag(self, tag):
                if stack:
                    stack.pop()

            def handle_data(self, data):
                for i in stack:
                    if i:
                        page[i]["_text"] += data

        P().feed(html)
        return page

    def text(self, id_: str) -> str:
        return " ".join(self[id_]["_text"].split())


class Browser:
    """A user logged in to the hub with the dummy authenticator (page handlers take cookies, not tokens)."""

    def __init__(self, hub: HubStack, user: str):
        self.hub, self.user = hub, user
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    @staticmethod
    def xsrf(html: str) -> str:
        return re.search(r'name="_xsrf" value="([^"]+)"', html).group(1)

    async def login(self) -> "Browser":
        async with self.session.get(f"{self.hub.url}/hub/login") as r:
            form = await r.text()
        data = {"username": self.user, "password": "any", "_xsrf": self.xsrf(form)}
        async with self.session.post(f"{self.hub.url}/hub/login", data=data, allow_redirects=False) as r:
            assert r.status == 302, await r.text()
        return self

    async def spawn_page(self) -> tuple[Page, str]:
        async with self.session.get(f"{self.hub.url}/hub/spawn/{self.user}", allow_redirects=False) as r:
            html = await r.text()
            assert r.status == 200, (r.status, html)
        self._xsrf = re.search(r"_xsrf=([^&\"']+)", html).group(1)
        return Page.parse(html), html

    async def submit(self, data: dict) -> tuple[int, str]:
        """POST the spawn form (after :meth:`spawn_page`)."""
        url = f"{self.hub.url}/hub/spawn/{self.user}"
        async with self.session.post(url, data={**data, "_xsrf": self._xsrf}, allow_redirects=False) as r:
            return r.status, await r.text()

    async def close(self) -> None:
        await self.session.close()


async def spawn_page(hub: HubStack, user: str) -> tuple[Page, str]:
    browser = await Browser(hub, user).login()
    try:
        return await browser.spawn_page()
    finally:
        await browser.close()


def requests_since(cluster, mark: int) -> list[dict]:
    return list(cluster.requests)[mark:]


def decision_requests(entries: list[dict]) -> list[str]:
    """Requests that are not the reflectors' own list/watch loop (nor the spawns' pod work)."""
    return [f"{e.get('verb')} {e['path_qs']}" for e in entries if e.get("verb") not in ("list", "watch")]


async def metrics(hub: HubStack) -> dict[str, float]:
    status, text = await hub.request("GET", "/metrics", base=f"{hub.url}/hub")
    assert status == 200, text
    out = {}
    for line in text.splitlines():
        if line.startswith("jhplatform_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


IN_USE = 'jhplatform_gpus_in_use{resource="nvidia.com/gpu",type=""}'
FREE = 'jhplatform_gpus_free{resource="nvidia.com/gpu",type=""}'
REFUSED_QUOTA = 'jhplatform_gpu_refusals_total{reason="quota"}'

