"""Nothing lost: the home volume through a real hub, real proxy, real notebook servers.

JupyterHub 5.5 with PlatformSpawner, configurable-http-proxy, and the emulator's process
kubelet (notebook servers are real ``jupyterhub-singleuser`` processes; the home claim is the
directory ``state_dir/volumes/default/<claim>``). Two profiles: "CPU" (1Gi home) and "Large"
(5Gi home, the ``standard`` class allows expansion).

We test these aspects:
- a file written through the proxy's contents API is still there after a stop through the REST
  API and a start with the other profile, and the larger profile grew the same claim;
- a server culled by the real ``jupyterhub-idle-culler`` 2.0 (a hub-managed service, 2 s
  timeout, with the scopes it documents, limited to a group so the test decides when it may
  cull) comes back with the file;
- deleting the user through the REST API keeps the claim and its files, and
  ``jhplatform orphaned-claims`` then lists the claim.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from helpers import wait_for
from hubrbac import HUB_NAMESPACE, HUB_SERVICE_ACCOUNT
from hubstack import HubStack

pytestmark = pytest.mark.e2e

CLAIM = "claim-ada"

STORAGE_CONFIG = """
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = "1Gi"
c.KubeSpawner.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
c.KubeSpawner.working_dir = "/home/jovyan"
c.KubeSpawner.profile_list = [
    {"display_name": "CPU", "slug": "cpu", "default": True},
    {"display_name": "Large", "slug": "large", "kubespawner_override": {"storage_capacity": "5Gi"}},
]
"""

# The culler as a hub-managed service, with exactly the scopes its README lists, each limited
# to the group "cullable": the test adds the user to the group when it wants the server culled.
CULLER_CONFIG = """
import sys
c.JupyterHub.load_groups = {"cullable": {"users": []}}
c.JupyterHub.services.append(
    {"name": "idle-culler", "command": [sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=2", "--cull-every=1"]}
)
c.JupyterHub.load_roles.append(
    {
        "name": "idle-culler",
        "scopes": [f"{s}!group=cullable" for s in ("list:users", "read:users:activity", "read:servers", "delete:servers")],
        "services": ["idle-culler"],
    }
)
c.JupyterHub.load_roles[0]["scopes"].append("admin:groups")
"""


async def _hub(cluster, tmp_path, extra: str):
    kubeconfig = cluster.write_serviceaccount_kubeconfig(tmp_path / "kubeconfig", HUB_NAMESPACE, HUB_SERVICE_ACCOUNT)
    stack = HubStack(tmp_path, kubeconfig, extra, spawner_class="jhplatform")
    await stack.start()
    return stack


@pytest.fixture
async def hub(process_cluster, tmp_path, chp_path):
    stack = await _hub(process_cluster, tmp_path, STORAGE_CONFIG)
    try:
        yield stack
    finally:
        await stack.stop()


@pytest.fixture
async def hub_with_culler(process_cluster, tmp_path, chp_path):
    stack = await _hub(process_cluster, tmp_path, STORAGE_CONFIG + CULLER_CONFIG)
    try:
        yield stack
    finally:
        await stack.stop()


class User:
    """One hub user, driven through the REST API and (with their own token) the proxy."""

    def __init__(self, hub: HubStack, cluster, name: str = "ada"):
        self.hub, self.cluster, self.name = hub, cluster, name
        self.token: str | None = None

    @property
    def claim_dir(self):
        return self.cluster.state_dir / "volumes" / "default" / CLAIM

    async def create(self) -> None:
        status, body = await self.hub.request("POST", f"/users/{self.name}")
        assert status == 201, body

    async def start(self, profile: str) -> None:
        status, body = await self.hub.request("POST", f"/users/{self.name}/server", {"profile": profile})
        assert status in (201, 202), (status, body, self.hub.log_tail())
        await self.hub.wait_ready(self.name, timeout=45)
        if self.token is None:
            status, model = await self.hub.request("POST", f"/users/{self.name}/tokens", {"note": "storage e2e"})
            assert status == 201, model
            self.token = model["token"]

    async def stopped(self, timeout: float = 30) -> None:
        async def no_server():
            _, model = await self.hub.request("GET", f"/users/{self.name}")
            return not model["servers"]

        await wait_for(no_server, timeout, 0.2, message=f"{self.name}'s server stopped")
        await wait_for(lambda: self.cluster.cluster.store.find("pods", "default", f"jupyter-{self.name}") is None, 15, message="pod gone")

    async def stop(self) -> None:
        status, _ = await self.hub.request("DELETE", f"/users/{self.name}/server")
        assert status in (202, 204)
        await self.stopped()

    async def write(self, path: str, text: str) -> None:
        body = {"type": "file", "format": "text", "content": text}
        status, model = await self.hub.request("PUT", f"/user/{self.name}/api/contents/{path}", body, token=self.token, base=self.hub.url)
        assert status in (200, 201), (status, model)

    async def read(self, path: str) -> str:
        status, model = await self.hub.request("GET", f"/user/{self.name}/api/contents/{path}", token=self.token, base=self.hub.url)
        assert status == 200, (status, model, self.hub.log_tail())
        return model["content"]

    def claim(self) -> dict | None:
        return self.cluster.cluster.store.find("persistentvolumeclaims", "default", CLAIM)


async def test_stop_and_start_with_another_profile(hub, process_cluster):
    ada = User(hub, process_cluster)
    await ada.create()
    await ada.start("cpu")
    assert ada.claim()["spec"]["resources"]["requests"]["storage"] == "1Gi"
    await ada.write("analysis.ipynb.txt", "epoch 1: loss 0.42\n")
    assert (ada.claim_dir / "analysis.ipynb.txt").read_text() == "epoch 1: loss 0.42\n"
    uid = ada.claim()["metadata"]["uid"]

    await ada.stop()
    assert ada.claim() is not None, "stop keeps the claim"
    await ada.start("large")
    assert await ada.read("analysis.ipynb.txt") == "epoch 1: loss 0.42\n"
    claim = ada.claim()
    assert claim["metadata"]["uid"] == uid, "the same claim, never re-created"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi", "the larger profile grew it"
    assert "requested expansion of home claim default/claim-ada from 1Gi to 5Gi for profile 'Large'" in hub.log_path.read_text()
    await ada.stop()


async def test_culled_server_comes_back_with_the_files(hub_with_culler, process_cluster):
    hub = hub_with_culler
    ada = User(hub, process_cluster)
    await ada.create()
    await ada.start("cpu")
    await ada.write("model-notes.md", "# keep me\n")
    # Now the culler may see ada's server: idle for more than 2 s, it stops it.
    status, body = await hub.request("POST", "/groups/cullable/users", {"users": ["ada"]})
    assert status == 200, body
    await ada.stopped(timeout=30)
    assert "Culling server ada" in hub.log_path.read_text(), hub.log_tail()
    status, _ = await hub.request("DELETE", "/groups/cullable/users", {"users": ["ada"]})
    assert status == 200
    assert (ada.claim_dir / "model-notes.md").read_text() == "# keep me\n"
    assert ada.claim() is not None

    await ada.start("large")
    assert await ada.read("model-notes.md") == "# keep me\n"
    await ada.stop()


async def test_deleting_the_user_keeps_the_claim(hub, process_cluster, tmp_path):
    ada = User(hub, process_cluster)
    await ada.create()
    await ada.start("cpu")
    await ada.write("thesis.tex", "\\chapter{Results}\n")
    await ada.stop()

    status, body = await hub.request("DELETE", "/users/ada")
    assert status == 204, body
    status, _ = await hub.request("GET", "/users/ada")
    assert status == 404
    await asyncio.sleep(0.5)  # give a (wrong) deletion the time to show
    claim = ada.claim()
    assert claim is not None and not claim["metadata"].get("deletionTimestamp")
    assert (ada.claim_dir / "thesis.tex").read_text() == "\\chapter{Results}\n"
    assert "Keeping home claim default/claim-ada of ada, which is being deleted" in hub.log_path.read_text()

    # The admin finds it with the orphaned-claims command (the operator token has list:users),
    # with the admin's kubeconfig, not the hub's. (A subprocess, awaited: the emulator answering
    # it runs in this event loop.)
    kubeconfig = process_cluster.write_kubeconfig(tmp_path / "admin.kubeconfig")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jhplatform.cli", "orphaned-claims", "--hub-url", hub.url, "--token", hub.token,
        "--kubeconfig", str(kubeconfig), "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()
    [orphan] = json.loads(stdout)
    assert (orphan["claim"], orphan["namespace"], orphan["user"], orphan["size"]) == (CLAIM, "default", "ada", "1Gi")
