"""The GPU ledger (jhplatform.policy.gpu_ledger): capacity, usage, caps and the messages users see.

Aspects covered:
- decisions as a table: no capacity source, quota (with this hub's pods, other workloads,
  a stale quota status, reservations in flight, a pod the apiserver accepted that the pod
  watch does not show yet, several quotas, another namespace), pools by
  type and by resource, node allocatable (cordoned and NotReady nodes left out), the tightest
  source winning, per-user limits (plain and by group), group limits (charged to the groups a
  server started under), caps checked before capacity, terminal pods, a key's own usage;
- the user-facing messages and the form's availability text, whole strings;
- pod usage from the spec (containers summed, init containers maxed, requests defaulting to
  limits, MIG names) and the spawner's annotations;
- reservations: reserve/release, a reservation and its pod counted once, expiry of form
  reservations, rebuild from pods keeping reservations, pods turning terminal;
- a decision's cost does not grow with the number of running pods (5,000).
"""

from __future__ import annotations

import statistics
import time

import pytest

from jhplatform.policy.gpu_ledger import (
    GPU_GROUPS_ANNOTATION,
    Decision,
    GpuLedger,
    Policy,
    Usage,
    availability_text,
    gpu_annotations,
    pod_usage,
    render_message,
)

NS = "jhub"
GPU = "nvidia.com/gpu"
PRODUCT = "nvidia.com/gpu.product"
A100_SEL = ((PRODUCT, ("NVIDIA-A100-SXM4-40GB",)),)


def gpu_pod(name, user="someone", n=1, ns=NS, type="A100", groups=(), phase="Running", resource=GPU):
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "annotations": {"hub.jupyter.org/username": user, **gpu_annotations(resource, n, type, groups)},
        },
        "spec": {"containers": [{"name": "notebook", "resources": {"limits": {resource: str(n), "cpu": "1"}}}]},
        "status": {"phase": phase},
    }


def quota(name, hard, used, ns=NS, resource=GPU):
    return {"metadata": {"name": name, "namespace": ns},
            "status": {"hard": {f"requests.{resource}": str(hard), "pods": "100"}, "used": {f"requests.{resource}": str(used), "pods": "3"}}}


