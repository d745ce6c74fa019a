"""What PlatformSpawner records for the culler (jhplatform.spawner.culling), without a hub.

The GPU count from a real pod is covered through the hub in tests/contract/culler/; here the
state handling and the profile choice.

We test these aspects:
- the state carries ``jhplatform_gpus`` and ``jhplatform_profile`` only once a start recorded them,
  survives a hub restart (``load_state``) next to KubeSpawner's own keys, and is cleared on stop;
- the profile recorded is the user's choice, else the list's default (or its first entry),
  else nothing (no list, or a callable list).
"""

from __future__ import annotations

import pytest

from doubles import make_spawner
from jhplatform.spawner import PlatformSpawner
from jhplatform.spawner.culling import chosen_profile

PROFILES = [{"display_name": "CPU", "slug": "cpu"}, {"display_name": "A", "slug": "a100", "default": True}]


async def test_state_round_trip_and_clear(cluster):
    spawner = make_spawner(PlatformSpawner, user="ada")
    assert "jhplatform_gpus" not in spawner.get_state()
    spawner._culling_gpus, spawner._culling_profile = {"nvidia.com/gpu": 2}, "a100"
    state = spawner.get_state()
    assert (state["jhplatform_gpus"], state["jhplatform_profile"], state["pod_name"]) == ({"nvidia.com/gpu": 2}, "a100", "jupyter-ada")

    restarted = make_spawner(PlatformSpawner, user="ada")
    restarted.load_state(state)
    assert restarted.get_state()["jhplatform_gpus"] == {"nvidia.com/gpu": 2}
    assert restarted.get_state()["jhplatform_profile"] == "a100"
    restarted.clear_state()
    assert "jhplatform_gpus" not in restarted.get_state()


@pytest.mark.parametrize(
    "user_options, profile_list, expected",
    [
        ({"profile": "cpu"}, PROFILES, "cpu"),
        ({}, PROFILES, "a100"),
        ({}, [{"display_name": "X", "slug": "x"}, {"display_name": "Y", "slug": "y"}], "x"),
        ({}, [], ""),
        ({}, lambda spawner: PROFILES, ""),
        (None, PROFILES, "a100"),
    ],
    ids=["chosen", "default", "first-when-no-default", "no-list", "callable-list", "no-options"],
)
def test_chosen_profile(user_options, profile_list, expected):
    assert chosen_profile(user_options, profile_list) == expected
