"""Entitlements from groups (jhplatform.policy.entitlements), pure.

We test these aspects:
- the merge rules across a user's groups, as one parametrized table with ids: union of profiles,
  union of option choices over the groups that allow the profile, GPU profiles only from groups
  that grant GPUs of that type, the highest per-user GPU cap, the default only for users in no
  listed group, unlisted groups ignored;
- which groups grant a profile or a choice, and the refusal message that names them;
- the caps handed to the GPU ledger (per-user by group, per-group totals);
- every validation problem at config load, each message naming the setting;
- names in the rules that match no profile, option or choice are reported.
"""

from __future__ import annotations

import pytest

from jhplatform.policy.entitlements import (
    EntitlementError,
    Rule,
    parse_entitlements,
    profile_problems,
    refusal_message,
)

GROUPS = {
    "staff": {"profiles": "*", "gpus_per_user": 4},
    "gpu-users": {"profiles": ["cpu", "a100", "multi"], "gpus_per_user": 1, "gpu_types": ["A100"],
                  "gpus_total": 8, "choices": {"multi": {"gpus": ["1"]}}},
    "big-gpu": {"profiles": ["multi"], "gpus_per_user": 2, "choices": {"multi": {"gpus": ["2"]}}},
    "t4-users": {"profiles": ["t4", "a100"], "gpus_per_user": 1, "gpu_types": ["T4"]},
    "students": {"profiles": ["cpu"], "choices": {"cpu": {"image": ["base"]}}},
    "analysts": {"profiles": ["cpu"], "choices": {"cpu": {"image": ["r", "unlisted"]}}},
}
DEFAULT = {"profiles": ["cpu"], "choices": {"cpu": {"image": ["base"]}}}
E = parse_entitlements(GROUPS, DEFAULT)

# (user's groups, profile, gpu type or None, option, choice) -> allowed
MERGE_TABLE = [
    # profiles: union of the groups'
    (["students"], "cpu", None, None, None, True),
    (["students"], "a100", "A100", None, None, False),
    (["staff"], "anything-at-all", None, None, None, True),
    (["students", "gpu-users"], "a100", "A100", None, None, True),
    # GPU profiles: only from a group granting GPUs of the profile's type
    (["students"], "cpu-but-gpu", "A100", None, None, False),
    (["t4-users"], "a100", "A100", None, None, False),
    (["t4-users"], "t4", "T4", None, None, True),
    (["staff"], "a100", "A100", None, None, True),
    # choices: union over the groups that allow the profile; an unnamed option keeps all
    (["students"], "cpu", None, "image", "base", True),
    (["students"], "cpu", None, "image", "r", False),
    (["students", "analysts"], "cpu", None, "image", "r", True),
    (["analysts"], "cpu", None, "image", "unlisted", True),
    (["students"], "cpu", None, "image", "unlisted", False),
    (["gpu-users"], "multi", "A100", "gpus", "2", False),
    (["gpu-users", "big-gpu"], "multi", "A100", "gpus", "2", True),
    (["gpu-users", "big-gpu"], "multi", "A100", "gpus", "4", False),
    (["staff", "gpu-users"], "multi", "A100", "gpus", "4", True),
    (["students"], "cpu", None, "size", "huge", True),
    # the default: only for users in no listed group; unlisted groups are ignored
    ([], "cpu", None, "image", "base", True),
    ([], "cpu", None, "image", "r", False),
    (["not-listed"], "a100", "A100", None, None, False),
    (["not-listed", "gpu-users"], "a100", "A100", None, None, True),
    (["analysts"], "cpu", None, "image", "base", False),
]
MERGE_IDS = [
    "one-group-its-profile", "one-group-not-its-profile", "star-allows-every-slug", "union-of-profiles",
    "gpu-profile-needs-gpu-grant", "gpu-type-not-granted", "gpu-type-granted", "star-with-gpus",
    "choice-listed", "choice-not-listed", "choice-union", "unlisted-choice-granted", "unlisted-choice-not-granted",
    "gpu-choice-not-granted", "gpu-choice-from-second-group", "gpu-choice-none-grants", "unrestricted-option-wins",
    "option-not-named-keeps-all",
    "default-applies", "default-restricts", "unlisted-group-gets-default", "unlisted-group-ignored",
    "listed-group-replaces-default",
]


@pytest.mark.parametrize("groups, slug, gpu_type, option, choice, allowed", MERGE_TABLE, ids=MERGE_IDS)
def test_merge_rules(groups, slug, gpu_type, option, choice, allowed):
    ent = E.for_groups(groups)
    if option is None:
        assert ent.allows_profile(slug, gpu_type) is allowed
    else:
        assert ent.allows_profile(slug, gpu_type)
        assert ent.allows_choice(slug, option, choice, gpu_type) is allowed


@pytest.mark.parametrize(
    "groups, cap",
    [([], 0), (["students"], 0), (["gpu-users"], 1), (["gpu-users", "big-gpu"], 2), (["gpu-users", "staff"], 4),
     (["not-listed"], 0)],
    ids=["default-no-gpus", "no-gpu-grant", "one-group", "highest-of-two", "highest-of-staff", "unlisted-group"],
)
def test_highest_gpu_cap(groups, cap):
    assert E.for_groups(groups).gpus_per_user == cap


def test_which_groups_apply():
    assert E.for_groups(["x", "students", "gpu-users"]).groups == ("gpu-users", "students")
    ent = E.for_groups(["x"])
    assert ent.from_default and ent.groups == ()
    assert ent.rules == (("default", Rule(frozenset({"cpu"}), {"cpu": {"image": frozenset({"base"})}})),)


