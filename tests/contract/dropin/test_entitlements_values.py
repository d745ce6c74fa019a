"""Sign-in and entitlements set from z2jh values (``hub.config``), as the drop-in ships them.

The values go the way they go on a cluster: Helm's own schema check (``jhplatform.z2jh.helm``,
helm-python-sdk), then the hub pod's config loading (``jhplatform check``: z2jh's
``jupyterhub_config.py`` with the image's snippets, in the hub pod's mount namespace; see
docs/z2jh-loader.md).

We test these aspects:
- ``helm-values/entitlements-example.yaml`` over platform.yaml passes Helm's validation and
  ``jhplatform check``: it selects PlatformAuthenticator by its entry-point name and its
  entitlements name only the shipped profiles;
- the same values with a misspelled rule key or a profile slug that does not exist are each
  named by ``jhplatform check`` with their values path and the setting's message.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from helpers import REPO
from jhplatform.z2jh.helm import validate_values

pytestmark = pytest.mark.contract

VALUES = [REPO / "helm-values" / "platform.yaml", REPO / "helm-values" / "entitlements-example.yaml"]
JHPLATFORM = shutil.which("jhplatform") or str(REPO / ".venv" / "bin" / "jhplatform")


def check(*paths) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}  # offline: no cluster
    return subprocess.run([JHPLATFORM, "check", *map(str, paths)], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_example_passes_helm_and_the_hub_pods_config_check():
    assert validate_values(VALUES) == []
    values = yaml.safe_load(VALUES[1].read_text())
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] == "jhplatform"
    result = check(*VALUES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_selects_the_authenticator_by_entry_point():
    from jupyterhub.app import JupyterHub

    from jhplatform.auth import PlatformAuthenticator

    assert JupyterHub(authenticator_class="jhplatform").authenticator_class is PlatformAuthenticator


@pytest.mark.parametrize(
    "extra, path, message",
    [
        ({"hub": {"config": {"PlatformSpawner": {"entitlements": {"staff": {"profile": "*"}}}}}},
         "hub.config.PlatformSpawner.entitlements.staff",
         "PlatformSpawner.entitlements['staff'] has unknown key(s) 'profile' (misspelled?); the keys are "
         "profiles, choices, gpus_per_user, gpu_types, gpus_total"),
        ({"hub": {"config": {"PlatformSpawner": {"default_entitlement": {"profiles": ["cpu-small"]}}}}},
         "hub.config.PlatformSpawner.default_entitlement",
         "PlatformSpawner.default_entitlement.profiles names 'cpu-small', which is no profile slug"),
    ],
    ids=["misspelled-key", "unknown-slug"],
)
def test_bad_rules_are_named_with_their_values_path(tmp_path, extra, path, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(extra))
    result = check(*VALUES, bad)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"{path}: {message}") for line in lines), lines
