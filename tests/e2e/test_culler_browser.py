"""The culler as people see it: headless Chromium against a real hub running the real service.

JupyterHub 5.5 with PlatformSpawner on the emulator (notebook servers are a stub responder), and
``python -m jhplatform.culler`` as a hub-managed service registered exactly as the config.d
snippet does (``register_culler``), cycling every 2 s with real time. Limits make a warning due
at once for the GPU server and not for the CPU one (GPU idle 1 h with a 1 h lead time, CPU idle 2 h).
Chromium is Debian's, driven by playwright-python (no downloaded browser).

We test these aspects:
- ada (GPU server) sees the warning on her hub home page: which server, the rule, the time,
  what keeps it; bob (CPU server) sees none;
- the hub admin reaches the service's page through hub OAuth and sees the GPU servers table
  (user, profile, GPUs, utilisation, rule, time) and the JSON endpoint; a screenshot of the page
  goes to docs/img/culler-admin.png;
- bob, who has no access to the service, is refused by the hub's OAuth; carol, who may reach the
  service but is not an admin, gets the service's 403 with its message;
- the metrics endpoint answers the admin with the culler's metrics, and a scrape token with
  ``read:metrics``; carol's browser session (no ``read:metrics`` in its OAuth token) is refused.
"""

from __future__ import annotations

import json
import os
import tempfile

import aiohttp
import pytest

from helpers import REPO, wait_for
from hubstack import HubStack, free_port

pytestmark = pytest.mark.e2e

from browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402 (the flags this machine needs)
SCREENSHOT = REPO / "docs" / "img" / "culler-admin.png"
NS = "gpu"
PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True},
    {"display_name": "Fast lane", "slug": "fast", "gpu": {"resource": "nvidia.com/gpu", "count": 1, "type": "A100",
                                                          "type_label": "nvidia.com/gpu.product", "type_value": "NVIDIA-A100-SXM4-40GB"}},
]


@pytest.fixture
async def hub(cluster, tmp_path, chp_path, notebook_stub):
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS}})
    values = {"every": 2, "port": free_port(), "bindAddress": "127.0.0.1", "warnBefore": 3600,
              "gpu": {"idleTimeout": 3600, "maxAge": 0}, "cpu": {"idleTimeout": 7200}}
    config = f"""
from jhplatform.culler.hubconfig import register_culler
c.KubeSpawner.namespace = {NS!r}
c.KubeSpawner.profile_list = {PROFILES!r}
c.KubeSpawner.get_pod_url = lambda spawner, pod: "http://127.0.0.1:{notebook_stub}"
c.KubeSpawner.start_timeout = 30
c.Authenticator.admin_users = {{"admin"}}
register_culler(c, {values!r}, hub_host="127.0.0.1", cull_enabled=False, hub_dir={str(tmp_path)!r})
c.JupyterHub.load_roles.append({{"name": "culler-viewers", "users": ["carol"],
                                 "scopes": ["access:services!service=jhplatform-culler", "read:metrics"]}})
"""
    stack = HubStack(tmp_path, cluster.write_kubeconfig(tmp_path / "kubeconfig"), config, spawner_class="jhplatform")
    await stack.start()
    try:
        yield stack
    finally:
        await stack.stop()


async def login(context, hub, user):
    page = await context.new_page()
    await page.goto(f"{hub.url}/hub/login")
    await page.fill("#username_input", user)
    await page.fill("#password_input", "any password")
    async with page.expect_navigation():
        await page.click("#login_submit")
    assert "/hub/login" not in page.url, f"login failed, still at {page.url}"
    return page


