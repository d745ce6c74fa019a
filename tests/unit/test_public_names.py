"""What admins configure keeps working wherever the code inside a wing moves.

We test these aspects:
- every public name imports from the path docs/architecture.md documents for it;
- the ``jhplatform`` entry point in ``jupyterhub.spawners`` loads PlatformSpawner, and so does
  JupyterHub's own loader for ``spawner_class = "jhplatform"``; the same for PlatformAuthenticator
  in ``jupyterhub.authenticators`` and ``authenticator_class = "jhplatform"``;
- every ``c.PlatformSpawner.*`` trait an admin may have set is still a configurable trait;
- the ``jhplatform`` console script and ``python -m jhplatform.cli`` answer.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

PUBLIC = [
    ("jhplatform.spawner", "PlatformSpawner"),
    ("jhplatform.spawner", "SecurityPolicyRefusal"),
    ("jhplatform.spawner.checks", "fail_on_problems"),
    ("jhplatform.spawner.gpu", "fail_on_gpu_problems"),
    ("jhplatform.spawner.storage", "fail_on_storage_problems"),
    ("jhplatform.spawner.entitlements", "fail_on_entitlement_problems"),
    ("jhplatform.auth", "PlatformAuthenticator"),
    ("jhplatform.policy.entitlements", "parse_entitlements"),
    ("jhplatform.policy.security", "restricted_violations"),
    ("jhplatform.policy.security", "harden"),
    ("jhplatform.devcluster", "DevCluster"),
    ("jhplatform.cli", "main"),
    ("jhplatform.culler", "CullerService"),
    ("jhplatform.culler.hubconfig", "register_culler"),
    ("jhplatform.policy.culling", "CullPolicy"),
]

#: The PlatformSpawner traits admins configure (docs/security.md, storage.md, gpu.md).
PLATFORM_TRAITS = [
    "gpu_capacity_from_nodes", "gpu_capacity_from_quotas", "gpu_form_reservation_seconds",
    "default_entitlement", "entitlements", "gpu_group_limits", "gpu_pools", "gpu_unschedulable_timeout", "gpu_user_limit",
    "gpu_user_limit_by_group", "home_dir", "read_only_root_filesystem", "scratch_path",
    "scratch_size_limit", "seccomp_profile", "security_mode", "shared_datasets", "shm_size_limit",
    "writable_paths", "writable_paths_size_limit",
]


@pytest.mark.parametrize("module, name", PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_public_name_imports_from_its_documented_path(module, name):
    assert getattr(importlib.import_module(module), name) is not None


def test_entry_point_loads_platform_spawner():
    from jupyterhub.app import JupyterHub

    from jhplatform.spawner import PlatformSpawner

    (ep,) = [ep for ep in entry_points(group="jupyterhub.spawners") if ep.name == "jhplatform"]
    assert ep.value == "jhplatform.spawner:PlatformSpawner"
    assert ep.load() is PlatformSpawner
    hub = JupyterHub(spawner_class="jhplatform")
    assert hub.spawner_class is PlatformSpawner


def test_entry_point_loads_platform_authenticator():
    from jupyterhub.app import JupyterHub

    from jhplatform.auth import PlatformAuthenticator

    (ep,) = [ep for ep in entry_points(group="jupyterhub.authenticators") if ep.name == "jhplatform"]
    assert ep.value == "jhplatform.auth:PlatformAuthenticator"
    assert ep.load() is PlatformAuthenticator
    hub = JupyterHub(authenticator_class="jhplatform")
    assert hub.authenticator_class is PlatformAuthenticator


@pytest.mark.parametrize("trait", PLATFORM_TRAITS)
def test_platform_trait_is_configurable(trait):
    from jhplatform.spawner import PlatformSpawner

    assert trait in PlatformSpawner.class_trait_names(config=True)


def test_console_script_and_module_answer():
    script = Path(sys.executable).parent / "jhplatform"
    for cmd in ([str(script), "--help"], [sys.executable, "-m", "jhplatform.cli", "--help"]):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "devcluster" in result.stdout and "orphaned-claims" in result.stdout
