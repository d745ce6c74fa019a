"""Fixtures shared by every tier.

- ``devcluster``: one emulator per test session on a stable loopback URL, with ``KUBECONFIG``
  pointing at it (KubeSpawner caches its client config per process, so the URL must not move).
- The hub's identity: ``KUBECONFIG`` (what KubeSpawner and every hub the tests start use) is the
  ``jhub:hub`` ServiceAccount's, and every namespace gets the chart's Role + RoleBinding plus
  helm-values' extra RBAC (tests/hubrbac.py); ``hub_rbac.use()`` narrows that for a test. Tests
  that do admin work use ``ADMIN_KUBECONFIG`` or the in-process ``cluster.cluster`` API.
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

from hubrbac import EXTRA_RBAC, HUB_NAMESPACE, HUB_SERVICE_ACCOUNT, HubRbac

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CHP_BIN = REPO / ".venv" / "node_modules" / ".bin"

# kubernetes_asyncio reads KUBECONFIG once, at import time, so it must point at the session
# emulator's kubeconfig before any test module imports KubeSpawner.
SESSION_DIR = Path(tempfile.mkdtemp(prefix="jhplatform-tests-"))
KUBECONFIG = SESSION_DIR / "kubeconfig"
ADMIN_KUBECONFIG = SESSION_DIR / "admin.kubeconfig"
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
    server.hub_rbac = HubRbac()
    server.hub_rbac.install(server.cluster)
    await server.start("127.0.0.1", 0)
    server.admin_kubeconfig = server.write_kubeconfig(ADMIN_KUBECONFIG)
    server.write_serviceaccount_kubeconfig(KUBECONFIG, HUB_NAMESPACE, HUB_SERVICE_ACCOUNT)
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
    devcluster.hub_rbac.extras = tuple(EXTRA_RBAC)  # a test's narrowing ends with it
    await devcluster.reset()
    yield devcluster
    await stop_kubespawner_reflectors()


@pytest.fixture
async def process_cluster(devcluster):
    """The session emulator with the process kubelet: pods run as real local processes."""
    devcluster.hub_rbac.extras = tuple(EXTRA_RBAC)
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


@pytest.fixture
async def notebook_stub():
    """The port of a loopback responder answering 200 to everything (helpers.start_stub)."""
    from helpers import start_stub

    runner, port = await start_stub()
    yield port
    await runner.cleanup()