async def test_warning_and_admin_page_in_chromium(hub, tmp_path):
    from playwright.async_api import async_playwright

    for user, profile in (("ada", "fast"), ("bob", "cpu")):
        status, body = await hub.request("POST", "/users", {"usernames": [user]})
        assert status == 201, body
        status, body = await hub.request("POST", f"/users/{user}/server", {"profile": profile})
        assert status in (201, 202), body
        await hub.wait_ready(user)
    # carol exists already: the hub created her for her role.

    warnings = tmp_path / "jhplatform-culler-warnings.json"

    def warned():
        try:
            return "ada" in json.loads(warnings.read_text())["warnings"]
        except (OSError, ValueError, KeyError):
            return False

    await wait_for(warned, 60, 0.2, message=f"the culler's first cycle\n{hub.log_tail()}")
    service = f"{hub.url}/services/jhplatform-culler/"

    async def browser(user):
        return await pw.chromium.launch_persistent_context(
            user_data_dir=tempfile.mkdtemp(prefix="jhplatform-chromium-"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1200, "height": 700})

    async with async_playwright() as pw:
        # ada: the warning on her home page.
        ctx = await browser("ada")
        page = await login(ctx, hub, "ada")
        await page.goto(f"{hub.url}/hub/home")
        warning = page.locator(".jhplatform-cull-warning")
        assert await warning.count() == 1
        text = await warning.inner_text()
        assert text.startswith("Your server (holding 1 GPU) will be stopped at ")
        assert "because it has been inactive for 1h00m. Opening it (or using its GPU) keeps it running." in text
        assert await warning.is_visible()
        await ctx.close()

        # bob: no warning, and no way into the service.
        ctx = await browser("bob")
        page = await login(ctx, hub, "bob")
        await page.goto(f"{hub.url}/hub/home")
        assert await page.locator(".jhplatform-cull-warning").count() == 0
        assert "will be stopped" not in await page.content()
        response = await page.goto(service)
        assert response.status == 403
        assert await page.locator("#gpu-servers").count() == 0
        await ctx.close()

        # carol may reach the service but is no admin: the service refuses.
        ctx = await browser("carol")
        page = await login(ctx, hub, "carol")
        response = await page.goto(service)
        assert response.status == 403
        assert "This page is for hub admins only." in await page.content()
        response = await page.goto(service + "api/servers")
        assert response.status == 403
        # Her browser's OAuth token carries no read:metrics, so the metrics are refused too...
        response = await page.goto(service + "metrics")
        assert response.status == 403
        assert "need a hub admin or a token with the read:metrics scope" in await page.content()
        await ctx.close()
    # ... while an API token of hers with read:metrics (a scrape token) gets them.
    status, token = await hub.request("POST", "/users/carol/tokens", {
        "scopes": ["read:metrics", "access:services!service=jhplatform-culler"], "note": "scrape"})
    assert status == 201, token
    async with aiohttp.ClientSession() as s:
        async with s.get(service + "metrics", headers={"Authorization": f"token {token['token']}"}) as r:
            assert r.status == 200, await r.text()
            assert "jhplatform_culler_culls_total" in await r.text() or "jhplatform_culler_gpu_servers" in await r.text()

    async with async_playwright() as pw:

        # the admin: the page through hub OAuth, the JSON, the metrics.
        ctx = await browser("admin")
        page = await login(ctx, hub, "admin")
        response = await page.goto(service)
        assert response.status == 200, await page.content()
        assert page.url.startswith(service)
        rows = page.locator("#gpu-servers tbody tr")
        assert await rows.count() == 1
        cells = [await c.inner_text() for c in await rows.first.locator("td").all()]
        assert cells[:4] == ["ada", "", "fast", "1"]
        assert cells[6:8] == ["no reading", "idle"]
        assert "Signed in as admin" in await page.locator("#who").inner_text()
        os.makedirs(SCREENSHOT.parent, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

        response = await page.goto(service + "api/servers")
        data = json.loads(await response.text())
        assert [(s["user"], s["gpus"], s["class"], s["rule"]) for s in data["servers"]] == [("ada", 1, "gpu", "idle")]
        response = await page.goto(service + "metrics")
        assert response.status == 200
        body = await response.text()
        assert 'jhplatform_culler_warnings_total{cls="gpu",rule="idle"} 1.0' in body
        assert "jhplatform_culler_gpu_servers 1.0" in body
        await ctx.close()
