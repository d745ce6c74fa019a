"""The cull decision (jhplatform.policy.culling), as tables.

We test these aspects:
- idle and busy: CPU servers by Jupyter inactivity; GPU servers with a reading by GPU utilisation
  (idle GPUs are culled despite an active browser, busy GPUs are never culled for idleness);
- no data: a GPU server without a reading falls back to Jupyter activity and is flagged;
  a missing reading never brings a cull closer (``gpu_idle_since`` resets);
- max age per class, and max age wins over busy GPUs;
- CPU vs GPU class limits (the class comes from the GPU count, not the profile name);
- per-profile overrides, partial ones inheriting the class value; 0 turns a rule off;
- the warning window: warned inside the lead time, not before, not when culled, not with 0;
- the warning text names the server, the rule, the time and what keeps the server;
- config validation of limits mappings names the setting and the problem;
- GPU-seconds held idle.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from jhplatform.policy.culling import (
    CullPolicy,
    Limits,
    ServerFacts,
    gpu_idle_since,
    idle_gpu_seconds,
    limits_problems,
    warning_text,
    with_profiles,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
POLICY = CullPolicy(
    gpu=Limits(idle_timeout=30 * 60, max_age=8 * 3600),
    cpu=Limits(idle_timeout=120 * 60, max_age=24 * 3600),
    profiles={"long-a100": Limits(max_age=48 * 3600), "no-cull": Limits(idle_timeout=0, max_age=0)},
    gpu_util_threshold=5.0,
    warn_before=10 * 60,
)


def facts(*, gpus=0, started=-60, active=None, util=None, idle_since=None, profile="", server=""):
    """Times in minutes relative to NOW."""
    return ServerFacts(
        user="ada",
        server=server,
        started=NOW + started * MIN,
        last_activity=None if active is None else NOW + active * MIN,
        gpus=gpus,
        profile=profile,
        gpu_util=util,
        gpu_idle_since=None if idle_since is None else NOW + idle_since * MIN,
    )


CASES = [
    # id, facts, cull, rule, cls, fallback
    ("cpu-active", facts(active=-1), False, "idle", "cpu", False),
    ("cpu-idle-under-limit", facts(active=-119, started=-200), False, "idle", "cpu", False),
    ("cpu-idle-at-limit", facts(active=-120, started=-200), True, "idle", "cpu", False),
    ("cpu-idle-as-long-as-gpu-limit-kept", facts(active=-31, started=-200), False, "idle", "cpu", False),
    ("cpu-no-activity-counts-from-start", facts(started=-121), True, "idle", "cpu", False),
    ("gpu-no-data-idle-past-gpu-limit", facts(gpus=1, active=-31, started=-200), True, "idle", "gpu", True),
    ("gpu-no-data-active", facts(gpus=1, active=-1, started=-200), False, "idle", "gpu", True),
    ("gpu-idle-despite-active-browser", facts(gpus=1, active=0, started=-200, util=0.5, idle_since=-30), True, "gpu-idle", "gpu", False),
    ("gpu-idle-not-long-enough", facts(gpus=1, active=0, started=-200, util=0.5, idle_since=-29), False, "gpu-idle", "gpu", False),
    ("gpu-idle-first-reading", facts(gpus=2, active=0, started=-200, util=1.0), False, "gpu-idle", "gpu", False),
    ("gpu-busy-jupyter-idle-for-hours", facts(gpus=1, active=-300, started=-400, util=97.0), False, "max-age", "gpu", False),
    ("gpu-busy-past-max-age", facts(gpus=1, active=0, started=-8 * 60, util=97.0), True, "max-age", "gpu", False),
    ("cpu-past-max-age-while-active", facts(active=0, started=-24 * 60), True, "max-age", "cpu", False),
    ("cpu-under-max-age-active", facts(active=0, started=-24 * 60 + 1), False, "max-age", "cpu", False),
    ("threshold-is-busy", facts(gpus=1, active=-300, started=-400, util=5.0, idle_since=-100), False, "max-age", "gpu", False),
    ("profile-override-max-age", facts(gpus=1, active=0, started=-9 * 60, util=90.0, profile="long-a100"), False, "max-age", "gpu", False),
    ("profile-override-inherits-idle", facts(gpus=1, active=-31, started=-200, profile="long-a100"), True, "idle", "gpu", True),
    ("profile-override-turns-rules-off", facts(gpus=1, active=-3000, started=-5000, profile="no-cull"), False, None, "gpu", True),
    ("unknown-profile-uses-class", facts(gpus=1, active=-31, started=-200, profile="renamed"), True, "idle", "gpu", True),
]


@pytest.mark.parametrize("f, cull, rule, cls, fallback", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide(f, cull, rule, cls, fallback):
    v = POLICY.decide(f, NOW)
    assert (v.cull, v.rule, v.cls, v.fallback) == (cull, rule, cls, fallback)
    if v.cull:
        assert v.cull_at <= NOW and not v.warn


WARN = [
    # id, facts, warn, cull_at (minutes from NOW)
    ("inside-lead-time", facts(active=-115, started=-200), True, 5),
    ("at-lead-time", facts(active=-110, started=-200), True, 10),
    ("before-lead-time", facts(active=-109, started=-200), False, 11),
    ("gpu-idle-inside", facts(gpus=1, active=0, started=-200, util=0.0, idle_since=-25), True, 5),
    ("max-age-inside", facts(gpus=1, active=0, started=-8 * 60 + 3, util=80.0), True, 3),
    ("culled-is-not-warned", facts(active=-130, started=-200), False, -10),
]


@pytest.mark.parametrize("f, warn, minutes", [w[1:] for w in WARN], ids=[w[0] for w in WARN])
def test_warning_window(f, warn, minutes):
    v = POLICY.decide(f, NOW)
    assert v.warn is warn
    assert v.cull_at == NOW + minutes * MIN


def test_no_warnings_when_lead_time_is_zero():
    policy = CullPolicy(gpu=POLICY.gpu, cpu=POLICY.cpu, warn_before=0)
    assert policy.decide(facts(active=-119, started=-200), NOW).warn is False


TEXTS = [
    ("idle", facts(active=-115, started=-200), ["Your server", "12:05 UTC", "inactive for 2h00m", "Opening it"]),
    ("gpu-idle-named", facts(gpus=2, active=0, started=-200, util=0.0, idle_since=-25, server="train"),
     ["Your server 'train' (holding 2 GPUs)", "12:05 UTC", "GPUs have been idle for 30m", "Using the GPU keeps it"]),
    ("max-age", facts(gpus=1, active=0, started=-8 * 60 + 3, util=80.0),
     ["(holding 1 GPU)", "12:03 UTC", "maximum run time of 8h00m", "Save your work"]),
]


@pytest.mark.parametrize("f, parts", [t[1:] for t in TEXTS], ids=[t[0] for t in TEXTS])
def test_warning_text(f, parts):
    text = warning_text(f, POLICY.decide(f, NOW))
    for part in parts:
        assert part in text
    assert "Your files are kept." in text


IDLE_SINCE = [
    ("first-idle-reading-starts-clock", None, 1.0, NOW),
    ("stays-idle-keeps-start", NOW - 7 * MIN, 1.0, NOW - 7 * MIN),
    ("busy-resets", NOW - 7 * MIN, 50.0, None),
    ("missing-reading-resets", NOW - 7 * MIN, None, None),
    ("future-start-is-not-trusted", NOW + MIN, 1.0, NOW),
]


@pytest.mark.parametrize("prev, util, expected", [c[1:] for c in IDLE_SINCE], ids=[c[0] for c in IDLE_SINCE])
def test_gpu_idle_since(prev, util, expected):
    assert gpu_idle_since(prev, util, 5.0, NOW) == expected


PROBLEMS = [
    ("fine", {"idle_timeout": 600, "max_age": 0}, []),
    ("partial-is-fine", {"max_age": 3600}, []),
    ("negative", {"idle_timeout": -1}, ["gpu.idle_timeout must be a number of seconds >= 0 (0 turns it off), not -1"]),
    ("text", {"max_age": "1h"}, ["gpu.max_age must be a number of seconds >= 0 (0 turns it off), not '1h'"]),
    ("bool", {"max_age": True}, ["gpu.max_age must be a number of seconds >= 0 (0 turns it off), not True"]),
    ("unknown-key", {"timeout": 5}, ["gpu has unknown key 'timeout'; use idle_timeout and/or max_age (seconds)"]),
    ("not-a-mapping", 600, ["gpu must be a mapping with idle_timeout and/or max_age (seconds), not 600"]),
]


@pytest.mark.parametrize("value, problems", [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS])
def test_limits_problems(value, problems):
    assert limits_problems("gpu", value) == problems


def test_with_profiles_builds_partial_overrides():
    policy = with_profiles(POLICY, {"a100": {"idle_timeout": 600}})
    assert policy.profiles == {"a100": Limits(idle_timeout=600, max_age=None)}
    assert policy.limits_for(facts(gpus=1, profile="a100")) == Limits(600, 8 * 3600)


IDLE_GPU = [
    ("idle-gpus-count", facts(gpus=2, util=0.0, idle_since=-5), 60, 120.0),
    ("busy-gpus-do-not", facts(gpus=2, util=90.0), 60, 0.0),
    ("no-data-does-not", facts(gpus=2), 60, 0.0),
    ("cpu-does-not", facts(), 60, 0.0),
]


@pytest.mark.parametrize("f, elapsed, expected", [c[1:] for c in IDLE_GPU], ids=[c[0] for c in IDLE_GPU])
def test_idle_gpu_seconds(f, elapsed, expected):
    assert idle_gpu_seconds(f, POLICY.decide(f, NOW), elapsed) == expected


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (50, "50s"), (60, "1m"), (1800, "30m"), (3600, "1h00m"), (28800, "8h00m")],
                         ids=["zero", "under-a-minute", "one-minute", "half-hour", "hour", "eight-hours"])
def test_durations_people_read(seconds, text):
    from jhplatform.policy.culling import _hm

    assert _hm(seconds) == text
