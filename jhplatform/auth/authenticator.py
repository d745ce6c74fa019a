"""PlatformAuthenticator: OpenID Connect sign-in whose groups decide entitlements.

GenericOAuthenticator (oauthenticator 17.4) extended only through its documented ladder: trait
defaults, the handler classes (``login_handler``, ``callback_handler``), and the hook methods
``get_token_info``, ``token_to_user``, ``user_info_to_username`` and ``get_user_groups``. What it
adds:

- **discovery** from one ``issuer`` URL (``/.well-known/openid-configuration``): authorize, token
  and userinfo endpoints, the JWKS, the signing algorithms and the scopes. It runs when the first
  login starts (so a provider that is down does not stop the hub) and is cached for
  ``discovery_max_age`` seconds;
- **ID token verification** whenever the token endpoint returns one (login and refresh): the
  signature against the issuer's JWKS (PyJWT's ``PyJWKClient``; an unknown ``kid`` refetches the
  JWKS at most once per ``jwks_refetch_interval``), ``alg`` from the provider's list and never
  ``none``, and ``iss``, ``aud``, ``exp``, ``nbf``, ``iat``. oauthenticator itself skips the
  signature and, when decoding fails, answers 500 with the raw token in the page;
- **nothing from a token in a page**: every refusal is a 403 (503 when the provider cannot be
  reached) with a message that says what happened and what to do; the log gets the reason;
- **groups** from ``groups_claim`` (a dotted path or a callable), strictly a list of names, into
  JupyterHub groups (``manage_groups``), so ``allowed_groups``, ``admin_groups`` and the
  entitlements (:mod:`jhplatform.policy.entitlements`) work from them;
- auth state on, refreshed before every spawn (``refresh_pre_spawn``): the userinfo endpoint (or a
  refresh-token grant) is asked again, so a group removed in the provider is gone at the next spawn.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlparse

import jwt
from jupyterhub.traitlets import Callable
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Bool, Float, List, TraitError, Unicode, Union, default, validate

from .claims import GroupsClaimError, groups_from_claims, groups_from_value

# Asymmetric algorithms only: an HS* ID token would be checked with the client secret, and "none"
# is no signature at all.
SAFE_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")

_FRESH = "jhplatform_id_token_fresh"
RETRY = "Please sign in again from the hub's login page. If this keeps happening, tell your hub admin."


def _refusal(message: str, status: int = 403) -> web.HTTPError:
    # "%s" so the message is never taken as a format string by the error page.
    error = web.HTTPError(status, "%s", message)
    error.jupyterhub_message = message
    return error


class ProviderUnavailable(Exception):
    """The identity provider could not be reached or answered nonsense (the log gets why)."""


class IdTokenRejected(Exception):
    """An ID token failed verification; ``reason`` is for the log and holds no token text."""

    def __init__(self, reason: str, expired: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


class PlatformLoginHandler(OAuthLoginHandler):
    """oauthenticator's login redirect, after the provider's endpoints are known."""

    async def get(self):
        await self.authenticator.discover_or_refuse()
        return super().get()


class PlatformCallbackHandler(OAuthCallbackHandler):
    """oauthenticator's callback, with its argument checks answered as clear 403 pages."""

    def check_arguments(self):
        try:
            super().check_arguments()
        except web.HTTPError as e:
            detail = e.log_message % e.args if e.args else e.log_message
            self.log.warning("Sign-in refused at the callback (%s %s)", e.status_code, detail)
            if self.get_argument("error", None):
                # The provider's own error, shown plainly (it comes from the provider, not a token).
                description = self.get_argument("error_description", None) or self.get_argument("error")
                raise _refusal(f"The sign-in provider refused the sign-in: {description}. {RETRY}") from None
            if not self.get_argument("code", None):
                raise _refusal(f"The sign-in provider sent no login code. {RETRY}") from None
            raise _refusal("This sign-in did not start here or has expired (its state does not match). " + RETRY) from None


