"""`make demo`: the whole platform on this machine, driven through headless Chromium as its users would.

The demo is started exactly as the README says (``make demo``, with the port, the state directory
and one test-only values layer that shortens the culler's timeouts: tests/data/values/
demo-fast-cull.yaml) and stopped as a person stops it (SIGINT, Ctrl-C).

We test these aspects:
- the GPU user signs in at the OpenID Connect provider, sees GPU availability on the spawn form,
  starts an A100 server, reaches JupyterLab through the proxy, runs a notebook cell that writes a
  file to the home directory, and stops the server; `kubectl get pods` with the printed
  KUBECONFIG shows the pod Running while it runs;
- the CPU-only user sees no GPU profile, and a REST request for one is refused with 403;
- the admin opens /hub/admin and the culler's GPU page, which lists the GPU server;
- the culler warns on the GPU user's home page (and not on another user's) and then stops the idle
  GPU server; the file written before is there after the next start;
- after Ctrl-C no process the demo started is left and its ports are free.
Screenshots of each step go to docs/img/demo-*.png (the README shows them).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import psutil
import pytest

from browser import chromium
from helpers import REPO, TEST_DATA, wait_for
from hubstack import free_port

pytestmark = pytest.mark.e2e

IMG = REPO / "docs" / "img"
FAST_CULL = TEST_DATA / "values" / "demo-fast-cull.yaml"
KUBECTL = REPO / ".venv" / "bin" / "kubectl"


class Demo:
    def __init__(self, state, port):
        self.state = state
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = state.parent / f"{state.name}-make-demo.log"
        self.proc: subprocess.Popen | None = None
        self.started: dict[int, psutil.Process] = {}
        self.ports: set[int] = set()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> None:
        out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "demo", f"DEMO_PORT={self.port}", f"DEMO_DIR={self.state}",
             f"DEMO_VALUES=helm-values/demo.yaml {FAST_CULL}"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )

    def note_processes(self) -> None:
        """Remember every process the demo started and the ports they listen on."""
        for p in psutil.Process(self.proc.pid).children(recursive=True):
            self.started[p.pid] = p
            try:
                self.ports |= {c.laddr.port for c in p.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
            except psutil.Error:
                pass

    def kubectl(self, *args: str) -> str:
        env = dict(os.environ, KUBECONFIG=str(self.state / "kubeconfig"))
        return subprocess.run([str(KUBECTL), *args], env=env, capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.fixture(scope="module")
async def demo(tmp_path_factory):
    d = Demo(tmp_path_factory.mktemp("demo") / "state", free_port())
    d.start()
    try:
        await wait_for(lambda: "jhplatform demo is ready" in d.output() or d.proc.poll() is not None, 240, 0.5,
                       message="the demo's ready banner")
        assert d.proc.poll() is None, d.output()
        yield d
    finally:
        if d.proc.poll() is None:
            os.killpg(d.proc.pid, signal.SIGKILL)
            d.proc.wait()
        for p in d.started.values():
            try:
                p.kill()
            except psutil.Error:
                pass


async def sign_in(context, demo: Demo, user: str):
    page = await context.new_page()
    await page.goto(f"{demo.url}/hub/login")
    await page.click("text=Sign in with")
    await page.click(f"button[name=sub][value={user}]")
    await page.wait_for_url(re.compile(re.escape(demo.url) + "/(hub|user)/"))
    return page


async def shot(page, name: str) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(IMG / f"demo-{name}.png"))


async def start_profile(page, demo: Demo, slug: str) -> None:
    # A GPU freed a moment ago (a server just stopped) shows as free once its pod is gone.
    async def offered():
        # A server still stopping (or still running) sends /hub/spawn elsewhere: ask again.
        await page.goto(f"{demo.url}/hub/spawn")
        radio = await page.query_selector(f"input[name=profile][value={slug}]")
        return radio is not None and await radio.is_enabled()

    try:
        await wait_for(offered, 90, 2, message=f"profile {slug} offered on the spawn form")
    except AssertionError:
        await shot(page, "failed-spawn-form")
        raise AssertionError(await page.inner_text("body"))
    await page.check(f"input[name=profile][value={slug}]")
    await page.click("form#spawn_form [type=submit]")
    await page.wait_for_url(re.compile(r"/user/[^/]+/lab"), timeout=120_000)
    await page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)


async def stop_server(page, demo: Demo, user: str = "gpu-user") -> None:
    """Stop the server as the home page's "Stop My Server" does (the hub API, from the page), and
    wait until the hub says it is gone."""
    await page.goto(f"{demo.url}/hub/home")
    status, body = await hub_api(page, "DELETE", f"/users/{user}/server")
    assert status in (202, 204), (status, body)

    async def stopped():
        status, model = await hub_api(page, "GET", f"/users/{user}")
        return status == 200 and not model["servers"]

    await wait_for(stopped, 60, 0.5, message=f"{user}'s server stopped")
    await page.goto(f"{demo.url}/hub/home")


async def hub_api(page, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """A hub API request from the signed-in page, as the page's own scripts make it."""
    return tuple(await page.evaluate(
        """async ([method, path, body]) => {
            const r = await fetch('/hub/api' + path, {method, body: body ? JSON.stringify(body) : undefined,
                headers: {'X-XSRFToken': window.jhdata.xsrf_token, 'Content-Type': 'application/json'}});
            let data = null; try { data = await r.json(); } catch (e) {}
            return [r.status, data];
        }""",
        [method, path, body],
    ))


