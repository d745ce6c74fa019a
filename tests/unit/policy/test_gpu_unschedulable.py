"""Why the scheduler cannot place a GPU pod (jhplatform.policy.unschedulable).

We test these aspects:
- the classification of real kube-scheduler ``FailedScheduling`` messages (1.25+ and older
  formats): single and several reasons, MIG and AMD resources, a resource name that is a prefix
  of another, untolerated GPU and non-GPU taints, node affinity/selector mismatches, cordoned
  nodes, missing claims, no nodes at all;
- the pod condition is read only while the pod is unbound and ``Unschedulable``;
- what the user is told (capacity vs. configuration; the alternative, or none) and the fix the
  hub log gets.
"""

from __future__ import annotations

import pytest

from jhplatform.policy.unschedulable import (
    CAPACITY,
    NODE_AFFINITY,
    OTHER,
    UNTOLERATED_TAINT,
    Unschedulable,
    admin_fix,
    classify_unschedulable,
    unschedulable_condition,
    user_message,
)

GPU = "nvidia.com/gpu"
MIG = "nvidia.com/mig-1g.10gb"
AMD = "amd.com/gpu"
VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"

# (id, message, the pod's GPU resource, kind, insufficient GPU, taints)
MESSAGES = [
    ("insufficient-gpu-one-node",
     f"0/1 nodes are available: 1 Insufficient {GPU}. preemption: 0/1 nodes are available: 1 {VICTIMS}.",
     GPU, CAPACITY, (GPU,), ()),
    ("insufficient-gpu-and-affinity",
     f"0/4 nodes are available: 2 Insufficient {GPU}, 2 node(s) didn't match Pod's node affinity/selector. "
     f"preemption: 0/4 nodes are available: 2 {VICTIMS}, 2 {NOT_HELPFUL}.",
     GPU, CAPACITY, (GPU,), ()),
    ("insufficient-gpu-and-cpu",
     f"0/3 nodes are available: 1 Insufficient cpu, 2 Insufficient {GPU}. preemption: 0/3 nodes are available: 3 {VICTIMS}.",
     GPU, CAPACITY, (GPU,), ()),
    ("insufficient-gpu-and-gpu-taint",  # the message: the plain profile on the tainted pool
     f"0/4 nodes are available: 2 Insufficient {GPU}, 2 node(s) had untolerated taint {{{GPU}: present}}. "
     f"preemption: 0/4 nodes are available: 2 {VICTIMS}, 2 {NOT_HELPFUL}.",
     GPU, UNTOLERATED_TAINT, (GPU,), ((GPU, "present"),)),
    ("gpu-taint-before-1.25",
     f"0/3 nodes are available: 1 Insufficient {GPU}, 2 node(s) had taint {{{GPU}: present}}, that the pod didn't tolerate.",
     GPU, UNTOLERATED_TAINT, (GPU,), ((GPU, "present"),)),
    ("only-gpu-taint",
     f"0/2 nodes are available: 2 node(s) had untolerated taint {{{GPU}: present}}. "
     f"preemption: 0/2 nodes are available: 2 {NOT_HELPFUL}.",
     GPU, UNTOLERATED_TAINT, (), ((GPU, "present"),)),
    ("other-taint-no-insufficient",
     f"0/4 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 2 node(s) had untolerated taint "
     f"{{dedicated: ml}}. preemption: 0/4 nodes are available: 4 {NOT_HELPFUL}.",
     GPU, UNTOLERATED_TAINT, (), (("dedicated", "ml"),)),
    ("other-taint-and-full-gpu-nodes",  # the tolerated GPU nodes are full; another pool is tainted
     f"0/4 nodes are available: 2 Insufficient {GPU}, 2 node(s) had untolerated taint {{maintenance: }}. "
     f"preemption: 0/4 nodes are available: 2 {VICTIMS}, 2 {NOT_HELPFUL}.",
     GPU, CAPACITY, (GPU,), (("maintenance", ""),)),
    ("affinity-matches-no-node",
     f"0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector. "
     f"preemption: 0/4 nodes are available: 4 {NOT_HELPFUL}.",
     GPU, NODE_AFFINITY, (), ()),
    ("node-selector-before-1.21",
     "0/3 nodes are available: 3 node(s) didn't match node selector.",
     GPU, NODE_AFFINITY, (), ()),
    ("affinity-and-gpu-taint",  # selector matches nothing and no toleration: the taint first
     f"0/4 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 2 node(s) had untolerated taint "
     f"{{{GPU}: present}}. preemption: 0/4 nodes are available: 4 {NOT_HELPFUL}.",
     GPU, UNTOLERATED_TAINT, (), ((GPU, "present"),)),
    ("mig-insufficient",
     f"0/2 nodes are available: 2 Insufficient {MIG}. preemption: 0/2 nodes are available: 2 {VICTIMS}.",
     MIG, CAPACITY, (MIG,), ()),
    ("mig-with-vendor-taint",
     f"0/3 nodes are available: 1 Insufficient {MIG}, 2 node(s) had untolerated taint {{{GPU}: present}}. "
     f"preemption: 0/3 nodes are available: 1 {VICTIMS}, 2 {NOT_HELPFUL}.",
     MIG, UNTOLERATED_TAINT, (MIG,), ((GPU, "present"),)),
    ("amd-insufficient",
     f"0/2 nodes are available: 2 Insufficient {AMD}. preemption: 0/2 nodes are available: 2 {VICTIMS}.",
     AMD, CAPACITY, (AMD,), ()),
    ("amd-taint",
     f"0/2 nodes are available: 1 Insufficient {AMD}, 1 node(s) had untolerated taint {{{AMD}: present}}. "
     f"preemption: 0/2 nodes are available: 1 {VICTIMS}, 1 {NOT_HELPFUL}.",
     AMD, UNTOLERATED_TAINT, (AMD,), ((AMD, "present"),)),
    ("prefix-resource-is-another",  # nvidia.com/gpu.shared is not nvidia.com/gpu
     f"0/2 nodes are available: 2 Insufficient {GPU}.shared. preemption: 0/2 nodes are available: 2 {VICTIMS}.",
     GPU, CAPACITY, (), ()),
    ("prefix-resource-is-ours",
     f"0/2 nodes are available: 2 Insufficient {GPU}.shared. preemption: 0/2 nodes are available: 2 {VICTIMS}.",
     f"{GPU}.shared", CAPACITY, (f"{GPU}.shared",), ()),
    ("too-many-pods",
     f"0/2 nodes are available: 2 Too many pods. preemption: 0/2 nodes are available: 2 {VICTIMS}.",
     GPU, CAPACITY, (), ()),
    ("cordoned",
     f"0/2 nodes are available: 2 node(s) were unschedulable. preemption: 0/2 nodes are available: 2 {NOT_HELPFUL}.",
     GPU, OTHER, (), ()),
    ("not-ready-taint-only",
     "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. "
     f"preemption: 0/1 nodes are available: 1 {NOT_HELPFUL}.",
     GPU, OTHER, (), (("node.kubernetes.io/not-ready", ""),)),
    ("missing-claim",
     f'0/4 nodes are available: persistentvolumeclaim "claim-ada" not found. preemption: 0/4 nodes are available: 4 {NOT_HELPFUL}.',
     GPU, OTHER, (), ()),
    ("no-nodes", "no nodes available to schedule pods", GPU, OTHER, (), ()),
    ("empty", "", GPU, OTHER, (), ()),
]


