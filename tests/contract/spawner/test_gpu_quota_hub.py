"""Quota-aware GPU profiles through a real JupyterHub (PlatformSpawner) on the emulator.

The hub runs unmodified KubeSpawner code against the session emulator (simulated kubelet) in a
namespace with a GPU ResourceQuota; the emulator's default node pool has 2 nodes with 4 A100s
each, tainted ``nvidia.com/gpu``. Notebook servers are a stub HTTP responder (``get_pod_url``
points the hub at it), so spawns end "ready" without running Jupyter.

We test these aspects:
- the spawn form, fetched as the user: per GPU profile (the plain KubeSpawner one too) and
  choice what is free, ``disabled``
  with the reason for what the user cannot have, fresh on every request (a stop frees the GPU);
  a refused form submission shows the message on the form;
- REST refusals (400) with their exact messages for the quota, the per-user limit (across
  named servers) and a group limit, made with no request to the emulator;
- the apiserver's "exceeded quota" 403 (another workload took the GPU while the hub's quota
  watch lagged) becomes a clear 400, with nothing left behind;
- a GPU pod the scheduler reports ``FailedScheduling … Insufficient nvidia.com/gpu`` for is
  stopped within 10 s with a clear message;
- a profile whose node selector matches no node, and one whose default toleration is turned
  off, are each stopped within 10 s with the configuration message (never "no free GPU"),
  counted in the refusal metric by reason, with the profile, the scheduler's message and the
  fix in the hub log, and not counted toward ``consecutive_failure_limit``;
- 10 consecutive refusals with ``consecutive_failure_limit = 5`` leave the hub running;
- the race, with the plain KubeSpawner GPU profile (``extra_resource_limits`` only, no ``gpu:``
  entry, no toleration) on the default tainted pool: 100 concurrent REST spawns with 8 GPUs
  free end with exactly 8 servers running, 92 clear refusals and no pod Pending, with no quota
  request per decision; the metrics show 8 in use, then 8 free again after the servers stop
  (run 3 times);
- the same race under z2jh's hub settings (``slow_spawn_timeout: 0``, z2jh-hub-loader.md step
  3): every REST spawn answers 202, 8 servers run, each of the 92 progress streams ends with
  the refusal's message, and the hub stays up;
- after a hub restart the ledger is rebuilt from the running pods.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter

import aiohttp
import pytest

from helpers import wait_for
from hubrbac import HUB_NAMESPACE, HUB_SERVICE_ACCOUNT
from hubstack import HubStack, spawn, stop

pytestmark = pytest.mark.contract

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


async def test_form_shows_availability_and_disabled_reasons(start_hub, cluster):
    hub = await start_hub("c.PlatformSpawner.gpu_user_limit = 1\n", gpus=2)
    await create_users(hub, "ada", "bob", "cy")
    ada = await Browser(hub, "ada").login()

    page, _ = await ada.spawn_page()
    assert page["profile-a100"]["data-gpu-free"] == "2" and page["profile-a100"]["data-gpu-total"] == "2"
    assert page.text("gpu-availability-a100") == "2 of 2 A100 free · you use 0 of 1"
    assert "checked" in page["profile-item-cpu"]
    # The plain KubeSpawner GPU profile is a GPU profile on the form too.
    assert (page["profile-gpu"]["data-gpu-resource"], page["profile-gpu"]["data-gpu-available"]) == (GPU, "true")
    assert page.text("gpu-availability-gpu") == "2 of 2 GPUs free · you use 0 of 1"

    status, _ = await spawn(hub, "bob", {"profile": "a100"})
    assert status in (201, 202)
    await hub.wait_ready("bob")

    # Rendered per request: one GPU left, and more than one GPU is over ada's limit.
    page, html = await ada.spawn_page()
    label = page["profile-a100-multi"]
    assert (label["data-gpu-available"], label["data-gpu-free"], label["data-gpu-total"], label["data-gpu-user-cap"]) == ("true", "1", "2", "1")
    assert page.text("gpu-availability-a100-multi") == "1 of 2 A100 free · you use 0 of 1"
    assert re.search(r'<option value="1" data-gpu-count="1" data-gpu-available="true" selected>', html)
    assert re.search(r'<option value="2" data-gpu-count="2" data-gpu-available="false" disabled data-gpu-reason="user_cap">2 GPUs \(not available\)', html)
    assert page.text("gpu-reason-a100-multi--gpus--2") == (
        "2 GPUs: This choice needs 2 GPUs, but you may use only 1 more (you use 0 of 1). "
        "Pick fewer GPUs, stop a server that uses a GPU, or pick the CPU profile.")
    assert page["gpu-reason-a100-multi--gpus--4"]["data-gpu-reason"] == "user_cap"

    status, _ = await spawn(hub, "cy", {"profile": "a100"})
    assert status in (201, 202)
    await hub.wait_ready("cy")

    page, _ = await ada.spawn_page()
    assert page["profile-a100"]["data-gpu-available"] == "false" and page["profile-a100"]["data-gpu-reason"] == "quota"
    assert "disabled" in page["profile-item-a100"] and "disabled" in page["profile-item-a100-multi"]
    assert page.text("gpu-availability-a100") == "0 of 2 A100 free · you use 0 of 1"
    assert page.text("gpu-reason-a100") == "All 2 A100 GPUs are in use (yours: 0 of 1). Pick the CPU profile or try again later."
    assert "disabled" in page["profile-item-gpu"] and page["profile-gpu"]["data-gpu-reason"] == "quota"
    assert page.text("gpu-reason-gpu") == "All 2 GPUs are in use (yours: 0 of 1). Pick the CPU profile or try again later."
    assert "checked" in page["profile-item-cpu"]

    # Submitting the GPU profile anyway: the form comes back with the message, nothing starts.
    status, html = await ada.submit({"profile": "a100"})
    assert status == 400, html
    assert "All 2 A100 GPUs are in use (yours: 0 of 1). Pick the CPU profile or try again later." in html
    assert 'id="gpu-reason-a100"' in html, "the form is shown again, freshly rendered"
    assert cluster.cluster.store.find("pods", NS, "jupyter-ada") is None

    # A stop frees the GPU for the next form.
    await stop(hub, "bob")
    await wait_for(lambda: cluster.cluster.store.find("pods", NS, "jupyter-bob") is None, 15)
    page, _ = await ada.spawn_page()
    assert page["profile-a100"]["data-gpu-available"] == "true"
    assert page.text("gpu-availability-a100") == "1 of 2 A100 free · you use 0 of 1"

    # And the form path reserves and starts it.
    status, html = await ada.submit({"profile": "a100"})
    assert status == 302, html
    await ada.close()
    await hub.wait_ready("ada")
    pod = cluster.cluster.get("pods", NS, "jupyter-ada")
    assert pod["spec"]["containers"][0]["resources"]["limits"][GPU] == "1"
    assert pod["metadata"]["annotations"]["jhplatform.io/gpu"] == "nvidia.com/gpu=1"
    assert pod["metadata"]["annotations"]["jhplatform.io/gpu-type"] == "A100"


REFUSALS = [
    ("quota", "", 1, None,
     "The only A100 GPU is in use (yours: 0). Pick the CPU profile or try again later."),
    ("user-cap", "c.PlatformSpawner.gpu_user_limit = 1\n", 8, None,
     "You already use 1 of your 1 GPU (the per-user limit). Stop a server that uses a GPU, or pick the CPU profile."),
    ("group-cap", "c.PlatformSpawner.gpu_group_limits = {'students': 1}\n", 8, "students",
     "Your group students already uses 1 of its 1 GPU (yours: 0). Pick the CPU profile, or try again when a member of students stops a GPU server."),
]


@pytest.mark.parametrize("config, gpus, group, message", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
async def test_rest_refusal_messages(start_hub, cluster, config, gpus, group, message):
    hub = await start_hub(config, gpus=gpus)
    await create_users(hub, "ada", "bob")
    if group:
        assert (await hub.request("POST", f"/groups/{group}"))[0] == 201
        assert (await hub.request("POST", f"/groups/{group}/users", {"users": ["ada", "bob"]}))[0] == 200
    # Someone already holds the GPU: bob (quota, group) or ada's own other server (user cap).
    holder, server = ("ada", "first") if "user_limit" in config else ("bob", "")
    status, _ = await spawn(hub, holder, {"profile": "a100"}, server)
    assert status in (201, 202)
    await hub.wait_ready(holder, server)

    mark = len(cluster.requests)
    status, body = await spawn(hub, "ada", {"profile": "a100"}, "second" if server else "")
    assert (status, body["message"]) == (400, message)
    assert decision_requests(requests_since(cluster, mark)) == [], "a refusal makes no Kubernetes request"
    assert [p["metadata"]["name"] for p in pods(cluster)] == [f"jupyter-{holder}" + (f"--{server}" if server else "")]
    _, model = await hub.request("GET", "/users/ada")
    assert "second" not in model["servers"] and ("" not in model["servers"] or holder == "ada")


async def test_api_403_exceeded_quota_becomes_clear_message(start_hub, cluster):
    hub = await start_hub(gpus=1)
    await create_users(hub, "ada")
    await spawn_page(hub, "ada")  # the hub now watches pods and quotas

    # The hub's quota watch lags (as a watch can): it relists now, then its watch hangs.
    cluster.faults.add(verb="watch", resource="resourcequotas", hang=30, count=None)
    mark = len(cluster.requests)
    await cluster.drop_watches()
    await wait_for(lambda: any(e.get("verb") == "watch" and e.get("resource") == "resourcequotas" for e in requests_since(cluster, mark)),
                   10, message="the hub's quota watch reconnecting")
    # Meanwhile another workload takes the namespace's only GPU.
    cluster.cluster.create("pods", NS, {
        "metadata": {"name": "batch-job"},
        "spec": {"containers": [{"name": "train", "image": "trainer", "resources": {"limits": {GPU: "1"}}}],
                 "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]},
    })

    status, body = await spawn(hub, "ada", {"profile": "a100"})
    assert status == 400, body
    assert body["message"] == (
        "Another workload took the last free A100 GPU in this namespace's quota just before your server could start, "
        "so nothing was started. Pick the CPU profile or try again later.")
    creates = [e for e in requests_since(cluster, mark) if e.get("verb") == "create" and e.get("resource") == "pods"]
    assert [e["status"] for e in creates] == [403], "the apiserver refused the pod: the 403 path was taken"
    assert cluster.cluster.store.find("pods", NS, "jupyter-ada") is None
    assert "exceeded quota: gpu-quota" in hub.log_path.read_text(), "the admin sees the apiserver's words in the log"
    cluster.faults.clear()
    assert (await hub.request("GET", "/"))[0] == 200


async def test_failed_scheduling_is_stopped_within_10s(start_hub, cluster):
    # No quota; the hub believes in a pool of 8 A100s, but other workloads hold all of them.
    hub = await start_hub("c.PlatformSpawner.gpu_pools = {'A100': 8}\n", gpus=None)
    for i in range(2):
        cluster.cluster.create("pods", "default", {
            "metadata": {"name": f"training-{i}"},
            "spec": {"containers": [{"name": "train", "image": "trainer", "resources": {"limits": {GPU: "4"}}}],
                     "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}], "nodeSelector": {PRODUCT: A100}},
        })
    await wait_for(lambda: all((p.get("spec") or {}).get("nodeName") for p in pods(cluster, "default")), 10, message="training pods bound")
    await create_users(hub, "ada")

    started = time.monotonic()
    status, body = await spawn(hub, "ada", {"profile": "a100"})
    await wait_for(lambda: cluster.cluster.store.find("pods", NS, "jupyter-ada") is None, 10, message="the unschedulable pod deleted")
    elapsed = time.monotonic() - started
    print(f"unschedulable GPU pod stopped {elapsed:.2f} s after the spawn request")
    assert elapsed < 10
    assert status == 400, body
    assert body["message"] == "No node has a free A100 GPU right now, so your server was stopped instead of waiting. Pick the CPU profile or try again later."
    events = [e for e in cluster.cluster.store.list("events", NS) if e["involvedObject"]["name"] == "jupyter-ada"]
    assert any(e["reason"] == "FailedScheduling" and f"Insufficient {GPU}" in e["message"] for e in events)
    _, model = await hub.request("GET", "/users/ada")
    assert model["servers"] == {}


async def test_ten_refusals_do_not_stop_the_hub(start_hub, cluster):
    hub = await start_hub(gpus=0)
    users = [f"user{i}" for i in range(10)]
    await create_users(hub, *users)
    for user in users:
        status, body = await spawn(hub, user, {"profile": "a100"})
        assert (status, body["message"]) == (400, "No A100 GPUs are available on this hub right now. Pick the CPU profile or ask your hub admin.")
    # What a client that got 202 (slow_spawn_timeout 0, as z2jh sets) reads: the progress stream.
    status, stream = await hub.request("GET", f"/users/{users[-1]}/server/progress")
    assert status == 200
    assert '"failed": true' in stream and "Spawn failed: No A100 GPUs are available on this hub right now." in stream
    await asyncio.sleep(3)  # JupyterHub exits 2 s after reaching the limit
    assert hub.proc.poll() is None, hub.log_tail()
    status, info = await hub.request("GET", "/")
    assert status == 200 and "version" in info
    assert "Aborting due to" not in hub.log_path.read_text()
    # A real spawn still works afterwards.
    status, _ = await spawn(hub, "user0", {"profile": "cpu"})
    assert status in (201, 202)
    await hub.wait_ready("user0")


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


@pytest.mark.parametrize("round_", [1, 2, 3], ids=["round-1", "round-2", "round-3"])
async def test_race_100_spawns_for_8_gpus(start_hub, cluster, round_):
    # JupyterHub answers a REST spawn with the spawn's own error only if it fails within
    # slow_spawn_timeout (default 10 s), else with 202. On a 2-core machine the hub needs more
    # than 10 s of its own bookkeeping (tokens, database commits) before 100 simultaneous spawns
    # reach the GPU decision, so give it time: the test is about the answers, not the hub's speed.
    hub = await start_hub("c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 60}\n")
    users = [f"racer{i:03d}" for i in range(100)]
    await create_users(hub, *users)
    await spawn_page(hub, users[0])  # watches started, as on a live hub
    before = await metrics(hub)
    assert before[FREE] == 8 and before[IN_USE] == 0

    mark = len(cluster.requests)
    started = time.monotonic()
    results = await asyncio.gather(*(spawn(hub, u, {"profile": "gpu"}) for u in users))
    answered = time.monotonic() - started
    accepted = [u for u, (status, _) in zip(users, results) if status in (201, 202)]
    refused = [body for status, body in results if status == 400]
    answers = Counter((status, (body or {}).get("message") if isinstance(body, dict) else body) for status, body in results)
    assert (len(accepted), len(refused)) == (8, 92), answers
    assert {b["message"] for b in refused} == {QUOTA_FULL_8}, answers
    await asyncio.gather(*(hub.wait_ready(u) for u in accepted))
    elapsed = time.monotonic() - started
    print(f"round {round_}: 100 concurrent spawns answered in {answered:.2f} s, 8 servers ready after {elapsed:.2f} s")

    running = pods(cluster)
    assert sorted(p["metadata"]["name"] for p in running) == sorted(f"jupyter-{u}" for u in accepted)
    assert [p["status"]["phase"] for p in running] == ["Running"] * 8, "no pod Pending"
    assert all({"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in p["spec"]["tolerations"] for p in running)
    assert cluster.cluster.get("resourcequotas", NS, "gpu-quota")["status"]["used"][f"requests.{GPU}"] == "8"

    window = requests_since(cluster, mark)
    by_kind: dict[tuple, int] = {}
    for e in window:
        by_kind[(e.get("verb"), e.get("resource"))] = by_kind.get((e.get("verb"), e.get("resource")), 0) + 1
    # One accepted create per server; refused spawns never reach the apiserver. Under load a
    # create can answer slower than KubeSpawner's 3 s request timeout and be retried: the retry
    # meets our own pod (409) or the full quota it holds (403), and creates nothing.
    creates = [e for e in window if (e.get("verb"), e.get("resource")) == ("create", "pods")]
    assert sum(e.get("status") == 201 for e in creates) == 8, by_kind
    assert all(e.get("status") in (201, 403, 409) for e in creates), [e.get("status") for e in creates]
    assert len(creates) - 8 <= 8, "at most one retry per accepted spawn"
    assert not [k for k in by_kind if k[1] in ("resourcequotas", "nodes") and k[0] not in ("list", "watch")], by_kind
    # The reflectors' own loop relists after each watch timeout; nothing scales with decisions.
    assert by_kind.get(("list", "resourcequotas"), 0) <= 1 + elapsed / 5, by_kind
    assert by_kind.get(("list", "pods"), 0) <= 1 + elapsed / 5, by_kind
    # A retried create's 403 is checked against our own pod (a GET of that accepted pod): that is
    # the spawn confirming its pod, not a decision.
    confirm = {("get", "pods", f"jupyter-{u}") for u in accepted}
    assert decision_requests([
        e for e in window
        if (e.get("verb"), e.get("resource")) != ("create", "pods") and (e.get("verb"), e.get("resource"), e.get("name")) not in confirm
    ]) == [], by_kind

    after = await metrics(hub)
    assert (after[IN_USE], after[FREE]) == (8, 0)
    assert after[REFUSED_QUOTA] - before.get(REFUSED_QUOTA, 0) == 92
    assert hub.proc.poll() is None

    await asyncio.gather(*(stop(hub, u) for u in accepted))
    await wait_for(lambda: not pods(cluster), 30, message="GPU pods deleted")

    async def freed():
        m = await metrics(hub)
        return (m[IN_USE], m[FREE]) == (0, 8)

    await wait_for(freed, 10, message="GPUs free again")


async def test_ledger_rebuilt_from_pods_after_hub_restart(start_hub, cluster):
    # A pool (not a quota): only the hub's own pods, read back after the restart, fill it.
    extra = "c.PlatformSpawner.gpu_pools = {'A100': 1}\nc.JupyterHub.cleanup_servers = False\n"
    hub = await start_hub(extra, gpus=None)
    await create_users(hub, "ada", "bob")
    status, _ = await spawn(hub, "bob", {"profile": "a100"})
    assert status in (201, 202)
    await hub.wait_ready("bob")

    await hub.stop()
    assert cluster.cluster.get("pods", NS, "jupyter-bob")["status"]["phase"] == "Running"
    await hub.start()

    status, body = await spawn(hub, "ada", {"profile": "a100"})
    assert (status, body["message"]) == (400, "The only A100 GPU is in use (yours: 0). Pick the CPU profile or try again later.")
    await stop(hub, "bob")
    await wait_for(lambda: cluster.cluster.store.find("pods", NS, "jupyter-bob") is None, 15)
    status, _ = await spawn(hub, "ada", {"profile": "a100"})
    assert status in (201, 202)
    await hub.wait_ready("ada")


async def test_race_under_z2jh_hub_settings(start_hub, cluster):
    # z2jh-hub-loader.md step 3: c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}, so a
    # REST spawn answers 202 at once and a refusal is the failed event of the progress stream.
    hub = await start_hub("c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}\n")
    users = [f"z2jh{i:03d}" for i in range(100)]
    await create_users(hub, *users)
    await spawn_page(hub, users[0])
    results = await asyncio.gather(*(spawn(hub, u, {"profile": "gpu"}) for u in users))
    assert Counter(status for status, _ in results) == {202: 100}

    async def settled():
        # One request for all users (100 pollers would compete with the spawns for the hub).
        status, models = await hub.request("GET", "/users?limit=200")
        assert status == 200, models
        mine = [m for m in models if m["name"] in users]
        return len(mine) == 100 and not any(m.get("pending") or any(s.get("pending") for s in (m.get("servers") or {}).values())
                                            for m in mine)

    await wait_for(settled, 120, 1, message="every spawn settled")
    running = pods(cluster)
    assert len(running) == 8 and [p["status"]["phase"] for p in running] == ["Running"] * 8, "no pod Pending"
    winners = {p["metadata"]["annotations"]["hub.jupyter.org/username"] for p in running}

    async def last_event(user):
        status, stream = await hub.request("GET", f"/users/{user}/server/progress")
        assert status == 200, stream
        events = [line[len("data: "):] for line in stream.splitlines() if line.startswith("data: ")]
        return json.loads(events[-1])

    finals = dict(zip(users, await asyncio.gather(*(last_event(u) for u in users))))
    refused = {u: e for u, e in finals.items() if u not in winners}
    assert len(refused) == 92
    assert {(e.get("failed"), e.get("message")) for e in refused.values()} == {(True, f"Spawn failed: {QUOTA_FULL_8}")}
    assert all(finals[u].get("ready") for u in winners)
    await asyncio.sleep(3)  # JupyterHub exits 2 s after reaching consecutive_failure_limit (5)
    assert hub.proc.poll() is None, hub.log_tail()
    assert (await hub.request("GET", "/"))[0] == 200


CONFIG_MESSAGE = ("The {name} profile cannot start because of how the cluster is set up, so your server was stopped. "
                  "Your hub admin can see the details in the hub log. Pick the CPU profile.")
MISCONFIGURED = [
    ("node-selector-matches-no-node", "h100", "H100", "node_affinity",
     "node(s) didn't match Pod's node affinity/selector", "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3"),
    ("toleration-turned-off", "untolerated", "GPU (untolerated)", "untolerated_taint",
     "node(s) had untolerated taint {nvidia.com/gpu: present}", "'key': 'nvidia.com/gpu', 'operator': 'Exists'"),
]


@pytest.mark.parametrize("slug, name, reason, scheduler_says, fix", [m[1:] for m in MISCONFIGURED], ids=[m[0] for m in MISCONFIGURED])
async def test_misconfigured_profile_is_refused_within_10s(start_hub, cluster, slug, name, reason, scheduler_says, fix):
    # With a limit of 1, one counted failure would make the hub exit 2 s later.
    hub = await start_hub("c.Spawner.consecutive_failure_limit = 1\n")
    await create_users(hub, "ada")
    before = await metrics(hub)
    started = time.monotonic()
    status, body = await spawn(hub, "ada", {"profile": slug})
    await wait_for(lambda: cluster.cluster.store.find("pods", NS, "jupyter-ada") is None, 10, message="the pod deleted")
    elapsed = time.monotonic() - started
    print(f"{slug}: refused {elapsed:.2f} s after the spawn request")
    assert elapsed < 10
    assert (status, body["message"]) == (400, CONFIG_MESSAGE.format(name=name))
    assert "free" not in body["message"]
    after = await metrics(hub)
    key = f'jhplatform_gpu_refusals_total{{reason="{reason}"}}'
    assert after[key] - before.get(key, 0) == 1
    log = hub.log_path.read_text()
    line = next(l for l in log.splitlines() if "GPU spawn refused" in l and reason in l)
    assert f"Profile {name!r}" in line and scheduler_says in line and fix in line, line
    _, model = await hub.request("GET", "/users/ada")
    assert model["servers"] == {}

    async def released():
        return (await metrics(hub))[FREE] == 8

    await wait_for(released, 10, message="the reservation released")
    await asyncio.sleep(3)  # JupyterHub exits 2 s after reaching consecutive_failure_limit
    assert hub.proc.poll() is None and "Aborting due to" not in hub.log_path.read_text(), hub.log_tail()
