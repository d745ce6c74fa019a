"""The process kubelet's storage mapping for the platform's volumes.

We test these aspects:
- a read-only mount of a claim (``readOnly`` on the mount, or on the claim source, with and
  without ``subPath``) maps to a per-pod copy without write permission: the data is readable,
  and nothing the process writes there reaches the claim's directory;
- a writable mount of the same claim in the same pod still writes to the claim;
- a memory-backed emptyDir at ``/dev/shm`` maps to a per-pod directory, never the host's
  ``/dev/shm``, and goes with the pod.
"""

from __future__ import annotations

import json
import os
import stat
import textwrap
import uuid

import pytest

from helpers import wait_for
from jhplatform.devcluster.cluster import Cluster
from jhplatform.devcluster.process_kubelet import ProcessKubelet

NS = "ns"
IMAGE = "quay.io/jupyterhub/singleuser:5.5"


@pytest.fixture
async def kubelet_env(tmp_path):
    cluster = Cluster()
    state = tmp_path / "state"
    kubelet = ProcessKubelet(cluster, state_dir=state, step_delay=0.01, restart_backoff=0.2, retry_interval=0.05)
    cluster.controllers.append(kubelet)
    cluster.create("namespaces", None, {"metadata": {"name": NS}})
    await cluster.start()
    try:
        yield cluster, kubelet, state
    finally:
        await cluster.stop()
        assert kubelet.pids() == []


def writable(path) -> bool:
    return bool(os.stat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


async def test_read_only_claim_mounts_and_per_pod_shm(kubelet_env):
    cluster, kubelet, state = kubelet_env
    cluster.create(
        "persistentvolumeclaims",
        NS,
        {"metadata": {"name": "refdata"}, "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}}},
    )
    claim_dir = state / "volumes" / NS / "refdata"
    (claim_dir / "v2").mkdir(parents=True)
    (claim_dir / "readme.txt").write_text("reference data\n")
    (claim_dir / "v2" / "weights.bin").write_text("w2")
    marker = f"jhplatform-test-{uuid.uuid4().hex}"
    code = textwrap.dedent(
        f"""
        import json, pathlib, time
        # Container paths in the code are rewritten to local ones: report by position.
        results = {{"writes": []}}
        for target in ("/data/ref/new.txt", "/data/src/new.txt", "/data/weights/new.txt", "/data/rw/written.txt"):
            try:
                pathlib.Path(target).write_text("x")
                results["writes"].append("written")
            except OSError as e:
                results["writes"].append(type(e).__name__)
        results["read"] = pathlib.Path("/data/ref/readme.txt").read_text()
        results["sub"] = pathlib.Path("/data/weights/weights.bin").read_text()
        pathlib.Path("/dev/shm/{marker}").write_bytes(b"batch")
        pathlib.Path("/tmp/out/results.json").write_text(json.dumps(results))
        time.sleep(60)
        """
    )
    pod = cluster.create(
        "pods",
        NS,
        {
            "metadata": {"name": "reader"},
            "spec": {
                "nodeName": "node-1",
                "restartPolicy": "OnFailure",
                "containers": [
                    {
                        "name": "notebook",
                        "image": IMAGE,
                        "command": ["python", "-c", code],
                        "volumeMounts": [
                            {"name": "ref", "mountPath": "/data/ref", "readOnly": True},
                            {"name": "ref-source-ro", "mountPath": "/data/src"},
                            {"name": "ref", "mountPath": "/data/weights", "readOnly": True, "subPath": "v2"},
                            {"name": "ref", "mountPath": "/data/rw"},
                            {"name": "shm", "mountPath": "/dev/shm"},
                            {"name": "out", "mountPath": "/tmp/out"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "ref", "persistentVolumeClaim": {"claimName": "refdata"}},
                    {"name": "ref-source-ro", "persistentVolumeClaim": {"claimName": "refdata", "readOnly": True}},
                    {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                    {"name": "out", "emptyDir": {}},
                ],
            },
        },
    )
    pod_dir = state / "pods" / NS / f"reader-{pod['metadata']['uid']}"
    results_file = pod_dir / "emptydir" / "out" / "results.json"
    await wait_for(results_file.exists, 15, message="script results")
    results = json.loads(results_file.read_text())
    assert results["read"] == "reference data\n" and results["sub"] == "w2"
    # Root ignores permissions, so the write may "succeed"; it must never reach the claim.
    expected = "written" if os.geteuid() == 0 else "PermissionError"
    assert results["writes"] == [expected] * 3 + ["written"]
    assert sorted(p.name for p in claim_dir.iterdir()) == ["readme.txt", "v2", "written.txt"], "only the writable mount wrote to the claim"
    assert sorted(p.name for p in (claim_dir / "v2").iterdir()) == ["weights.bin"]
    view = pod_dir / "readonly" / "ref"
    assert not writable(view) and not writable(view / "readme.txt")
    assert not writable(pod_dir / "readonly" / "ref" / "v2" / "weights.bin")
    # /dev/shm is the pod's own directory.
    assert (pod_dir / "emptydir" / "shm" / marker).read_bytes() == b"batch"
    assert not os.path.exists(f"/dev/shm/{marker}")
    cluster.delete("pods", NS, "reader", grace_period=1)
    await wait_for(lambda: cluster.store.find("pods", NS, "reader") is None, 10, message="pod gone")
    assert not (pod_dir / "emptydir").exists()
    assert (claim_dir / "readme.txt").read_text() == "reference data\n"
