"""Fixtures shared by every tier.

- ``devcluster``: one emulator per test session on a stable loopback URL, with ``KUBECONFIG``
  pointing at it (KubeSpawner caches its client config per process, so the URL must not move).
- ``cluster``: the same emulator, reset before each test (objects, faults and the request log
  cleared, default namespaces and nodes recreated, simulated kubelet), with KubeSpawner's
  class-level reflectors stopped after the test so none outlives it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from jhplatform.devcluster.runtime import DevCluster

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CHP_BIN = REPO / ".venv" / "node_modules" / ".bin"

# kubernetes_asyncio reads KUBECONFIG once, at import time, so it must point at the session
# emulator's kubeconfig before any test module imports KubeSpawner.
SESSION_DIR = Path(tempfile.mkdtemp(prefix="jhplatform-tests-"))
KUBECONFIG = SESSION_DIR / "kubeconfig"
os.environ["KUBECONFIG"] = str(KUBECONFIG)

# Processes the suite starts (hub, proxy, notebook servers) must find the venv's tools.
os.environ["PATH"] = os.pathsep.join([str(VENV_BIN), str(CHP_BIN), os.environ.get("PATH", "")])


async def stop_kubespawner_reflectors() -> None:
    """KubeSpawner keeps its pod and event reflectors on the class; stop them between tests."""
    from kubespawner import KubeSpawner

    await KubeSpawner._stop_all_reflectors()


@pytest.fixture(scope="session")
async def devcluster():
    server = DevCluster(state_dir=SESSION_DIR / "state", kubelet="simulated")
    await server.start("127.0.0.1", 0)
    server.write_kubeconfig(KUBECONFIG)
    try:
        yield server
    finally:
        try:
            await stop_kubespawner_reflectors()
        except Exception:
            pass
        await server.stop()


@pytest.fixture
async def cluster(devcluster):
    await devcluster.set_kubelet("simulated")
    await devcluster.reset()
    yield devcluster
    await stop_kubespawner_reflectors()


@pytest.fixture
async def process_cluster(devcluster):
    """The session emulator with the process kubelet: pods run as real local processes."""
    await devcluster.reset()
    await devcluster.set_kubelet("process")
    yield devcluster
    await stop_kubespawner_reflectors()
    await devcluster.reset()
    await devcluster.set_kubelet("simulated")


@pytest.fixture
def chp_path() -> str:
    path = shutil.which("configurable-http-proxy")
    assert path, "configurable-http-proxy is not installed: run `make test` (it installs it with npm)"
    return path
