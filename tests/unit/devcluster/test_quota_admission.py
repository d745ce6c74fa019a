"""ResourceQuota evaluation (jhplatform.devcluster.quota), after kube-emulator-spec.md 4.2-4.4.

Aspects covered:
- pod requests/limits: containers summed, sidecar init containers added, max with each regular
  init container (counting earlier sidecars), spec.overhead, requests defaulted from limits;
- pod usage keys (cpu, memory, ephemeral-storage, hugepages, extended resources only as
  ``requests.<name>``), zero removal, and no compute charge for terminal pods or pods past
  their deletion grace period (count/pods stays);
- PVC usage (storage-class keys, annotation precedence, rounding, allocatedResources) and
  object counts (count/<resource>, legacy names, service node ports and load balancers);
- which quotas apply: keys of status.hard (not spec.hard), ``limits.nvidia.com/gpu`` never
  matching, and the Terminating/NotTerminating/BestEffort/NotBestEffort/PriorityClass/
  CrossNamespacePodAffinity scopes; scoped quotas never covering non-pod objects;
- admission: the exact constraint, status-unknown, negative-usage and exceeded-quota messages
  (GPU, two keys, PVC count), first failure by quota name, returned status.used updates with
  canonical strings and formats, UPDATE deltas;
- the quota controller's recompute: hard = spec.hard, zeros written, masking, untracked keys.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from jhplatform.devcluster import quota
from jhplatform.devcluster.errors import ApiError
from jhplatform.policy.quantity import Quantity

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def ctr(name="notebook", requests=None, limits=None, restart=None):
    c = {"name": name, "image": "jupyter/base"}
    res = {}
    if requests is not None:
        res["requests"] = requests
    if limits is not None:
        res["limits"] = limits
    if res:
        c["resources"] = res
    if restart:
        c["restartPolicy"] = restart
    return c


def pod(name="jupyter-bob", containers=None, init=None, phase=None, meta=None, **spec):
    p = {
        "metadata": {"name": name, "namespace": "jhub", **(meta or {})},
        "spec": {"containers": containers if containers is not None else [ctr()], **spec},
    }
    if init:
        p["spec"]["initContainers"] = init
    if phase:
        p["status"] = {"phase": phase}
    return p


def pvc(name="claim-bob", storage="10Gi", sc=None, annotation=None, allocated=None, rv=None):
    p = {
        "metadata": {"name": name, "namespace": "jhub"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
    }
    if sc is not None:
        p["spec"]["storageClassName"] = sc
    if annotation is not None:
        p["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": annotation}
    if allocated is not None:
        p["status"] = {"allocatedResources": {"storage": allocated}}
    if rv is not None:
        p["metadata"]["resourceVersion"] = rv
    return p


def rq(name, hard, used=None, scopes=None, selector=None, with_status=True):
    q = {"metadata": {"name": name, "namespace": "jhub"}, "spec": {"hard": dict(hard)}}
    if scopes:
        q["spec"]["scopes"] = scopes
    if selector:
        q["spec"]["scopeSelector"] = {"matchExpressions": selector}
    if with_status:
        q["status"] = {"hard": dict(hard), "used": dict(used if used is not None else {k: "0" for k in hard})}
    return q


def strs(rl):
    return {k: str(v) for k, v in rl.items()}


# --- pod requests and limits ------------------------------------------------------------------

POD_SUMS = [
    (
        "containers-summed",
        pod(containers=[ctr("a", {"cpu": "1"}, {"cpu": "2"}), ctr("b", {"cpu": "500m"}, {"cpu": "1"})]),
        {"cpu": "1500m"},
        {"cpu": "3"},
    ),
    (
        "init-larger-wins",
        pod(containers=[ctr("a", {"cpu": "1"}), ctr("b", {"cpu": "1"})], init=[ctr("init", {"cpu": "3"})]),
        {"cpu": "3"},
        {},
    ),
    (
        "init-smaller-ignored",
        pod(containers=[ctr("a", {"cpu": "1"}), ctr("b", {"cpu": "1"})], init=[ctr("init", {"cpu": "1"})]),
        {"cpu": "2"},
        {},
    ),
    (
        "init-resource-absent-from-app",
        pod(containers=[ctr("a", {"cpu": "1"})], init=[ctr("init", {"memory": "1Gi"})]),
        {"cpu": "1", "memory": "1Gi"},
        {},
    ),
    (
        "sidecar-added-and-counted-during-later-init",
        pod(
            containers=[ctr("a", {"cpu": "1"})],
            init=[ctr("side", {"cpu": "1"}, restart="Always"), ctr("init", {"cpu": "2"})],
        ),
        {"cpu": "3"},  # app 1 + sidecar 1 = 2, but init runs beside the sidecar: 2 + 1 = 3
        {},
    ),
    (
        "sidecar-after-init-not-counted-during-it",
        pod(
            containers=[ctr("a", {"cpu": "1"})],
            init=[ctr("init", {"cpu": "2"}), ctr("side", {"cpu": "1"}, restart="Always")],
        ),
        {"cpu": "2"},
        {},
    ),
    (
        "limit-only-defaults-request",
        pod(containers=[ctr(limits={"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"})]),
        {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"},
        {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"},
    ),
    (
        "overhead-added-to-requests-and-existing-limits-only",
        pod(containers=[ctr(requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "1"})],
            overhead={"cpu": "250m", "memory": "120Mi"}),
        {"cpu": "1250m", "memory": "1144Mi"},
        {"cpu": "1250m"},
    ),
]


@pytest.mark.parametrize("p,requests,limits", [c[1:] for c in POD_SUMS], ids=[c[0] for c in POD_SUMS])
def test_pod_requests_and_limits(p, requests, limits):
    assert strs(quota.pod_requests(p)) == requests
    assert strs(quota.pod_limits(p)) == limits


def test_pod_sums_without_overhead():
    p = pod(containers=[ctr(requests={"cpu": "1"}, limits={"cpu": "1"})], overhead={"cpu": "1"})
    assert strs(quota.pod_requests(p, overhead=False)) == {"cpu": "1"}
    assert strs(quota.pod_limits(p, overhead=False)) == {"cpu": "1"}


# --- usage of one object ----------------------------------------------------------------------

FULL_POD = pod(containers=[ctr(
    requests={"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "2Gi", "hugepages-2Mi": "4Mi"},
    limits={"cpu": "2", "memory": "2Gi", "ephemeral-storage": "4Gi", "hugepages-2Mi": "4Mi",
            "nvidia.com/gpu": "1", "example.kubernetes.io/dongle": "1"},
)])

FULL_POD_USAGE = {
    "count/pods": "1", "pods": "1",
    "cpu": "500m", "requests.cpu": "500m", "limits.cpu": "2",
    "memory": "1Gi", "requests.memory": "1Gi", "limits.memory": "2Gi",
    "ephemeral-storage": "2Gi", "requests.ephemeral-storage": "2Gi", "limits.ephemeral-storage": "4Gi",
    "hugepages-2Mi": "4Mi", "requests.hugepages-2Mi": "4Mi",
    "requests.nvidia.com/gpu": "1",
}

USAGES = [
    ("pod-all-keys", "pods", FULL_POD, FULL_POD_USAGE),
    ("pod-no-resources", "pods", pod(), {"count/pods": "1", "pods": "1"}),
    ("pod-zero-request-dropped", "pods", pod(containers=[ctr(requests={"cpu": "0", "memory": "1Gi"})]),
     {"count/pods": "1", "pods": "1", "memory": "1Gi", "requests.memory": "1Gi"}),
    ("pod-succeeded", "pods", pod(containers=[ctr(requests={"cpu": "1"})], phase="Succeeded"), {"count/pods": "1"}),
    ("pod-failed", "pods", pod(containers=[ctr(requests={"cpu": "1"})], phase="Failed"), {"count/pods": "1"}),
    ("pod-running", "pods", pod(containers=[ctr(requests={"cpu": "1"})], phase="Running"),
     {"count/pods": "1", "pods": "1", "cpu": "1", "requests.cpu": "1"}),
    ("pod-past-grace", "pods",
     pod(containers=[ctr(requests={"cpu": "1"})],
         meta={"deletionTimestamp": "2024-05-01T11:59:00Z", "deletionGracePeriodSeconds": 30}),
     {"count/pods": "1"}),
    ("pod-within-grace", "pods",
     pod(containers=[ctr(requests={"cpu": "1"})],
         meta={"deletionTimestamp": "2024-05-01T11:59:50Z", "deletionGracePeriodSeconds": 30}),
     {"count/pods": "1", "pods": "1", "cpu": "1", "requests.cpu": "1"}),
    ("pvc-plain", "persistentvolumeclaims", pvc(),
     {"persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1", "requests.storage": "10Gi"}),
    ("pvc-storage-class", "persistentvolumeclaims", pvc(sc="fast"),
     {"persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1", "requests.storage": "10Gi",
      "fast.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
      "fast.storageclass.storage.k8s.io/requests.storage": "10Gi"}),
    ("pvc-annotation-beats-field", "persistentvolumeclaims", pvc(sc="fast", annotation="slow", storage="1Gi"),
     {"persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1", "requests.storage": "1Gi",
      "slow.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
      "slow.storageclass.storage.k8s.io/requests.storage": "1Gi"}),
    ("pvc-empty-class", "persistentvolumeclaims", pvc(sc=""),
     {"persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1", "requests.storage": "10Gi"}),
    ("pvc-rounded-to-bytes", "persistentvolumeclaims", pvc(storage="1.5"),
     {"persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1", "requests.storage": "2"}),
    ("pvc-allocated-larger", "persistentvolumeclaims", pvc(storage="1Gi", allocated="2Gi"),
     {"persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1", "requests.storage": "2Gi"}),
    ("pvc-allocated-smaller", "persistentvolumeclaims", pvc(storage="2Gi", allocated="1Gi"),
     {"persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1", "requests.storage": "2Gi"}),
    ("secret", "secrets", {"metadata": {"name": "s"}}, {"count/secrets": "1", "secrets": "1"}),
    ("configmap", "configmaps", {"metadata": {"name": "c"}}, {"count/configmaps": "1", "configmaps": "1"}),
    ("resourcequota", "resourcequotas", {"metadata": {"name": "q"}},
     {"count/resourcequotas": "1", "resourcequotas": "1"}),
    ("event-count-only", "events", {"metadata": {"name": "e"}}, {"count/events": "1"}),
    ("grouped-resource", "deployments.apps", {"metadata": {"name": "d"}}, {"count/deployments.apps": "1"}),
    ("service-clusterip", "services", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}},
     {"count/services": "1", "services": "1"}),
    ("service-nodeport", "services",
     {"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}},
     {"count/services": "1", "services": "1", "services.nodeports": "2"}),
    ("service-loadbalancer", "services",
     {"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}},
     {"count/services": "1", "services": "1", "services.nodeports": "1", "services.loadbalancers": "1"}),
    ("service-loadbalancer-no-nodeports", "services",
     {"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False,
                                          "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]}},
     {"count/services": "1", "services": "1", "services.nodeports": "1", "services.loadbalancers": "1"}),
]


@pytest.mark.parametrize("resource,obj,expected", [u[1:] for u in USAGES], ids=[u[0] for u in USAGES])
def test_usage(resource, obj, expected):
    assert strs(quota.usage(resource, obj, now=NOW)) == expected


def test_charges_compute_uses_current_time_by_default():
    long_ago = pod(meta={"deletionTimestamp": "2000-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30})
    far_future = pod(meta={"deletionTimestamp": "2999-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30})
    assert quota.charges_compute(long_ago) is False
    assert quota.charges_compute(far_future) is True


# --- which quotas apply ----------------------------------------------------------------------

BEST_EFFORT = pod()
BURSTABLE = pod(containers=[ctr(requests={"cpu": "100m"})])
TERMINATING = pod(containers=[ctr(requests={"cpu": "100m"})], activeDeadlineSeconds=3600)
HIGH = pod(priorityClassName="high")
CROSS_NS = pod(affinity={"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
    {"weight": 1, "podAffinityTerm": {"topologyKey": "zone", "namespaces": ["other"]}}]}})

APPLIES = [
    ("gpu-requests-key", rq("q", {"requests.nvidia.com/gpu": "4"}), "pods", BEST_EFFORT, True),
    ("gpu-limits-key-never", rq("q", {"limits.nvidia.com/gpu": "4"}), "pods", BEST_EFFORT, False),
    ("bare-extended-key-never", rq("q", {"nvidia.com/gpu": "4"}), "pods", BEST_EFFORT, False),
    ("no-status-yet", rq("q", {"pods": "4"}, with_status=False), "pods", BEST_EFFORT, False),
    ("pvc-key-not-for-pods", rq("q", {"requests.storage": "4Gi"}), "pods", BEST_EFFORT, False),
    ("pvc-key-for-pvcs", rq("q", {"requests.storage": "4Gi"}), "persistentvolumeclaims", pvc(), True),
    ("class-key-for-pvcs", rq("q", {"gold.storageclass.storage.k8s.io/requests.storage": "4Gi"}),
     "persistentvolumeclaims", pvc(), True),
    ("count-secrets", rq("q", {"count/secrets": "4"}), "secrets", {"metadata": {"name": "s"}}, True),
    ("legacy-secrets", rq("q", {"secrets": "4"}), "secrets", {"metadata": {"name": "s"}}, True),
    ("secrets-key-not-for-configmaps", rq("q", {"secrets": "4"}), "configmaps", {"metadata": {"name": "c"}}, False),
    ("besteffort-match", rq("q", {"pods": "4"}, scopes=["BestEffort"]), "pods", BEST_EFFORT, True),
    ("besteffort-miss", rq("q", {"pods": "4"}, scopes=["BestEffort"]), "pods", BURSTABLE, False),
    ("notbesteffort-match", rq("q", {"pods": "4"}, scopes=["NotBestEffort"]), "pods", BURSTABLE, True),
    ("notbesteffort-miss", rq("q", {"pods": "4"}, scopes=["NotBestEffort"]), "pods", BEST_EFFORT, False),
    ("terminating-match", rq("q", {"pods": "4"}, scopes=["Terminating"]), "pods", TERMINATING, True),
    ("terminating-miss", rq("q", {"pods": "4"}, scopes=["Terminating"]), "pods", BURSTABLE, False),
    ("notterminating-match", rq("q", {"pods": "4"}, scopes=["NotTerminating"]), "pods", BURSTABLE, True),
    ("notterminating-miss", rq("q", {"pods": "4"}, scopes=["NotTerminating"]), "pods", TERMINATING, False),
    ("all-scopes-must-match", rq("q", {"pods": "4"}, scopes=["NotBestEffort", "Terminating"]),
     "pods", BURSTABLE, False),
    ("priority-in", rq("q", {"pods": "4"}, selector=[
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]), "pods", HIGH, True),
    ("priority-in-other", rq("q", {"pods": "4"}, selector=[
        {"scopeName": "PriorityClass", "operator": "In", "values": ["low"]}]), "pods", HIGH, False),
    ("priority-in-unset", rq("q", {"pods": "4"}, selector=[
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]), "pods", BEST_EFFORT, False),
    ("priority-notin-unset", rq("q", {"pods": "4"}, selector=[
        {"scopeName": "PriorityClass", "operator": "NotIn", "values": ["high"]}]), "pods", BEST_EFFORT, True),
    ("priority-notin-listed", rq("q", {"pods": "4"}, selector=[
        {"scopeName": "PriorityClass", "operator": "NotIn", "values": ["high"]}]), "pods", HIGH, False),
    ("priority-exists", rq("q", {"pods": "4"}, selector=[
        {"scopeName": "PriorityClass", "operator": "Exists"}]), "pods", HIGH, True),
    ("priority-exists-unset", rq("q", {"pods": "4"}, selector=[
        {"scopeName": "PriorityClass", "operator": "Exists"}]), "pods", BEST_EFFORT, False),
    ("priority-doesnotexist", rq("q", {"pods": "4"}, selector=[
        {"scopeName": "PriorityClass", "operator": "DoesNotExist"}]), "pods", BEST_EFFORT, True),
    ("cross-namespace-affinity", rq("q", {"pods": "4"}, scopes=["CrossNamespacePodAffinity"]),
     "pods", CROSS_NS, True),
    ("cross-namespace-affinity-miss", rq("q", {"pods": "4"}, scopes=["CrossNamespacePodAffinity"]),
     "pods", BEST_EFFORT, False),
    ("scoped-quota-never-covers-pvcs", rq("q", {"persistentvolumeclaims": "4"}, scopes=["NotTerminating"]),
     "persistentvolumeclaims", pvc(), False),
]


@pytest.mark.parametrize("q,resource,obj,expected", [a[1:] for a in APPLIES], ids=[a[0] for a in APPLIES])
def test_quota_applies(q, resource, obj, expected):
    assert quota.quota_applies(q, resource, obj) is expected


# --- admission --------------------------------------------------------------------------------

GPU_POD = pod(containers=[ctr(requests={"nvidia.com/gpu": "1"}, limits={"nvidia.com/gpu": "1"})])


def forbidden(resource, obj, quotas, old=None):
    with pytest.raises(ApiError) as exc:
        quota.admit(resource, obj, quotas, old=old, now=NOW)
    err = exc.value
    assert (err.code, err.reason) == (403, "Forbidden")
    return err


def test_gpu_quota_exceeded_exact_message_and_body():
    q = rq("gpu-quota", {"requests.nvidia.com/gpu": "4"}, {"requests.nvidia.com/gpu": "4"})
    err = forbidden("pods", GPU_POD, [q])
    assert err.message == (
        'pods "jupyter-bob" is forbidden: exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=1, '
        "used: requests.nvidia.com/gpu=4, limited: requests.nvidia.com/gpu=4"
    )
    assert err.body() == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \\"jupyter-bob\\" '
        "is forbidden: exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=1, used: "
        'requests.nvidia.com/gpu=4, limited: requests.nvidia.com/gpu=4","reason":"Forbidden",'
        '"details":{"name":"jupyter-bob","kind":"pods"},"code":403}'
    )


def test_two_exceeded_keys_are_sorted_and_comma_joined():
    hard = {"limits.cpu": "4", "requests.cpu": "4"}
    q = rq("compute", hard, {"limits.cpu": "3", "requests.cpu": "3"})
    p = pod(containers=[ctr(requests={"cpu": "2"}, limits={"cpu": "2"})])
    assert forbidden("pods", p, [q]).message == (
        'pods "jupyter-bob" is forbidden: exceeded quota: compute, requested: limits.cpu=2,requests.cpu=2, '
        "used: limits.cpu=3,requests.cpu=3, limited: limits.cpu=4,requests.cpu=4"
    )


def test_only_exceeded_keys_are_reported():
    hard = {"pods": "10", "requests.memory": "4Gi"}
    q = rq("mixed", hard, {"pods": "1", "requests.memory": "3Gi"})
    p = pod(containers=[ctr(requests={"memory": "1536Mi"}, limits={"memory": "2Gi"})])
    assert forbidden("pods", p, [q]).message == (
        'pods "jupyter-bob" is forbidden: exceeded quota: mixed, requested: requests.memory=1536Mi, '
        "used: requests.memory=3Gi, limited: requests.memory=4Gi"
    )


def test_pvc_count_exceeded_message():
    q = rq("storage", {"persistentvolumeclaims": "5"}, {"persistentvolumeclaims": "5"})
    assert forbidden("persistentvolumeclaims", pvc(), [q]).message == (
        'persistentvolumeclaims "claim-bob" is forbidden: exceeded quota: storage, requested: '
        "persistentvolumeclaims=1, used: persistentvolumeclaims=5, limited: persistentvolumeclaims=5"
    )


CONSTRAINTS = [
    ("limits-missing", {"limits.cpu": "4", "limits.memory": "4Gi"}, pod(),
     "failed quota: compute: must specify limits.cpu for: notebook; limits.memory for: notebook"),
    ("requests-from-limits-satisfy", {"requests.cpu": "4", "limits.memory": "4Gi"},
     pod(containers=[ctr(limits={"cpu": "1"})]),
     "failed quota: compute: must specify limits.memory for: notebook"),
    ("containers-sorted-and-init-included", {"cpu": "4"},
     pod(containers=[ctr("zeta"), ctr("alpha", requests={"cpu": "1"}), ctr("beta")], init=[ctr("init")]),
     "failed quota: compute: must specify cpu for: beta,init,zeta"),
    ("legacy-memory-key", {"memory": "4Gi", "pods": "3"}, pod(),
     "failed quota: compute: must specify memory for: notebook"),
]


@pytest.mark.parametrize("hard,p,msg", [c[1:] for c in CONSTRAINTS], ids=[c[0] for c in CONSTRAINTS])
def test_constraints_message(hard, p, msg):
    err = forbidden("pods", p, [rq("compute", hard)])
    assert err.message == f'pods "jupyter-bob" is forbidden: {msg}'


def test_constraints_not_required_without_compute_keys():
    q = rq("gpu-quota", {"requests.nvidia.com/gpu": "4", "pods": "10"})
    out = quota.admit("pods", pod(), [q], now=NOW)
    assert [u["status"]["used"] for u in out] == [{"pods": "1", "requests.nvidia.com/gpu": "0"}]


def test_status_unknown_lists_matched_keys_without_usage():
    q = rq("compute", {"pods": "10", "requests.cpu": "4", "requests.storage": "1Gi"}, used={})
    p = pod(containers=[ctr(requests={"cpu": "1"})])
    assert forbidden("pods", p, [q]).message == (
        'pods "jupyter-bob" is forbidden: status unknown for quota: compute, resources: pods,requests.cpu'
    )


def test_status_unknown_ignores_keys_the_evaluator_does_not_track():
    q = rq("gpu", {"requests.nvidia.com/gpu": "4", "limits.nvidia.com/gpu": "4"},
           used={"requests.nvidia.com/gpu": "0"})
    out = quota.admit("pods", GPU_POD, [q], now=NOW)
    assert out[0]["status"]["used"] == {"requests.nvidia.com/gpu": "1"}


def test_limits_gpu_quota_is_never_enforced():
    q = rq("gpu-limits", {"limits.nvidia.com/gpu": "0"}, {"limits.nvidia.com/gpu": "0"})
    assert quota.admit("pods", GPU_POD, [q], now=NOW) == []


def test_quota_without_status_is_not_enforced():
    q = rq("fresh", {"requests.nvidia.com/gpu": "0"}, with_status=False)
    assert quota.admit("pods", GPU_POD, [q], now=NOW) == []


def test_negative_usage_is_forbidden():
    p = pod(containers=[ctr(requests={"cpu": "-1"})])
    assert forbidden("pods", p, [rq("compute", {"requests.cpu": "4"})]).message == (
        'pods "jupyter-bob" is forbidden: quota usage is negative for resource(s): cpu,requests.cpu'
    )


def test_first_failing_quota_by_name_wins():
    a = rq("a-quota", {"requests.nvidia.com/gpu": "1"}, {"requests.nvidia.com/gpu": "1"})
    b = rq("b-quota", {"requests.nvidia.com/gpu": "2"}, {"requests.nvidia.com/gpu": "2"})
    assert "exceeded quota: a-quota," in forbidden("pods", GPU_POD, [b, a]).message


def test_constraint_failure_beats_earlier_named_usage_failure():
    # Constraints and status checks run over all quotas before any usage comparison.
    a = rq("a-quota", {"requests.nvidia.com/gpu": "1"}, {"requests.nvidia.com/gpu": "1"})
    b = rq("b-quota", {"limits.cpu": "4"})
    assert forbidden("pods", GPU_POD, [a, b]).message.endswith(
        "failed quota: b-quota: must specify limits.cpu for: notebook")


def test_admit_returns_updated_copies_with_canonical_used():
    gpu = rq("gpu-quota", {"requests.nvidia.com/gpu": "4"}, {"requests.nvidia.com/gpu": "3"})
    mem = rq("mem", {"requests.memory": "8Gi", "pods": "5"}, {"requests.memory": "0", "pods": "0"})
    other = rq("storage", {"requests.storage": "10Gi"})
    p = pod(containers=[ctr(requests={"memory": "1024Mi", "nvidia.com/gpu": "1"},
                            limits={"memory": "1Gi", "nvidia.com/gpu": "1"})])
    out = quota.admit("pods", p, [other, mem, gpu], now=NOW)
    assert [(q["metadata"]["name"], q["status"]["used"]) for q in out] == [
        ("gpu-quota", {"requests.nvidia.com/gpu": "4"}),  # exactly at the limit is allowed
        ("mem", {"pods": "1", "requests.memory": "1Gi"}),  # "0" + 1024Mi takes the binary format
    ]
    assert gpu["status"]["used"] == {"requests.nvidia.com/gpu": "3"}  # inputs untouched
    assert out[0] is not gpu


def test_admit_used_keeps_receiver_format():
    q = rq("mem", {"requests.memory": "8Gi"}, {"requests.memory": "1G"})
    p = pod(containers=[ctr(requests={"memory": "1Gi"})])
    assert quota.admit("pods", p, [q], now=NOW)[0]["status"]["used"] == {"requests.memory": "2073741824"}


def test_terminal_pod_admission_charges_only_count():
    q = rq("compute", {"requests.nvidia.com/gpu": "0", "count/pods": "3"})
    p = dict(GPU_POD, status={"phase": "Failed"})
    out = quota.admit("pods", p, [q], now=NOW)
    assert out[0]["status"]["used"] == {"count/pods": "1", "requests.nvidia.com/gpu": "0"}


def test_pvc_resize_update_charges_only_the_growth():
    q = rq("storage", {"requests.storage": "15Gi", "persistentvolumeclaims": "1"},
           {"requests.storage": "10Gi", "persistentvolumeclaims": "1"})
    old = pvc(storage="10Gi", rv="7")
    out = quota.admit("persistentvolumeclaims", pvc(storage="12Gi"), [q], old=old, now=NOW)
    assert out[0]["status"]["used"] == {"persistentvolumeclaims": "1", "requests.storage": "12Gi"}
    err = forbidden("persistentvolumeclaims", pvc(storage="20Gi"), [q], old=old)
    assert err.message.endswith("requested: requests.storage=10Gi, used: requests.storage=10Gi, "
                                "limited: requests.storage=15Gi")


def test_pvc_shrink_update_charges_nothing():
    q = rq("storage", {"requests.storage": "15Gi"}, {"requests.storage": "10Gi"})
    assert quota.admit("persistentvolumeclaims", pvc(storage="5Gi"), [q], old=pvc(rv="7"), now=NOW) == []


def test_update_without_resource_version_bills_the_whole_object():
    q = rq("storage", {"persistentvolumeclaims": "5"}, {"persistentvolumeclaims": "5"})
    assert "exceeded quota: storage" in forbidden("persistentvolumeclaims", pvc(), [q], old=pvc()).message


def test_object_count_updates_are_not_charged():
    q = rq("s", {"count/secrets": "1"}, {"count/secrets": "1"})
    secret = {"metadata": {"name": "token", "resourceVersion": "3"}}
    assert quota.admit("secrets", secret, [q], old=secret, now=NOW) == []
    assert forbidden("secrets", {"metadata": {"name": "token"}}, [q]).message == (
        'secrets "token" is forbidden: exceeded quota: s, requested: count/secrets=1, '
        "used: count/secrets=1, limited: count/secrets=1"
    )


# --- recompute (quota controller) -------------------------------------------------------------


def test_recompute_sums_matching_objects_and_writes_zeros():
    q = rq("compute", {"pods": "10", "requests.cpu": "4000m", "requests.nvidia.com/gpu": "4",
                       "count/secrets": "5", "requests.storage": "1Ti", "services.loadbalancers": "1"},
           with_status=False)
    objects = {
        "pods": [
            pod("a", containers=[ctr(requests={"cpu": "500m", "nvidia.com/gpu": "1"},
                                     limits={"nvidia.com/gpu": "1"})]),
            pod("b", containers=[ctr(requests={"cpu": "1"})], phase="Running"),
            pod("done", containers=[ctr(requests={"cpu": "8"})], phase="Succeeded"),
        ],
        "secrets": [{"metadata": {"name": "s1"}}, {"metadata": {"name": "s2"}}],
    }
    status = quota.recompute(q, objects, now=NOW)
    assert status == {
        "hard": {"count/secrets": "5", "pods": "10", "requests.cpu": "4", "requests.nvidia.com/gpu": "4",
                 "requests.storage": "1Ti", "services.loadbalancers": "1"},
        "used": {"count/secrets": "2", "pods": "2", "requests.cpu": "1500m", "requests.nvidia.com/gpu": "1",
                 "requests.storage": "0", "services.loadbalancers": "0"},
    }


def test_recompute_respects_scopes():
    q = rq("be", {"pods": "10", "persistentvolumeclaims": "3"}, scopes=["BestEffort"], with_status=False)
    objects = {"pods": [pod("x"), pod("y", containers=[ctr(requests={"memory": "1Gi"})])],
               "persistentvolumeclaims": [pvc()]}
    assert quota.recompute(q, objects, now=NOW)["used"] == {"persistentvolumeclaims": "0", "pods": "1"}


def test_recompute_leaves_untracked_keys_out_and_keeps_old_values():
    q = rq("gpu", {"requests.nvidia.com/gpu": "4", "limits.nvidia.com/gpu": "4"}, with_status=False)
    objects = {"pods": [GPU_POD]}
    assert quota.recompute(q, objects, now=NOW)["used"] == {"requests.nvidia.com/gpu": "1"}
    q["status"] = {"used": {"limits.nvidia.com/gpu": "2", "requests.nvidia.com/gpu": "3", "stale": "1"}}
    assert quota.recompute(q, objects, now=NOW)["used"] == {
        "limits.nvidia.com/gpu": "2", "requests.nvidia.com/gpu": "1"}


def test_recompute_drops_usage_after_spec_change():
    q = rq("c", {"pods": "10"}, with_status=False)
    q["status"] = {"hard": {"pods": "10", "requests.cpu": "1"}, "used": {"pods": "4", "requests.cpu": "1"}}
    assert quota.recompute(q, {"pods": []}, now=NOW) == {"hard": {"pods": "10"}, "used": {"pods": "0"}}


def test_recompute_storage_class_keys():
    q = rq("sc", {"gold.storageclass.storage.k8s.io/requests.storage": "100Gi",
                  "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "2"}, with_status=False)
    objects = {"persistentvolumeclaims": [pvc("a", sc="gold", storage="1Gi"), pvc("b", sc="gold", storage="512Mi"),
                                          pvc("c", sc="silver")]}
    assert quota.recompute(q, objects, now=NOW)["used"] == {
        "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "2",
        "gold.storageclass.storage.k8s.io/requests.storage": "1536Mi",
    }


def test_matching_resources_is_sorted_and_deduplicated():
    keys = ["requests.nvidia.com/gpu", "pods", "limits.nvidia.com/gpu", "pods", "count/pods",
            "hugepages-1Gi", "requests.storage", "requests.example.kubernetes.io/x"]
    assert quota.matching_resources("pods", keys) == ["count/pods", "hugepages-1Gi", "pods", "requests.nvidia.com/gpu"]


def test_default_pod_requests_copies_limits_without_mutating():
    p = pod(containers=[ctr(requests={"cpu": "100m"}, limits={"cpu": "1", "memory": "1Gi"})])
    out = quota.default_pod_requests(p)
    assert out["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "1Gi"}
    assert p["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m"}


def test_resource_list_parses_values():
    assert quota.resource_list({"cpu": "1", "memory": "1Gi"}) == {"cpu": Quantity(1), "memory": Quantity(2**30)}
    assert quota.resource_list(None) == {}