def node(name, gpus, product="NVIDIA-A100-SXM4-40GB", unschedulable=False, ready=True):
    return {
        "metadata": {"name": name, "labels": {PRODUCT: product}},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {"allocatable": {GPU: str(gpus), "cpu": "16"},
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def ledger_with(pods=(), quotas=(), nodes=None, policy=None, reservations=(), created=()):
    ledger = GpuLedger(policy or Policy(), namespace=NS)
    ledger.add_kind(GPU, "A100", A100_SEL)
    ledger.rebuild(list(pods))
    if quotas:
        ledger.set_quotas(NS, [q for q in quotas if q["metadata"]["namespace"] == NS])
        others = {q["metadata"]["namespace"] for q in quotas} - {NS}
        for ns in others:
            ledger.set_quotas(ns, [q for q in quotas if q["metadata"]["namespace"] == ns])
    if nodes is not None:
        ledger.set_nodes(nodes)
    for key, usage in reservations:
        ledger.reserve(key, usage)
    for key in created:
        ledger.pod_created(key)
    return ledger


def res(user="someone", n=1, groups=(), type="A100", ns=NS):
    return Usage.of(user, ns, GPU, n, type, groups)


FIELDS = ("allowed", "reason", "free", "total", "user_used", "user_cap")


def outcome(d: Decision) -> dict:
    return {k: getattr(d, k) for k in FIELDS}


def ok(free=None, total=None, used=0, cap=None):
    return dict(allowed=True, reason=None, free=free, total=total, user_used=used, user_cap=cap)


def no(reason, free=None, total=None, used=0, cap=None):
    return dict(allowed=False, reason=reason, free=free, total=total, user_used=used, user_cap=cap)


EIGHT_BUSY = [gpu_pod(f"p{i}", f"u{i}") for i in range(8)]

DECISIONS = [
    # id, ledger kwargs, (user, groups, count), expected
    ("no-capacity-source", {}, ("ada", (), 1), ok()),
    ("quota-empty", {"quotas": [quota("gpu", 8, 0)]}, ("ada", (), 1), ok(8, 8)),
    ("quota-full-of-hub-pods", {"quotas": [quota("gpu", 8, 8)], "pods": EIGHT_BUSY}, ("ada", (), 1), no("quota", 0, 8)),
    ("quota-others-use-three", {"quotas": [quota("gpu", 8, 8)], "pods": EIGHT_BUSY[:5]}, ("ada", (), 1), no("quota", 0, 8)),
    ("quota-others-leave-one", {"quotas": [quota("gpu", 8, 7)], "pods": EIGHT_BUSY[:5]}, ("ada", (), 1), ok(1, 8)),
    ("quota-status-stale-behind-pods", {"quotas": [quota("gpu", 8, 0)], "pods": EIGHT_BUSY[:2]}, ("ada", (), 1), ok(6, 8)),
    ("quota-reservations-in-flight", {"quotas": [quota("gpu", 8, 0)], "reservations": [(f"{NS}/r{i}", res(f"r{i}")) for i in range(3)]},
     ("ada", (), 1), ok(5, 8)),
    ("quota-counts-accepted-pod-not-yet-watched", {"quotas": [quota("gpu", 8, 3)], "pods": EIGHT_BUSY[:2],
                                                   "reservations": [(f"{NS}/new", res("n")), (f"{NS}/later", res("l"))], "created": [f"{NS}/new"]},
     ("ada", (), 1), ok(4, 8)),
    ("quota-needs-two-has-one", {"quotas": [quota("gpu", 8, 7)], "pods": EIGHT_BUSY[:7]}, ("ada", (), 2), no("quota", 1, 8)),
    ("quota-other-namespace-ignored", {"quotas": [quota("gpu", 1, 1, ns="elsewhere")]}, ("ada", (), 1), ok()),
    ("quota-tightest-of-two", {"quotas": [quota("a-big", 8, 0), quota("b-small", 2, 0)]}, ("ada", (), 1), ok(2, 2)),
    ("quota-zero", {"quotas": [quota("gpu", 0, 0)]}, ("ada", (), 1), no("quota", 0, 0)),
    ("terminal-pods-not-counted", {"quotas": [quota("gpu", 2, 0)], "pods": [gpu_pod("done", phase="Succeeded"), gpu_pod("failed", phase="Failed")]},
     ("ada", (), 1), ok(2, 2)),
    ("pool-by-type", {"policy": Policy(pools={"A100": 2}), "pods": EIGHT_BUSY[:2]}, ("ada", (), 1), no("pool", 0, 2)),
    ("pool-other-type-not-counted", {"policy": Policy(pools={"A100": 2}), "pods": [gpu_pod("v", type="V100")] * 1}, ("ada", (), 1), ok(2, 2)),
    ("pool-by-resource", {"policy": Policy(pools={GPU: 3}), "pods": [gpu_pod("v", type="V100")]}, ("ada", (), 1), ok(2, 3)),
    ("pool-tighter-than-quota", {"policy": Policy(pools={"A100": 1}), "quotas": [quota("gpu", 8, 0)]}, ("ada", (), 1), ok(1, 1)),
    ("nodes-allocatable", {"policy": Policy(capacity_from_nodes=True), "nodes": [node("g0", 4), node("g1", 4)], "pods": EIGHT_BUSY[:3]},
     ("ada", (), 1), ok(5, 8)),
    ("nodes-cordoned-and-notready-left-out",
     {"policy": Policy(capacity_from_nodes=True), "nodes": [node("g0", 4), node("g1", 4, unschedulable=True), node("g2", 4, ready=False)]},
     ("ada", (), 1), ok(4, 4)),
    ("nodes-other-product-left-out", {"policy": Policy(capacity_from_nodes=True), "nodes": [node("g0", 4, product="Tesla-V100")]},
     ("ada", (), 1), no("nodes", 0, 0)),
    ("user-limit-reached", {"policy": Policy(user_limit=1), "pods": [gpu_pod("a", "ada")], "quotas": [quota("gpu", 8, 1)]},
     ("ada", (), 1), no("user_cap", 7, 8, used=1, cap=1)),
    ("user-limit-too-small-for-choice", {"policy": Policy(user_limit=2), "pods": [gpu_pod("a", "ada")]}, ("ada", (), 2), no("user_cap", used=1, cap=2)),
    ("user-limit-other-users-pods", {"policy": Policy(user_limit=1), "pods": [gpu_pod("b", "bob")]}, ("ada", (), 1), ok(cap=1)),
    ("user-limit-by-group-largest", {"policy": Policy(user_limit=1, user_limit_by_group={"res": 4, "staff": 2}), "pods": [gpu_pod("a", "ada")]},
     ("ada", ("res", "staff"), 2), ok(used=1, cap=4)),
    ("group-limit-reached", {"policy": Policy(group_limits={"students": 2}), "pods": [gpu_pod("b", "bob", groups=["students"]), gpu_pod("c", "cy", groups=["students"])]},
     ("ada", ("students",), 1), no("group_cap")),
    ("group-limit-charged-to-start-groups", {"policy": Policy(group_limits={"students": 2}), "pods": [gpu_pod("b", "bob", groups=["staff"]), gpu_pod("c", "cy", groups=["students"])]},
     ("ada", ("students",), 1), ok()),
    ("group-limit-not-member", {"policy": Policy(group_limits={"students": 0})}, ("ada", ("staff",), 1), ok()),
    ("caps-before-capacity", {"policy": Policy(user_limit=1), "pods": [gpu_pod("a", "ada")], "quotas": [quota("gpu", 1, 1)]},
     ("ada", (), 1), no("user_cap", 0, 1, used=1, cap=1)),
    ("no-gpus-asked", {"quotas": [quota("gpu", 0, 0)]}, ("ada", (), 0), ok(None, None)),
]


@pytest.mark.parametrize("setup, ask, expected", [c[1:] for c in DECISIONS], ids=[c[0] for c in DECISIONS])
def test_decide(setup, ask, expected):
    ledger = ledger_with(**setup)
    user, groups, count = ask
    d = ledger.decide(user, groups, GPU, "A100", count, selector=A100_SEL if setup.get("nodes") else None)
    assert outcome(d) == expected
    assert bool(d.message) != d.allowed


MESSAGES = [
    ("all-in-use", Decision(False, "quota", "", 0, 8, 0, 1, count=1, type="A100"),
     "All 8 A100 GPUs are in use (yours: 0 of 1). Pick the CPU profile or try again later."),
    ("all-in-use-no-cap", Decision(False, "pool", "", 0, 8, 2, None, count=1, type="A100"),
     "All 8 A100 GPUs are in use (yours: 2). Pick the CPU profile or try again later."),
    ("only-one", Decision(False, "quota", "", 0, 1, 0, None, count=1, type=""),
     "The only GPU is in use (yours: 0). Pick the CPU profile or try again later."),
    ("fewer-free", Decision(False, "quota", "", 1, 8, 0, None, count=2, type="A100"),
     "Only 1 of 8 A100 GPUs is free and this choice needs 2. Pick fewer GPUs or the CPU profile, or try again later."),
    ("none-at-all", Decision(False, "nodes", "", 0, 0, 0, None, count=1, type="A100"),
     "No A100 GPUs are available on this hub right now. Pick the CPU profile or ask your hub admin."),
    ("user-at-limit", Decision(False, "user_cap", "", 5, 8, 1, 1, count=1, type="A100"),
     "You already use 1 of your 1 GPU (the per-user limit). Stop a server that uses a GPU, or pick the CPU profile."),
    ("user-needs-more", Decision(False, "user_cap", "", 5, 8, 1, 2, count=2, type="A100"),
     "This choice needs 2 GPUs, but you may use only 1 more (you use 1 of 2). Pick fewer GPUs, stop a server that uses a GPU, or pick the CPU profile."),
    ("group-at-limit", Decision(False, "group_cap", "", 5, 8, 0, None, count=1, group="students", group_used=2, group_cap=2),
     "Your group students already uses 2 of its 2 GPUs (yours: 0). Pick the CPU profile, or try again when a member of students stops a GPU server."),
    ("group-needs-more", Decision(False, "group_cap", "", 5, 8, 0, None, count=4, group="lab", group_used=2, group_cap=4),
     "This choice needs 4 GPUs, but your group lab has only 2 of its 4 left. Pick fewer GPUs or the CPU profile, or try again later."),
    ("api-quota-exceeded", Decision(False, "quota_exceeded", "", None, None, 0, None, type="A100"),
     "Another workload took the last free A100 GPU in this namespace's quota just before your server could start, so nothing was started. "
     "Pick the CPU profile or try again later."),
    ("unschedulable", Decision(False, "unschedulable", "", None, None, 0, None, type="A100"),
     "No node has a free A100 GPU right now, so your server was stopped instead of waiting. Pick the CPU profile or try again later."),
    ("allowed", Decision(True, None, "", 3, 8, 0, None, count=1), ""),
]


@pytest.mark.parametrize("decision, expected", [m[1:] for m in MESSAGES], ids=[m[0] for m in MESSAGES])
def test_messages(decision, expected):
    assert render_message(decision, "CPU") == expected


WITHOUT_ALTERNATIVE = [
    ("user-cap-full", Decision(False, "user_cap", "", 3, 8, 1, 1, count=1),
     "You already use 1 of your 1 GPU (the per-user limit). Stop a server that uses a GPU."),
    ("user-cap-partial", Decision(False, "user_cap", "", 3, 8, 1, 2, count=2),
     "This choice needs 2 GPUs, but you may use only 1 more (you use 1 of 2). Pick fewer GPUs or stop a server that uses a GPU."),
    ("group-full", Decision(False, "group_cap", "", 3, 8, 0, None, count=1, group="g", group_used=2, group_cap=2),
     "Your group g already uses 2 of its 2 GPUs (yours: 0). Try again when a member of g stops a GPU server."),
    ("group-partial", Decision(False, "group_cap", "", 3, 8, 0, None, count=2, group="g", group_used=1, group_cap=2),
     "This choice needs 2 GPUs, but your group g has only 1 of its 2 left. Pick fewer GPUs or try again later."),
    ("none-available", Decision(False, "quota", "", 0, 0, 0, None, count=1), "No GPUs are available on this hub right now. Ask your hub admin."),
    ("all-in-use", Decision(False, "quota", "", 0, 8, 0, 1, count=1, type="A100"), "All 8 A100 GPUs are in use (yours: 0 of 1). Try again later."),
    ("too-few-free", Decision(False, "pool", "", 1, 8, 0, None, count=2), "Only 1 of 8 GPUs is free and this choice needs 2. Pick fewer GPUs or try again later."),
    ("quota-exceeded", Decision(False, "quota_exceeded", "", None, None, 0, None),
     "Another workload took the last free GPU in this namespace's quota just before your server could start, so nothing was started. Try again later."),
    ("unschedulable", Decision(False, "unschedulable", "", None, None, 0, None),
     "No node has a free GPU right now, so your server was stopped instead of waiting. Try again later."),
    ("other", Decision(False, "mystery", "", None, None, 0, None), "Your server could not get a GPU. Try again later."),
]


@pytest.mark.parametrize("decision, expected", [w[1:] for w in WITHOUT_ALTERNATIVE], ids=[w[0] for w in WITHOUT_ALTERNATIVE])
def test_message_without_alternative_names_no_profile(decision, expected):
    assert render_message(decision) == f"{expected} There is no profile without a GPU to pick instead."


AVAILABILITY = [
    ("free-and-cap", Decision(True, None, "", 3, 8, 0, 1, type="A100"), "3 of 8 A100 free · you use 0 of 1"),
    ("free-no-cap", Decision(True, None, "", 3, 8, 2, None, type="A100"), "3 of 8 A100 free · you use 2"),
    ("no-type", Decision(True, None, "", 1, 2, 0, None), "1 of 2 GPUs free · you use 0"),
    ("overcommitted-shows-zero", Decision(False, "quota", "", -1, 8, 0, None, type="A100"), "0 of 8 A100 free · you use 0"),
    ("unknown-capacity", Decision(True, None, "", None, None, 0, 1), "you use 0 of 1 GPU"),
    ("unknown-capacity-no-cap", Decision(True, None, "", None, None, 2, None), "you use 2 GPUs"),
]


@pytest.mark.parametrize("decision, expected", [a[1:] for a in AVAILABILITY], ids=[a[0] for a in AVAILABILITY])
def test_availability_text(decision, expected):
    assert availability_text(decision) == expected


def pod_spec(containers=(), init=(), phase="Running", annotations=None):
    return {"metadata": {"name": "p", "namespace": NS, "annotations": annotations or {}},
            "spec": {"containers": list(containers), "initContainers": list(init)}, "status": {"phase": phase}}


def ctr(limits=None, requests=None):
    return {"name": "c", "resources": {k: v for k, v in (("limits", limits), ("requests", requests)) if v is not None}}


POD_USAGE = [
    ("no-gpu", pod_spec([ctr({"cpu": "2"})]), None),
    ("limit-only", pod_spec([ctr({GPU: "2"})]), Usage("", NS, ((GPU, 2),))),
    ("request-wins-over-limit", pod_spec([ctr({GPU: "2"}, {GPU: "2"})]), Usage("", NS, ((GPU, 2),))),
    ("containers-summed", pod_spec([ctr({GPU: "1"}), ctr({GPU: "2"})]), Usage("", NS, ((GPU, 3),))),
    ("init-maxed", pod_spec([ctr({GPU: "1"})], [ctr({GPU: "2"})]), Usage("", NS, ((GPU, 2),))),
    ("mig-resource", pod_spec([ctr({"nvidia.com/mig-1g.10gb": "1"})]), Usage("", NS, (("nvidia.com/mig-1g.10gb", 1),))),
    ("amd", pod_spec([ctr({"amd.com/gpu": "1"})]), Usage("", NS, (("amd.com/gpu", 1),))),
    ("terminal", pod_spec([ctr({GPU: "1"})], phase="Failed"), None),
    ("annotations", pod_spec([ctr({GPU: "1"})], annotations={"hub.jupyter.org/username": "ada", **gpu_annotations(GPU, 1, "A100", ["b", "a"])}),
     Usage("ada", NS, ((GPU, 1),), "A100", frozenset({"a", "b"}))),
    ("bad-groups-annotation", pod_spec([ctr({GPU: "1"})], annotations={GPU_GROUPS_ANNOTATION: "not json"}), Usage("", NS, ((GPU, 1),))),
]


@pytest.mark.parametrize("pod, expected", [p[1:] for p in POD_USAGE], ids=[p[0] for p in POD_USAGE])
def test_pod_usage(pod, expected):
    assert pod_usage(pod) == expected


def test_pod_usage_known_resource():
    pod = pod_spec([ctr({"example.com/accelerator": "1"})])
    assert pod_usage(pod) is None
    assert pod_usage(pod, ["example.com/accelerator"]).counts == (("example.com/accelerator", 1),)


def test_gpu_annotations():
    assert gpu_annotations(GPU, 2, "A100", ["z", "a"]) == {
        "jhplatform.io/gpu": "nvidia.com/gpu=2",
        "jhplatform.io/gpu-type": "A100",
        "jhplatform.io/gpu-groups": '["a", "z"]',
    }


def test_reserve_release_and_pod_counted_once():
    ledger = ledger_with(quotas=[quota("gpu", 2, 0)])
    ledger.reserve(f"{NS}/jupyter-ada", res("ada"))
    assert outcome(ledger.decide("bob", (), GPU, "A100", 1)) == ok(1, 2)
    # The pod appears (the quota's status now counts it too): still one GPU, not two.
    ledger.pod_updated(f"{NS}/jupyter-ada", gpu_pod("jupyter-ada", "ada"))
    ledger.set_quotas(NS, [quota("gpu", 2, 1)])
    assert outcome(ledger.decide("bob", (), GPU, "A100", 1)) == ok(1, 2)
    assert ledger.user_used("ada") == 1
    # The spawn ends: the reservation goes, the pod keeps counting.
    assert ledger.release(f"{NS}/jupyter-ada") is True
    assert ledger.release(f"{NS}/jupyter-ada") is False
    assert outcome(ledger.decide("bob", (), GPU, "A100", 1)) == ok(1, 2)
    # The server stops.
    ledger.pod_removed(f"{NS}/jupyter-ada")
    ledger.set_quotas(NS, [quota("gpu", 2, 0)])
    assert outcome(ledger.decide("bob", (), GPU, "A100", 1)) == ok(2, 2)
    assert ledger.user_used("ada") == 0


def test_own_key_not_counted_against_itself():
    ledger = ledger_with(quotas=[quota("gpu", 1, 0)], policy=Policy(user_limit=1))
    ledger.reserve(f"{NS}/jupyter-ada", res("ada"), expires=100.0)
    assert ledger.decide("ada", (), GPU, "A100", 1).reason == "user_cap"
    assert outcome(ledger.decide("ada", (), GPU, "A100", 1, key=f"{NS}/jupyter-ada")) == ok(1, 1, cap=1)


def test_form_reservation_expires():
    ledger = ledger_with(quotas=[quota("gpu", 1, 0)])
    ledger.reserve(f"{NS}/jupyter-ada", res("ada"), expires=100.0)
    assert ledger.decide("bob", (), GPU, "A100", 1, now=99.0).reason == "quota"
    assert ledger.decide("bob", (), GPU, "A100", 1, now=100.0).allowed
    assert ledger.reservations == {}


def test_claimed_reservation_does_not_expire():
    ledger = ledger_with(quotas=[quota("gpu", 1, 0)])
    ledger.reserve(f"{NS}/jupyter-ada", res("ada"), expires=100.0)
    ledger.reserve(f"{NS}/jupyter-ada", res("ada"))  # claimed by the spawn
    assert ledger.decide("bob", (), GPU, "A100", 1, now=1e9).reason == "quota"


def test_rebuild_replaces_pods_of_one_namespace_and_keeps_reservations():
    ledger = ledger_with(pods=[gpu_pod("a", "ada"), gpu_pod("o", "olga", ns="other")])
    ledger.reserve(f"{NS}/jupyter-cy", res("cy"))
    ledger.rebuild({f"{NS}/b": gpu_pod("b", "bob", n=2)}, namespace=NS)
    assert {k: u.user for k, u in ledger.pods.items()} == {f"{NS}/b": "bob", "other/o": "olga"}
    assert (ledger.user_used("ada"), ledger.user_used("bob"), ledger.user_used("cy"), ledger.user_used("olga")) == (0, 2, 1, 1)


def test_relist_reparses_only_changed_pods():
    ledger = ledger_with()
    pod = gpu_pod("a", "ada")
    pod["metadata"]["resourceVersion"] = "1"
    ledger.rebuild({f"{NS}/a": pod})
    same_version = {**pod, "spec": {"containers": []}}
    ledger.rebuild({f"{NS}/a": same_version})
    assert ledger.user_used("ada") == 1, "same resourceVersion: not parsed again"
    ledger.rebuild({f"{NS}/a": {**same_version, "metadata": {**pod["metadata"], "resourceVersion": "2"}}})
    assert ledger.user_used("ada") == 0


def test_pod_turning_terminal_frees_its_gpu():
    ledger = ledger_with(quotas=[quota("gpu", 1, 1)], pods=[gpu_pod("a", "ada")])
    assert not ledger.decide("bob", (), GPU, "A100", 1).allowed
    ledger.pod_updated(f"{NS}/a", gpu_pod("a", "ada", phase="Succeeded"))
    ledger.set_quotas(NS, [quota("gpu", 1, 0)])
    assert ledger.decide("bob", (), GPU, "A100", 1).allowed


def test_kind_stats():
    ledger = ledger_with(quotas=[quota("gpu", 8, 3)], pods=EIGHT_BUSY[:3])
    ledger.reserve(f"{NS}/x", res("x"))
    assert ledger.kind_stats() == [(GPU, "A100", 4, 4)]


def test_view_matches_decide():
    ledger = ledger_with(quotas=[quota("gpu", 8, 1)], pods=[gpu_pod("a", "ada")], policy=Policy(user_limit=2))
    view = ledger.view("ada", (), alternative="CPU")
    assert (view.user_used, view.user_cap) == (1, 2)
    assert view.decide(GPU, "A100", 1) == ledger.decide("ada", (), GPU, "A100", 1, alternative="CPU")


def test_decision_cost_independent_of_running_pods():
    ledger = GpuLedger(Policy(user_limit=2, group_limits={"g3": 1000}), namespace=NS)
    ledger.rebuild([gpu_pod(f"p{i}", f"u{i % 700}", groups=[f"g{i % 5}"]) for i in range(5000)])
    ledger.set_quotas(NS, [quota("gpu", 10000, 5000)])
    times = []
    for i in range(2000):
        t = time.perf_counter()
        d = ledger.decide(f"u{i % 900}", ("g3",), GPU, "A100", 1)
        times.append(time.perf_counter() - t)
    assert d.total == 10000
    median_ms = statistics.median(times) * 1000
    print(f"decision with 5,000 running pods: median {median_ms * 1000:.1f} µs")
    assert median_ms < 1.0


def _pending(status="False", reason="Unschedulable", message="", node=None):
    pod = {"spec": {}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": status, "reason": reason, "message": message}]}}
    if node:
        pod["spec"]["nodeName"] = node
    return pod


GPU_MSG = ("0/4 nodes are available: 4 Insufficient nvidia.com/gpu. "
           "preemption: 0/4 nodes are available: 4 No preemption victims found for incoming pod.")


@pytest.mark.parametrize(
    "pod, resource, expected",
    [
        (_pending(message=GPU_MSG), "nvidia.com/gpu", GPU_MSG),
        (_pending(message=GPU_MSG), "amd.com/gpu", None),
        (_pending(message="0/2 nodes are available: 2 Insufficient nvidia.com/gpu-extra."), "nvidia.com/gpu", None),
        (_pending(message="0/2 nodes are available: 2 Insufficient nvidia.com/gpu.shared."), "nvidia.com/gpu", None),
        (_pending(message="0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 Insufficient cpu."), "nvidia.com/gpu",
         "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 Insufficient cpu."),
        (_pending(message="0/4 nodes are available: 4 Insufficient cpu."), "nvidia.com/gpu", None),
        (_pending(reason="SchedulingGated", message=GPU_MSG), "nvidia.com/gpu", None),
        (_pending(status="True", reason="", message=""), "nvidia.com/gpu", None),
        (_pending(message=GPU_MSG, node="gpu-a100-0"), "nvidia.com/gpu", None),
        (None, "nvidia.com/gpu", None),
        ({}, "nvidia.com/gpu", None),
    ],
    ids=["insufficient-gpu", "other-vendor", "longer-resource-name", "dotted-longer-name", "gpu-then-comma", "insufficient-cpu", "gated",
         "scheduled-condition", "bound-to-node", "no-pod", "empty-pod"],
)
def test_unschedulable_for_gpu(pod, resource, expected):
    from jhplatform.policy.gpu_ledger import unschedulable_for_gpu

    assert unschedulable_for_gpu(pod, resource) == expected
