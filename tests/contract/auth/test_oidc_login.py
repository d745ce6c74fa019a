"""PlatformAuthenticator through a real JupyterHub + CHP against real OpenID providers on loopback.

The hub is configured with ``authenticator_class = "jhplatform"`` (the entry point) and one
issuer URL. Logins are full authorization-code flows made by an HTTP client with a cookie jar
following the hub's and the provider's redirects; nothing is mocked in between.

We test these aspects:
- a login through oidc-provider-mock: discovery from the issuer URL alone, PKCE (S256) sent, the
  ID token verified, groups from the claim into JupyterHub groups and auth state, admin rights
  from ``admin_groups`` (and none without), the user lands on the hub;
- a group removed in the provider is gone from the hub's groups at the next spawn
  (``refresh_pre_spawn``), with no new login, both with claims from the userinfo endpoint and
  from the ID token (``userdata_from_id_token``: a refresh-token grant brings a new ID token);
- each bad input gives a clear page (403; 503 for a provider that is down), a hub log line,
  and no user: missing state, wrong state, no code, the provider's own error, a replayed code, an
  expired ID token, an ID token signed by another key, with an unknown key id (the JWKS is
  fetched again once, not again within ``jwks_refetch_interval``), unsigned (``alg: none``), for
  another audience, a groups claim that is missing, a string, null or nested wrong, a user in no
  allowed group, a provider that is down (before the login, or between the redirect and the code
  exchange), a userinfo endpoint that fails; a malformed token's text never appears in the page.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import time
from urllib.parse import parse_qs, urlparse

import aiohttp
import jwt
import pytest

from helpers import wait_for
from hubstack import HubStack, free_port
from idp import TokenForge, mock_provider, rsa_key

pytestmark = pytest.mark.contract

CLIENT_ID = "hub"


def oidc_config(hub: HubStack, issuer: str, extra: str = "") -> str:
    return f"""
c.PlatformAuthenticator.issuer = {issuer!r}
c.PlatformAuthenticator.client_id = {CLIENT_ID!r}
c.PlatformAuthenticator.client_secret = "not-a-real-secret"
c.PlatformAuthenticator.oauth_callback_url = "{hub.url}/hub/oauth_callback"
c.PlatformAuthenticator.allowed_groups = {{"staff", "gpu-users", "students", "hub-admins"}}
c.PlatformAuthenticator.admin_groups = {{"hub-admins"}}
c.JupyterHub.default_url = "/hub/home"
# z2jh runs the hub with slow_spawn_timeout 0 (z2jh-hub-loader.md): spawn requests answer at once.
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.JupyterHub.load_roles.append({{"name": "auth-tests", "scopes": ["admin:auth_state", "admin:groups", "admin:users"], "services": ["operator"]}})
""" + extra


async def start_oidc_hub(tmp_path, issuer: str, extra: str = "", spawner: str = "simple") -> HubStack:
    workdir = tmp_path / f"hub-{secrets.token_hex(3)}"
    workdir.mkdir()
    hub = HubStack(workdir, tmp_path / "no-kubeconfig", spawner_class=spawner, authenticator_class="jhplatform",
                   env={"JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32)})
    hub.extra_config = oidc_config(hub, issuer, extra)
    await hub.start()
    return hub


def new_session() -> aiohttp.ClientSession:
    # unsafe: the hub and the providers are on 127.0.0.1, which the default jar ignores.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def to_provider(hub: HubStack, session: aiohttp.ClientSession) -> str:
    """Start a login at the hub; return the provider's authorize URL it redirected to."""
    async with session.get(f"{hub.url}/hub/oauth_login", allow_redirects=False) as r:
        assert r.status == 302, (r.status, await r.text())
        return r.headers["Location"]


async def mock_authorize(session, authorize_url: str, sub: str) -> str:
    """Sign in as ``sub`` at oidc-provider-mock's form; return the hub callback URL it sends us to."""
    async with session.get(authorize_url) as r:
        assert r.status == 200 and 'name="sub"' in await r.text()
    async with session.post(authorize_url, data={"sub": sub}, allow_redirects=False) as r:
        assert r.status == 302, (r.status, await r.text())
        return r.headers["Location"]


async def follow(session, url: str) -> tuple[int, str, str]:
    """GET ``url`` following redirects; (status, body, final URL)."""
    async with session.get(url) as r:
        return r.status, await r.text(), str(r.url)