def test_granting_groups_and_message():
    assert E.granting_profile("a100", "A100") == ["gpu-users", "staff"]
    assert E.granting_profile("a100", None) == ["gpu-users", "staff", "t4-users"]
    assert E.granting_choice("multi", "gpus", "2", "A100") == ["big-gpu", "staff"]
    assert E.granting_choice("cpu", "image", "r") == ["analysts", "gpu-users", "staff"]
    assert refusal_message('the profile "A100"', ["gpu-users", "staff"]) == (
        'You are not entitled to the profile "A100". It is granted to members of "gpu-users", "staff"; '
        "ask your hub admin to add you to one of them."
    )
    assert refusal_message("x", []) == "You are not entitled to x. No group grants it; ask your hub admin if you need it."


def test_caps_for_the_ledger():
    assert E.user_caps() == {"staff": 4, "gpu-users": 1, "big-gpu": 2, "t4-users": 1, "students": 0, "analysts": 0}
    assert E.group_totals() == {"gpu-users": 8}


def test_no_groups_means_not_enabled_and_default_allows_every_profile():
    e = parse_entitlements({}, {"profiles": "*"})
    assert not e.enabled
    assert e.for_groups(["a"]).allows_profile("anything")
    assert not e.for_groups(["a"]).allows_profile("gpu", "A100")


@pytest.mark.parametrize(
    "groups, default, messages",
    [
        ([], {}, ["PlatformSpawner.entitlements must be a dict {group name: rule}, not []"]),
        ({"": {}}, {}, ["PlatformSpawner.entitlements has a group name that is not a non-empty string: ''"]),
        ({"g": "cpu"}, {}, ["PlatformSpawner.entitlements['g'] must be a dict with keys from profiles, choices, "
                            "gpus_per_user, gpu_types, gpus_total, not 'cpu'"]),
        ({"g": {"profile": ["cpu"]}}, {}, ["PlatformSpawner.entitlements['g'] has unknown key(s) 'profile' (misspelled?); "
                                           "the keys are profiles, choices, gpus_per_user, gpu_types, gpus_total"]),
        ({"g": {"profiles": "cpu"}}, {}, ["PlatformSpawner.entitlements['g'].profiles must be a list of names or \"*\", not 'cpu'"]),
        ({"g": {"profiles": ["cpu", 3]}}, {}, ["PlatformSpawner.entitlements['g'].profiles must hold non-empty strings; found [3]"]),
        ({"g": {"gpus_per_user": -1}}, {}, ["PlatformSpawner.entitlements['g'].gpus_per_user must be a whole number of GPUs (0 or more), not -1"]),
        ({"g": {"gpus_per_user": True}}, {}, ["PlatformSpawner.entitlements['g'].gpus_per_user must be a whole number of GPUs (0 or more), not True"]),
        ({"g": {"gpus_total": "8"}}, {}, ["PlatformSpawner.entitlements['g'].gpus_total must be a whole number of GPUs (0 or more), not '8'"]),
        ({"g": {"gpu_types": "A100"}}, {}, ["PlatformSpawner.entitlements['g'].gpu_types must be a list of names or \"*\", not 'A100'"]),
        ({"g": {"choices": ["a"]}}, {}, ["PlatformSpawner.entitlements['g'].choices must be a dict {profile slug: {option: [choices]}}, not ['a']"]),
        ({"g": {"choices": {"cpu": ["a"]}}}, {}, ["PlatformSpawner.entitlements['g'].choices['cpu'] must be a dict {option: [choices]}, not ['a']"]),
        ({"g": {"choices": {"cpu": {"image": "base"}}}}, {},
         ["PlatformSpawner.entitlements['g'].choices['cpu']['image'] must be a list of names or \"*\", not 'base'"]),
        ({}, {"gpus_per_user": "many", "profiles": 1},
         ["PlatformSpawner.default_entitlement.profiles must be a list of names or \"*\", not 1",
          "PlatformSpawner.default_entitlement.gpus_per_user must be a whole number of GPUs (0 or more), not 'many'"]),
    ],
    ids=["groups-not-dict", "empty-group-name", "rule-not-dict", "unknown-key", "profiles-a-string", "profiles-non-string",
         "negative-cap", "bool-cap", "total-a-string", "types-a-string", "choices-not-dict", "options-not-dict",
         "choice-list-a-string", "default-problems"],
)
def test_validation_names_the_setting(groups, default, messages):
    with pytest.raises(EntitlementError) as e:
        parse_entitlements(groups, default)
    assert e.value.problems == messages


def test_names_that_match_no_profile_are_reported():
    e = parse_entitlements(
        {"g": {"profiles": ["cpu", "a1OO"], "choices": {"cpu": {"image": ["base", "rr", "unlisted"], "sise": ["x"]},
                                                        "gone": {"a": ["b"]}}}},
        {"profiles": ["cpuu"]},
    )
    problems = profile_problems(e, [("cpu", {"image": ["base", "r"]}), ("a100", {})])
    assert problems == [
        "PlatformSpawner.entitlements['g'].profiles names 'a1OO', which is no profile slug (the slugs are a100, cpu)",
        "PlatformSpawner.entitlements['g'].choices['cpu'][\'image\'] names choice 'rr', which is not one of base, r",
        "PlatformSpawner.entitlements['g'].choices['cpu'] names option 'sise', which profile 'cpu' does not have",
        "PlatformSpawner.entitlements['g'].choices names profile 'gone', which is no profile slug",
        "PlatformSpawner.default_entitlement.profiles names 'cpuu', which is no profile slug (the slugs are a100, cpu)",
    ]
    assert profile_problems(E, [("cpu", {"image": ["base", "r"]}), ("a100", {}), ("multi", {"gpus": ["1", "2", "4"]}),
                                ("t4", {})]) == []
