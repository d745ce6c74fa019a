"""The import layering in pyproject.toml's [tool.importlinter] holds.

We test these aspects:
- policy modules (security, quota, profiles, storage, quantity) import nothing from the spawner,
  the emulator, the CLI or the libraries that do I/O;
- the emulator imports only policy from the rest of jhplatform.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout
