"""JupyterHub started the way z2jh 4.4.0's hub pod starts it, with our snippets, against the emulator.

Follows docs/z2jh-loader.md (from /work/shared/design/z2jh-hub-loader.md): the pod's files at the
pod's paths (a private mount namespace), the values Secret from Helm's merge, z2jh's
``get_config(key, default)`` in the snippets' globals, config.d before ``hub.extraConfig``, the
Deployment's environment, ``slow_spawn_timeout: 0``, the proxy as a separate process.

We test these aspects:
- the snippets released in 0.1.0 kill the hub at the first snippet with z2jh's
  ``TypeError: get_config() missing 1 required positional argument: 'key'``;
- with today's snippets and each shipped values file (``helm-values/platform.yaml``,
  ``values.yaml``, ``demo.yaml``) the hub selects PlatformSpawner, serves through the proxy, and
  spawns EVERY profile of the file through the REST API in a PSS-restricted namespace: each spawn answers 202, its progress stream ends ready, and the pod
  carries the chart's labels, the release namespace and the restricted settings;
- a restricted-violating profile added in ``hub.extraConfig`` (which z2jh runs after config.d)
  stops the hub at start, exit 1, with a FATAL line naming the profile and the setting, before
  the hub serves anything and with no pod created;
- an inline hostPath dataset set through ``hub.config`` stops the hub the same way, and so does a
  malformed entitlement rule set through ``hub.config`` (docs/auth.md);
- z2jh's own error branch: a ``hub.config`` section that is not a class name is FATAL;
- the snippets' non-trait setting comes from the values through z2jh's ``get_config``:
  ``custom.jhplatform.checkAtStart: false`` lets a hub with a violating extraConfig profile start,
  a value of the wrong type is one FATAL line and exit 1; a missing required ``custom.`` value is
  one FATAL line and exit 1.
"""

from __future__ import annotations

import re

import pytest
import yaml

from helpers import REPO, TEST_DATA
from jhplatform.policy.security import restricted_violations
from jhplatform.spawner.dropin import custom_setting
from z2jhpod import LoaderHub, notebook_url_values

pytestmark = pytest.mark.contract

NS = "jhub"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}
SNIPPETS = REPO / "jupyterhub_config.d"
PLATFORM = yaml.safe_load((REPO / "helm-values" / "platform.yaml").read_text())
Z2JH_TYPE_ERROR = "TypeError: get_config() missing 1 required positional argument: 'key'"


@pytest.fixture
def jhub(cluster):
    """The release namespace, PSS restricted enforced, created through the emulator's API."""
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS, "labels": RESTRICTED}})
    return cluster


@pytest.fixture
async def hubs(tmp_path):
    started = []

    def make(values, snippets=SNIPPETS, kubeconfig=None, **kwargs) -> LoaderHub:
        hub = LoaderHub(tmp_path / f"hub{len(started)}", values, snippets, kubeconfig=kubeconfig, namespace=NS, **kwargs)
        started.append(hub)
        return hub

    (tmp_path).mkdir(exist_ok=True)
    yield make
    for hub in started:
        await hub.stop()


def fatal_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("FATAL: ")]


async def test_released_snippets_die_with_z2jhs_type_error(hubs, jhub, tmp_path):
    hub = hubs([PLATFORM], snippets=TEST_DATA / "snippets-0.1.0", kubeconfig=jhub.write_kubeconfig(tmp_path / "kubeconfig"))
    assert await hub.run_to_exit() == 1
    log = hub.log()
    assert 'File "10-jhplatform-spawner.py", line 3, in <module>' in log
    assert Z2JH_TYPE_ERROR in log


#: What a values file needs from this test beyond itself: the demo's sign-in provider is only known
#: when `jhplatform demo` starts (discovery happens at the first sign-in, never at hub start).
#: Users made through the API have no auth state to refresh, so the test turns refreshing off and
#: puts them in a group that may start every profile (the file's entitlements decide otherwise).
EXTRA_FOR = {"demo.yaml": {"hub": {"config": {"PlatformAuthenticator": {
    "issuer": "http://127.0.0.1:9", "client_id": "test", "refresh_pre_spawn": False}}}}}
GROUP_FOR = {"demo.yaml": "platform-admins"}
#: T4 nodes beside the emulator's default A100 pool, for the files that offer T4 profiles.
T4_NODES = "t4x1:cpu=8,memory=32Gi,nvidia.com/gpu=2,label:nvidia.com/gpu.product=Tesla-T4,taint:nvidia.com/gpu=present:NoSchedule"


