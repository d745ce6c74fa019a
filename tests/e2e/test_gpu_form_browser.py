"""The GPU spawn form as a person sees it: headless Chromium against a real hub on the emulator.

JupyterHub 5.5 with PlatformSpawner and configurable-http-proxy on loopback, the emulator with
the simulated kubelet (its default pool: 2 nodes with 4 A100s each) plus one node with an H100,
a ResourceQuota of 9 ``nvidia.com/gpu`` in the user namespace, pools of 8 A100 and 1 H100, and a
per-user limit of 1 GPU. Notebook servers are a stub HTTP responder. bob already runs the H100
server; ada logs in through the login page with Debian's Chromium (driven by playwright-python,
no downloaded browser) and opens ``/hub/spawn``.

We test these aspects:
- the real login page (dummy authenticator: username, password, submit) leads to a session that
  opens the spawn form;
- the A100 profile is enabled and shows "8 of 8 A100 free · you use 0 of 1";
- the H100 profile, whose only GPU bob holds, is disabled (radio and option select), greyed out
  (``opacity`` 0.65 from the form's stylesheet), says "0 of 1 H100 free · you use 0 of 1" and
  shows its reason; clicking it does not select it;
- in the "A100, several" profile the 2- and 4-GPU choices (over ada's limit of 1) are disabled
  ``<option>`` s with their visible reason, while the 1-GPU choice is selected and enabled;
- the CPU profile is enabled and checked, and the form's script runs without page errors;
- a full-page screenshot of the form is saved to ``docs/img/gpu-form.png`` (used by docs/gpu.md).
"""

from __future__ import annotations

import os
import tempfile

import pytest

from helpers import REPO
from hubrbac import HUB_NAMESPACE, HUB_SERVICE_ACCOUNT
from hubstack import HubStack
from jhplatform.devcluster.nodes import parse_nodes

pytestmark = pytest.mark.e2e

from browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402 (the flags this machine needs)
SCREENSHOT = REPO / "docs" / "img" / "gpu-form.png"

NS = "gpu"
GPU = "nvidia.com/gpu"
PRODUCT = "nvidia.com/gpu.product"
A100 = {"resource": GPU, "type": "A100", "type_label": PRODUCT, "type_value": "NVIDIA-A100-SXM4-40GB"}
H100 = {"resource": GPU, "count": 1, "type": "H100", "type_label": PRODUCT, "type_value": "NVIDIA-H100-80GB-HBM3"}
PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "description": "2 CPUs, no GPU",
     "kubespawner_override": {"cpu_limit": 2}},
    {"display_name": "NVIDIA A100", "slug": "a100", "description": "One A100 40 GB", "gpu": {**A100, "count": 1}},
    {
        "display_name": "NVIDIA A100, several",
        "slug": "a100-multi",
        "description": "Up to four A100 40 GB",
        "gpu": {**A100, "option": "gpus"},
        "profile_options": {"gpus": {"display_name": "GPUs", "choices": {
            "1": {"display_name": "1 GPU", "default": True}, "2": {"display_name": "2 GPUs"}, "4": {"display_name": "4 GPUs"}}}},
    },
    {"display_name": "NVIDIA H100", "slug": "h100", "description": "One H100 80 GB", "gpu": H100},
]
# One H100 node next to the emulator's default pool (removed again by the next cluster reset).
H100_NODE = ("gpu-h100:cpu=16,memory=128Gi,pods=110,nvidia.com/gpu=1,"
             "label:nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3,label:hub.jupyter.org/node-purpose=user,"
             "taint:nvidia.com/gpu=present:NoSchedule")

A100_TEXT = "8 of 8 A100 free · you use 0 of 1"
H100_TEXT = "0 of 1 H100 free · you use 0 of 1"
H100_REASON = "The only H100 GPU is in use (yours: 0 of 1). Pick the CPU profile or try again later."
CHOICE_REASON = ("{n} GPUs: This choice needs {n} GPUs, but you may use only 1 more (you use 0 of 1). "
                 "Pick fewer GPUs, stop a server that uses a GPU, or pick the CPU profile.")


@pytest.fixture
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: this test drives Debian's Chromium. `make test` installs it "
                    "(apt-get install chromium); playwright's own browser downloads are not used.")
    return CHROMIUM


@pytest.fixture
async def hub(cluster, tmp_path, chp_path, notebook_stub):
    for node in parse_nodes(H100_NODE):
        cluster.cluster.create("nodes", None, node)
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS}})
    cluster.cluster.create("resourcequotas", NS, {"metadata": {"name": "gpu-quota"}, "spec": {"hard": {f"requests.{GPU}": "9"}}})
    config = f"""
c.KubeSpawner.namespace = {NS!r}
c.KubeSpawner.profile_list = {PROFILES!r}
c.KubeSpawner.get_pod_url = lambda spawner, pod: "http://127.0.0.1:{notebook_stub}"
c.KubeSpawner.start_timeout = 30
c.PlatformSpawner.gpu_user_limit = 1
c.PlatformSpawner.gpu_pools = {{"A100": 8, "H100": 1}}
"""
    stack = HubStack(tmp_path, cluster.write_serviceaccount_kubeconfig(tmp_path / "kubeconfig", HUB_NAMESPACE, HUB_SERVICE_ACCOUNT), config, spawner_class="jhplatform")
    await stack.start()
    try:
        yield stack
    finally:
        await stack.stop()


