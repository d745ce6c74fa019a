"""Group entitlements through a real JupyterHub (PlatformSpawner, dummy authenticator) on the emulator.

Groups are set the way an admin without an identity provider sets them: through the hub's REST
API (as ``/hub/admin`` does). The same rules as tests/contract/auth/test_oidc_entitlements.py,
which gets the groups from an OpenID provider.

We test these aspects:
- the spawn form lists only the profiles and choices the user's groups grant (union across
  groups), no free-text choice without ``"unlisted"``, and the default rule for a user in no
  listed group;
- REST spawns of a profile, a choice or a free-text value the user is not entitled to are
  refused with 403 and a message naming the groups that grant it, with no pod made; a form
  submission of the same is refused with the message on the form;
- a REST spawn with no options starts the user's first entitled profile and choices, and a
  profile asked for without a choice gets the first entitled choice, not a default the user may
  not have (the pod runs that choice's image); a user whose
  groups grant no profile at all is told so on the form and refused through REST;
- the GPU ledger's per-user cap comes from the entitlements (``gpus_per_user``, the highest of
  the user's groups), as does the per-group total (``gpus_total``);
- a user removed from a group through the API loses its profiles at the next spawn;
- a bad rule stops the hub at start (the jupyterhub_config.d check), with a message naming the
  setting; a rule naming a profile or choice that does not exist is reported.
"""

from __future__ import annotations

import pytest

from entitled_hub import PROFILES, PageSession, page_text, entitled_config, make_namespace, pods, spawn, start_stub, stop
from helpers import REPO
from hubstack import HubStack

pytestmark = pytest.mark.contract

HOW = "ask your hub admin to add you to one of them."


@pytest.fixture
async def hub(cluster, tmp_path, chp_path):
    make_namespace(cluster)
    runner, port = await start_stub()
    hub = HubStack(tmp_path, cluster.write_kubeconfig(tmp_path / "kubeconfig"), entitled_config(port),
                   spawner_class="jhplatform")
    await hub.start()
    yield hub
    await hub.stop()
    await runner.cleanup()


async def set_groups(hub: HubStack, groups: dict[str, list[str]]) -> None:
    for group, users in groups.items():
        status, body = await hub.request("POST", f"/groups/{group}", {"users": users})
        assert status == 201, body


async def test_form_and_rest_follow_the_groups(hub, cluster):
    status, body = await hub.request("POST", "/users", {"usernames": ["ann", "ben", "cat", "dan"]})
    assert status == 201, body
    status, body = await hub.request("POST", "/groups/visitors")
    assert status == 201, body
    await set_groups(hub, {"gpu-users": ["ann"], "students": ["ben", "cat"], "staff": ["cat"]})

    # -- the form --
    ann = await PageSession(hub, "ann").dummy_login()
    ben = await PageSession(hub, "ben").dummy_login()
    dan = await PageSession(hub, "dan").dummy_login()
    cat = await PageSession(hub, "cat").dummy_login()
    try:
        form, _ = await ann.spawn_form()
        assert form.profiles == ["cpu", "a100", "a100-multi"]
        assert form.options["profile-option-a100-multi--gpus"] == ["1", "2"]
        # gpu-users names no choices for cpu: all of them, the free-text one included.
        assert form.options["profile-option-cpu--image"] == ["base", "r", "unlisted-choice"]
        form, _ = await ben.spawn_form()
        assert form.profiles == ["cpu"] and form.options == {"profile-option-cpu--image": ["base"]}
        form, _ = await dan.spawn_form()  # in no listed group: the default rule
        assert form.profiles == ["cpu"] and form.options == {"profile-option-cpu--image": ["base"]}
        form, _ = await cat.spawn_form()  # students + staff: the union
        assert form.profiles == ["cpu", "a100", "a100-multi"]
        assert form.options["profile-option-cpu--image"] == ["base", "r", "unlisted-choice"]
        assert form.options["profile-option-a100-multi--gpus"] == ["1", "2", "4"]

        # A form submission of a profile ben does not have: the form again, with the reason.
        await ben.spawn_form()
        status, page = await ben.submit({"profile": "a100"})
        assert status == 403
        assert ('You are not entitled to the profile "A100". It is granted to members of "gpu-users", "staff"; '
                + HOW) in page_text(page)
    finally:
        for s in (ann, ben, cat, dan):
            await s.close()

    # -- REST --
    before = len(pods(cluster))
    cases = [
        ("ben", {"profile": "a100"}, 'You are not entitled to the profile "A100". It is granted to members of "gpu-users", "staff"; '),
        ("ben", {"profile": "cpu", "image": "r"},
         'You are not entitled to "R" for "Image" in "CPU". It is granted to members of "gpu-users", "r-users", "staff"; '),
        ("ben", {"profile": "cpu", "image--unlisted-choice": "docker.io/evil/miner"},
         'You are not entitled to a value of your own for "Image" in "CPU". It is granted to members of "gpu-users", "staff"; '),
        ("ann", {"profile": "a100-multi", "gpus": "4"},
         'You are not entitled to "4 GPUs" for "GPUs" in "A100 (several)". It is granted to members of "staff"; '),
        ("dan", {"profile": "a100-multi"},
         'You are not entitled to the profile "A100 (several)". It is granted to members of "gpu-users", "staff"; '),
    ]
    for user, options, message in cases:
        status, body = await spawn(hub, user, options)
        assert status == 403, (user, options, body)
        assert body["message"] == message + HOW
    assert len(pods(cluster)) == before  # refused before any pod was made
    assert "Spawn refused for ben: not entitled (profile 'a100'). Groups: students" in hub.log_tail(400)

    # A listed group granting nothing: no profile at all, in the form and through REST.
    status, body = await hub.request("POST", "/users/vic")
    assert status == 201, body
    status, body = await hub.request("POST", "/groups/visitors/users", {"users": ["vic"]})
    assert status == 200, body
    vic = await PageSession(hub, "vic").dummy_login()
    try:
        _, page = await vic.spawn_form()
        assert ('You are not entitled to any profile on this hub. It is granted to members of "gpu-users", "r-users", '
                '"staff", "students"; ' + HOW) in page_text(page)
    finally:
        await vic.close()
    status, body = await spawn(hub, "vic")
    assert status == 403 and body["message"] == (
        'You are not entitled to any profile on this hub. It is granted to members of "gpu-users", "r-users", "staff", '
        '"students"; ' + HOW)

    # A profile asked for without a choice whose default is not entitled: the first entitled one.
    status, body = await hub.request("POST", "/users/rae")
    assert status == 201, body
    await set_groups(hub, {"r-users": ["rae"]})
    rae = await PageSession(hub, "rae").dummy_login()
    try:
        form, _ = await rae.spawn_form()
        assert form.profiles == ["cpu"] and form.options == {"profile-option-cpu--image": ["r"]}
    finally:
        await rae.close()
    status, body = await spawn(hub, "rae", {"profile": "cpu"})
    assert status in (201, 202), body
    await hub.wait_ready("rae")
    _, model = await hub.request("GET", "/users/rae")
    assert model["servers"][""]["user_options"] == {"profile": "cpu", "image": "r"}
    (pod,) = [p for p in pods(cluster) if p["metadata"]["annotations"].get("hub.jupyter.org/username") == "rae"]
    assert pod["spec"]["containers"][0]["image"] == "quay.io/jupyter/r-notebook:2024-12-02"
    await stop(hub, "rae")

    # No options (and none remembered from an earlier request): the first entitled profile and
    # choices, written into the server's options.
    status, body = await spawn(hub, "cat")
    assert status in (201, 202), body
    await hub.wait_ready("cat")
    _, model = await hub.request("GET", "/users/cat")
    assert model["servers"][""]["user_options"] == {"profile": "cpu", "image": "base"}
    await stop(hub, "cat")