@pytest.mark.parametrize("name", ["platform.yaml", "values.yaml", "demo.yaml"])
async def test_every_profile_of_each_values_file_spawns_through_the_loader(hubs, jhub, tmp_path, notebook_stub, name):
    from jhplatform.devcluster.nodes import parse_nodes

    for node in parse_nodes(T4_NODES):
        jhub.cluster.create("nodes", None, node)
    given = yaml.safe_load((REPO / "helm-values" / name).read_text())
    values = [given, EXTRA_FOR.get(name, {}), notebook_url_values(notebook_stub)]
    hub = hubs(values, kubeconfig=jhub.write_kubeconfig(tmp_path / "kubeconfig"))
    await hub.start()
    log = hub.log()
    assert "Using Spawner: jhplatform.spawner.spawner.PlatformSpawner" in log
    assert Z2JH_TYPE_ERROR not in log
    assert "Loading /usr/local/etc/jupyterhub/jupyterhub_config.d config: 90-jhplatform-checks.py" in log
    # config.d is loaded before extraConfig, as in the hub pod.
    assert log.index("90-jhplatform-checks.py") < log.index("Loading extra config: zz-test-notebook-stub")
    slugs = [p["slug"] for p in given["singleuser"]["profileList"]]
    assert slugs, f"{name} has profiles"
    for i, slug in enumerate(slugs):
        user = f"user{i}"
        status, _ = await hub.request("POST", f"/users/{user}")
        assert status == 201
        if name in GROUP_FOR:
            await hub.request("POST", f"/groups/{GROUP_FOR[name]}")
            status, _ = await hub.request("POST", f"/groups/{GROUP_FOR[name]}/users", {"users": [user]})
            assert status == 200
        status, body = await hub.request("POST", f"/users/{user}/server", {"profile": slug})
        assert status == 202, (slug, status, body)  # slow_spawn_timeout 0: answered at once
        events = await hub.progress(user)
        assert events[-1].get("ready") is True, (slug, events, hub.log()[-4000:])
        pod = jhub.cluster.get("pods", NS, f"jupyter-{user}")
        assert pod["status"]["phase"] == "Running"
        labels = pod["metadata"]["labels"]
        assert (labels["release"], labels["chart"], labels["heritage"]) == ("jhub", "jupyterhub-4.4.0", "jupyterhub")
        assert restricted_violations(pod) == []
        assert not [c for c in pod["spec"].get("initContainers") or [] if c["name"] == "block-cloud-metadata"]
        profile = given["singleuser"]["profileList"][i]
        claim = jhub.cluster.get("persistentvolumeclaims", NS, f"claim-{user}")
        # A profile may give its home claim a size of its own (per-profile storage, docs/storage.md).
        size = (profile.get("kubespawner_override") or {}).get("storage_capacity") or given["singleuser"]["storage"]["capacity"]
        assert claim["spec"]["resources"]["requests"]["storage"] == size
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        gpu = profile.get("gpu")
        if gpu and not gpu.get("option"):
            assert limits[gpu["resource"]] == str(gpu["count"])
        elif gpu:
            assert int(limits[gpu["resource"]]) >= 1  # the count option's default choice
        else:
            assert "nvidia.com/gpu" not in limits


def bad_profile(slug: str, override: dict) -> dict:
    return {"display_name": slug, "slug": slug, "kubespawner_override": override}


async def test_violating_profile_in_extra_config_stops_the_hub(hubs, jhub, tmp_path):
    extra = (
        "c.KubeSpawner.profile_list = list(c.KubeSpawner.profile_list) + "
        + repr([bad_profile("privileged-debug", {"privileged": True})])
        + "\n"
    )
    values = [PLATFORM, {"hub": {"extraConfig": {"50-debug-profile": extra}}}]
    hub = hubs(values, kubeconfig=jhub.write_kubeconfig(tmp_path / "kubeconfig"))
    before = len(jhub.requests)
    assert await hub.run_to_exit() == 1
    log = hub.log()
    fatal = fatal_lines(log)
    assert fatal, log[-4000:]
    assert fatal[0].startswith("FATAL: PlatformSpawner.profile_list profile 'privileged-debug': ")
    assert "privileged" in fatal[0] and "KubeSpawner.privileged" in log
    assert fatal[-1].startswith("FATAL: jhplatform refuses to start")
    # The check ran after extraConfig was loaded, and before the hub served anything.
    assert log.index("Loading extra config: 50-debug-profile") < log.index("FATAL: ")
    assert "JupyterHub is now running" not in log
    assert not [r for r in list(jhub.requests)[before:] if r.get("resource") == "pods" and r.get("verb") == "create"]