@pytest.mark.parametrize("message, resource, kind, gpu, taints", [m[1:] for m in MESSAGES], ids=[m[0] for m in MESSAGES])
def test_classify_real_scheduler_messages(message, resource, kind, gpu, taints):
    verdict = classify_unschedulable(message, (resource,))
    assert (verdict.kind, verdict.insufficient_gpu, verdict.taints) == (kind, gpu, taints)
    assert verdict.message == message
    assert verdict.is_capacity == (kind == CAPACITY)


def test_insufficient_other_resources_are_listed():
    verdict = classify_unschedulable("0/3 nodes are available: 1 Insufficient cpu, 2 Insufficient memory, 1 Too many pods.", (GPU,))
    assert verdict == Unschedulable(CAPACITY, verdict.message, (), ("cpu", "memory", "pods"), (), False)


CONDITION = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}
CONDITIONS = [
    ("unschedulable", {"spec": {}, "status": {"conditions": [CONDITION]}}, CONDITION["message"]),
    ("bound", {"spec": {"nodeName": "n"}, "status": {"conditions": [CONDITION]}}, None),
    ("gated", {"spec": {}, "status": {"conditions": [{**CONDITION, "reason": "SchedulingGated"}]}}, None),
    ("scheduled", {"spec": {}, "status": {"conditions": [{**CONDITION, "status": "True"}]}}, None),
    ("no-condition", {"spec": {}, "status": {}}, None),
    ("no-pod", None, None),
]


