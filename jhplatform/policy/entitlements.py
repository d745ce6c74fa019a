"""Entitlements: which profiles, profile-option choices and GPUs a user's groups grant (pure).

An admin writes one rule per group and a default rule for users in no listed group::

    entitlements = {
        "staff":     {"profiles": "*", "gpus_per_user": 4},
        "gpu-users": {"profiles": ["cpu", "a100"], "gpus_per_user": 1, "gpu_types": ["A100"],
                      "gpus_total": 8,
                      "choices": {"a100-multi": {"gpus": ["1", "2"]}}},
        "students":  {"profiles": ["cpu"], "choices": {"cpu": {"image": ["base"]}}},
    }
    default = {"profiles": ["cpu"]}

The keys of a rule (each optional; an absent key grants nothing, except where noted):

``profiles``
    Profile slugs the group may start, or ``"*"`` for every profile.
``choices``
    ``{profile slug: {option name: [choice keys] or "*"}}``. An option the rule does not name
    keeps all its choices (absent means *not restricted* here, so a rule only lists the options
    it limits). ``"unlisted"`` in the list allows the option's free-text ``unlisted_choice``.
``gpus_per_user``
    GPUs one member may hold at once, across all their servers (default 0: the group grants no
    GPU profile).
``gpu_types``
    GPU types (a profile's ``gpu.type``) the group's GPUs may be; absent: any type.
``gpus_total``
    GPUs all members of the group may hold together; absent: no group-wide limit.

Merge rules across a user's groups (the table in docs/auth.md):

- a profile is allowed when **any** of the user's groups allows it; a GPU profile is allowed
  by a group only when that group grants GPUs (``gpus_per_user`` > 0) of the profile's type;
- the choices allowed for an option are the **union** over the groups that allow the profile;
- the per-user GPU cap is the **highest** ``gpus_per_user`` of the user's groups;
- each group's ``gpus_total`` caps that group's members together (every one of them applies);
- the default rule applies only to a user in **none** of the listed groups.

The hub's groups are the input, whatever filled them (an OIDC claim, LDAP, an admin at
``/hub/admin``), so this module knows nothing about authenticators.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .gpu_ledger import Policy

ALL = "*"
UNLISTED = "unlisted"
RULE_KEYS = ("profiles", "choices", "gpus_per_user", "gpu_types", "gpus_total")


class EntitlementError(ValueError):
    """Entitlement settings that cannot work; the message names the setting and each problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Rule:
    """One group's grant (or the default), parsed."""

    profiles: frozenset[str] | None = frozenset()  # None: every profile
    choices: Mapping[str, Mapping[str, frozenset[str] | None]] = field(default_factory=dict)
    gpus_per_user: int = 0
    gpu_types: frozenset[str] | None = None  # None: any type
    gpus_total: int | None = None

    def allows_profile(self, slug: str, gpu_type: str | None) -> bool:
        """Whether this rule alone allows profile ``slug`` (``gpu_type`` None: no GPU)."""
        if self.profiles is not None and slug not in self.profiles:
            return False
        if gpu_type is None:
            return True
        if self.gpus_per_user <= 0:
            return False
        return self.gpu_types is None or gpu_type in self.gpu_types

    def allowed_choices(self, slug: str, option: str) -> frozenset[str] | None:
        """The choices of ``option`` this rule allows for ``slug`` (None: all of them)."""
        return (self.choices.get(slug) or {}).get(option)


def _names(value, where: str, problems: list[str], allow_all: bool = True) -> frozenset[str] | None:
    if allow_all and value == ALL:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        hint = ' or "*"' if allow_all else ""
        problems.append(f"{where} must be a list of names{hint}, not {value!r}")
        return frozenset()
    bad = [v for v in value if not isinstance(v, str) or not v]
    if bad:
        problems.append(f"{where} must hold non-empty strings; found {bad!r}")
    return frozenset(v for v in value if isinstance(v, str) and v)


