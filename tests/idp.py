"""Identity providers on loopback for the authenticator's tests.

- :func:`mock_provider`: oidc-provider-mock (a real OpenID Connect provider built on authlib),
  served by werkzeug on 127.0.0.1 in a thread. A user's claims are set with its REST API
  (``PUT /users/<sub>``); the userinfo endpoint reads them at request time, so a change there is
  what a group change in the organisation's provider looks like to the hub.
- :class:`TokenForge`: a small provider of the test's own (aiohttp) for the ID tokens
  oidc-provider-mock cannot produce: expired, signed by another key, unsigned (``alg: none``),
  for another audience, with a malformed groups claim. It signs with an RSA key of its own
  (PyJWT) and publishes it at its JWKS endpoint; ``authorize`` answers at once with a code.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa


@contextlib.contextmanager
def mock_provider(**options):
    import oidc_provider_mock
    import werkzeug.serving

    server = werkzeug.serving.make_server("127.0.0.1", 0, oidc_provider_mock.app(**options), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TokenForge:
    """A provider whose token endpoint returns the ID token the test asks for.

    ``claims`` go into both the ID token and the userinfo answer; ``mangle`` (a function of the
    claims returning the ID token string) makes the bad ones. Every request is recorded.
    """

    CLIENT_ID = "hub"
    KID = "forge-1"

    def __init__(self):
        self.key = rsa_key()
        self.claims: dict = {}
        self.mangle = None
        self.userinfo_status = 200
        self.requests: list[str] = []
        self.issued: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    def sign(self, claims: dict, key=None, kid: str | None = "", alg: str = "RS256") -> str:
        kid = self.KID if kid == "" else kid
        headers = {"kid": kid} if kid else {}
        return jwt.encode(claims, key or self.key, algorithm=alg, headers=headers)

    def standard_claims(self, **overrides) -> dict:
        now = int(time.time())
        return {"iss": self.url, "aud": self.CLIENT_ID, "iat": now, "exp": now + 300, **self.claims, **overrides}

    async def start(self, port: int = 0) -> "TokenForge":
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_get("/userinfo", self._userinfo)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def start_again(self) -> None:
        """Come back on the same port after :meth:`stop` (a provider that was down for a while)."""
        await self.start(int(self.url.rsplit(":", 1)[1]))

    def reset(self) -> None:
        self.claims, self.mangle, self.userinfo_status = {}, None, 200

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _discovery(self, request):
        self.requests.append("discovery")
        return web.json_response({
            "issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token", "userinfo_endpoint": f"{self.url}/userinfo",
            "jwks_uri": f"{self.url}/jwks", "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "groups"],
        })

    async def _jwks(self, request):
        self.requests.append("jwks")
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return web.json_response({"keys": [{**jwk, "kid": self.KID, "use": "sig", "alg": "RS256"}]})

    async def _authorize(self, request):
        self.requests.append("authorize")
        q = request.query
        target = q["redirect_uri"] + "?" + urlencode({"code": f"code-{len(self.requests)}", "state": q["state"]})
        raise web.HTTPFound(target)

    async def _token(self, request):
        grant = (await request.post()).get("grant_type")
        self.requests.append("token" if grant == "authorization_code" else f"token:{grant}")
        claims = self.standard_claims()
        id_token = self.mangle(claims) if self.mangle else self.sign(claims)
        self.issued.append(id_token)
        # A new ID token for a refresh-token grant too, as Entra ID and Keycloak give.
        return web.json_response({"access_token": "forge-access", "token_type": "Bearer", "id_token": id_token,
                                  "refresh_token": "forge-refresh", "expires_in": 300})

    async def _userinfo(self, request):
        self.requests.append("userinfo")
        if self.userinfo_status != 200:
            return web.json_response({"error": "server_error"}, status=self.userinfo_status)
        return web.json_response(self.claims)
