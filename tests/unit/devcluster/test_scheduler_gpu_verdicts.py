"""The emulator's scheduler messages for GPU pods, read as the spawner reads them.

We test these aspects:
- on the default node pool (two CPU nodes, two 4-GPU A100 nodes tainted
  ``nvidia.com/gpu=present:NoSchedule``) the scheduler's FitError text for a GPU pod without a
  toleration, on a full pool, with a node selector that matches no node, and with both mistakes
  has kube-scheduler's format, and ``jhplatform.policy.unschedulable`` classifies each as the
  real reason (untolerated taint, capacity, node affinity).
"""

from __future__ import annotations

from collections import Counter

import pytest

from jhplatform.devcluster.nodes import DEFAULT_NODES, parse_nodes
from jhplatform.devcluster.scheduler import NodeUsage
from jhplatform.devcluster.scheduler import decide as schedule
from jhplatform.policy.unschedulable import CAPACITY, NODE_AFFINITY, UNTOLERATED_TAINT, classify_unschedulable

GPU = "nvidia.com/gpu"


def _pod(tolerations=(), node_selector=None, gpus=1, resource=GPU):
    return {
        "metadata": {"name": "jupyter-ada", "namespace": "gpu", "uid": "u1"},
        "spec": {"containers": [{"name": "notebook", "resources": {"limits": {resource: str(gpus)}, "requests": {resource: str(gpus)}}}],
                 "tolerations": list(tolerations), **({"nodeSelector": node_selector} if node_selector else {})},
    }


TOLERATE = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
# (id, pod, GPUs already held per GPU node, kind): the emulator's scheduler on the default pool.
EMULATED = [
    ("plain-profile-no-toleration", _pod(), 0, UNTOLERATED_TAINT),
    ("tolerated-full-pool", _pod([TOLERATE]), 4, CAPACITY),
    ("tolerated-selector-full-pool", _pod([TOLERATE], {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}), 4, CAPACITY),
    ("selector-matches-no-node", _pod([TOLERATE], {"nvidia.com/gpu.product": "NVIDIA-H100"}), 0, NODE_AFFINITY),
    ("selector-no-node-no-toleration", _pod([], {"nvidia.com/gpu.product": "NVIDIA-H100"}), 0, UNTOLERATED_TAINT),
]


@pytest.mark.parametrize("pod, held, kind", [e[1:] for e in EMULATED], ids=[e[0] for e in EMULATED])
def test_emulator_messages_classify_the_same(pod, held, kind):
    nodes = parse_nodes(DEFAULT_NODES)
    usage = {n["metadata"]["name"]: NodeUsage(requested=Counter({GPU: held}), pods=1)
             for n in nodes if "gpu" in n["metadata"]["name"]}
    decision = schedule(pod, nodes, usage, {GPU: 1, "cpu": 0}, lambda name: None)
    assert decision.node is None
    assert decision.message.startswith("0/4 nodes are available: ") and ". preemption: 0/4 nodes are available: " in decision.message
    assert classify_unschedulable(decision.message, (GPU,)).kind == kind, decision.message


