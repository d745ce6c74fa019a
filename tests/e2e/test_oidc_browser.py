"""Sign-in through the identity provider and the entitled spawn form, as a person sees them.

Headless Chromium (Debian's, driven by playwright-python; no downloaded browser) against a real
JupyterHub + CHP with PlatformAuthenticator pointed at oidc-provider-mock and PlatformSpawner on
the emulator, with the entitlements of tests/entitled_hub.py.

We test these aspects:
- the hub's login button leads to the provider's sign-in page, and signing in there lands on
  the hub's home page, signed in;
- the spawn form shows the profiles of the user's groups (gpu-users: CPU and both A100
  profiles, with only the 1- and 2-GPU choices);
- the provider removes the user from gpu-users while the form is open; starting the A100 from
  that form shows the refusal in the page (403) naming the groups that grant it, and the form
  offered afterwards has only CPU; a screenshot of the refusal is saved to
  ``docs/img/not-entitled.png`` (used by docs/auth.md).
"""

from __future__ import annotations

import os
import secrets

import aiohttp
import pytest

from entitled_hub import entitled_config, make_namespace, pods, start_stub
from helpers import REPO
from hubstack import HubStack
from idp import mock_provider

pytestmark = pytest.mark.e2e

from browser import CHROMIUM, chromium as browser_context
SCREENSHOT = REPO / "docs" / "img" / "not-entitled.png"
REFUSED = ('You are not entitled to the profile "A100". It is granted to members of "gpu-users", "staff"; '
           "ask your hub admin to add you to one of them.")


@pytest.fixture
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: this test drives Debian's Chromium. `make test` installs it "
                    "(apt-get install chromium); playwright's own browser downloads are not used.")
    return CHROMIUM


@pytest.fixture
def provider():
    with mock_provider() as url:
        yield url


async def set_groups(provider: str, groups: list[str]) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.put(f"{provider}/users/u-ada", json={"preferred_username": "ada", "groups": groups}) as r:
            assert r.status == 204


async def test_sign_in_and_entitled_form_in_chromium(cluster, tmp_path, chp_path, chromium, provider):

    make_namespace(cluster)
    runner, port = await start_stub()
    await set_groups(provider, ["gpu-users"])
    hub = HubStack(tmp_path, cluster.write_kubeconfig(tmp_path / "kubeconfig"), spawner_class="jhplatform",
                   authenticator_class="jhplatform", env={"JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32)})
    hub.extra_config = entitled_config(port) + f"""
c.PlatformAuthenticator.issuer = {provider!r}
c.PlatformAuthenticator.client_id = "hub"
c.PlatformAuthenticator.client_secret = "not-a-real-secret"
c.PlatformAuthenticator.oauth_callback_url = "{hub.url}/hub/oauth_callback"
c.PlatformAuthenticator.allowed_groups = {{"gpu-users", "students", "staff"}}
c.PlatformAuthenticator.login_service = "Research sign-in"
"""
    await hub.start()
    page_errors: list[str] = []
    try:
        # The provider's page links a stylesheet on a public CDN: the browser stays on loopback.
        async with browser_context(viewport=(1000, 700)) as context:
            page = context.pages[0] if context.pages else await context.new_page()
            page.on("pageerror", lambda e: page_errors.append(str(e)))

            # The hub's login page offers the provider; its button goes there.
            await page.goto(f"{hub.url}/hub/login")
            button = page.get_by_role("button", name="Sign in with Research sign-in")
            async with page.expect_navigation():
                await button.click()
            assert page.url.startswith(f"{provider}/oauth2/authorize"), page.url
            await page.fill("input[name=sub]", "u-ada")
            async with page.expect_navigation(url=f"{hub.url}/hub/home"):
                await page.click("button[type=submit]:not([name])")

            await page.goto(f"{hub.url}/hub/spawn")
            await page.wait_for_selector("#spawn_form #kubespawner-profiles-list")
            slugs = await page.locator("input[name=profile]").evaluate_all("els => els.map(e => e.value)")
            assert slugs == ["cpu", "a100", "a100-multi"]
            choices = await page.locator("#profile-option-a100-multi--gpus option").evaluate_all(
                "els => els.map(e => e.value)")
            assert choices == ["1", "2"]

            # Removed from gpu-users in the provider while the form is open.
            await set_groups(provider, ["students"])
            made = len(pods(cluster))
            await page.click("#profile-item-a100")
            async with page.expect_navigation():
                await page.click("#spawn_form input[type=submit], #spawn_form button[type=submit]")
            body = " ".join((await page.locator("body").inner_text()).split())
            assert REFUSED in body, body[-800:]
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
            slugs = await page.locator("input[name=profile]").evaluate_all("els => els.map(e => e.value)")
            assert slugs == ["cpu"]
            assert len(pods(cluster)) == made
            assert page_errors == []
    finally:
        await hub.stop()
        await runner.cleanup()
    assert SCREENSHOT.stat().st_size > 10_000
