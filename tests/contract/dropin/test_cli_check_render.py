"""``jhplatform check`` and ``jhplatform render``: z2jh values checked offline through the hub's own config.

Both commands load the configuration in the hub pod's layout (jhplatform.z2jh.HubPod, the same
loader the hub tests use) and render with PlatformSpawner; they are run here as an admin runs
them, as the ``jhplatform`` console script.

We test these aspects:
- ``check helm-values/platform.yaml`` exits 0 and prints no problem;
- ``check`` on platform.yaml plus tests/data/values/broken.yaml (a privileged profile, an inline
  hostPath dataset in hub.config, a GPU profile without a resource name, and a violating profile
  added in hub.extraConfig) exits 1 and prints one line per problem, each starting with its
  values path;
- z2jh's privileged iptables init container (``singleuser.cloudMetadata.blockWithIptables:
  true``, the chart's default) is named by that values key, once per profile, with the fix;
- ``render`` prints the PVC and the pod for every profile of platform.yaml, and the emulator's
  PSS-restricted namespace admits both when they are created through its REST API;
- ``render --option`` picks the option's override and ``--group`` applies a group override;
- a profile the platform refuses is not rendered: exit 1 with the refusal and the setting; values
  that make no spawner at all (a malformed GPU profile) are one clear line, exit 1;
- values with which z2jh's config file itself stops (a hub.config section that is not a class)
  are one problem line with z2jh's FATAL message, exit 1;
- error branches: an unknown profile (exit 1, naming the profiles), ``--option`` without ``=``
  and a missing values file (exit 2), each with a message.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import aiohttp
import pytest
import yaml

from helpers import REPO, TEST_DATA

pytestmark = pytest.mark.contract

PLATFORM = REPO / "helm-values" / "platform.yaml"
NS = "jhub"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}
JHPLATFORM = shutil.which("jhplatform") or str(REPO / ".venv" / "bin" / "jhplatform")


def jhplatform(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}  # offline: no cluster
    return subprocess.run([JHPLATFORM, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_check_clean_values_exit_0():
    result = jhplatform("check", str(PLATFORM))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "no problems" in result.stderr


def test_check_names_each_problem_and_its_values_path():
    result = jhplatform("check", str(PLATFORM), str(TEST_DATA / "values" / "broken.yaml"))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    by_path = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in lines}
    assert set(by_path) == {
        "singleuser.profileList[1].kubespawner_override.privileged",
        "hub.config.PlatformSpawner.shared_datasets[0]",
        "singleuser.profileList[2].gpu.resource",
        "hub.extraConfig.50-debug-profile",
        "singleuser.podSecurityContext",
    }, lines
    # Helm's own words for the misspelled key (helm-python-sdk), first: the schema is checked first.
    assert lines[0] == "singleuser.podSecurityContext: additional properties 'podSecurityContext' not allowed"
    assert "privileged" in by_path["singleuser.profileList[1].kubespawner_override.privileged"]
    assert "inline hostPath volume" in by_path["hub.config.PlatformSpawner.shared_datasets[0]"]
    assert "gpu.resource must be an extended resource name" in by_path["singleuser.profileList[2].gpu.resource"]
    assert "profile 'debug'" in by_path["hub.extraConfig.50-debug-profile"]
    assert "runAsUser=0" in by_path["hub.extraConfig.50-debug-profile"]
    assert "5 problem(s)" in result.stderr


def test_check_reports_a_config_file_that_stops_while_loading(tmp_path):
    values = tmp_path / "section.yaml"
    values.write_text(yaml.safe_dump({"hub": {"config": {"jupyterHub": {"admin_access": True}}}}))
    result = jhplatform("check", str(PLATFORM), str(values))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        # Helm refuses it first (the chart's schema), and the hub pod's loader would stop on it.
        "hub.config.jupyterHub: additional properties 'jupyterHub' not allowed",
        "hub: the hub configuration exits with 1 while loading: FATAL: Invalid hub.config section name 'jupyterHub': "
        "a section must start with a capital letter. Maybe misplaced or misspelled config?"
    ]


def test_check_names_z2jhs_iptables_blocker_by_its_values_key():
    result = jhplatform("check", str(PLATFORM), str(TEST_DATA / "values" / "iptables.yaml"))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    slugs = [p["slug"] for p in yaml.safe_load(PLATFORM.read_text())["singleuser"]["profileList"]]
    assert [line.split(": ", 1)[0] for line in lines] == ["singleuser.cloudMetadata.blockWithIptables"] * len(slugs)
    for slug, line in zip(slugs, lines):
        assert f"profile '{slug}'" in line
        assert 'container "block-cloud-metadata" must not set securityContext.privileged=true' in line
        assert "Set singleuser.cloudMetadata.blockWithIptables: false" in line


def render(*args: str) -> list[dict]:
    result = jhplatform("render", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return list(yaml.safe_load_all(result.stdout))


async def create(devcluster, kind: str, body: dict) -> tuple[int, dict]:
    url = f"{devcluster.url}/api/v1/namespaces" + ("" if kind == "namespaces" else f"/{NS}/{kind}")
    # Admission is what this looks at, so the rendered objects are created as the cluster admin.
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {devcluster.tokens.admin_token}"}) as s:
        async with s.post(url, json=body) as r:
            return r.status, await r.json()


@pytest.mark.parametrize("slug", [p["slug"] for p in yaml.safe_load(PLATFORM.read_text())["singleuser"]["profileList"]])
async def test_render_is_admitted_by_a_restricted_namespace(cluster, slug):
    status, body = await create(cluster, "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": RESTRICTED}})
    assert status == 201, body
    pvc, pod = render(str(PLATFORM), "--user", "ada", "--profile", slug)
    assert (pvc["kind"], pvc["metadata"]["name"], pvc["metadata"]["namespace"]) == ("PersistentVolumeClaim", "claim-ada", NS)
    assert (pod["kind"], pod["metadata"]["name"], pod["metadata"]["namespace"]) == ("Pod", "jupyter-ada", NS)
    assert pod["metadata"]["labels"]["release"] == "jhub"
    status, body = await create(cluster, "persistentvolumeclaims", pvc)
    assert status == 201, body
    status, body = await create(cluster, "pods", pod)
    assert status == 201, body
    assert body["spec"]["securityContext"]["runAsNonRoot"] is True


def test_render_with_option_and_group():
    options = str(TEST_DATA / "values" / "options.yaml")
    _, pod = render(str(PLATFORM), options, "--user", "bo", "--profile", "cpu", "--option", "image=torch", "--group", "big-memory")
    notebook = pod["spec"]["containers"][0]
    assert notebook["image"] == "quay.io/jupyter/pytorch-notebook:2025-01-06"
    assert {"name": "BIG_MEMORY_GROUP", "value": "yes"} in notebook["env"]
    _, pod = render(str(PLATFORM), options, "--user", "bo", "--profile", "cpu")
    notebook = pod["spec"]["containers"][0]
    assert notebook["image"] == "quay.io/jupyter/scipy-notebook:2025-01-06"
    assert "BIG_MEMORY_GROUP" not in {e["name"] for e in notebook["env"]}


def test_render_refused_profile(tmp_path):
    profiles = {"singleuser": {"profileList": [{"display_name": "Privileged", "slug": "privileged", "kubespawner_override": {"privileged": True}}]}}
    values = tmp_path / "privileged.yaml"
    values.write_text(yaml.safe_dump(profiles))
    result = jhplatform("render", str(PLATFORM), str(values), "--user", "ada", "--profile", "privileged")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("jhplatform render: Pod jupyter-ada for ada (profile 'privileged') violates Pod Security Standards")
    assert "set by: KubeSpawner.privileged" in result.stderr


def test_render_with_a_malformed_gpu_profile():
    result = jhplatform("render", str(PLATFORM), str(TEST_DATA / "values" / "broken.yaml"), "--user", "ada", "--profile", "cpu")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "jhplatform render: no spawner can be made from this configuration (run `jhplatform check`): "
        "TraitError: PlatformSpawner.profile_list profile "
        "'gpu-no-resource': gpu.resource must be an extended resource name such as 'nvidia.com/gpu', 'amd.com/gpu' or "
        "'nvidia.com/mig-1g.10gb', not None"
    ]


def test_render_unknown_profile():
    result = jhplatform("render", str(PLATFORM), "--user", "ada", "--profile", "tpu")
    assert result.returncode == 1
    assert result.stdout == ""
    slugs = ", ".join(p["slug"] for p in yaml.safe_load(PLATFORM.read_text())["singleuser"]["profileList"])
    assert f"jhplatform render: no profile 'tpu' in the profile list (profiles: {slugs})" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(["render", str(PLATFORM), "--user", "a", "--profile", "cpu", "--option", "image"],
                     "jhplatform render: --option must be KEY=VALUE, not 'image'", id="option-without-equals"),
        pytest.param(["check", "missing.yaml"], "jhplatform check: no such values file: missing.yaml", id="check-missing-file"),
        pytest.param(["render", "missing.yaml", "--user", "a", "--profile", "cpu"],
                     "jhplatform render: no such values file: missing.yaml", id="render-missing-file"),
    ],
)
def test_usage_errors(args, message):
    result = jhplatform(*args)
    assert result.returncode == 2
    assert result.stderr.strip() == message
