"""Reading groups out of an identity provider's claims (pure: no I/O).

A groups claim is named by a dotted path into the claims (``"groups"``,
``"realm_access.roles"``, ``"https://example.org/groups"`` — a key containing dots is found
whole first) or computed by a callable. Whatever it yields must be a list of non-empty strings:
a string (``"admins"``) is refused rather than read as its letters, ``null`` and a missing claim
are refused, so a misconfigured provider never silently grants or drops groups.
"""

from __future__ import annotations

from collections.abc import Mapping


class GroupsClaimError(ValueError):
    """The groups claim is missing or malformed. ``reason`` is for the log; it holds no values
    from the token, only the claim's name and the type found."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_MISSING = object()


def resolve_path(claims: Mapping, path: str):
    """The value at dotted ``path`` in ``claims`` (a key that itself contains dots wins)."""
    if path in claims:
        return claims[path]
    value = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def groups_from_value(value, name: str) -> list[str]:
    """Check that ``value`` (the claim named ``name``) is a list of group names; return them sorted."""
    if value is _MISSING:
        raise GroupsClaimError(f"the groups claim {name!r} is missing")
    if value is None:
        raise GroupsClaimError(f"the groups claim {name!r} is null")
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise GroupsClaimError(f"the groups claim {name!r} is a {type(value).__name__}, not a list of group names")
    bad = [type(v).__name__ for v in value if not isinstance(v, str) or not v]
    if bad:
        raise GroupsClaimError(f"the groups claim {name!r} holds {len(bad)} entries that are not group names "
                               f"(types: {', '.join(sorted(set(bad)))})")
    return sorted(set(value))


def groups_from_claims(claims: Mapping, path: str) -> list[str]:
    """The groups at dotted ``path`` in ``claims``; :class:`GroupsClaimError` when unusable."""
    return groups_from_value(resolve_path(claims, path), path)