async def test_inline_hostpath_dataset_in_hub_config_stops_the_hub(hubs, jhub, tmp_path):
    dataset = {"name": "ref", "mount_path": "/data/ref", "hostPath": {"path": "/mnt/datasets/ref"}}
    values = [PLATFORM, {"hub": {"config": {"PlatformSpawner": {"shared_datasets": [dataset]}}}}]
    hub = hubs(values, kubeconfig=jhub.write_kubeconfig(tmp_path / "kubeconfig"))
    assert await hub.run_to_exit() == 1
    fatal = fatal_lines(hub.log())
    assert fatal[0].startswith("FATAL: PlatformSpawner.shared_datasets: dataset 'ref' uses an inline hostPath volume"), fatal


async def test_bad_entitlement_rule_in_hub_config_stops_the_hub(hubs, jhub, tmp_path):
    rules = {"staff": {"profile": "*", "gpus_per_user": -1}}
    values = [PLATFORM, {"hub": {"config": {"PlatformSpawner": {"entitlements": rules}}}}]
    hub = hubs(values, kubeconfig=jhub.write_kubeconfig(tmp_path / "kubeconfig"))
    assert await hub.run_to_exit() == 1
    fatal = fatal_lines(hub.log())
    assert ("FATAL: PlatformSpawner.entitlements['staff'] has unknown key(s) 'profile' (misspelled?); the keys are "
            "profiles, choices, gpus_per_user, gpu_types, gpus_total") in fatal, fatal
    assert "FATAL: PlatformSpawner.entitlements['staff'].gpus_per_user must be a whole number of GPUs (0 or more), not -1" in fatal
    assert fatal[-1].startswith("FATAL: jhplatform refuses to start") and "docs/auth.md" in fatal[-1]


async def test_hub_config_section_not_a_class_is_fatal(hubs, jhub, tmp_path):
    hub = hubs([PLATFORM, {"hub": {"config": {"jupyterHub": {"admin_access": True}}}}], kubeconfig=jhub.write_kubeconfig(tmp_path / "kubeconfig"))
    assert await hub.run_to_exit() == 1
    [line] = fatal_lines(hub.log())
    assert re.match(r"FATAL: Invalid hub.config section name 'jupyterHub'", line), line


DEBUG_PROFILE = {"hub": {"extraConfig": {"50-debug-profile": (
    "c.KubeSpawner.profile_list = list(c.KubeSpawner.profile_list) + "
    + repr([bad_profile("privileged-debug", {"privileged": True})]) + "\n")}}}


async def test_check_at_start_false_skips_the_checks(hubs, jhub, tmp_path):
    values = [PLATFORM, DEBUG_PROFILE, {"custom": {"jhplatform": {"checkAtStart": False}}}]
    hub = hubs(values, kubeconfig=jhub.write_kubeconfig(tmp_path / "kubeconfig"))
    await hub.start()
    assert fatal_lines(hub.log()) == []


async def test_check_at_start_of_the_wrong_type_is_fatal(hubs, jhub, tmp_path):
    values = [PLATFORM, {"custom": {"jhplatform": {"checkAtStart": "yes"}}}]
    hub = hubs(values, kubeconfig=jhub.write_kubeconfig(tmp_path / "kubeconfig"))
    assert await hub.run_to_exit() == 1
    assert fatal_lines(hub.log()) == [
        "FATAL: custom.jhplatform.checkAtStart must be a bool (e.g. custom.jhplatform.checkAtStart: true), not 'yes'."
    ]


def z2jh_style_get_config(values: dict):
    """A get_config(key, default=None) over a values dict, with z2jh's signature and semantics."""

    def get_config(key, default=None):
        value = values
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value

    return get_config


@pytest.mark.parametrize(
    "values, expected",
    [
        pytest.param({}, "FATAL: jhplatform needs custom.jhplatform.site in the chart's values (helm upgrade -f VALUES.yaml); see docs/z2jh-loader.md.", id="missing"),
        pytest.param({"custom": {"jhplatform": {"site": 3}}}, "FATAL: custom.jhplatform.site must be a str (e.g. custom.jhplatform.site: \"text\"), not 3.", id="wrong-type"),
    ],
)
def test_required_custom_setting(values, expected, capsys):
    with pytest.raises(SystemExit) as info:
        custom_setting(z2jh_style_get_config(values), "jhplatform.site", kind=str)
    assert info.value.code == 1
    assert capsys.readouterr().err.splitlines() == [expected]


def test_custom_setting_given_and_default():
    get_config = z2jh_style_get_config({"custom": {"jhplatform": {"site": "lab", "n": 2, "flag": True}}})
    assert custom_setting(get_config, "jhplatform.site", kind=str) == "lab"
    assert custom_setting(get_config, "jhplatform.other", kind=bool, default=True) is True
    with pytest.raises(SystemExit):
        custom_setting(get_config, "jhplatform.flag", kind=int)  # a bool is not a count