async def test_gpu_user_runs_a_notebook_on_an_a100(demo):
    demo.note_processes()
    async with chromium() as context:
        page = await sign_in(context, demo, "gpu-user")
        await page.goto(f"{demo.url}/hub/spawn")
        availability = await page.inner_text("#gpu-availability-a100")
        assert "4" in availability and "A100" in availability, availability
        assert "T4" in await page.inner_text("#gpu-availability-t4")
        await shot(page, "1-spawn-form")

        await start_profile(page, demo, "a100")
        await page.click(".jp-LauncherCard[data-category=Notebook]", timeout=60_000)
        cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
        await cell.click()
        await page.keyboard.type("open('written-in-the-demo.txt', 'w').write('kept across culls'); print('saved')")
        await page.keyboard.press("Shift+Enter")
        try:
            await page.wait_for_selector(".jp-OutputArea-output >> text=saved", timeout=90_000)
        except Exception:
            await page.screenshot(path=str(demo.state.parent / "notebook-failure.png"))
            raise
        await shot(page, "2-jupyterlab")

        pods = demo.kubectl("get", "pods", "-n", "jhub")
        line = next(line for line in pods.splitlines() if line.startswith("jupyter-gpu"))
        assert re.search(r"\b1/1\s+Running\b", line), pods
        demo.note_processes()

        await stop_server(page, demo)
        await shot(page, "3-stopped")
        assert (demo.state / "cluster" / "volumes" / "jhub").is_dir()
    assert not context.blocked or all("127.0.0.1" not in u for u in context.blocked)


async def test_cpu_user_sees_no_gpu_profile_and_the_api_refuses_one(demo):
    async with chromium() as context:
        page = await sign_in(context, demo, "cpu-user")
        await page.goto(f"{demo.url}/hub/spawn")
        slugs = await page.eval_on_selector_all("input[name=profile]", "els => els.map(e => e.value)")
        assert slugs == ["cpu"], slugs
        await shot(page, "4-cpu-user-form")
        # Under z2jh's hub settings (slow_spawn_timeout: 0) a REST spawn answers 202 at once and a
        # refusal is the failed event of the spawn's progress stream (z2jh-hub-loader.md, step 3).
        status, body = await hub_api(page, "POST", "/users/cpu-user/server", {"profile": "a100"})
        assert status in (202, 403), (status, body)
        if status == 202:
            events = await page.evaluate(
                """async () => { const r = await fetch('/hub/api/users/cpu-user/server/progress',
                                                       {headers: {'X-XSRFToken': window.jhdata.xsrf_token}});
                                 const text = await r.text();
                                 return [r.status, text, text.split('\\n').filter(l => l.startsWith('data:'))
                                        .map(l => JSON.parse(l.slice(5)))]; }""")
            assert events[0] == 200, events[:2]
            events = events[2]
            final = events[-1]
            assert final.get("failed"), events
            message = final["message"]
        else:
            message = body["message"]
        assert "not entitled" in message and "gpu-users" in message, message
        assert "jupyter-cpu" not in demo.kubectl("get", "pods", "-n", "jhub")


async def test_culler_warns_the_owner_then_stops_the_idle_gpu_server(demo):
    async with chromium() as gpu, chromium() as admin_ctx, chromium() as other:
        page = await sign_in(gpu, demo, "gpu-user")
        await start_profile(page, demo, "a100")
        demo.note_processes()

        admin = await sign_in(admin_ctx, demo, "admin")
        await admin.goto(f"{demo.url}/hub/admin")
        await admin.wait_for_selector("text=gpu-user", timeout=30_000)
        await shot(admin, "5-hub-admin")
        await admin.goto(f"{demo.url}/services/jhplatform-culler/")
        await admin.wait_for_selector("text=gpu-user", timeout=60_000)
        await shot(admin, "6-culler-gpu-page")

        home = await gpu.new_page()

        async def warning():
            await home.goto(f"{demo.url}/hub/home")
            found = await home.query_selector_all(".jhplatform-cull-warning")
            return [await w.inner_text() for w in found]

        [text] = await wait_for(warning, 180, 3, message="the culler's warning on gpu-user's home page")
        assert "will be stopped at" in text and "GPUs have been idle" in text, text
        await shot(home, "7-cull-warning")
        cpu = await sign_in(other, demo, "cpu-user")
        await cpu.goto(f"{demo.url}/hub/home")
        assert await cpu.query_selector_all(".jhplatform-cull-warning") == []

        async def culled():
            status, model = await hub_api(home, "GET", "/users/gpu-user")
            return status == 200 and not model["servers"]

        await wait_for(culled, 240, 3, message="the culler stopping gpu-user's idle GPU server")

        await start_profile(home, demo, "a100")
        status, content = await home.evaluate(
            """async () => {
                const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || '';
                const r = await fetch(location.pathname.replace(/lab.*$/, 'api/contents/written-in-the-demo.txt'),
                                      {headers: {'X-XSRFToken': xsrf}});
                let body = null; try { body = await r.json(); } catch (e) { body = await r.text(); }
                return [r.status, body]; }""")
        assert status == 200 and content["content"] == "kept across culls", (status, content)
        await stop_server(home, demo)


async def test_ctrl_c_leaves_no_process_and_frees_the_ports(demo):
    demo.note_processes()
    assert demo.started and demo.port in demo.ports
    os.killpg(demo.proc.pid, signal.SIGINT)
    demo.proc.wait(120)
    assert "jhplatform demo: stopped" in demo.output()

    def alive(p: psutil.Process) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    await wait_for(lambda: not [p for p in demo.started.values() if alive(p)], 30, 0.2, message="no demo process left")
    from jhplatform.cli.processes import port_is_free

    busy = [port for port in demo.ports if not port_is_free(port)]
    assert not busy, busy
    assert json.loads((demo.state / "secrets.json").read_text())  # state kept for the next run