async def test_gpu_caps_come_from_the_entitlements(hub, cluster):
    status, body = await hub.request("POST", "/users", {"usernames": ["ann", "eve", "fay"]})
    assert status == 201, body
    await set_groups(hub, {"gpu-users": ["ann", "eve", "fay"]})

    # gpus_per_user = 2 for gpu-users: one A100, then two more are over ann's cap.
    status, body = await spawn(hub, "ann", {"profile": "a100"})
    assert status in (201, 202), body
    await hub.wait_ready("ann")
    status, body = await spawn(hub, "ann", {"profile": "a100-multi", "gpus": "2"}, server="second")
    assert status == 400, body
    assert body["message"] == ("This choice needs 2 GPUs, but you may use only 1 more (you use 1 of 2). Pick fewer "
                               "GPUs, stop a server that uses a GPU, or pick the CPU profile.")

    # gpus_total = 4 for gpu-users, across its members.
    status, body = await spawn(hub, "eve", {"profile": "a100-multi", "gpus": "2"})
    assert status in (201, 202), body
    await hub.wait_ready("eve")
    status, body = await spawn(hub, "fay", {"profile": "a100-multi", "gpus": "2"})
    assert status == 400, body
    assert body["message"] == ("This choice needs 2 GPUs, but your group gpu-users has only 1 of its 4 left. Pick "
                               "fewer GPUs or the CPU profile, or try again later.")

    # Removed from the group: at the next spawn the GPU profiles are gone.
    await stop(hub, "ann")
    status, body = await hub.request("DELETE", "/groups/gpu-users/users", {"users": ["ann"]})
    assert status == 200, body
    status, body = await spawn(hub, "ann", {"profile": "a100"})
    assert status == 403 and body["message"].startswith('You are not entitled to the profile "A100".')
    await stop(hub, "eve")


def test_load_time_check_names_unknown_profiles():
    from traitlets.config import Config

    from jhplatform.spawner.entitlements import check_entitlements

    c = Config()
    c.KubeSpawner.profile_list = PROFILES
    c.PlatformSpawner.entitlements = {"gpu": {"profiles": ["a1OO"], "choices": {"cpu": {"image": ["rr"]}}}}
    assert check_entitlements(c) == [
        "PlatformSpawner.entitlements['gpu'].profiles names 'a1OO', which is no profile slug (the slugs are a100, a100-multi, cpu)",
        "PlatformSpawner.entitlements['gpu'].choices['cpu']['image'] names choice 'rr', which is not one of base, r",
    ]
    c.PlatformSpawner.entitlements = {"gpu": {"profiles": ["a100"]}}
    assert check_entitlements(c) == []
    assert check_entitlements(Config()) == []


def test_profiles_fixture_is_consistent():
    """The shared profile list and rules name each other correctly (a guard for the tests above)."""
    from entitled_hub import DEFAULT, ENTITLEMENTS
    from jhplatform.policy.entitlements import parse_entitlements, profile_problems

    rules = parse_entitlements(ENTITLEMENTS, DEFAULT)
    shape = [(p["slug"], {o: list(s["choices"]) for o, s in (p.get("profile_options") or {}).items()}) for p in PROFILES]
    assert profile_problems(rules, shape) == []
