"""Run a real JupyterHub (with a real configurable-http-proxy) against the emulator.

Used by the full-stack tests: the hub is a separate ``jupyterhub`` process configured with a
spawner class and extra config, pointed at the emulator by ``KUBECONFIG``; the test talks to it
over the REST API with an admin service token, as an operator's tooling would.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp

from helpers import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubStack:
    """A JupyterHub process with its proxy, in ``workdir``.

    Parameters
    ----------
    workdir:
        Directory for the config, database, cookie secret and logs.
    kubeconfig:
        The emulator's kubeconfig.
    config:
        Extra Python config appended to the generated ``jupyterhub_config.py``.
    authenticator_class:
        ``c.JupyterHub.authenticator_class`` (default the dummy authenticator, which then allows
        everyone); any other class decides who is allowed by its own config.
    env:
        Extra environment variables for the hub process (e.g. ``JUPYTERHUB_CRYPT_KEY``).
    debug:
        Run the hub with ``--debug`` (the default, for tests' logs); benchmarks turn it off so
        the hub logs at INFO as a deployed hub does.
    """

    def __init__(self, workdir: Path, kubeconfig: Path, config: str = "", spawner_class: str = "kubespawner.KubeSpawner",
                 authenticator_class: str = "dummy", env: dict | None = None, debug: bool = True):
        self.debug = debug
        self.authenticator_class = authenticator_class
        self.extra_env = dict(env or {})
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.extra_config = config
        self.spawner_class = spawner_class
        self.token = secrets.token_hex(16)
        self.hub_port = free_port()
        self.proxy_port = free_port()
        self.proxy_api_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "jupyterhub.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def api(self) -> str:
        return f"{self.url}/hub/api"

    def write_config(self) -> Path:
        cfg = textwrap.dedent(
            f"""
            c = get_config()  # noqa
            c.JupyterHub.ip = "127.0.0.1"
            c.JupyterHub.port = {self.proxy_port}
            c.JupyterHub.hub_ip = "127.0.0.1"
            c.JupyterHub.hub_port = {self.hub_port}
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_api_port}"
            c.ConfigurableHTTPProxy.should_start = True
            c.JupyterHub.db_url = "sqlite:///{self.workdir}/jupyterhub.sqlite"
            c.JupyterHub.cookie_secret_file = "{self.workdir}/cookie_secret"
            c.JupyterHub.pid_file = "{self.workdir}/jupyterhub.pid"
            c.JupyterHub.cleanup_servers = True
            c.JupyterHub.authenticator_class = "{self.authenticator_class}"
            c.Authenticator.allow_all = {self.authenticator_class == "dummy"}
            c.JupyterHub.spawner_class = "{self.spawner_class}"
            c.JupyterHub.services = [{{"name": "operator", "api_token": "{self.token}"}}]
            c.JupyterHub.load_roles = [
                {{"name": "operator", "scopes": ["admin:users", "admin:servers", "tokens", "read:hub", "access:servers"],
                  "services": ["operator"]}}
            ]
            c.Spawner.start_timeout = 60
            c.Spawner.http_timeout = 60
            c.Spawner.default_url = "/lab"
            c.KubeSpawner.image = "quay.io/jupyterhub/singleuser:5.5"
            c.KubeSpawner.namespace = "default"
            """
        )
        path = self.workdir / "jupyterhub_config.py"
        path.write_text(cfg + "\n" + textwrap.dedent(self.extra_config))
        return path

    async def start(self) -> None:
        config = self.write_config()
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1", **self.extra_env}
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)] + (["--debug"] if self.debug else []),
            cwd=self.workdir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        async def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyterhub exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _ = await self.request("GET", "/")
                return status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(up, 60, 0.2, message=f"JupyterHub at {self.url}")

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            for _ in range(100):
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        self.proc = None

    async def request(self, method: str, path: str, body=None, token: str | None = None, base: str | None = None):
        url = (base or self.api) + path
        headers = {"Authorization": f"token {token or self.token}"}
        async with aiohttp.ClientSession() as s:
            async with s.request(method, url, headers=headers, json=body, allow_redirects=False) as r:
                text = await r.text()
                try:
                    data = json.loads(text) if text else None
                except ValueError:
                    data = text
                return r.status, data

    async def wait_ready(self, user: str, server: str = "", timeout: float = 90) -> dict:
        async def ready():
            status, model = await self.request("GET", f"/users/{user}")
            assert status == 200, (status, model)
            s = (model.get("servers") or {}).get(server)
            if s and s.get("ready"):
                return s
            if not s or not s.get("pending"):
                # Neither ready nor pending: the spawn failed.
                if s is None and model.get("pending") is None:
                    raise AssertionError(f"server for {user!r} stopped: {model}\n{self.log_tail()}")
            return None

        return await wait_for(ready, timeout, 0.25, message=f"server of {user} ready")


async def spawn(hub: HubStack, user: str, options: dict | None = None, server: str = ""):
    """Start a user's (named) server through the REST API: (status, body)."""
    path = f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"
    return await hub.request("POST", path, options)


async def stop(hub: HubStack, user: str, server: str = "") -> None:
    """Stop a user's (named) server through the REST API and wait until the hub says it is gone."""
    path = f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"
    status, body = await hub.request("DELETE", path)
    assert status in (202, 204), body

    async def gone():
        _, model = await hub.request("GET", f"/users/{user}")
        return server not in (model.get("servers") or {})

    await wait_for(gone, 30, 0.1, message=f"{user}'s server stopped")
