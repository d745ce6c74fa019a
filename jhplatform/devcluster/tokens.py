"""Bearer tokens for the emulator: the admin token and ServiceAccount tokens.

A request without ``Authorization`` is anonymous (``system:anonymous``), as on a cluster with
anonymous auth on; a bearer token nobody issued is 401. The admin token (the default kubeconfig's)
authenticates as ``system:admin`` in ``system:masters``. :meth:`TokenAuthenticator.issue` hands out
a token for a ServiceAccount, like a projected token: it stays valid while the emulator runs and
authenticates as ``system:serviceaccount:<namespace>:<name>``. Unlike a real projected token it is
not bound to the ServiceAccount object's uid, so it survives a reset of the cluster (the test
suite's kubeconfig must not change between tests).
"""

from __future__ import annotations

import secrets

from .rbac import ANONYMOUS_USER, AUTHENTICATED, MASTERS, UserInfo

ADMIN_TOKEN = "devcluster"
ADMIN_USER = UserInfo("system:admin", (MASTERS, AUTHENTICATED))


class TokenAuthenticator:
    """Maps bearer tokens to users."""

    def __init__(self, admin_token: str = ADMIN_TOKEN):
        self.admin_token = admin_token
        self._tokens: dict[str, UserInfo] = {admin_token: ADMIN_USER}
        self._service_accounts: dict[tuple[str, str], str] = {}

    def issue(self, namespace: str, name: str) -> str:
        """A token for ServiceAccount ``namespace/name`` (the same one on every call)."""
        key = (namespace, name)
        token = self._service_accounts.get(key)
        if token is None:
            token = "jhsa-" + secrets.token_urlsafe(24)
            self._service_accounts[key] = token
            self._tokens[token] = UserInfo.service_account(namespace, name)
        return token

    def authenticate(self, authorization: str | None) -> UserInfo | None:
        """The user for an ``Authorization`` header; anonymous without one, ``None`` (401) for a bad token."""
        if not authorization:
            return ANONYMOUS_USER
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self._tokens.get(token.strip())