async def user_model(hub: HubStack, name: str):
    return await hub.request("GET", f"/users/{name}")


async def assert_no_user(hub: HubStack, name: str) -> None:
    status, _ = await user_model(hub, name)
    assert status == 404, f"user {name!r} was created"


def page_message(page: str) -> str:
    """The text of a JupyterHub page, tags removed, entities decoded, whitespace-normalised."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# -- the happy path, with oidc-provider-mock --------------------------------------------------------


@pytest.fixture
def provider():
    with mock_provider() as url:
        yield url


async def set_claims(provider: str, sub: str, claims: dict) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.put(f"{provider}/users/{sub}", json=claims) as r:
            assert r.status == 204, await r.text()


async def test_full_login_groups_admin_and_refresh(provider, tmp_path):
    await set_claims(provider, "u-ada", {"preferred_username": "ada", "email": "ada@example.org",
                                         "groups": ["gpu-users", "hub-admins", "not-allowed-group"]})
    await set_claims(provider, "u-bob", {"preferred_username": "bob", "groups": ["students"]})
    hub = await start_oidc_hub(tmp_path, provider)
    try:
        async with new_session() as ada:
            authorize = await to_provider(hub, ada)
            # Discovery alone gave the authorize endpoint; PKCE is on.
            assert authorize.startswith(f"{provider}/oauth2/authorize?")
            query = parse_qs(urlparse(authorize).query)
            assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
            assert query["scope"] == ["openid profile email"] and query["client_id"] == [CLIENT_ID]

            callback = await mock_authorize(ada, authorize, "u-ada")
            assert callback.startswith(f"{hub.url}/hub/oauth_callback?")
            status, body, final = await follow(ada, callback)
            assert status == 200, hub.log_tail(40)
            assert urlparse(final).path == "/hub/home"  # signed in, on the hub's home page
            async with ada.get(f"{hub.url}/hub/home", allow_redirects=False) as r:
                assert r.status == 200  # the login cookie works

        status, model = await user_model(hub, "ada")
        assert status == 200 and model["servers"] == {}
        assert sorted(model["groups"]) == ["gpu-users", "hub-admins", "not-allowed-group"]
        assert model["admin"] is True
        state = model["auth_state"]
        assert state["oauth_user"]["groups"] == ["gpu-users", "hub-admins", "not-allowed-group"]
        assert state["token_response"]["id_token_claims"]["sub"] == "u-ada"
        assert state["token_response"]["id_token_claims"]["iss"] == provider
        assert state["refresh_token"]

        async with new_session() as bob:
            callback = await mock_authorize(bob, await to_provider(hub, bob), "u-bob")
            status, body, _ = await follow(bob, callback)
            assert status == 200, body
        status, model = await user_model(hub, "bob")
        assert model["groups"] == ["students"] and model["admin"] is False

        # The provider drops ada from gpu-users; the next spawn refreshes first.
        await set_claims(provider, "u-ada", {"preferred_username": "ada", "groups": ["students"]})
        status, body = await hub.request("POST", "/users/ada/server")
        assert status in (201, 202), body

        async def refreshed():
            _, m = await user_model(hub, "ada")
            return m["groups"] == ["students"] and m

        model = await wait_for(refreshed, 30, 0.1, message="ada's groups refreshed")
        assert model["admin"] is False  # admin came from a group she has left
        assert model["auth_state"]["oauth_user"]["groups"] == ["students"]
        assert "Refreshing auth for ada" in hub.log_tail(400)
    finally:
        await hub.stop()


async def test_replayed_code_and_state_problems(provider, tmp_path):
    await set_claims(provider, "u-cy", {"preferred_username": "cy", "groups": ["staff"]})
    hub = await start_oidc_hub(tmp_path, provider)
    try:
        async with new_session() as first, new_session() as thief:
            callback = await mock_authorize(first, await to_provider(hub, first), "u-cy")
            # The same browser state, copied: only the code's single use stops the replay.
            thief.cookie_jar.update_cookies({c.key: c.value for c in first.cookie_jar})
            status, _, _ = await follow(first, callback)
            assert status == 200
            async with thief.get(callback, allow_redirects=False) as r:
                assert r.status == 403
                message = page_message(await r.text())
            assert "The sign-in provider refused this login (invalid_grant); a login link can be used only once" in message
            assert "Please sign in again from the hub's login page." in message
            assert re.search(r"Sign-in refused: the token endpoint of \S+ answered 400 invalid_grant", hub.log_tail(200))
            async with thief.get(f"{hub.url}/hub/home", allow_redirects=False) as r:
                assert r.status == 302 and "/hub/login" in r.headers["Location"]  # not signed in

        # No state cookie at all (a link opened in another browser).
        async with new_session() as s:
            callback = await mock_authorize(s, await to_provider(hub, s), "u-dee")
            async with new_session() as other:
                async with other.get(callback, allow_redirects=False) as r:
                    assert r.status == 403
                    assert ("This sign-in did not start here or has expired (its state does not match). "
                            "Please sign in again") in page_message(await r.text())
            # A wrong state with the right cookie.
            bad = re.sub(r"state=[^&]+", "state=" + base64.urlsafe_b64encode(b'{"state_id": "x"}').decode(), callback)
            async with s.get(bad, allow_redirects=False) as r:
                assert r.status == 403 and "its state does not match" in page_message(await r.text())
            # No state parameter at all.
            async with s.get(re.sub(r"&?state=[^&]+", "", callback), allow_redirects=False) as r:
                assert r.status == 403 and "its state does not match" in page_message(await r.text())
            # No code.
            async with s.get(re.sub(r"code=[^&]+&?", "", callback), allow_redirects=False) as r:
                assert r.status == 403
                assert "The sign-in provider sent no login code. Please sign in again" in page_message(await r.text())
        assert "Sign-in refused at the callback (400 OAuth state missing from cookies)" in hub.log_tail(200)
        assert "Sign-in refused at the callback (400 OAuth state mismatch)" in hub.log_tail(200)
        await assert_no_user(hub, "dee")

        # The user says no at the provider: its error is shown plainly.
        async with new_session() as s:
            authorize = await to_provider(hub, s)
            async with s.post(authorize, data={"action": "deny"}, allow_redirects=False) as r:
                callback = r.headers["Location"]
            async with s.get(callback, allow_redirects=False) as r:
                assert r.status == 403
                assert "The sign-in provider refused the sign-in: " in page_message(await r.text())
    finally:
        await hub.stop()


# -- bad tokens, from the test's own provider ----------------------------------------------------------


@pytest.fixture(scope="module")
async def module_forge():
    f = await TokenForge().start()
    yield f
    await f.stop()


@pytest.fixture
def forge(module_forge):
    module_forge.reset()
    return module_forge


@pytest.fixture(scope="module")
async def forge_hub(module_forge, tmp_path_factory):
    # One hub for the bad-token cases (each starts with no user): a hub start costs seconds.
    hub = await start_oidc_hub(tmp_path_factory.mktemp("forge"), module_forge.url,
                               "c.PlatformAuthenticator.jwks_refetch_interval = 3600\n")
    yield hub
    await hub.stop()


async def forge_login(hub: HubStack) -> tuple[int, str]:
    async with new_session() as s:
        authorize = await to_provider(hub, s)
        async with s.get(authorize, allow_redirects=False) as r:
            callback = r.headers["Location"]
        async with s.get(callback, allow_redirects=False) as r:
            return r.status, await r.text()


def none_token(claims: dict) -> str:
    head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    return (head + b"." + body + b".").decode()


OTHER_KEY = rsa_key()
TOKEN_CASES = [
    ("expired", lambda f: lambda c: f.sign({**c, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}),
     "expired (exp is in the past)"),
    ("another-key", lambda f: lambda c: f.sign(c, key=OTHER_KEY), "InvalidSignatureError: Signature verification failed"),
    ("unknown-kid", lambda f: lambda c: f.sign(c, key=OTHER_KEY, kid="rotated-2"),
     "signed with key id 'rotated-2', which the issuer's JWKS does not hold"),
    ("alg-none", lambda f: none_token, "signed with alg 'none', accepted: RS256"),
    ("hs256-with-secret", lambda f: lambda c: jwt.encode(c, "not-a-real-secret", algorithm="HS256"),
     "signed with alg 'HS256', accepted: RS256"),
    ("wrong-audience", lambda f: lambda c: f.sign({**c, "aud": "another-app"}), "InvalidAudienceError: Audience doesn't match"),
    ("wrong-issuer", lambda f: lambda c: f.sign({**c, "iss": "https://evil.example"}), "InvalidIssuerError: Invalid issuer"),
    ("not-yet-valid", lambda f: lambda c: f.sign({**c, "nbf": int(time.time()) + 3600}),
     "ImmatureSignatureError: The token is not yet valid (nbf)"),
    ("garbage", lambda f: lambda c: "this-is.not-a.jwt<script>", "not a JWS (DecodeError)"),
]


@pytest.mark.parametrize("case, mangle, log", TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
async def test_bad_id_tokens_are_refused(forge, forge_hub, case, mangle, log):
    forge.claims = {"sub": "s-eve", "preferred_username": "eve", "groups": ["staff"]}
    forge.mangle = mangle(forge)
    status, html = await forge_login(forge_hub)
    assert status == 403, html
    message = page_message(html)
    assert ("The sign-in could not be verified (the identity token was rejected). Please sign in again from the "
            "hub's login page.") in message
    token = forge.issued[-1]
    for part in [token] + [p for p in token.split(".") if len(p) > 8]:
        assert part not in html  # nothing from the token reaches the page
    assert f"the ID token from {forge.url} was rejected: {log}" in forge_hub.log_tail(200)
    await assert_no_user(forge_hub, "eve")


async def test_unknown_key_ids_do_not_hammer_the_jwks(forge, forge_hub):
    forge.claims = {"sub": "s-lu", "preferred_username": "lu", "groups": ["staff"]}
    assert (await forge_login(forge_hub))[0] == 302  # a good login: the JWKS is known
    fetched = forge.requests.count("jwks")
    assert fetched >= 1
    forge.mangle = lambda c: forge.sign(c, key=OTHER_KEY, kid=f"made-up-{secrets.token_hex(4)}")
    for _ in range(3):
        assert (await forge_login(forge_hub))[0] == 403
    # Within jwks_refetch_interval (3600 s here) unknown key ids cause no further fetches.
    assert forge.requests.count("jwks") == fetched


async def test_rotated_key_is_picked_up(tmp_path):
    forge = await TokenForge().start()
    hub = await start_oidc_hub(tmp_path, forge.url, "c.PlatformAuthenticator.jwks_refetch_interval = 0\n")
    try:
        forge.claims = {"sub": "s-fay", "preferred_username": "fay", "groups": ["staff"]}
        assert (await forge_login(hub))[0] == 302
        forge.key, forge.KID = rsa_key(), "forge-2"  # the provider rotates its key
        forge.claims = {"sub": "s-gil", "preferred_username": "gil", "groups": ["staff"]}
        assert (await forge_login(hub))[0] == 302
        assert forge.requests.count("jwks") == 2
        status, model = await user_model(hub, "gil")
        assert status == 200 and model["groups"] == ["staff"]
    finally:
        await hub.stop()
        await forge.stop()


GROUP_CASES = [
    ("missing", {}, "the groups claim 'groups' is missing"),
    ("string", {"groups": "staff"}, "the groups claim 'groups' is a str, not a list of group names"),
    ("null", {"groups": None}, "the groups claim 'groups' is null"),
    ("nested-wrong", {"groups": [["staff"]]}, "the groups claim 'groups' holds 1 entries that are not group names (types: list)"),
    ("dict", {"groups": {"staff": True}}, "the groups claim 'groups' is a dict, not a list of group names"),
]


@pytest.mark.parametrize("case, claims, log", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
async def test_malformed_groups_claim_is_refused(forge, forge_hub, case, claims, log):
    forge.claims = {"sub": "s-hal", "preferred_username": "hal", **claims}
    status, html = await forge_login(forge_hub)
    assert status == 403, html
    assert ("Your group memberships could not be read from the sign-in provider, so the hub cannot tell what you "
            "may use. Tell your hub admin") in page_message(html)
    assert f"Sign-in refused for 'hal': {log} (PlatformAuthenticator.groups_claim = 'groups')" in forge_hub.log_tail(200)
    await assert_no_user(forge_hub, "hal")


async def test_user_in_no_allowed_group_is_refused(forge, forge_hub):
    forge.claims = {"sub": "s-ivy", "preferred_username": "ivy", "groups": ["visitors"]}
    status, html = await forge_login(forge_hub)
    assert status == 403
    assert "Your account is not in a group allowed to use this hub. Ask your hub admin" in page_message(html)
    assert "User 'ivy' not allowed" in forge_hub.log_tail(100) or "ivy not allowed" in forge_hub.log_tail(100)
    await assert_no_user(forge_hub, "ivy")


async def test_missing_username_claim_is_refused_without_the_claims(forge, forge_hub):
    forge.claims = {"sub": "s-jo", "email": "jo@example.org", "groups": ["staff"]}
    status, html = await forge_login(forge_hub)
    assert status == 403
    assert "The sign-in provider did not send a user name for your account." in page_message(html)
    assert "jo@example.org" not in html
    assert "have no 'preferred_username' (claims present: email, groups, sub)" in forge_hub.log_tail(100)


async def test_claims_from_the_id_token_are_refreshed_before_a_spawn(tmp_path):
    forge = await TokenForge().start()
    hub = await start_oidc_hub(tmp_path, forge.url, "c.PlatformAuthenticator.userdata_from_id_token = True\n")
    try:
        forge.claims = {"sub": "s-mo", "preferred_username": "mo", "groups": ["gpu-users"]}
        assert (await forge_login(hub))[0] == 302
        assert "userinfo" not in forge.requests  # the claims came from the verified ID token
        _, model = await user_model(hub, "mo")
        assert model["groups"] == ["gpu-users"]

        forge.claims = {**forge.claims, "groups": ["students"]}
        status, body = await hub.request("POST", "/users/mo/server")
        assert status in (201, 202), body

        async def refreshed():
            _, m = await user_model(hub, "mo")
            return m["groups"] == ["students"] and m

        model = await wait_for(refreshed, 30, 0.1, message="mo's groups refreshed")
        # The stored ID token was not reused: a refresh-token grant brought a new one.
        assert forge.requests.count("token:refresh_token") == 1
        assert model["auth_state"]["token_response"]["id_token_claims"]["groups"] == ["students"]
        assert "jhplatform_id_token_fresh" not in model["auth_state"]["token_response"]
    finally:
        await hub.stop()
        await forge.stop()


async def test_provider_down(tmp_path):
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    hub = await start_oidc_hub(tmp_path, down)
    try:
        async with new_session() as s:
            async with s.get(f"{hub.url}/hub/oauth_login", allow_redirects=False) as r:
                assert r.status == 503
                message = page_message(await r.text())
        assert ("The sign-in provider cannot be reached right now, so nobody can sign in. Please try again in a few "
                "minutes; if it persists, tell your hub admin.") in message
        assert f"Sign-in unavailable: the OpenID provider {down} cannot be used: GET {down}/.well-known/openid-configuration" in hub.log_tail(100)
        status, users = await hub.request("GET", "/users")
        assert status == 200 and users == []
    finally:
        await hub.stop()


@pytest.mark.parametrize(
    "status, page_status, message, log",
    [(500, 503, "The sign-in provider cannot be reached right now.", "answered 500"),
     (401, 403, "The sign-in provider did not say who you are.", "answered 401")],
    ids=["userinfo-500", "userinfo-401"],
)
async def test_userinfo_failure(forge, forge_hub, status, page_status, message, log):
    forge.claims = {"sub": "s-ned", "preferred_username": "ned", "groups": ["staff"]}
    forge.userinfo_status = status
    code, html = await forge_login(forge_hub)
    assert code == page_status
    assert message in page_message(html)
    assert f"Sign-in failed: the userinfo endpoint of {forge.url} {log}" in forge_hub.log_tail(100)
    await assert_no_user(forge_hub, "ned")


async def test_provider_goes_down_during_login(forge, forge_hub):
    forge.claims = {"sub": "s-kim", "preferred_username": "kim", "groups": ["staff"]}
    async with new_session() as s:
        authorize = await to_provider(forge_hub, s)
        async with s.get(authorize, allow_redirects=False) as r:
            callback = r.headers["Location"]
        await forge.stop()  # the provider dies between the redirect and the code exchange
        async with s.get(callback, allow_redirects=False) as r:
            assert r.status == 503
            assert "The sign-in provider cannot be reached right now." in page_message(await r.text())
    # With pycurl installed (as in the hub image) JupyterHub uses tornado's curl client, which
    # reports a refused connection as HTTP 599; the simple client raises the socket error.
    log = forge_hub.log_tail(100)
    assert (f"Sign-in failed: the token endpoint of {forge.url} did not answer (599)" in log
            or f"Sign-in failed: the token endpoint of {forge.url} cannot be reached: [Errno 111] Connection refused" in log), log
    await assert_no_user(forge_hub, "kim")
    await forge.start_again()
