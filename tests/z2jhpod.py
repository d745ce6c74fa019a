"""A real JupyterHub started as z2jh 4.4.0's hub pod starts it, with its proxy (for the tests).

:class:`LoaderHub` uses :class:`jhplatform.z2jh.HubPod` (the pod's files at the pod's paths in a
private mount namespace, the Deployment's environment) and starts configurable-http-proxy from
npm itself, at the ``PROXY_API_SERVICE_PORT``, because z2jh sets
``c.ConfigurableHTTPProxy.should_start = False`` (the proxy is its own pod). The proxy runs in a
namespace with the same ``/etc/hosts`` so the Service name ``hub`` resolves, as in the cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml

from helpers import wait_for
from hubstack import free_port
from jhplatform.z2jh import HubPod

OPERATOR_TOKEN = "0123456789abcdef0123456789abcdef"

#: Values every loopback test hub adds after the values under test, with the reason for each.
LOOPBACK_VALUES = {
    "hub": {
        # An operator service with a known token: the REST client the tests are (z2jh's own
        # hub.services / hub.loadRoles; the token goes through the Secret like any apiToken).
        "services": {"operator": {"apiToken": OPERATOR_TOKEN}},
        "loadRoles": {
            "operator": {
                "scopes": ["admin:users", "admin:servers", "tokens", "read:hub", "access:servers", "admin:groups"],
                "services": ["operator"],
            }
        },
    },
    # The idle culler service calls the hub at localhost:8081, the hub container's own port,
    # which on shared loopback is not ours (see HubPod); the culler has its own tests.
    "cull": {"enabled": False},
    # The emulator runs one scheduler, the default one; z2jh's user-scheduler is a Deployment
    # of kube-scheduler that the emulator does not run.
    "scheduling": {"userScheduler": {"enabled": False}},
}


def notebook_url_values(port: int) -> dict:
    """An extraConfig entry pointing the hub at a stub notebook server (simulated kubelet)."""
    return {"hub": {"extraConfig": {"zz-test-notebook-stub": f'c.KubeSpawner.get_pod_url = lambda spawner, pod: "http://127.0.0.1:{port}"\n'}}}


class LoaderHub:
    """A hub (and its proxy) run through the z2jh loader from ``values`` and ``snippets``."""

    def __init__(self, workdir: Path, values: list[dict], snippets: Path | None, *, kubeconfig: Path | None = None,
                 namespace: str = "jhub", python: str = sys.executable, loopback: bool = True):
        self.workdir = workdir
        self.pod = HubPod(
            workdir / "pod",
            list(values) + ([LOOPBACK_VALUES] if loopback else []),
            snippets,
            namespace=namespace,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            proxy_public_port=free_port(),
            python=python,
            kubeconfig=kubeconfig,
        )
        self.pod.lay_out()
        self.log_path = workdir / "hub.log"
        self.proxy_log_path = workdir / "proxy.log"
        self.proc: subprocess.Popen | None = None
        self.proxy: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.pod.proxy_public_port}"

    @property
    def api(self) -> str:
        return f"{self.url}/hub/api"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start_proxy(self) -> None:
        chp = shutil.which("configurable-http-proxy")
        assert chp, "configurable-http-proxy is not installed: run `make install`"
        self._proxy_log = open(self.proxy_log_path, "wb")
        self.proxy = self.pod.popen(self.pod.proxy_command(chp), stdout=self._proxy_log, stderr=subprocess.STDOUT)

    def start_hub(self) -> None:
        self._log = open(self.log_path, "wb")
        self.proc = self.pod.popen(stdout=self._log, stderr=subprocess.STDOUT)

    async def run_to_exit(self, timeout: float = 60) -> int:
        """Start the hub (no proxy) and wait for it to exit; its exit code."""
        self.start_hub()
        await wait_for(lambda: self.proc.poll() is not None, timeout, 0.1, message="the hub to exit")
        return self.proc.returncode

    async def start(self, timeout: float = 90) -> None:
        self.start_proxy()
        self.start_hub()

        async def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"the hub exited with {self.proc.returncode}:\n{self.log()[-6000:]}")
            try:
                status, _ = await self.request("GET", "/")
                return status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(up, timeout, 0.2, message=f"the hub through the proxy at {self.url}")

    async def stop(self) -> None:
        for proc in (self.proc, self.proxy):
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, signal.SIGTERM)
            for _ in range(100):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for f in ("_log", "_proxy_log"):
            if hasattr(self, f):
                getattr(self, f).close()

    async def request(self, method: str, path: str, body=None):
        headers = {"Authorization": f"token {OPERATOR_TOKEN}"}
        async with aiohttp.ClientSession() as s:
            async with s.request(method, self.api + path, headers=headers, json=body, allow_redirects=False) as r:
                text = await r.text()
                try:
                    return r.status, json.loads(text) if text else None
                except ValueError:
                    return r.status, text

    async def progress(self, user: str, server: str = "", timeout: float = 60) -> list[dict]:
        """Follow the spawn's progress stream (what a client that got 202 reads) to its end."""
        events = []
        headers = {"Authorization": f"token {OPERATOR_TOKEN}"}
        path = f"/users/{user}/servers/{server}/progress" if server else f"/users/{user}/server/progress"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async with s.get(self.api + path, headers=headers) as r:
                assert r.status == 200, await r.text()
                async for line in r.content:
                    line = line.decode().strip()
                    if line.startswith("data:"):
                        event = json.loads(line[5:])
                        events.append(event)
                        if event.get("ready") or event.get("failed"):
                            break
        return events


def values_file(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path
