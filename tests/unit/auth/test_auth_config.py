"""PlatformAuthenticator's configuration and the groups-claim reader, without a provider.

We test these aspects:
- the groups claim: dotted paths, a claim name containing dots, and each malformed value
  (missing, null, a string, a dict, nested lists, empty names) refused with a reason that names
  the claim and the type, never the value;
- the authenticator's OIDC defaults (PKCE, manage_groups, auth state, refresh before spawn,
  username claim) and that explicit endpoints are kept over discovery;
- settings validated at load with messages naming the setting: issuer, accepted algorithms.
"""

from __future__ import annotations

import pytest
from traitlets import TraitError
from traitlets.config import Config

from jhplatform.auth import PlatformAuthenticator
from jhplatform.auth.claims import GroupsClaimError, groups_from_claims, groups_from_value


@pytest.mark.parametrize(
    "claims, path, groups",
    [
        ({"groups": ["b", "a", "a"]}, "groups", ["a", "b"]),
        ({"realm_access": {"roles": ["staff"]}}, "realm_access.roles", ["staff"]),
        ({"https://example.org/groups": ["x"]}, "https://example.org/groups", ["x"]),
        ({"groups": []}, "groups", []),
    ],
    ids=["flat-sorted-unique", "dotted-path", "key-with-dots", "empty-list"],
)
def test_groups_from_claims(claims, path, groups):
    assert groups_from_claims(claims, path) == groups


@pytest.mark.parametrize(
    "claims, path, reason",
    [
        ({}, "groups", "the groups claim 'groups' is missing"),
        ({"realm_access": ["staff"]}, "realm_access.roles", "the groups claim 'realm_access.roles' is missing"),
        ({"groups": None}, "groups", "the groups claim 'groups' is null"),
        ({"groups": "secret-admins"}, "groups", "the groups claim 'groups' is a str, not a list of group names"),
        ({"groups": {"a": 1}}, "groups", "the groups claim 'groups' is a dict, not a list of group names"),
        ({"groups": [["a"], "b", 3]}, "groups", "the groups claim 'groups' holds 2 entries that are not group names (types: int, list)"),
        ({"groups": [""]}, "groups", "the groups claim 'groups' holds 1 entries that are not group names (types: str)"),
    ],
    ids=["missing", "nested-path-through-list", "null", "string", "dict", "nested-lists", "empty-name"],
)
def test_malformed_groups_claims(claims, path, reason):
    with pytest.raises(GroupsClaimError) as e:
        groups_from_claims(claims, path)
    assert e.value.reason == reason
    assert "secret-admins" not in reason


def test_callable_result_is_checked_the_same_way():
    assert groups_from_value(("x", "y"), "mine") == ["x", "y"]
    with pytest.raises(GroupsClaimError, match="the groups claim 'mine' is a str"):
        groups_from_value("x", "mine")


def test_oidc_defaults():
    a = PlatformAuthenticator(issuer="https://idp.example.org/realms/r/", client_id="hub")
    assert a.issuer == "https://idp.example.org/realms/r"
    assert (a.enable_pkce, a.manage_groups, a.enable_auth_state, a.refresh_pre_spawn) == (True, True, True, True)
    assert a.username_claim == "preferred_username"
    assert a.scope == ["openid", "profile", "email"]
    assert a.groups_claim == "groups" and a.require_groups_claim is True


def test_explicit_endpoints_win_over_discovery():
    c = Config()
    c.PlatformAuthenticator.issuer = "https://idp.example.org"
    c.GenericOAuthenticator.token_url = "https://idp.example.org/custom-token"
    c.OAuthenticator.scope = ["openid", "groups"]
    a = PlatformAuthenticator(config=c)
    a._apply_discovery({"issuer": "https://idp.example.org", "authorization_endpoint": "https://idp.example.org/auth",
                        "token_endpoint": "https://idp.example.org/token", "userinfo_endpoint": "https://idp.example.org/me",
                        "jwks_uri": "https://idp.example.org/jwks", "scopes_supported": ["openid", "email", "groups"]})
    assert a.token_url == "https://idp.example.org/custom-token"
    assert a.authorize_url == "https://idp.example.org/auth"
    assert a.userdata_url == "https://idp.example.org/me"
    assert a.scope == ["openid", "groups"]
    b = PlatformAuthenticator(issuer="https://idp.example.org")
    b._apply_discovery({"issuer": "https://idp.example.org", "authorization_endpoint": "a", "token_endpoint": "t",
                        "jwks_uri": "https://idp.example.org/jwks", "scopes_supported": ["openid", "email", "groups"]})
    assert b.scope == ["openid", "email", "groups"]  # "profile" is not offered by this provider


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("issuer", "idp.example.org", "PlatformAuthenticator.issuer must be an http(s) URL such as https://idp.example.org/realms/x, not 'idp.example.org'"),
        ("id_token_algorithms", ["RS256", "none"], "PlatformAuthenticator.id_token_algorithms: none not accepted"),
        ("id_token_algorithms", ["HS256"], "PlatformAuthenticator.id_token_algorithms: HS256 not accepted"),
    ],
    ids=["issuer-not-a-url", "alg-none", "alg-hs256"],
)
def test_settings_validated_at_load(setting, value, message):
    with pytest.raises(TraitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PlatformAuthenticator(**{setting: value})
