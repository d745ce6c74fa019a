"""The import layering in pyproject.toml's [tool.importlinter] holds.

We test these aspects:
- each contract (policy is pure; devcluster uses only policy; the wings, auth included, are
  independent; cli on top) is kept by the package as it stands, by name;
- the contracts can fail: a policy module that imports the spawner, the authenticator or the z2jh
  drop-in, an emulator module that imports the CLI, the authenticator or the z2jh drop-in, and
  the spawner and the authenticator importing each other, are each reported as broken in a copy
  of the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

LINT = Path(sys.executable).parent / "lint-imports"
CONTRACTS = {
    "policy-is-pure": "policy: pure, imports no plugin, emulator or CLI wing and no I/O library",
    "devcluster-uses-only-policy": "devcluster: imports only policy from the rest of jhplatform, and no hub library",
    "wings-are-independent": "spawner, auth, culler, devcluster, z2jh: independent; share only policy",
    "cli-on-top": "cli: the top layer; no wing imports it",
}


def lint(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def test_every_contract_is_kept():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACTS.values():
        assert f"{name} KEPT" in result.stdout
    assert f"{len(CONTRACTS)} kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, bad_import, contract",
    [
        ("policy/gpu_ledger.py", "import jhplatform.spawner", "policy-is-pure"),
        ("policy/storage.py", "import kubespawner", "policy-is-pure"),
        ("devcluster/store.py", "import jhplatform.cli", "devcluster-uses-only-policy"),
        ("spawner/form.py", "import jhplatform.devcluster.errors", "wings-are-independent"),
        ("policy/quantity.py", "import jhplatform.z2jh.helm", "policy-is-pure"),
        ("devcluster/store.py", "import jhplatform.z2jh", "devcluster-uses-only-policy"),
        ("policy/entitlements.py", "import jhplatform.auth", "policy-is-pure"),
        ("devcluster/store.py", "import jhplatform.auth", "devcluster-uses-only-policy"),
        ("auth/claims.py", "import jhplatform.spawner", "wings-are-independent"),
        ("z2jh/values.py", "import jhplatform.spawner.checks", "wings-are-independent"),
        ("spawner/form.py", "import jhplatform.auth.claims", "wings-are-independent"),
        ("policy/culling.py", "import jhplatform.culler", "policy-is-pure"),
        ("policy/culling.py", "import jupyterhub_idle_culler", "policy-is-pure"),
        ("devcluster/store.py", "import jhplatform.culler", "devcluster-uses-only-policy"),
        ("culler/cycle.py", "import jhplatform.spawner.culling", "wings-are-independent"),
        ("spawner/culling.py", "import jhplatform.culler.cycle", "wings-are-independent"),
    ],
    ids=[
        "policy-imports-spawner",
        "policy-imports-kubespawner",
        "devcluster-imports-cli",
        "spawner-imports-devcluster",
        "policy-imports-z2jh",
        "devcluster-imports-z2jh",
        "policy-imports-auth",
        "devcluster-imports-auth",
        "auth-imports-spawner",
        "spawner-imports-auth",
        "z2jh-imports-spawner",
        "policy-imports-culler",
        "policy-imports-idle-culler",
        "devcluster-imports-culler",
        "culler-imports-spawner",
        "spawner-imports-culler",
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, bad_import, contract):
    shutil.copytree(REPO / "jhplatform", tmp_path / "jhplatform", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "jhplatform" / module
    target.write_text(target.read_text() + f"\n{bad_import}  # added by the layer test\n")
    result = lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{CONTRACTS[contract]} BROKEN" in result.stdout
