"""A real JupyterHub with PlatformSpawner on the emulator, with group entitlements configured.

Shared by the entitlement tests (dummy authenticator with groups set through the hub API, and
PlatformAuthenticator with groups from an OpenID provider). Notebook servers are a stub HTTP
responder (``get_pod_url`` points the hub at it), so spawns end "ready" without running Jupyter;
the pods themselves are made by KubeSpawner in the emulator, GPU quota included.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import aiohttp

from helpers import start_stub, wait_for  # noqa: F401 (start_stub is re-exported for the entitlement tests)
from hubstack import HubStack, spawn, stop  # noqa: F401 (re-exported for the entitlement tests)

NS = "ent"
GPU = "nvidia.com/gpu"
A100_GPU = {"resource": GPU, "count": 1, "type": "A100", "type_label": "nvidia.com/gpu.product",
            "type_value": "NVIDIA-A100-SXM4-40GB"}
IMAGE_OPTION = {
    "display_name": "Image",
    "choices": {
        "base": {"display_name": "Base", "default": True, "kubespawner_override": {"image": "quay.io/jupyter/base-notebook:2024-12-02"}},
        "r": {"display_name": "R", "kubespawner_override": {"image": "quay.io/jupyter/r-notebook:2024-12-02"}},
    },
    "unlisted_choice": {"enabled": True, "display_name": "Other image", "kubespawner_override": {"image": "{value}"}},
}
PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "profile_options": {"image": IMAGE_OPTION}},
    {"display_name": "A100", "slug": "a100", "gpu": A100_GPU},
    {"display_name": "A100 (several)", "slug": "a100-multi", "gpu": {**{k: v for k, v in A100_GPU.items() if k != "count"}, "option": "gpus"},
     "profile_options": {"gpus": {"display_name": "GPUs", "choices": {
         "1": {"display_name": "1 GPU", "default": True}, "2": {"display_name": "2 GPUs"}, "4": {"display_name": "4 GPUs"}}}}},
]
ENTITLEMENTS = {
    "gpu-users": {"profiles": ["cpu", "a100", "a100-multi"], "gpus_per_user": 2, "gpu_types": ["A100"], "gpus_total": 4,
                  "choices": {"a100-multi": {"gpus": ["1", "2"]}}},
    "students": {"profiles": ["cpu"], "choices": {"cpu": {"image": ["base"]}}},
    "staff": {"profiles": "*", "gpus_per_user": 4, "choices": {"cpu": {"image": ["base", "r", "unlisted"]}}},
    "visitors": {"profiles": []},
    "r-users": {"profiles": ["cpu"], "choices": {"cpu": {"image": ["r"]}}},
}
DEFAULT = {"profiles": ["cpu"], "choices": {"cpu": {"image": ["base"]}}}


def entitled_config(stub_port: int) -> str:
    return f"""
c.KubeSpawner.namespace = {NS!r}
c.KubeSpawner.profile_list = {PROFILES!r}
c.KubeSpawner.get_pod_url = lambda spawner, pod: "http://127.0.0.1:{stub_port}"
c.KubeSpawner.start_timeout = 30
c.PlatformSpawner.entitlements = {ENTITLEMENTS!r}
c.PlatformSpawner.default_entitlement = {DEFAULT!r}
c.JupyterHub.allow_named_servers = True
c.JupyterHub.default_url = "/hub/home"
c.JupyterHub.load_roles.append({{"name": "entitlement-tests", "scopes": ["admin:groups", "admin:auth_state", "read:metrics"], "services": ["operator"]}})
"""


def make_namespace(cluster, gpus: int = 8) -> None:
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS}})
    cluster.cluster.create("resourcequotas", NS, {"metadata": {"name": "gpu-quota"}, "spec": {"hard": {f"requests.{GPU}": str(gpus)}}})


def pods(cluster) -> list[dict]:
    return cluster.cluster.store.list("pods", NS)


async def gpus_in_use(hub: HubStack) -> float:
    """``jhplatform_gpus_in_use`` for A100s, from the hub's /hub/metrics (GPUs held or reserved)."""
    status, text = await hub.request("GET", "/metrics")
    assert status == 200, text
    match = re.search(r'^jhplatform_gpus_in_use\{resource="nvidia.com/gpu",type="A100"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def page_text(page: str) -> str:
    """A page's text: tags removed, entities decoded, whitespace normalised."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


class FormInputs(HTMLParser):
    """The spawn form's choices: profile slugs (radio inputs) and, per option ``<select>``, its
    values (``unlisted-choice`` is the free-text entry)."""

    def __init__(self, page: str):
        super().__init__()
        self.profiles: list[str] = []
        self.options: dict[str, list[str]] = {}
        self._select: str | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name") == "profile":
            self.profiles.append(a.get("value"))
        elif tag == "select" and (a.get("name") or "").startswith("profile-option-"):
            self._select = a["name"]
            self.options[self._select] = []
        elif tag == "option" and self._select:
            self.options[self._select].append(a.get("value"))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


class PageSession:
    """A signed-in user's browser session against the hub's pages (cookies, xsrf)."""

    def __init__(self, hub: HubStack, user: str, session: aiohttp.ClientSession | None = None):
        self.hub, self.user = hub, user
        self.session = session or aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def dummy_login(self) -> "PageSession":
        async with self.session.get(f"{self.hub.url}/hub/login") as r:
            form = await r.text()
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form).group(1)
        data = {"username": self.user, "password": "any", "_xsrf": xsrf}
        async with self.session.post(f"{self.hub.url}/hub/login", data=data, allow_redirects=False) as r:
            assert r.status == 302, await r.text()
        return self

    async def spawn_form(self, server: str = "") -> tuple[FormInputs, str]:
        url = f"{self.hub.url}/hub/spawn/{self.user}" + (f"/{server}" if server else "")
        async with self.session.get(url, allow_redirects=False) as r:
            page = await r.text()
            assert r.status == 200, (r.status, page)
        self._xsrf = re.search(r"_xsrf=([^&\"']+)", page).group(1)
        return FormInputs(page), page

    async def submit(self, data: dict, server: str = "") -> tuple[int, str]:
        url = f"{self.hub.url}/hub/spawn/{self.user}" + (f"/{server}" if server else "")
        async with self.session.post(url, data={**data, "_xsrf": self._xsrf}, allow_redirects=False) as r:
            return r.status, await r.text()

    async def close(self) -> None:
        await self.session.close()
