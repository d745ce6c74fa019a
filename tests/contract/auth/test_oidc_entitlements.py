"""Groups from the identity provider decide GPU profiles: PlatformAuthenticator + PlatformSpawner.

A real JupyterHub with CHP, PlatformAuthenticator against oidc-provider-mock, PlatformSpawner on
the emulator (GPU quota in the namespace), entitlements as in tests/entitled_hub.py. The user
signs in once through the provider; afterwards only the provider's record of the user changes.

We test these aspects:
- a member of the provider's ``gpu-users`` group sees and starts the A100 profile;
- removed from that group in the provider, the user cannot start it at the next spawn, through
  the REST API (403 with the groups that grant it) and through the form (even one rendered while
  they were still a member: the spawn refreshes the groups first, and the GPU that form's
  submission reserved is freed at once), and the hub's groups follow; no pod is made for the
  refused spawns;
- back in the group, the next spawn may use the GPU again, with no new sign-in.
"""

from __future__ import annotations

import secrets

import aiohttp
import pytest

from entitled_hub import PageSession, entitled_config, gpus_in_use, make_namespace, page_text, pods, spawn, start_stub, stop
from hubstack import HubStack
from idp import mock_provider

pytestmark = pytest.mark.contract

REFUSED = ('You are not entitled to the profile "A100". It is granted to members of "gpu-users", "staff"; '
           "ask your hub admin to add you to one of them.")


async def set_groups(provider: str, groups) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.put(f"{provider}/users/u-ann", json={"preferred_username": "ann", "groups": groups}) as r:
            assert r.status == 204


async def login(hub: HubStack, session: aiohttp.ClientSession, sub: str) -> None:
    async with session.get(f"{hub.url}/hub/oauth_login", allow_redirects=False) as r:
        authorize = r.headers["Location"]
    async with session.post(authorize, data={"sub": sub}, allow_redirects=False) as r:
        callback = r.headers["Location"]
    async with session.get(callback) as r:
        assert r.status == 200 and r.url.path == "/hub/home", hub.log_tail(40)


async def hub_groups(hub: HubStack) -> list[str]:
    _, model = await hub.request("GET", "/users/ann")
    return sorted(model["groups"])


async def test_removed_from_gpu_group_in_the_provider(cluster, tmp_path, chp_path):
    make_namespace(cluster)
    runner, port = await start_stub()
    with mock_provider() as provider:
        await set_groups(provider, ["gpu-users"])
        hub = HubStack(tmp_path, cluster.write_kubeconfig(tmp_path / "kubeconfig"), spawner_class="jhplatform",
                       authenticator_class="jhplatform", env={"JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32)})
        hub.extra_config = entitled_config(port) + f"""
c.PlatformAuthenticator.issuer = {provider!r}
c.PlatformAuthenticator.client_id = "hub"
c.PlatformAuthenticator.client_secret = "not-a-real-secret"
c.PlatformAuthenticator.oauth_callback_url = "{hub.url}/hub/oauth_callback"
c.PlatformAuthenticator.allowed_groups = {{"gpu-users", "students", "staff"}}
"""
        await hub.start()
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        ann = PageSession(hub, "ann", session)
        try:
            await login(hub, session, "u-ann")
            assert await hub_groups(hub) == ["gpu-users"]
            form, _ = await ann.spawn_form()
            assert form.profiles == ["cpu", "a100", "a100-multi"]

            status, body = await spawn(hub, "ann", {"profile": "a100"})
            assert status in (201, 202), body
            await hub.wait_ready("ann")
            (pod,) = pods(cluster)
            assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
            await stop(hub, "ann")

            # The provider removes ann from gpu-users. REST: refused at the next spawn.
            await set_groups(provider, ["students"])
            made = len(pods(cluster))
            status, body = await spawn(hub, "ann", {"profile": "a100"})
            assert status == 403, body
            assert body["message"] == REFUSED
            assert len(pods(cluster)) == made
            assert await hub_groups(hub) == ["students"]
            assert "Spawn refused for ann: not entitled (profile 'a100'). Groups: students" in hub.log_tail(300)

            # Back in the group: the next spawn refreshes again and may use the GPU.
            await set_groups(provider, ["gpu-users"])
            status, body = await spawn(hub, "ann", {"profile": "a100"})
            assert status in (201, 202), body
            await hub.wait_ready("ann")
            assert await hub_groups(hub) == ["gpu-users"]
            await stop(hub, "ann")

            # The form, rendered while ann is still a member, then submitted after her removal.
            form, _ = await ann.spawn_form()
            assert "a100" in form.profiles
            await set_groups(provider, ["students"])
            made = len(pods(cluster))
            status, page = await ann.submit({"profile": "a100"})
            assert status == 403, page_text(page)[-600:]
            # The GPU the stale form's submission reserved is free again at once.
            assert await gpus_in_use(hub) == 0
            assert REFUSED in page_text(page)
            assert await hub_groups(hub) == ["students"]
            form, _ = await ann.spawn_form()
            assert form.profiles == ["cpu"]
            assert len(pods(cluster)) == made  # nothing was made for the refused spawns
            _, model = await hub.request("GET", "/users/ann")
            assert model["servers"] == {}
        finally:
            await session.close()
            await hub.stop()
            await runner.cleanup()
