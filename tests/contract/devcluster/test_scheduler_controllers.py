"""The emulator's scheduler, volume and namespace controllers, driven in-process (no HTTP).

We test these aspects:

- placement: the feasible node with the most free cpu wins, ties go to the first name, and
  every bind writes ``spec.nodeName``, ``PodScheduled=True`` and a new-style ``Scheduled`` event;
- a GPU pod stays Pending when the pool is full, with kube-scheduler's FitError text in the
  condition and in one ``FailedScheduling`` event, neither rewritten on unchanged retries;
- retries driven by changes: a GPU pod deleted or finished, a node added, a claim created;
- filters: taints vs tolerations (Equal/Exists/empty key/effect), nodeSelector, required node
  affinity (In/NotIn/Exists/DoesNotExist/Gt/Lt, matchFields, ORed terms, ANDed expressions),
  cordoned and not-ready nodes, cpu/memory/pod-count fit with init containers, sidecars and
  terminal pods, ``preemptionPolicy: Never``, other schedulers' pods, the bind delay;
- claims: a missing or deleting claim blocks scheduling; Immediate binding; WaitForFirstConsumer
  (Pending with one event until a consumer is scheduled); expansion, only for expandable classes;
  pvc-protection holding a deleted claim until its pod is gone or finished;
- namespace termination: 403 for new content while terminating, contents deleted, waiting for
  foreign finalizers, then the namespace removed;
- event TTL expiry with an injected clock, and scheduler reset.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from helpers import wait_for
from jhplatform.devcluster.cluster import Cluster
from jhplatform.devcluster.controllers import EventTTL, NamespaceController, PersistentVolumeController
from jhplatform.devcluster.errors import ApiError
from jhplatform.devcluster.nodes import parse_nodes
from jhplatform.devcluster.scheduler import Scheduler

NS = "ns"
GPU_TAINT = "taint:nvidia.com/gpu=present:NoSchedule"
# One CPU node and two one-GPU nodes: "0/3 nodes" messages.
GPU_POOL = f"cpu:cpu=8,memory=32Gi;gpux2:cpu=16,memory=64Gi,nvidia.com/gpu=1,{GPU_TAINT}"
TOLERATE_GPU = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def pod(name: str, *, requests=None, limits=None, claim=None, **spec) -> dict:
    container = {"name": "notebook", "image": "quay.io/jupyter/base-notebook:2025-01-06"}
    if requests or limits:
        container["resources"] = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    body = {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}
    if claim:
        body["spec"]["volumes"] = [{"name": "home", "persistentVolumeClaim": {"claimName": claim}}]
    return body


def gpu_pod(name: str, **spec) -> dict:
    return pod(name, limits={"nvidia.com/gpu": "1"}, **spec)


def pvc(name: str, size: str = "1Gi", storage_class: str | None = None) -> dict:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name}, "spec": spec}


def events(cluster: Cluster, name: str, reason: str | None = None) -> list[dict]:
    found = [e for e in cluster.list("events", NS) if e["involvedObject"]["name"] == name]
    return [e for e in found if reason is None or e["reason"] == reason]


def condition(obj: dict, type_: str = "PodScheduled") -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


@pytest.fixture
async def make_cluster():
    """Build a started in-process cluster with the given node pool and controller options."""
    clusters: list[Cluster] = []

    async def make(nodes: str = GPU_POOL, *, scheduler=None, volumes=None) -> Cluster:
        cluster = Cluster()
        for node in parse_nodes(nodes):
            cluster.create("nodes", None, node)
        cluster.controllers.extend(
            [
                Scheduler(cluster, **(scheduler or {})),
                PersistentVolumeController(cluster, **(volumes or {})),
                NamespaceController(cluster, retry_interval=0.05),
            ]
        )
        await cluster.start()
        cluster.create("namespaces", None, {"metadata": {"name": NS}})
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        await cluster.stop()


async def scheduled(cluster: Cluster, name: str) -> str:
    """Wait until the pod is bound; return its node."""
    return await wait_for(lambda: cluster.get("pods", NS, name)["spec"].get("nodeName"), timeout=5, message=f"{name} bound")


async def unschedulable(cluster: Cluster, name: str) -> str:
    """Wait until the pod has PodScheduled=False; return the message."""

    def message():
        c = condition(cluster.get("pods", NS, name))
        return c and c["status"] == "False" and c["message"]

    return await wait_for(message, timeout=5, message=f"{name} unschedulable")


async def bound(cluster: Cluster, name: str) -> dict:
    """Wait until the claim is Bound; return it."""

    def claim():
        c = cluster.get("persistentvolumeclaims", NS, name)
        return c["status"]["phase"] == "Bound" and c

    return await wait_for(claim, timeout=5, message=f"{name} bound")


async def gone(cluster: Cluster, resource: str, name: str, namespace: str = NS) -> None:
    await wait_for(lambda: cluster.store.find(resource, namespace, name) is None, timeout=5, message=f"{name} removed")


# -- placement ------------------------------------------------------------------------------


async def test_most_free_cpu_wins_and_bind_is_recorded(make_cluster):
    cluster = await make_cluster("small:cpu=2,memory=8Gi;big:cpu=8,memory=8Gi")
    cluster.create("pods", NS, pod("first", requests={"cpu": "1"}))
    assert await scheduled(cluster, "first") == "big"  # 8 free beats 2
    cluster.create("pods", NS, pod("second", requests={"cpu": "6500m"}))
    assert await scheduled(cluster, "second") == "big"  # fits only there (7 free)
    cluster.create("pods", NS, pod("third", requests={"cpu": "100m"}))
    assert await scheduled(cluster, "third") == "small"  # now 2 free beats 500m

    bound = cluster.get("pods", NS, "first")
    assert bound["status"]["phase"] == "Pending"
    cond = condition(bound)
    assert cond["status"] == "True" and cond["lastProbeTime"] is None and cond["lastTransitionTime"]
    (event,) = events(cluster, "first")
    assert (event["type"], event["reason"], event["message"]) == ("Normal", "Scheduled", "Successfully assigned ns/first to big")
    # A new-style (events.k8s.io) event: eventTime set, legacy timestamps null but present.
    assert event["eventTime"] and event["firstTimestamp"] is None and event["lastTimestamp"] is None
    assert (event["reportingComponent"], event["action"], event["source"]) == ("default-scheduler", "Binding", {})
    assert event["involvedObject"]["uid"] == bound["metadata"]["uid"]


async def test_ties_go_to_the_first_name_and_best_effort_pods_spread(make_cluster):
    cluster = await make_cluster("b:cpu=4;a:cpu=4")
    cluster.create("pods", NS, pod("one"))
    assert await scheduled(cluster, "one") == "a"
    # A container without a cpu request counts as 100m when scoring, as in kube-scheduler.
    cluster.create("pods", NS, pod("two"))
    assert await scheduled(cluster, "two") == "b"


# -- the full GPU pool ----------------------------------------------------------------------


FULL_TOLERATING = (
    "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. "
    "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
)
FULL_NOT_TOLERATING = (
    "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) had untolerated taint {nvidia.com/gpu: present}. "
    "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
)


async def fill_gpus(cluster: Cluster) -> dict[str, str]:
    for name in ("gpu-user-a", "gpu-user-b"):
        cluster.create("pods", NS, gpu_pod(name, tolerations=TOLERATE_GPU))
    return {name: await scheduled(cluster, name) for name in ("gpu-user-a", "gpu-user-b")}


@pytest.mark.parametrize(
    "tolerations, message",
    [
        pytest.param(TOLERATE_GPU, FULL_TOLERATING, id="tolerating"),
        pytest.param(None, FULL_NOT_TOLERATING, id="not-tolerating"),
    ],
)
async def test_gpu_pod_pending_when_pool_is_full(make_cluster, tolerations, message):
    cluster = await make_cluster()
    assert sorted((await fill_gpus(cluster)).values()) == ["gpu-0", "gpu-1"]
    extra = {"tolerations": tolerations} if tolerations else {}
    cluster.create("pods", NS, gpu_pod("waiting", **extra))
    assert await unschedulable(cluster, "waiting") == message
    waiting = cluster.get("pods", NS, "waiting")
    assert waiting["status"]["phase"] == "Pending" and "nodeName" not in waiting["spec"]
    cond = condition(waiting)
    assert (cond["reason"], cond["lastProbeTime"]) == ("Unschedulable", None)
    (event,) = events(cluster, "waiting")
    assert (event["type"], event["reason"], event["message"]) == ("Warning", "FailedScheduling", message)
    assert (event["reportingComponent"], event["action"], event["lastTimestamp"]) == ("default-scheduler", "Scheduling", None)


async def test_unchanged_failure_is_not_rewritten(make_cluster):
    cluster = await make_cluster(scheduler={"retry_interval": 0.02})
    await fill_gpus(cluster)
    cluster.create("pods", NS, gpu_pod("waiting", tolerations=TOLERATE_GPU))
    await unschedulable(cluster, "waiting")
    rv = cluster.get("pods", NS, "waiting")["metadata"]["resourceVersion"]
    # Many periodic retries and one change-triggered retry, all failing the same way.
    cluster.create("pods", NS, pod("cpu-user", requests={"cpu": "1"}))
    await scheduled(cluster, "cpu-user")
    cluster.delete("pods", NS, "cpu-user", grace_period=0)
    await asyncio.sleep(0.2)
    assert cluster.get("pods", NS, "waiting")["metadata"]["resourceVersion"] == rv
    assert len(events(cluster, "waiting", "FailedScheduling")) == 1


async def test_message_change_is_written_again(make_cluster):
    cluster = await make_cluster()
    await fill_gpus(cluster)
    cluster.create("pods", NS, gpu_pod("waiting", tolerations=TOLERATE_GPU))
    assert await unschedulable(cluster, "waiting") == FULL_TOLERATING
    cluster.create("nodes", None, parse_nodes("cpu2:cpu=8")[0])
    expected = FULL_TOLERATING.replace("0/3", "0/4").replace(" 3 ", " 4 ")

    def updated():
        return condition(cluster.get("pods", NS, "waiting"))["message"] == expected

    await wait_for(updated, timeout=5, message="new message")
    assert [e["message"] for e in events(cluster, "waiting", "FailedScheduling")] == [FULL_TOLERATING, expected]


async def test_deleted_gpu_pod_makes_room_at_once(make_cluster):
    # The periodic retry is far away: only the deletion can trigger the retry in time.
    cluster = await make_cluster(scheduler={"retry_interval": 60})
    placed = await fill_gpus(cluster)
    cluster.create("pods", NS, gpu_pod("waiting", tolerations=TOLERATE_GPU))
    await unschedulable(cluster, "waiting")
    cluster.delete("pods", NS, "gpu-user-b", grace_period=0)
    assert await scheduled(cluster, "waiting") == placed["gpu-user-b"]
    assert condition(cluster.get("pods", NS, "waiting"))["status"] == "True"


async def test_finished_gpu_pod_makes_room(make_cluster):
    cluster = await make_cluster(scheduler={"retry_interval": 60})
    placed = await fill_gpus(cluster)
    cluster.create("pods", NS, gpu_pod("waiting", tolerations=TOLERATE_GPU))
    await unschedulable(cluster, "waiting")
    done = cluster.get("pods", NS, "gpu-user-a")
    cluster.write("pods", {**done, "metadata": dict(done["metadata"]), "status": {**done["status"], "phase": "Succeeded"}})
    assert await scheduled(cluster, "waiting") == placed["gpu-user-a"]


async def test_new_node_makes_room(make_cluster):
    cluster = await make_cluster(scheduler={"retry_interval": 60})
    await fill_gpus(cluster)
    cluster.create("pods", NS, gpu_pod("waiting", tolerations=TOLERATE_GPU))
    await unschedulable(cluster, "waiting")
    cluster.create("nodes", None, parse_nodes(f"gpu-extra:nvidia.com/gpu=2,{GPU_TAINT}")[0])
    assert await scheduled(cluster, "waiting") == "gpu-extra"


async def test_periodic_retry_without_a_triggering_change(make_cluster):
    cluster = await make_cluster("only:cpu=1", scheduler={"retry_interval": 0.1})
    cluster.create("pods", NS, pod("big", requests={"cpu": "2"}))
    await unschedulable(cluster, "big")
    # Node status changes that scheduling ignores don't trigger a retry; the timer does.
    node = cluster.get("nodes", None, "only")
    status = {**node["status"], "allocatable": {**node["status"]["allocatable"], "cpu": "4"}}
    cluster.store.update("nodes", {**node, "metadata": dict(node["metadata"]), "status": status})
    assert await scheduled(cluster, "big") == "only"


async def test_priority_then_creation_order(make_cluster):
    cluster = await make_cluster("only:cpu=2", scheduler={"delay": 0.05})
    cluster.create("pods", NS, pod("early", requests={"cpu": "1"}))
    await asyncio.sleep(0.01)  # the scheduler has taken "early" and waits out its bind delay
    cluster.create("pods", NS, pod("late", requests={"cpu": "1"}))
    cluster.create("pods", NS, pod("urgent", requests={"cpu": "1"}, priority=1000))
    assert await scheduled(cluster, "early") == "only"
    assert await scheduled(cluster, "urgent") == "only"
    assert await unschedulable(cluster, "late") == fit_failure("1 Insufficient cpu")


async def test_bind_delay_keeps_pod_unscheduled_for_a_while(make_cluster):
    cluster = await make_cluster(scheduler={"delay": 0.3})
    cluster.create("pods", NS, pod("slow"))
    await asyncio.sleep(0.1)
    current = cluster.get("pods", NS, "slow")
    assert "nodeName" not in current["spec"] and condition(current) is None
    assert await scheduled(cluster, "slow") == "cpu"


async def test_other_schedulers_pods_are_left_alone(make_cluster):
    cluster = await make_cluster()
    cluster.create("pods", NS, pod("custom", schedulerName="my-scheduler"))
    cluster.create("pods", NS, pod("ours"))
    await scheduled(cluster, "ours")
    custom = cluster.get("pods", NS, "custom")
    assert "nodeName" not in custom["spec"] and condition(custom) is None


async def test_scheduling_gates_hold_a_pod(make_cluster):
    cluster = await make_cluster()
    cluster.create("pods", NS, pod("gated", schedulingGates=[{"name": "example.com/wait"}]))

    def gated():
        c = condition(cluster.get("pods", NS, "gated"))
        return c and c["reason"] == "SchedulingGated"

    await wait_for(gated, timeout=5, message="SchedulingGated condition")
    assert "nodeName" not in cluster.get("pods", NS, "gated")["spec"]


# -- filters --------------------------------------------------------------------------------

# cpu-0: zone=a, rank=5, 8 cpu. gpu-0: zone=b, rank=10, 16 cpu, tainted. Without constraints a
# pod that tolerates the taint lands on gpu-0 (more free cpu), so each case below shows its rule.
LABELLED_POOL = (
    "cpux1:cpu=8,memory=32Gi,label:zone=a,label:rank=5;"
    f"gpux1:cpu=16,memory=64Gi,nvidia.com/gpu=4,label:zone=b,label:rank=10,{GPU_TAINT}"
)
TAINT_MSG = "node(s) had untolerated taint {nvidia.com/gpu: present}"
AFFINITY_MSG = "node(s) didn't match Pod's node affinity/selector"


def required(*terms: dict) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key: str, op: str, *values: str) -> dict:
    return {"key": key, "operator": op, **({"values": list(values)} if values else {})}


def failure(*reasons: str, resolvable: int = 0) -> str:
    n = 2
    head = f"0/{n} nodes are available: {', '.join(reasons)}."
    preemption = []
    if resolvable:
        preemption.append(f"{resolvable} No preemption victims found for incoming pod")
    if n - resolvable:
        preemption.append(f"{n - resolvable} Preemption is not helpful for scheduling")
    return f"{head} preemption: 0/{n} nodes are available: {', '.join(sorted(preemption))}."


def tolerant(**spec) -> dict:
    """A pod spec that tolerates the GPU taint, so only the rule under test decides."""
    return {"tolerations": TOLERATE_GPU, **spec}


def term(*exprs: dict, fields: tuple[dict, ...] = ()) -> dict:
    return {k: list(v) for k, v in (("matchExpressions", exprs), ("matchFields", fields)) if v}


def toleration(**fields) -> dict:
    return {"key": "nvidia.com/gpu", **fields}


ON_ZONE_B = {"nodeSelector": {"zone": "b"}}
NEITHER = failure(f"1 {AFFINITY_MSG}", f"1 {TAINT_MSG}")
NO_MATCH = failure(f"2 {AFFINITY_MSG}")


@pytest.mark.parametrize(
    "spec, outcome",
    [
        pytest.param({}, "cpu-0", id="untolerated-taint-keeps-plain-pods-off-gpu-nodes"),
        pytest.param(tolerant(), "gpu-0", id="exists-toleration"),
        pytest.param(
            {"tolerations": [toleration(operator="Equal", value="present", effect="NoSchedule")], **ON_ZONE_B},
            "gpu-0",
            id="equal-toleration",
        ),
        pytest.param({"tolerations": [toleration(value="present")], **ON_ZONE_B}, "gpu-0", id="default-operator-any-effect"),
        pytest.param(
            {"tolerations": [toleration(operator="Equal", value="absent", effect="NoSchedule")], **ON_ZONE_B},
            NEITHER,
            id="equal-toleration-wrong-value",
        ),
        pytest.param(
            {"tolerations": [toleration(operator="Exists", effect="NoExecute")], **ON_ZONE_B},
            NEITHER,
            id="toleration-for-another-effect",
        ),
        pytest.param({"tolerations": [{"operator": "Exists"}], **ON_ZONE_B}, "gpu-0", id="empty-key-exists-tolerates-all"),
        pytest.param({"nodeSelector": {"zone": "c"}}, NEITHER, id="taint-checked-before-selector"),
        pytest.param(tolerant(nodeSelector={"zone": "a"}), "cpu-0", id="node-selector"),
        pytest.param(tolerant(nodeSelector={"zone": "a", "rank": "10"}), NO_MATCH, id="selector-needs-all-labels"),
        pytest.param(tolerant(affinity=required(term(expr("zone", "In", "a", "c")))), "cpu-0", id="in"),
        pytest.param(tolerant(affinity=required(term(expr("zone", "NotIn", "b")))), "cpu-0", id="not-in"),
        pytest.param(
            tolerant(affinity=required(term(expr("nvidia.com/gpu.present", "NotIn", "true")))),
            "gpu-0",
            id="not-in-matches-missing-label",
        ),
        pytest.param(tolerant(affinity=required(term(expr("zone", "Exists")))), "gpu-0", id="exists"),
        pytest.param(tolerant(affinity=required(term(expr("zone", "DoesNotExist")))), NO_MATCH, id="does-not-exist"),
        pytest.param(tolerant(affinity=required(term(expr("rank", "Lt", "7")))), "cpu-0", id="lt"),
        pytest.param(tolerant(affinity=required(term(expr("rank", "Gt", "5")))), "gpu-0", id="gt-is-strict"),
        pytest.param(tolerant(affinity=required(term(expr("zone", "Gt", "1")))), NO_MATCH, id="gt-on-non-integer-label"),
        pytest.param(
            tolerant(affinity=required(term(fields=(expr("metadata.name", "In", "cpu-0"),)))), "cpu-0", id="match-fields"
        ),
        pytest.param(
            tolerant(affinity=required(term(expr("zone", "In", "c")), term(expr("rank", "Lt", "6")))),
            "cpu-0",
            id="terms-are-ored",
        ),
        pytest.param(
            tolerant(affinity=required(term(expr("zone", "In", "a"), fields=(expr("metadata.name", "In", "gpu-0"),)))),
            NO_MATCH,
            id="requirements-in-a-term-are-anded",
        ),
        pytest.param(tolerant(affinity=required({})), NO_MATCH, id="empty-term-matches-nothing"),
        pytest.param(
            tolerant(nodeSelector={"zone": "b"}, affinity=required(term(expr("zone", "In", "a")))),
            NO_MATCH,
            id="selector-and-affinity-both-apply",
        ),
    ],
)
async def test_placement_rules(make_cluster, spec, outcome):
    cluster = await make_cluster(LABELLED_POOL)
    cluster.create("pods", NS, pod("p", **spec))
    if outcome in ("cpu-0", "gpu-0"):
        assert await scheduled(cluster, "p") == outcome
    else:
        assert await unschedulable(cluster, "p") == outcome


@pytest.mark.parametrize(
    "tolerations, outcome",
    [
        pytest.param([], failure(f"1 {TAINT_MSG}", "1 node(s) were unschedulable"), id="cordoned"),
        pytest.param(
            [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}],
            "cpu-0",
            id="tolerated-cordon",
        ),
    ],
)
async def test_cordoned_node(make_cluster, tolerations, outcome):
    cluster = await make_cluster(LABELLED_POOL.replace("label:zone=a", "label:zone=a,unschedulable=true"))
    cluster.create("pods", NS, pod("p", tolerations=tolerations))
    if outcome == "cpu-0":
        assert await scheduled(cluster, "p") == outcome
    else:
        assert await unschedulable(cluster, "p") == outcome


async def test_not_ready_node_is_avoided_until_ready(make_cluster):
    cluster = await make_cluster("only:cpu=4")
    node = cluster.get("nodes", None, "only")

    def with_ready(status: str) -> dict:
        conditions = [{**c, "status": status} if c["type"] == "Ready" else c for c in node["status"]["conditions"]]
        return {**node, "metadata": dict(node["metadata"]), "status": {**node["status"], "conditions": conditions}}

    cluster.store.update("nodes", with_ready("False"))
    cluster.create("pods", NS, pod("p"))
    assert await unschedulable(cluster, "p") == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    cluster.store.update("nodes", with_ready("True"))
    assert await scheduled(cluster, "p") == "only"


def init_container(name: str, cpu: str) -> dict:
    return {"name": name, "image": "busybox:1.36", "resources": {"requests": {"cpu": cpu}}}


def fit_failure(*reasons: str) -> str:
    return (
        f"0/1 nodes are available: {', '.join(reasons)}. "
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    )


@pytest.mark.parametrize(
    "spec, message",
    [
        pytest.param(
            pod("p", requests={"cpu": "3", "memory": "5Gi"})["spec"],
            fit_failure("1 Insufficient cpu", "1 Insufficient memory"),
            id="cpu-and-memory",
        ),
        pytest.param(
            pod("p", requests={"ephemeral-storage": "20Gi"})["spec"],
            fit_failure("1 Insufficient ephemeral-storage"),
            id="ephemeral-storage",
        ),
        pytest.param(
            {**pod("p", requests={"cpu": "1"})["spec"], "initContainers": [init_container("init", "3")]},
            fit_failure("1 Insufficient cpu"),
            id="init-container-max",
        ),
        pytest.param(
            {
                **pod("p", requests={"cpu": "1500m"})["spec"],
                "initContainers": [{**init_container("sidecar", "1"), "restartPolicy": "Always"}],
            },
            fit_failure("1 Insufficient cpu"),
            id="sidecar-adds-up",
        ),
        pytest.param(
            {**pod("p", requests={"cpu": "1500m"})["spec"], "overhead": {"cpu": "1"}},
            fit_failure("1 Insufficient cpu"),
            id="overhead",
        ),
        pytest.param(
            {**pod("p", requests={"cpu": "3"})["spec"], "preemptionPolicy": "Never"},
            "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.",
            id="preemption-never",
        ),
        pytest.param(pod("p", requests={"cpu": "2", "memory": "4Gi"})["spec"], None, id="exact-fit"),
    ],
)
async def test_resource_fit(make_cluster, spec, message):
    cluster = await make_cluster("only:cpu=2,memory=4Gi,ephemeral-storage=10Gi")
    cluster.create("pods", NS, {"metadata": {"name": "p"}, "spec": spec})
    if message is None:
        assert await scheduled(cluster, "p") == "only"
    else:
        assert await unschedulable(cluster, "p") == message


async def test_pod_count_and_terminal_pods(make_cluster):
    cluster = await make_cluster("only:pods=1", scheduler={"retry_interval": 60})
    cluster.create("pods", NS, pod("first"))
    await scheduled(cluster, "first")
    cluster.create("pods", NS, pod("second"))
    assert await unschedulable(cluster, "second") == fit_failure("1 Too many pods")
    first = cluster.get("pods", NS, "first")
    cluster.write("pods", {**first, "metadata": dict(first["metadata"]), "status": {**first["status"], "phase": "Failed"}})
    assert await scheduled(cluster, "second") == "only"


async def test_host_port_conflict(make_cluster):
    cluster = await make_cluster("only:cpu=4")

    def with_host_port(name: str) -> dict:
        body = pod(name)
        body["spec"]["containers"][0]["ports"] = [{"containerPort": 8888, "hostPort": 8888}]
        return body

    cluster.create("pods", NS, with_host_port("a"))
    await scheduled(cluster, "a")
    cluster.create("pods", NS, with_host_port("b"))
    assert await unschedulable(cluster, "b") == fit_failure("1 node(s) didn't have free ports for the requested pod ports")


# -- claims and the scheduler ---------------------------------------------------------------


async def test_missing_claim_blocks_until_created(make_cluster):
    cluster = await make_cluster(scheduler={"retry_interval": 60})
    cluster.create("pods", NS, pod("p", claim="claim-x"))
    message = await unschedulable(cluster, "p")
    assert message == (
        '0/3 nodes are available: persistentvolumeclaim "claim-x" not found. '
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    (event,) = events(cluster, "p", "FailedScheduling")
    assert event["message"] == message
    cluster.create("persistentvolumeclaims", NS, pvc("claim-x"))
    assert await scheduled(cluster, "p") == "cpu"


async def test_deleting_claim_blocks_new_pods(make_cluster):
    cluster = await make_cluster()
    cluster.create("persistentvolumeclaims", NS, pvc("home"))
    cluster.create("pods", NS, pod("holder", claim="home"))
    await scheduled(cluster, "holder")
    cluster.delete("persistentvolumeclaims", NS, "home")
    cluster.create("pods", NS, pod("late", claim="home"))
    message = await unschedulable(cluster, "late")
    assert message.startswith('0/3 nodes are available: persistentvolumeclaim "home" is being deleted. ')


# -- the volume controller ------------------------------------------------------------------


async def test_immediate_binding(make_cluster):
    cluster = await make_cluster()
    created = cluster.create("persistentvolumeclaims", NS, pvc("home", "10Gi"))
    assert created["status"]["phase"] == "Pending"
    claim = await bound(cluster, "home")
    uid = created["metadata"]["uid"]
    assert claim["spec"]["volumeName"] == f"pvc-{uid}"
    assert claim["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}}
    assert claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert claim["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]


async def test_wait_for_first_consumer(make_cluster):
    cluster = await make_cluster(volumes={"wait_for_first_consumer": {"local"}})
    cluster.create("persistentvolumeclaims", NS, pvc("late-bound", storage_class="local"))
    cluster.create("persistentvolumeclaims", NS, pvc("immediate", storage_class="standard"))
    await bound(cluster, "immediate")
    (event,) = await wait_for(lambda: events(cluster, "late-bound"), timeout=5, message="WaitForFirstConsumer event")
    assert (event["type"], event["reason"], event["message"]) == (
        "Normal",
        "WaitForFirstConsumer",
        "waiting for first consumer to be created before binding",
    )
    assert event["involvedObject"]["kind"] == "PersistentVolumeClaim"
    assert cluster.get("persistentvolumeclaims", NS, "late-bound")["status"]["phase"] == "Pending"
    # An unscheduled consumer is not enough; a scheduled one is.
    cluster.create("pods", NS, pod("user", claim="late-bound"))
    node = await scheduled(cluster, "user")
    claim = await bound(cluster, "late-bound")
    assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
    assert len(events(cluster, "late-bound", "WaitForFirstConsumer")) == 1


async def test_wait_for_first_consumer_ignores_unscheduled_pods(make_cluster):
    cluster = await make_cluster("only:cpu=1", volumes={"wait_for_first_consumer": {"local"}})
    cluster.create("persistentvolumeclaims", NS, pvc("claim", storage_class="local"))
    cluster.create("pods", NS, pod("too-big", claim="claim", requests={"cpu": "2"}))
    await unschedulable(cluster, "too-big")
    # A later claim binding proves the controller has looked at the pod's change.
    cluster.create("persistentvolumeclaims", NS, pvc("other"))
    await bound(cluster, "other")
    assert cluster.get("persistentvolumeclaims", NS, "claim")["status"]["phase"] == "Pending"


def grow(cluster: Cluster, name: str, size: str) -> None:
    cluster.patch(
        "persistentvolumeclaims", NS, name, {"spec": {"resources": {"requests": {"storage": size}}}}, "application/merge-patch+json"
    )


async def test_expansion_only_for_expandable_classes(make_cluster):
    cluster = await make_cluster(volumes={"expandable_classes": {"standard"}})
    cluster.create("persistentvolumeclaims", NS, pvc("fixed", "1Gi", storage_class="slow"))
    cluster.create("persistentvolumeclaims", NS, pvc("growing", "1Gi", storage_class="standard"))
    for name in ("fixed", "growing"):
        await bound(cluster, name)
    grow(cluster, "fixed", "5Gi")
    grow(cluster, "growing", "5Gi")

    def capacity(name: str) -> str:
        return cluster.get("persistentvolumeclaims", NS, name)["status"]["capacity"]["storage"]

    await wait_for(lambda: capacity("growing") == "5Gi", timeout=5, message="expanded")
    assert capacity("fixed") == "1Gi"
    assert [e["reason"] for e in events(cluster, "growing")] == ["ProvisioningSucceeded", "FileSystemResizeSuccessful"]


async def test_pvc_protection_until_pod_deleted(make_cluster):
    cluster = await make_cluster()
    cluster.create("persistentvolumeclaims", NS, pvc("home"))
    cluster.create("persistentvolumeclaims", NS, pvc("unused"))
    cluster.create("pods", NS, pod("user", claim="home"))
    cluster.create("pods", NS, pod("neighbour", claim="other-claim"))
    await scheduled(cluster, "user")
    cluster.delete("persistentvolumeclaims", NS, "unused")
    await gone(cluster, "persistentvolumeclaims", "unused")
    deleting = cluster.delete("persistentvolumeclaims", NS, "home")
    assert deleting["metadata"]["deletionTimestamp"]
    await asyncio.sleep(0.05)
    held = cluster.get("persistentvolumeclaims", NS, "home")
    assert held["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    cluster.delete("pods", NS, "user", grace_period=0)
    await gone(cluster, "persistentvolumeclaims", "home")


async def test_pvc_protection_released_by_finished_pod(make_cluster):
    cluster = await make_cluster()
    cluster.create("persistentvolumeclaims", NS, pvc("home"))
    cluster.create("pods", NS, pod("user", claim="home"))
    await scheduled(cluster, "user")
    cluster.delete("persistentvolumeclaims", NS, "home")
    await asyncio.sleep(0.05)
    assert cluster.store.find("persistentvolumeclaims", NS, "home") is not None
    user = cluster.get("pods", NS, "user")
    cluster.write("pods", {**user, "metadata": dict(user["metadata"]), "status": {**user["status"], "phase": "Succeeded"}})
    await gone(cluster, "persistentvolumeclaims", "home")


# -- namespace termination ------------------------------------------------------------------


async def test_namespace_termination(make_cluster):
    cluster = await make_cluster()
    cluster.create("persistentvolumeclaims", NS, pvc("home"))
    cluster.create("pods", NS, pod("user", claim="home"))
    await scheduled(cluster, "user")
    cluster.create("secrets", NS, {"metadata": {"name": "token"}, "stringData": {"t": "x"}})
    cluster.create("services", NS, {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}})
    # A foreign finalizer keeps the namespace Terminating until its owner lets go.
    cluster.create("configmaps", NS, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})

    terminating = cluster.delete("namespaces", None, NS)
    assert terminating["status"]["phase"] == "Terminating" and terminating["metadata"]["deletionTimestamp"]

    with pytest.raises(ApiError) as info:
        cluster.create("pods", NS, pod("newcomer"))
    assert info.value.code == 403
    assert info.value.message == (
        'pods "newcomer" is forbidden: unable to create new content in namespace ns because it is being terminated'
    )
    assert info.value.details["causes"][0]["reason"] == "NamespaceTerminating"

    kinds = ("pods", "persistentvolumeclaims", "secrets", "services", "serviceaccounts", "configmaps")

    def only_held_left():
        contents = {r: [o["metadata"]["name"] for o in cluster.store.list(r, NS)] for r in kinds}
        return contents == {**{r: [] for r in kinds}, "configmaps": ["held"]}

    await wait_for(only_held_left, timeout=5, message="contents deleted")
    assert cluster.get("namespaces", None, NS)["spec"]["finalizers"] == ["kubernetes"]
    held = cluster.get("configmaps", NS, "held")
    cluster.write("configmaps", {**held, "metadata": {**held["metadata"], "finalizers": []}})
    await gone(cluster, "namespaces", NS, namespace="")
    assert all(not cluster.store.list(r, NS) for r in ("pods", "configmaps", "events", "persistentvolumeclaims"))


# -- events and reset -----------------------------------------------------------------------


async def test_event_ttl_with_injected_clock(make_cluster):
    cluster = await make_cluster()
    cluster.create("pods", NS, pod("p"))
    await scheduled(cluster, "p")
    now = datetime.now(timezone.utc)
    ttl = EventTTL(cluster, ttl=3600, clock=lambda: now + timedelta(minutes=30))
    assert ttl.expire() == 0 and events(cluster, "p")
    ttl.clock = lambda: now + timedelta(minutes=61)
    assert ttl.expire() == 1
    assert events(cluster, "p") == []


async def test_reset_forgets_state(make_cluster):
    cluster = await make_cluster("only:cpu=1", scheduler={"retry_interval": 60})
    cluster.create("pods", NS, pod("big", requests={"cpu": "2"}))
    await unschedulable(cluster, "big")
    await cluster.reset()
    cluster.create("nodes", None, parse_nodes("only:cpu=4")[0])
    cluster.create("namespaces", None, {"metadata": {"name": NS}})
    cluster.create("pods", NS, pod("big", requests={"cpu": "2"}))
    assert await scheduled(cluster, "big") == "only"