async def test_gpu_spawn_form_in_chromium(hub, cluster, chromium):
    from playwright.async_api import async_playwright

    # bob holds the only H100.
    status, body = await hub.request("POST", "/users", {"usernames": ["bob"]})
    assert status == 201, body
    status, body = await hub.request("POST", "/users/bob/server", {"profile": "h100"})
    assert status in (201, 202), body
    await hub.wait_ready("bob")
    pod = cluster.cluster.get("pods", NS, "jupyter-bob")
    assert (pod["spec"]["nodeName"], pod["status"]["phase"]) == ("gpu-h100", "Running")

    page_errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="jhplatform-chromium-") as profile_dir:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                user_data_dir=profile_dir,
                executable_path=chromium,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1000, "height": 800},
            )
            try:
                page = context.pages[0] if context.pages else await context.new_page()
                page.on("pageerror", lambda e: page_errors.append(str(e)))

                # The real login page.
                await page.goto(f"{hub.url}/hub/login")
                await page.fill("#username_input", "ada")
                await page.fill("#password_input", "any password")
                async with page.expect_navigation():
                    await page.click("#login_submit")
                assert "/hub/login" not in page.url, f"login failed, still at {page.url}"

                response = await page.goto(f"{hub.url}/hub/spawn")
                assert response is not None and response.status == 200, response and response.status
                await page.wait_for_selector("#spawn_form #kubespawner-profiles-list")

                # The GPU profile ada can have.
                assert await page.locator("#gpu-availability-a100").inner_text() == A100_TEXT
                assert await page.locator("#profile-item-a100").is_enabled()
                assert await page.locator("#profile-a100").get_attribute("data-gpu-available") == "true"
                assert await page.locator("#gpu-reason-a100").count() == 0

                # The one she cannot have: disabled, greyed out, with its reason.
                h100 = page.locator("#profile-h100")
                assert await page.locator("#gpu-availability-h100").inner_text() == H100_TEXT
                assert await page.locator("#profile-item-h100").get_attribute("disabled") is not None
                assert await page.locator("#profile-item-h100").is_disabled()
                assert (await h100.get_attribute("data-gpu-available"), await h100.get_attribute("data-gpu-reason")) == ("false", "pool")
                reason = page.locator("#gpu-reason-h100")
                assert await reason.is_visible()
                assert await reason.inner_text() == H100_REASON
                assert await page.locator("#profile-item-h100").get_attribute("aria-describedby") == "gpu-reason-h100"
                assert await h100.evaluate("el => getComputedStyle(el).opacity") == "0.65", "the disabled profile is greyed out"
                # A real mouse click on the label (force: playwright itself refuses to click what
                # belongs to a disabled control, which is the point).
                await h100.locator("h3").click(force=True)
                assert not await page.locator("#profile-item-h100").is_checked(), "a disabled profile cannot be selected"

                # Choices over ada's limit of 1 GPU: disabled options, each with its reason.
                assert await page.locator("#gpu-availability-a100-multi").inner_text() == A100_TEXT
                select = page.locator("#profile-option-a100-multi--gpus")
                assert await select.is_enabled()
                assert await select.input_value() == "1"
                for n in ("2", "4"):
                    option = select.locator(f"option[value='{n}']")
                    assert await option.get_attribute("disabled") is not None
                    assert await option.evaluate("o => o.disabled") is True
                    assert await option.get_attribute("data-gpu-reason") == "user_cap"
                    assert await option.inner_text() == f"{n} GPUs (not available)"
                    item = page.locator(f"#gpu-reason-a100-multi--gpus--{n}")
                    assert await item.is_visible()
                    assert await item.inner_text() == CHOICE_REASON.format(n=n)
                assert await select.locator("option[value='1']").evaluate("o => !o.disabled && o.selected") is True

                # The CPU profile: enabled and checked.
                cpu = page.locator("#profile-item-cpu")
                assert await cpu.is_enabled() and await cpu.get_attribute("disabled") is None
                assert await cpu.is_checked()
                assert await page.locator("#profile-cpu").get_attribute("data-gpu-available") is None

                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(SCREENSHOT), full_page=True)
            finally:
                await context.close()

    assert page_errors == [], f"the spawn page's script failed: {page_errors}"
    assert SCREENSHOT.stat().st_size > 10_000
