"""The whole stack on loopback: real JupyterHub 5.5 with stock KubeSpawner, a real
configurable-http-proxy, and the emulator running notebook pods as real processes.

We test these aspects:
- a spawn through the hub REST API ends with the server ready;
- a request through the proxy to ``/user/<name>/api/status`` with the user's token returns 200
  from the real jupyter_server;
- a file written through the proxy lands in the user's home volume;
- stopping the server leaves no notebook process and keeps the home directory's files.
"""

from __future__ import annotations

import os

import pytest

from helpers import wait_for
from hubrbac import HUB_NAMESPACE, HUB_SERVICE_ACCOUNT
from hubstack import HubStack

pytestmark = pytest.mark.e2e

HOME_CONFIG = """
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = "1Gi"
c.KubeSpawner.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-{username}"}}]
c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
c.KubeSpawner.working_dir = "/home/jovyan"
"""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_spawn_through_hub_and_proxy(process_cluster, tmp_path, chp_path):
    kubeconfig = process_cluster.write_serviceaccount_kubeconfig(tmp_path / "kubeconfig", HUB_NAMESPACE, HUB_SERVICE_ACCOUNT)
    hub = HubStack(tmp_path, kubeconfig, HOME_CONFIG)
    await hub.start()
    try:
        status, _ = await hub.request("POST", "/users/ada")
        assert status == 201
        status, _ = await hub.request("POST", "/users/ada/server")
        assert status in (201, 202), hub.log_tail()
        await hub.wait_ready("ada")

        pod = process_cluster.cluster.get("pods", "default", "jupyter-ada")
        assert pod["status"]["phase"] == "Running"
        pod_ip = pod["status"]["podIP"]
        assert pod_ip.startswith("127.") and pod_ip != "127.0.0.1"

        status, token_model = await hub.request("POST", "/users/ada/tokens", {"note": "full-stack test"})
        assert status == 201, token_model
        user_token = token_model["token"]

        status, body = await hub.request("GET", "/user/ada/api/status", token=user_token, base=hub.url)
        assert status == 200, (status, body, hub.log_tail())
        assert "started" in body and "connections" in body

        content = {"type": "file", "format": "text", "content": "kept across stops\n"}
        status, body = await hub.request("PUT", "/user/ada/api/contents/notes.txt", content, token=user_token, base=hub.url)
        assert status in (200, 201), body

        claim_dir = process_cluster.state_dir / "volumes" / "default" / "claim-ada"
        assert (claim_dir / "notes.txt").read_text() == "kept across stops\n"
        pids = process_cluster.kubelet.pids_for(pod)
        assert pids and all(pid_alive(p) for p in pids)

        status, _ = await hub.request("DELETE", "/users/ada/server")
        assert status in (202, 204)

        async def stopped():
            _, model = await hub.request("GET", "/users/ada")
            return not model["servers"]

        await wait_for(stopped, 30, 0.2, message="server stopped")
        await wait_for(lambda: process_cluster.cluster.store.find("pods", "default", "jupyter-ada") is None, 15)
        await wait_for(lambda: not any(pid_alive(p) for p in pids), 10, message="notebook process gone")
        assert (claim_dir / "notes.txt").read_text() == "kept across stops\n"
        assert process_cluster.cluster.get("persistentvolumeclaims", "default", "claim-ada")
    finally:
        await hub.stop()