class PlatformAuthenticator(GenericOAuthenticator):
    """OpenID Connect from one issuer URL, verified ID tokens, groups into the hub."""

    login_handler = PlatformLoginHandler
    callback_handler = PlatformCallbackHandler

    issuer = Unicode(
        "",
        config=True,
        help="""
        The OpenID Connect issuer URL; everything else (endpoints, signing keys, scopes) is read
        from ``<issuer>/.well-known/openid-configuration`` when the first sign-in starts.
        ``authorize_url``, ``token_url`` or ``userdata_url`` set explicitly win over discovery.

        Example::

            c.PlatformAuthenticator.issuer = "https://keycloak.example.org/realms/research"
        """,
    )

    @validate("issuer")
    def _validate_issuer(self, proposal):
        value = proposal["value"].rstrip("/")
        parsed = urlparse(value)
        if value and (parsed.scheme not in ("http", "https") or not parsed.netloc):
            raise TraitError(f"PlatformAuthenticator.issuer must be an http(s) URL such as "
                             f"https://idp.example.org/realms/x, not {proposal['value']!r}")
        return value

    groups_claim = Union(
        [Unicode(), Callable()],
        default_value="groups",
        config=True,
        help="""
        Where the user's groups are in the claims (userinfo, or the ID token with
        ``userdata_from_id_token``): a dotted path (``"groups"``, ``"realm_access.roles"``; a claim
        name containing dots such as ``"https://example.org/groups"`` is matched whole first), or a
        callable ``f(claims) -> list of names`` (may be async). The value must be a list of
        strings; anything else refuses the sign-in with a 403 (see ``require_groups_claim``).

        Example::

            c.PlatformAuthenticator.groups_claim = "realm_access.roles"
        """,
    )

    require_groups_claim = Bool(
        True,
        config=True,
        help="""
        Refuse a sign-in whose groups claim is missing (default True). Many providers leave the
        claim out for a user in no group; set False to treat that as "no groups". A claim that
        is present but not a list of names is always refused.

        Example::

            c.PlatformAuthenticator.require_groups_claim = False
        """,
    )

    discovery_max_age = Float(
        3600,
        config=True,
        help="""
        Seconds the provider's discovery document is kept before it is read again (default 3600).

        Example::

            c.PlatformAuthenticator.discovery_max_age = 600
        """,
    )

    jwks_refetch_interval = Float(
        30,
        config=True,
        help="""
        Least number of seconds between two reads of the provider's JWKS caused by an ID token
        signed with a key id not seen before (default 30). This is how a rotated key is picked up
        without letting tokens with made-up key ids hammer the provider.

        Example::

            c.PlatformAuthenticator.jwks_refetch_interval = 60
        """,
    )

    id_token_leeway = Float(
        30,
        config=True,
        help="""
        Seconds of clock skew tolerated when checking an ID token's ``exp``, ``nbf`` and ``iat``
        (default 30).

        Example::

            c.PlatformAuthenticator.id_token_leeway = 60
        """,
    )

    id_token_algorithms = List(
        Unicode(),
        config=True,
        help=f"""
        Signature algorithms accepted for ID tokens. Default: those the provider lists in
        ``id_token_signing_alg_values_supported`` that are among {", ".join(SAFE_ALGORITHMS)}.
        ``none`` and the HS* algorithms are never accepted.

        Example::

            c.PlatformAuthenticator.id_token_algorithms = ["RS256"]
        """,
    )

    @validate("id_token_algorithms")
    def _validate_algorithms(self, proposal):
        bad = [a for a in proposal["value"] if a not in SAFE_ALGORITHMS]
        if bad:
            raise TraitError(f"PlatformAuthenticator.id_token_algorithms: {', '.join(bad)} not accepted; "
                             f"use some of {', '.join(SAFE_ALGORITHMS)}")
        return proposal["value"]

    # -- oauthenticator's defaults, set for OIDC --

    @default("login_service")
    def _login_service_default(self):
        return "your organisation's sign-in"

    @default("username_claim")
    def _username_claim_default(self):
        return "preferred_username"

    @default("scope")
    def _scope_default(self):
        return ["openid", "profile", "email"]

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("enable_auth_state")
    def _enable_auth_state_default(self):
        return True

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn_default(self):
        return True

    @default("enable_pkce")
    def _enable_pkce_default(self):
        return True

    @default("custom_403_message")
    def _custom_403_default(self):
        return ("Your account is not in a group allowed to use this hub. "
                "Ask your hub admin to add you to one of them, then sign in again.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # What the admin set by hand wins over discovery.
        self._explicit = {name for name in ("authorize_url", "token_url", "userdata_url", "scope")
                          if self._set_in_config(name)}
        self._discovery: dict | None = None
        self._discovered_at = 0.0
        self._jwks: jwt.PyJWKClient | None = None
        self._jwks_fetched_at: float | None = None
        self._discovery_lock = asyncio.Lock()

    def _set_in_config(self, name: str) -> bool:
        for cls in type(self).mro():
            section = cls.__name__
            if section in self.config and name in self.config[section]:
                return True
        return False

    # -- discovery --

    async def discover(self) -> dict:
        """The provider's discovery document (cached); :class:`ProviderUnavailable` if unreachable."""
        if not self.issuer:
            raise ProviderUnavailable("PlatformAuthenticator.issuer is not set")
        if self._discovery is not None and time.monotonic() - self._discovered_at < self.discovery_max_age:
            return self._discovery
        async with self._discovery_lock:
            if self._discovery is not None and time.monotonic() - self._discovered_at < self.discovery_max_age:
                return self._discovery
            url = f"{self.issuer}/.well-known/openid-configuration"
            try:
                doc = await self.httpfetch(url, "fetching the OpenID discovery document", method="GET",
                                           validate_cert=self.validate_server_cert, request_timeout=10)
            except (HTTPClientError, OSError, ValueError) as e:
                raise ProviderUnavailable(f"GET {url}: {e}") from None
            problems = [k for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
                        if not isinstance((doc or {}).get(k), str)]
            if problems:
                raise ProviderUnavailable(f"{url} lacks {', '.join(problems)}")
            if doc["issuer"].rstrip("/") != self.issuer:
                raise ProviderUnavailable(f"{url} names issuer {doc['issuer']!r}, not {self.issuer!r}")
            self._apply_discovery(doc)
            self._discovery, self._discovered_at = doc, time.monotonic()
            self.log.info("OpenID provider %s discovered: token endpoint %s, JWKS %s", self.issuer,
                          doc["token_endpoint"], doc["jwks_uri"])
            return doc

    def _apply_discovery(self, doc: dict) -> None:
        if "authorize_url" not in self._explicit:
            self.authorize_url = doc["authorization_endpoint"]
        if "token_url" not in self._explicit:
            self.token_url = doc["token_endpoint"]
        if "userdata_url" not in self._explicit and not self.userdata_from_id_token and doc.get("userinfo_endpoint"):
            self.userdata_url = doc["userinfo_endpoint"]
        if "scope" not in self._explicit:
            supported = doc.get("scopes_supported") or []
            self.scope = [s for s in ("openid", "profile", "email", "groups") if s in supported or s == "openid"]
        if self._jwks is None or self._jwks.uri != doc["jwks_uri"]:
            self._jwks = jwt.PyJWKClient(doc["jwks_uri"], cache_jwk_set=True, lifespan=self.discovery_max_age,
                                         timeout=10)
            self._jwks_fetched_at = None

    async def discover_or_refuse(self) -> dict:
        try:
            return await self.discover()
        except ProviderUnavailable as e:
            self.log.error("Sign-in unavailable: the OpenID provider %s cannot be used: %s", self.issuer, e)
            raise _refusal("The sign-in provider cannot be reached right now, so nobody can sign in. "
                           "Please try again in a few minutes; if it persists, tell your hub admin.", 503) from None

    # -- ID tokens --

    def _algorithms(self) -> list[str]:
        if self.id_token_algorithms:
            return list(self.id_token_algorithms)
        offered = (self._discovery or {}).get("id_token_signing_alg_values_supported") or ["RS256"]
        return [a for a in offered if a in SAFE_ALGORITHMS]

    def _signing_key(self, header: dict) -> jwt.PyJWK:
        # Runs in a thread: PyJWKClient fetches with urllib. PyJWKClient caches the key set; the
        # refetch for an unknown key id is rate-limited here (PyJWT < 2.14, as in z2jh's hub
        # image, refetches on every unknown kid).
        kid = header.get("kid")
        keys = self._jwks.get_signing_keys()
        now = time.monotonic()
        if self._jwks_fetched_at is None:
            self._jwks_fetched_at = now
        key = _match_key(keys, kid)
        if key is None and now - self._jwks_fetched_at >= self.jwks_refetch_interval:
            self._jwks_fetched_at = now
            key = _match_key(self._jwks.get_signing_keys(refresh=True), kid)
        if key is None:
            raise jwt.PyJWKClientError("no matching key")
        return key

    async def verify_id_token(self, id_token: str) -> dict:
        """The claims of ``id_token`` after checking signature, alg, iss, aud, exp, nbf and iat."""
        await self.discover()
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as e:
            raise IdTokenRejected(f"not a JWS ({type(e).__name__})") from None
        alg = header.get("alg")
        algorithms = self._algorithms()
        if alg not in algorithms:
            raise IdTokenRejected(f"signed with alg {str(alg)[:20]!r}, accepted: {', '.join(algorithms)}")
        try:
            key = await asyncio.to_thread(self._signing_key, header)
        except jwt.PyJWKClientConnectionError as e:
            raise ProviderUnavailable(f"JWKS: {e}") from None
        except jwt.PyJWKClientError:
            raise IdTokenRejected(f"signed with key id {str(header.get('kid'))[:64]!r}, which the issuer's JWKS "
                                  "does not hold (after a refetch, at most one per jwks_refetch_interval)") from None
        except jwt.PyJWTError as e:
            raise IdTokenRejected(f"unusable key header ({type(e).__name__})") from None
        try:
            return jwt.decode(
                id_token, key.key, algorithms=[alg], audience=self.client_id, issuer=self.issuer,
                leeway=self.id_token_leeway, options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise IdTokenRejected("expired (exp is in the past)", expired=True) from None
        except jwt.PyJWTError as e:
            # PyJWT's messages name the failed check, never the token's content.
            raise IdTokenRejected(f"{type(e).__name__}: {e}") from None

    # -- oauthenticator's hooks --

    async def get_token_info(self, handler, params):
        await self.discover_or_refuse()
        try:
            token_info = await super().get_token_info(handler, params)
        except HTTPClientError as e:
            if e.response is None or e.code >= 500:
                self.log.error("Sign-in failed: the token endpoint of %s did not answer (%s)", self.issuer, e.code)
                raise _refusal("The sign-in provider cannot be reached right now. Please try again in a few "
                               "minutes; if it persists, tell your hub admin.", 503) from None
            error = _oauth_error(e.response.body)
            self.log.warning("Sign-in refused: the token endpoint of %s answered %s %s", self.issuer, e.code, error)
            raise _refusal(f"The sign-in provider refused this login ({error}); a login link can be used "
                           f"only once and only for a short time. {RETRY}") from None
        except web.HTTPError as e:
            # oauthenticator's own errors here quote the provider's response, tokens included.
            self.log.warning("Sign-in refused: the token endpoint of %s gave no access token (%s)",
                             self.issuer, e.status_code)
            raise _refusal(f"The sign-in provider did not complete the login. {RETRY}") from None
        except OSError as e:
            self.log.error("Sign-in failed: the token endpoint of %s cannot be reached: %s", self.issuer, e)
            raise _refusal("The sign-in provider cannot be reached right now. Please try again in a few "
                           "minutes; if it persists, tell your hub admin.", 503) from None
        id_token = token_info.get("id_token")
        if not id_token:
            if self.userdata_from_id_token or "openid" in self.scope:
                self.log.warning("Sign-in refused: %s returned no ID token for an OpenID login", self.issuer)
                raise _refusal(f"The sign-in provider did not identify you (no ID token). {RETRY}")
            return token_info
        try:
            claims = await self.verify_id_token(id_token)
        except IdTokenRejected as e:
            self.log.warning("Sign-in refused: the ID token from %s was rejected: %s", self.issuer, e.reason)
            raise _refusal(f"The sign-in could not be verified (the identity token was rejected). {RETRY}") from None
        except ProviderUnavailable as e:
            self.log.error("Sign-in failed: the signing keys of %s cannot be read: %s", self.issuer, e)
            raise _refusal("The sign-in provider cannot be reached right now. Please try again in a few "
                           "minutes; if it persists, tell your hub admin.", 503) from None
        token_info["id_token_claims"] = claims
        token_info[_FRESH] = True
        return token_info

    async def token_to_user(self, token_info):
        await self.discover_or_refuse()
        verified = token_info.get("id_token_claims")
        # Set by get_token_info for tokens just received; auth state never keeps it.
        fresh = token_info.pop(_FRESH, False)
        if self.userdata_from_id_token:
            if not (fresh and verified):
                # refresh_user passes the ID token kept in auth state, whose claims (groups) may be
                # stale: to refresh_user a 4xx means "expired credential", so it uses the refresh
                # token to get a new ID token (or asks for a new sign-in when there is none).
                raise HTTPClientError(401, "ID token in auth state is not fresh")
            return verified
        try:
            user_info = await super().token_to_user(token_info)
        except HTTPClientError as e:
            if not fresh:
                raise  # refresh_user: a 4xx means the stored access token expired; it handles that
            status = e.code if e.response is not None else 599
            self.log.error("Sign-in failed: the userinfo endpoint of %s answered %s", self.issuer, status)
            if status >= 500:
                raise _refusal("The sign-in provider cannot be reached right now. Please try again in a few "
                               "minutes; if it persists, tell your hub admin.", 503) from None
            raise _refusal(f"The sign-in provider did not say who you are. {RETRY}") from None
        except OSError as e:
            if not fresh:
                raise
            self.log.error("Sign-in failed: the userinfo endpoint of %s cannot be reached: %s", self.issuer, e)
            raise _refusal("The sign-in provider cannot be reached right now. Please try again in a few "
                           "minutes; if it persists, tell your hub admin.", 503) from None
        if not isinstance(user_info, dict):
            self.log.warning("Sign-in refused: the userinfo endpoint of %s returned no JSON object", self.issuer)
            raise _refusal(f"The sign-in provider did not say who you are. {RETRY}")
        if verified and user_info.get("sub") != verified.get("sub"):
            # OIDC Core 5.3.2: the userinfo sub must be the ID token's.
            self.log.warning("Sign-in refused: userinfo sub differs from the ID token's sub at %s", self.issuer)
            raise _refusal(f"The sign-in could not be verified (the provider's answers disagree). {RETRY}")
        return user_info

    def user_info_to_username(self, user_info):
        if callable(self.username_claim):
            username = self.username_claim(user_info)
        else:
            username = user_info.get(self.username_claim)
        if not isinstance(username, str) or not username:
            # oauthenticator's own message would print the whole user info (and is a tuple).
            self.log.error("Sign-in refused: the claims from %s have no %r (claims present: %s); check "
                           "PlatformAuthenticator.username_claim and the scopes", self.issuer,
                           self.username_claim, ", ".join(sorted(user_info)))
            raise _refusal("The sign-in provider did not send a user name for your account. "
                           "Tell your hub admin (the hub log says which claim is missing).")
        return username

    async def get_user_groups(self, auth_state: dict):
        claims = auth_state.get(self.user_auth_state_key) or {}
        name = getattr(self.groups_claim, "__name__", "groups_claim") if callable(self.groups_claim) else self.groups_claim
        try:
            if callable(self.groups_claim):
                value = self.groups_claim(claims)
                if asyncio.iscoroutine(value):
                    value = await value
                groups = groups_from_value(value, name)
            else:
                try:
                    groups = groups_from_claims(claims, self.groups_claim)
                except GroupsClaimError as e:
                    if self.require_groups_claim or "missing" not in e.reason:
                        raise
                    groups = []
        except GroupsClaimError as e:
            self.log.warning("Sign-in refused for %r: %s (PlatformAuthenticator.groups_claim = %r)",
                             claims.get(self.username_claim) if isinstance(self.username_claim, str) else "?",
                             e.reason, self.groups_claim if isinstance(self.groups_claim, str) else name)
            raise _refusal("Your group memberships could not be read from the sign-in provider, so the hub "
                           "cannot tell what you may use. Tell your hub admin (the hub log has the details).") from None
        return set(groups)


def _match_key(keys: list, kid: str | None):
    if kid is None:
        # OIDC Core 10.1: a token may omit kid when the JWKS holds a single signing key.
        return keys[0] if len(keys) == 1 else None
    return next((k for k in keys if k.key_id == kid), None)


def _oauth_error(body: bytes | None) -> str:
    """The OAuth error code of a token endpoint's error response (e.g. ``invalid_grant``)."""
    try:
        error = json.loads(body or b"").get("error")
    except (ValueError, AttributeError):
        return "an error"
    return error if isinstance(error, str) and error.replace("_", "").isalnum() and len(error) < 64 else "an error"