@pytest.mark.parametrize("pod, expected", [c[1:] for c in CONDITIONS], ids=[c[0] for c in CONDITIONS])
def test_unschedulable_condition(pod, expected):
    assert unschedulable_condition(pod) == expected


TAINTED = classify_unschedulable(MESSAGES[3][1], (GPU,))
FULL = classify_unschedulable(MESSAGES[0][1], (GPU,))
NO_NODE = classify_unschedulable(MESSAGES[8][1], (GPU,))
ROOMLESS = classify_unschedulable("0/2 nodes are available: 2 Insufficient memory.", (GPU,))
USER_MESSAGES = [
    ("capacity", FULL, "A100", "CPU",
     "No node has a free A100 GPU right now, so your server was stopped instead of waiting. Pick the CPU profile or try again later."),
    ("capacity-no-alternative", FULL, "", None,
     "No node has a free GPU right now, so your server was stopped instead of waiting. "
     "There is no profile without a GPU to pick instead; try again later."),
    ("capacity-no-room", ROOMLESS, "", "CPU",
     "No GPU node has room for your server right now, so it was stopped instead of waiting. Pick the CPU profile or try again later."),
    ("taint", TAINTED, "", "CPU",
     "The GPU profile cannot start because of how the cluster is set up, so your server was stopped. "
     "Your hub admin can see the details in the hub log. Pick the CPU profile."),
    ("affinity-no-alternative", NO_NODE, "", None,
     "The GPU profile cannot start because of how the cluster is set up, so your server was stopped. "
     "Your hub admin can see the details in the hub log. There is no profile without a GPU to pick instead; "
     "please contact your hub admin."),
]


@pytest.mark.parametrize("verdict, type_, alternative, expected", [m[1:] for m in USER_MESSAGES], ids=[m[0] for m in USER_MESSAGES])
def test_user_message(verdict, type_, alternative, expected):
    assert user_message(verdict, "GPU", type_, alternative) == expected


def test_configuration_messages_never_say_no_free_gpu():
    for verdict in (TAINTED, NO_NODE, classify_unschedulable("no nodes available to schedule pods", (GPU,))):
        assert "free" not in user_message(verdict, "A100", "A100", "CPU")


def test_admin_fix_names_the_toleration_and_the_label():
    fix = admin_fix(TAINTED, {}, (GPU,))
    assert "nvidia.com/gpu=present" in fix
    assert "{'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': 'NoSchedule'}" in fix
    assert "gpu_default_toleration" in fix
    fix = admin_fix(NO_NODE, {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100"}}, (GPU,))
    assert "nvidia.com/gpu.product=NVIDIA-H100" in fix and "label value" in fix
    affinity = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["x"]}]}]}}}}
    assert "'values': ['x']" in admin_fix(NO_NODE, affinity, (GPU,))
    assert "gpu_unschedulable_timeout" in admin_fix(FULL)
    assert "scheduler's message" in admin_fix(classify_unschedulable("no nodes available to schedule pods"))