def _count(value, where: str, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.append(f"{where} must be a whole number of GPUs (0 or more), not {value!r}")
        return 0
    return value


def parse_rule(rule, where: str, problems: list[str]) -> Rule:
    """``rule`` (a dict from config) as a :class:`Rule`; problems are appended, naming ``where``."""
    if not isinstance(rule, Mapping):
        problems.append(f"{where} must be a dict with keys from {', '.join(RULE_KEYS)}, not {rule!r}")
        return Rule()
    unknown = sorted(set(rule) - set(RULE_KEYS))
    if unknown:
        problems.append(f"{where} has unknown key(s) {', '.join(map(repr, unknown))} (misspelled?); "
                        f"the keys are {', '.join(RULE_KEYS)}")
    profiles = _names(rule["profiles"], f"{where}.profiles", problems) if "profiles" in rule else frozenset()
    choices: dict[str, dict[str, frozenset[str] | None]] = {}
    raw = rule.get("choices", {})
    if not isinstance(raw, Mapping):
        problems.append(f"{where}.choices must be a dict {{profile slug: {{option: [choices]}}}}, not {raw!r}")
        raw = {}
    for slug, options in raw.items():
        if not isinstance(options, Mapping):
            problems.append(f"{where}.choices[{slug!r}] must be a dict {{option: [choices]}}, not {options!r}")
            continue
        choices[slug] = {opt: _names(v, f"{where}.choices[{slug!r}][{opt!r}]", problems) for opt, v in options.items()}
    gpus = _count(rule["gpus_per_user"], f"{where}.gpus_per_user", problems) if "gpus_per_user" in rule else 0
    types = _names(rule["gpu_types"], f"{where}.gpu_types", problems) if "gpu_types" in rule else None
    total = _count(rule["gpus_total"], f"{where}.gpus_total", problems) if "gpus_total" in rule else None
    return Rule(profiles, choices, gpus, types, total)


@dataclass(frozen=True)
class Entitlement:
    """What one user may do: the merge of their groups' rules (see the module docstring)."""

    groups: tuple[str, ...]  # the listed groups that applied; () when the default did
    rules: tuple[tuple[str, Rule], ...]  # (group or "default", rule)

    @property
    def from_default(self) -> bool:
        return not self.groups

    @property
    def gpus_per_user(self) -> int:
        """The highest per-user GPU cap of the user's rules."""
        return max((r.gpus_per_user for _, r in self.rules), default=0)

    def allows_profile(self, slug: str, gpu_type: str | None = None) -> bool:
        return any(r.allows_profile(slug, gpu_type) for _, r in self.rules)

    def allowed_choices(self, slug: str, option: str, gpu_type: str | None = None) -> frozenset[str] | None:
        """Union of the choices of ``option`` allowed by the rules that allow ``slug`` (None: all)."""
        union: set[str] = set()
        for _, rule in self.rules:
            if not rule.allows_profile(slug, gpu_type):
                continue
            allowed = rule.allowed_choices(slug, option)
            if allowed is None:
                return None
            union |= allowed
        return frozenset(union)

    def allows_choice(self, slug: str, option: str, choice: str, gpu_type: str | None = None) -> bool:
        allowed = self.allowed_choices(slug, option, gpu_type)
        return allowed is None or choice in allowed


@dataclass(frozen=True)
class Entitlements:
    """The admin's rules: ``groups`` (group -> :class:`Rule`) and ``default``."""

    groups: Mapping[str, Rule] = field(default_factory=dict)
    default: Rule = field(default_factory=lambda: Rule(profiles=None))

    @property
    def enabled(self) -> bool:
        return bool(self.groups)

    def for_groups(self, user_groups: Iterable[str]) -> Entitlement:
        """The entitlement of a user in ``user_groups`` (JupyterHub group names)."""
        listed = tuple(sorted(g for g in set(user_groups) if g in self.groups))
        if not listed:
            return Entitlement((), (("default", self.default),))
        return Entitlement(listed, tuple((g, self.groups[g]) for g in listed))

    def granting_profile(self, slug: str, gpu_type: str | None = None) -> list[str]:
        """The listed groups whose rule allows profile ``slug`` (for refusal messages)."""
        return sorted(g for g, r in self.groups.items() if r.allows_profile(slug, gpu_type))

    def granting_choice(self, slug: str, option: str, choice: str, gpu_type: str | None = None) -> list[str]:
        """The listed groups whose rule allows ``choice`` of ``option`` in profile ``slug``."""
        out = []
        for g, r in self.groups.items():
            if r.allows_profile(slug, gpu_type):
                allowed = r.allowed_choices(slug, option)
                if allowed is None or choice in allowed:
                    out.append(g)
        return sorted(out)

    def user_caps(self) -> dict[str, int]:
        """Group -> per-user GPU cap, for the GPU ledger's policy."""
        return {g: r.gpus_per_user for g, r in self.groups.items()}

    def group_totals(self) -> dict[str, int]:
        """Group -> GPUs all its members may hold together (groups with ``gpus_total`` only)."""
        return {g: r.gpus_total for g, r in self.groups.items() if r.gpus_total is not None}


def parse_entitlements(groups, default, *, setting: str = "PlatformSpawner.entitlements",
                       default_setting: str = "PlatformSpawner.default_entitlement") -> Entitlements:
    """Parse and validate the admin's rules; raise :class:`EntitlementError` naming each setting."""
    problems: list[str] = []
    parsed: dict[str, Rule] = {}
    if not isinstance(groups, Mapping):
        problems.append(f"{setting} must be a dict {{group name: rule}}, not {groups!r}")
        groups = {}
    for name, rule in groups.items():
        if not isinstance(name, str) or not name:
            problems.append(f"{setting} has a group name that is not a non-empty string: {name!r}")
            continue
        parsed[name] = parse_rule(rule, f"{setting}[{name!r}]", problems)
    default_rule = parse_rule(default, default_setting, problems)
    if problems:
        raise EntitlementError(problems)
    return Entitlements(parsed, default_rule)


def profile_problems(entitlements: Entitlements, profiles: Iterable[tuple[str, Mapping[str, Iterable[str]]]],
                     *, setting: str = "PlatformSpawner.entitlements",
                     default_setting: str = "PlatformSpawner.default_entitlement") -> list[str]:
    """Names in the rules that match no profile or option choice (typos that would lock users out).

    ``profiles`` is ``(slug, {option: choice keys})`` per profile of the profile list.
    """
    known = {slug: {opt: set(ch) for opt, ch in options.items()} for slug, options in profiles}
    problems = []
    rules = [(f"{setting}[{g!r}]", r) for g, r in entitlements.groups.items()] + [(default_setting, entitlements.default)]
    for where, rule in rules:
        for slug in sorted(rule.profiles or ()):
            if slug not in known:
                problems.append(f"{where}.profiles names {slug!r}, which is no profile slug "
                                f"(the slugs are {', '.join(sorted(known)) or 'none'})")
        for slug, options in rule.choices.items():
            if slug not in known:
                problems.append(f"{where}.choices names profile {slug!r}, which is no profile slug")
                continue
            for opt, choices in options.items():
                if opt not in known[slug]:
                    problems.append(f"{where}.choices[{slug!r}] names option {opt!r}, which profile {slug!r} does not have")
                    continue
                for choice in sorted((choices or set()) - known[slug][opt] - {UNLISTED}):
                    problems.append(f"{where}.choices[{slug!r}][{opt!r}] names choice {choice!r}, which is not one of "
                                    f"{', '.join(sorted(known[slug][opt]))}")
    return problems


@dataclass(frozen=True)
class EntitledPolicy(Policy):
    """The GPU ledger's caps taken from entitlements: the per-user cap is the merged
    ``gpus_per_user`` of the user's groups (0 for the default rule's 0: no GPUs), the per-group
    totals are the rules' ``gpus_total``. Pools and capacity sources stay as configured."""

    entitlements: Entitlements = field(default_factory=Entitlements)

    def user_cap(self, groups: Iterable[str]) -> int | None:
        return self.entitlements.for_groups(groups).gpus_per_user

    @classmethod
    def of(cls, entitlements: Entitlements, base: Policy) -> "EntitledPolicy":
        return cls(pools=dict(base.pools), user_limit=0, user_limit_by_group={},
                   group_limits=entitlements.group_totals(), capacity_from_nodes=base.capacity_from_nodes,
                   entitlements=entitlements)


def _groups_text(groups: list[str]) -> str:
    if not groups:
        return "No group grants it; ask your hub admin if you need it."
    quoted = ", ".join(f'"{g}"' for g in groups)
    return f"It is granted to members of {quoted}; ask your hub admin to add you to one of them."


def refusal_message(what: str, granting: list[str]) -> str:
    """What a user reads when they ask for ``what`` (a profile or a choice) they are not entitled to."""
    return f"You are not entitled to {what}. {_groups_text(granting)}"


__all__ = [
    "ALL",
    "UNLISTED",
    "EntitledPolicy",
    "Entitlement",
    "EntitlementError",
    "Entitlements",
    "Rule",
    "parse_entitlements",
    "parse_rule",
    "profile_problems",
    "refusal_message",
]
