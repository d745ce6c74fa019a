"""``jhplatform demo`` (what ``make demo`` runs): the hub as z2jh's hub pod runs it, used as a person would.

We test these aspects:
- the demo comes up from helm-values/platform.yaml and prints the URL it is ready at;
- a person logs in with a name through the proxy (the chart's default authenticator), picks the
  CPU profile on the spawn form, and their real notebook server (process kubelet, reaching the
  hub by its Service name ``hub`` inside the pod's namespace) answers through the proxy;
- Ctrl-C (SIGINT) stops everything: the command exits 0 and no hub, proxy or notebook process of
  the demo is left;
- a missing values file is refused with a message (exit 2).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

import aiohttp
import pytest

from helpers import REPO, wait_for
from hubstack import free_port

pytestmark = pytest.mark.e2e

JHPLATFORM = str(REPO / ".venv" / "bin" / "jhplatform")


def demo_pids(state) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if str(state) in line or "jhplatform.cli.demo" in line and str(state) in line]


async def test_demo_login_spawn_and_stop(tmp_path):
    port, hub_port = free_port(), free_port()
    state = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    out = open(tmp_path / "demo.out", "w+")
    proc = subprocess.Popen([JHPLATFORM, "demo", str(REPO / "helm-values" / "platform.yaml"), "--port", str(port),
                             "--hub-port", str(hub_port), "--state-dir", str(state)], stdout=out, stderr=subprocess.STDOUT, env=env,
                            cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready():
            assert proc.poll() is None, (tmp_path / "demo.out").read_text()
            return f"ready at {url}" in (tmp_path / "demo.out").read_text()

        await wait_for(ready, 120, 0.5, message="the demo to be ready")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(f"{url}/hub/login") as r:
                assert r.status == 200
            xsrf = next(c.value for c in s.cookie_jar if c.key == "_xsrf")
            async with s.post(f"{url}/hub/login", data={"username": "ada", "password": "any", "_xsrf": xsrf}, allow_redirects=False) as r:
                assert r.status == 302, await r.text()
            async with s.get(f"{url}/hub/spawn") as r:
                form = await r.text()
                assert r.status == 200 and 'value="cpu"' in form, form[:2000]
            xsrf = re.search(r"_xsrf=([^&\"']+)", form).group(1)  # the form's action URL carries it
            async with s.post(f"{url}/hub/spawn", data={"profile": "cpu", "_xsrf": xsrf}, allow_redirects=False) as r:
                assert r.status == 302, await r.text()

            async def server_ready():
                async with s.get(f"{url}/hub/api/users/ada", headers={"X-XSRFToken": xsrf}) as r:
                    model = await r.json()
                    server = (model.get("servers") or {}).get("")
                    if not server and not model.get("pending"):
                        raise AssertionError(f"spawn failed: {model}\n" + (state / "hub.log").read_text()[-4000:])
                    return server and server.get("ready")

            await wait_for(server_ready, 120, 0.5, message="ada's server")
            # Through the proxy to the notebook server (OAuth with the hub by its Service name). The
            # server may still be finishing its start after the hub marks it ready.
            async with s.post(f"{url}/hub/api/users/ada/tokens", json={"note": "demo test"}, headers={"X-XSRFToken": xsrf}) as r:
                assert r.status == 201, await r.text()
                token = (await r.json())["token"]

            async def status():
                async with s.get(f"{url}/user/ada/api/status", headers={"Authorization": f"token {token}"}) as r:
                    return r.status == 200 and "started" in await r.json(content_type=None)

            await wait_for(status, 60, 0.5, message="ada's server through the proxy")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert code == 0, (tmp_path / "demo.out").read_text()
    await wait_for(lambda: not demo_pids(state), 15, 0.2, message="the demo's processes to end")


def test_demo_missing_values_file(tmp_path):
    result = subprocess.run([JHPLATFORM, "demo", "missing.yaml", "--state-dir", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "jhplatform demo: no such values file: missing.yaml"
