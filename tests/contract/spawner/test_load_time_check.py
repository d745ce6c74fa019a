"""The load-time profile check that runs when the hub loads jupyterhub_config.d/.

We test these aspects:
- a compliant profile list passes silently;
- a profile (and a single profile-option choice) that can never be compliant is reported naming
  the profile, the option/choice, the violation and the ``Class.trait`` behind it;
- ``fail_on_problems`` prints z2jh-style FATAL lines and exits 1; warn mode does not;
- a profile override naming a setting that does not exist is reported, not crashed on;
- ``check_when_hub_starts`` outside a running event loop (a config file loaded by a plain
  script) schedules nothing and says so (inside the hub it is tested through z2jh's loader in
  tests/contract/dropin/test_z2jh_loader.py).
"""

from __future__ import annotations

import io

import pytest
from traitlets.config import Config

from jhplatform.spawner.checks import check_profiles, check_when_hub_starts, fail_on_problems

ROOT_INIT = {"name": "fix-perms", "image": "busybox:1.36", "command": ["chown", "-R", "1000", "/home/jovyan"],
             "securityContext": {"runAsUser": 0}}


def make_config(profiles, **extra) -> Config:
    c = Config()
    c.PlatformSpawner.profile_list = profiles
    for k, v in extra.items():
        setattr(c.PlatformSpawner, k, v)
    return c


GOOD = [
    {"display_name": "CPU", "slug": "cpu", "kubespawner_override": {"cpu_limit": 2}},
    {"display_name": "GPU", "slug": "gpu", "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}},
     "profile_options": {"image": {"display_name": "Image", "choices": {
         "scipy": {"display_name": "SciPy", "kubespawner_override": {"image": "quay.io/jupyter/scipy-notebook:2025-01-06"}},
         "torch": {"display_name": "PyTorch", "kubespawner_override": {"image": "quay.io/jupyter/pytorch-notebook:2025-01-06"}},
     }}}},
]


async def test_compliant_profiles_pass(cluster):
    assert check_profiles(make_config(GOOD)) == []


async def test_bad_profile_and_bad_choice_are_named(cluster):
    profiles = [
        GOOD[0],
        {"display_name": "Root", "slug": "root", "kubespawner_override": {"init_containers": [ROOT_INIT]}},
        {"display_name": "Mixed", "slug": "mixed", "profile_options": {"mode": {"display_name": "Mode", "choices": {
            "safe": {"display_name": "Safe", "default": True},
            "escalate": {"display_name": "Escalate", "kubespawner_override": {"allow_privilege_escalation": True}},
        }}}},
    ]
    problems = check_profiles(make_config(profiles))
    text = [str(p) for p in problems]
    assert len(problems) == 2, text
    root, mixed = problems
    assert (root.profile, root.option, root.choice) == ("root", None, None)
    assert 'runAsUser=0 (container "fix-perms" must not set runAsUser=0)' in root.message
    assert "KubeSpawner.init_containers" in root.message
    assert (mixed.profile, mixed.option, mixed.choice) == ("mixed", "mode", "escalate")
    assert "allowPrivilegeEscalation != false" in mixed.message
    assert "KubeSpawner.allow_privilege_escalation" in mixed.message
    assert text[1].startswith("PlatformSpawner.profile_list profile 'mixed' (option 'mode', choice 'escalate'): ")


async def test_fail_on_problems_exits_z2jh_style(cluster):
    out = io.StringIO()
    bad = [{"display_name": "Root", "slug": "root", "kubespawner_override": {"uid": 0}}]
    with pytest.raises(SystemExit) as info:
        fail_on_problems(make_config(bad), stream=out)
    assert info.value.code == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("FATAL: PlatformSpawner.profile_list profile 'root': ")
    assert "KubeSpawner.uid" in lines[0]
    assert lines[-1].startswith("FATAL: jhplatform refuses to start")
    # warn mode reports nothing fatal
    out = io.StringIO()
    fail_on_problems(make_config(bad, security_mode="warn"), stream=out)
    assert out.getvalue() == ""


async def test_unknown_setting_reported(cluster):
    problems = check_profiles(make_config([{"display_name": "Typo", "slug": "typo", "kubespawner_override": {"cpu_limt": 2}}]))
    assert len(problems) == 1
    assert problems[0].message == "kubespawner_override sets 'cpu_limt', which is not a PlatformSpawner setting. Maybe misspelled?"


async def test_override_with_a_bad_value_reported(cluster):
    problems = check_profiles(make_config([{"display_name": "Bad", "slug": "bad", "kubespawner_override": {"mem_limit": "lots"}}]))
    assert len(problems) == 1
    assert problems[0].message.startswith("cannot be rendered: TraitError: ")
    assert "mem_limit" in problems[0].message


def test_check_when_hub_starts_without_a_running_loop(caplog):
    bad = [{"display_name": "Root", "slug": "root", "kubespawner_override": {"uid": 0}}]
    with caplog.at_level("INFO", logger="jhplatform.spawner.checks"):
        assert check_when_hub_starts(make_config(bad)) is False
    assert "no running hub; load-time checks not scheduled" in caplog.text
