"""LimitRange admission (jhplatform.devcluster.limitrange), after kube-emulator-spec.md 4.5.

Aspects covered:
- SetDefaults_LimitRangeItem: default from max, defaultRequest from default else min, only for
  Container items, explicit values kept;
- the mutating part: container and init container defaults, decode-time requests-from-limits
  defaulting first, the exact ``kubernetes.io/limit-ranger`` annotation wording and ordering,
  several LimitRanges, canonical quantities, inputs left untouched;
- the validating part: every lower-case message for Container min/max/maxLimitRequestRatio,
  Pod sums (init container max rule, overhead ignored) and PVC storage, the ``[e1, e2]``
  aggregate with duplicates dropped, first failing LimitRange by name, 403 body.
"""

from __future__ import annotations

import copy

import pytest

from jhplatform.devcluster import limitrange
from jhplatform.devcluster.errors import ApiError


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


def pod(containers=None, init=None, annotations=None, **spec):
    p = {"metadata": {"name": "jupyter-bob", "namespace": "jhub"},
         "spec": {"containers": containers if containers is not None else [ctr()], **spec}}
    if init:
        p["spec"]["initContainers"] = init
    if annotations is not None:
        p["metadata"]["annotations"] = annotations
    return p


def lr(*items, name="limits"):
    return {"metadata": {"name": name, "namespace": "jhub"}, "spec": {"limits": list(items)}}


def item(type_="Container", **fields):
    return {"type": type_, **fields}


# --- SetDefaults_LimitRangeItem ---------------------------------------------------------------

LR_DEFAULTS = [
    ("default-from-max", item(max={"cpu": "2"}), {"default": {"cpu": "2"}, "defaultRequest": {"cpu": "2"}}),
    ("request-from-default", item(default={"memory": "1Gi"}),
     {"default": {"memory": "1Gi"}, "defaultRequest": {"memory": "1Gi"}}),
    ("request-from-min", item(min={"cpu": "100m"}), {"defaultRequest": {"cpu": "100m"}}),
    ("default-beats-min", item(min={"cpu": "100m"}, max={"cpu": "4"}),
     {"default": {"cpu": "4"}, "defaultRequest": {"cpu": "4"}}),
    ("explicit-kept", item(max={"cpu": "4"}, default={"cpu": "1"}, defaultRequest={"cpu": "200m"}),
     {"default": {"cpu": "1"}, "defaultRequest": {"cpu": "200m"}}),
    ("mixed-resources", item(max={"memory": "4Gi"}, default={"cpu": "1"}, min={"cpu": "10m", "memory": "1Gi"}),
     {"default": {"memory": "4Gi", "cpu": "1"}, "defaultRequest": {"cpu": "1", "memory": "4Gi"}}),
    ("canonical-strings", item(max={"cpu": "2000m"}), {"default": {"cpu": "2"}, "defaultRequest": {"cpu": "2"}}),
    ("pod-items-untouched", item("Pod", max={"cpu": "2"}), {}),
    ("pvc-items-untouched", item("PersistentVolumeClaim", min={"storage": "1Gi"}), {}),
]


@pytest.mark.parametrize("given,added", [c[1:] for c in LR_DEFAULTS], ids=[c[0] for c in LR_DEFAULTS])
def test_default_limitrange(given, added):
    original = lr(given)
    snapshot = copy.deepcopy(original)
    out = limitrange.default_limitrange(original)
    got = out["spec"]["limits"][0]
    assert {k: got[k] for k in ("default", "defaultRequest") if k in got} == added
    assert {k: v for k, v in got.items() if k not in ("default", "defaultRequest")} == \
        {k: v for k, v in given.items() if k not in ("default", "defaultRequest")}
    assert original == snapshot


# --- mutating part ----------------------------------------------------------------------------

SPEC_LR = lr(item(default={"cpu": "1"}, defaultRequest={"cpu": "100m", "memory": "256Mi"}))
FULL_LR = lr(item(default={"cpu": "1", "memory": "1Gi"}, defaultRequest={"cpu": "100m", "memory": "256Mi"}))

MUTATIONS = [
    ("spec-example", pod(), [SPEC_LR],
     [{"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1"}}],
     "LimitRanger plugin set: cpu, memory request for container notebook; cpu limit for container notebook"),
    ("nothing-to-set", pod(containers=[ctr(requests={"cpu": "2", "memory": "2Gi"}, limits={"cpu": "2", "memory": "2Gi"})]),
     [FULL_LR], [{"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}], None),
    ("limit-only-request-defaulted-from-limit-first",
     pod(containers=[ctr(limits={"memory": "2Gi"})]), [FULL_LR],
     [{"requests": {"memory": "2Gi", "cpu": "100m"}, "limits": {"memory": "2Gi", "cpu": "1"}}],
     "LimitRanger plugin set: cpu request for container notebook; cpu limit for container notebook"),
    ("request-only-gets-limit", pod(containers=[ctr(requests={"cpu": "500m"})]), [SPEC_LR],
     [{"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "1"}}],
     "LimitRanger plugin set: memory request for container notebook; cpu limit for container notebook"),
    ("several-containers-and-init", pod(containers=[ctr("notebook"), ctr("sidecar", limits={"cpu": "1"})],
                                        init=[ctr("setup")]), [SPEC_LR],
     [{"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1"}},
      {"requests": {"cpu": "1", "memory": "256Mi"}, "limits": {"cpu": "1"}},
      {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1"}}],
     "LimitRanger plugin set: cpu, memory request for container notebook; cpu limit for container notebook; "
     "memory request for container sidecar; cpu, memory request for init container setup; "
     "cpu limit for init container setup"),
    ("defaults-from-max-and-min", pod(), [lr(item(max={"cpu": "2"}, min={"memory": "128Mi"}))],
     [{"requests": {"cpu": "2", "memory": "128Mi"}, "limits": {"cpu": "2"}}],
     "LimitRanger plugin set: cpu, memory request for container notebook; cpu limit for container notebook"),
    ("canonical-values", pod(), [lr(item(default={"cpu": "1000m"}, defaultRequest={"memory": "1024Mi"}))],
     [{"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1"}}],
     "LimitRanger plugin set: cpu, memory request for container notebook; cpu limit for container notebook"),
    ("non-container-items-ignored", pod(), [lr(item("Pod", max={"cpu": "2"}))], [{}], None),
    ("gpu-default", pod(), [lr(item(default={"nvidia.com/gpu": "1"}))],
     [{"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}],
     "LimitRanger plugin set: nvidia.com/gpu request for container notebook; "
     "nvidia.com/gpu limit for container notebook"),
    ("later-limitrange-with-nothing-to-set-keeps-annotation", pod(),
     [lr(item(default={"memory": "2Gi"}), name="b-memory"), lr(item(default={"cpu": "1", "memory": "1Gi"}), name="a-cpu")],
     [{"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}],
     "LimitRanger plugin set: cpu, memory request for container notebook; cpu, memory limit for container notebook"),
]


def _resources(p):
    spec = p["spec"]
    return [c.get("resources", {}) for c in spec["containers"] + spec.get("initContainers", [])]


@pytest.mark.parametrize("p,lrs,resources,annotation", [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_apply_defaults(p, lrs, resources, annotation):
    snapshot = copy.deepcopy(p)
    out = limitrange.apply_defaults(p, lrs)
    assert _resources(out) == resources
    assert out["metadata"].get("annotations", {}).get(limitrange.ANNOTATION) == annotation
    assert p == snapshot


def test_each_limitrange_rewrites_the_annotation_in_name_order():
    lrs = [lr(item(default={"memory": "2Gi"}), name="b-memory"), lr(item(default={"cpu": "1"}), name="a-cpu")]
    out = limitrange.apply_defaults(pod(), lrs)
    assert out["metadata"]["annotations"][limitrange.ANNOTATION] == (
        "LimitRanger plugin set: memory request for container notebook; memory limit for container notebook")
    assert _resources(out) == [{"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}]


def test_existing_annotations_are_kept():
    out = limitrange.apply_defaults(pod(annotations={"hub.jupyter.org/username": "bob"}), [SPEC_LR])
    assert out["metadata"]["annotations"]["hub.jupyter.org/username"] == "bob"
    assert limitrange.ANNOTATION in out["metadata"]["annotations"]


# --- validating part --------------------------------------------------------------------------

CONTAINER_ERRORS = [
    ("max-limit", item(max={"cpu": "2"}), ctr(requests={"cpu": "1"}, limits={"cpu": "4"}),
     "maximum cpu usage per Container is 2, but limit is 4"),
    ("max-request", item(max={"cpu": "2"}), ctr(requests={"cpu": "3"}, limits={"cpu": "2"}),
     "maximum cpu usage per Container is 2, but request is 3"),
    ("max-no-limit", item(max={"cpu": "2"}), ctr(requests={"cpu": "1"}),
     "maximum cpu usage per Container is 2.  No limit is specified"),
    ("min-request", item(min={"memory": "1Gi"}), ctr(requests={"memory": "512Mi"}),
     "minimum memory usage per Container is 1Gi, but request is 512Mi"),
    ("min-limit", item(min={"memory": "1Gi"}), ctr(requests={"memory": "1Gi"}, limits={"memory": "768Mi"}),
     "minimum memory usage per Container is 1Gi, but limit is 768Mi"),
    ("min-no-request", item(min={"cpu": "100m"}), ctr(),
     "minimum cpu usage per Container is 100m.  No request is specified"),
    ("ratio", item(maxLimitRequestRatio={"cpu": "2"}), ctr(requests={"cpu": "1"}, limits={"cpu": "4"}),
     "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"),
    ("ratio-fractional", item(maxLimitRequestRatio={"cpu": "3"}), ctr(requests={"cpu": "300m"}, limits={"cpu": "1"}),
     "cpu max limit to request ratio per Container is 3, but provided ratio is 3.333333"),
    ("ratio-no-request", item(maxLimitRequestRatio={"memory": "2"}), ctr(requests={"memory": "0"}, limits={"memory": "1Gi"}),
     "memory max limit to request ratio per Container is 2, but no request is specified or request is 0"),
    ("ratio-no-limit", item(maxLimitRequestRatio={"memory": "2"}), ctr(requests={"memory": "1Gi"}),
     "memory max limit to request ratio per Container is 2, but no limit is specified or limit is 0"),
    ("milli-precision", item(max={"cpu": "1"}), ctr(requests={"cpu": "1"}, limits={"cpu": "1001m"}),
     "maximum cpu usage per Container is 1, but limit is 1001m"),
]


def _forbidden(resource, obj, lrs):
    with pytest.raises(ApiError) as exc:
        limitrange.validate(resource, obj, lrs)
    assert (exc.value.code, exc.value.reason) == (403, "Forbidden")
    return exc.value


@pytest.mark.parametrize("it,c,msg", [e[1:] for e in CONTAINER_ERRORS], ids=[e[0] for e in CONTAINER_ERRORS])
def test_container_errors(it, c, msg):
    assert _forbidden("pods", pod(containers=[c]), [lr(it)]).message == f'pods "jupyter-bob" is forbidden: {msg}'


@pytest.mark.parametrize("it,c,msg", [e[1:] for e in CONTAINER_ERRORS], ids=[e[0] for e in CONTAINER_ERRORS])
def test_container_rules_apply_to_init_containers(it, c, msg):
    p = pod(containers=[ctr("ok", requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"})],
            init=[c])
    assert _forbidden("pods", p, [lr(it)]).message == f'pods "jupyter-bob" is forbidden: {msg}'


PASSING = [
    ("within-max", item(max={"cpu": "2"}), ctr(requests={"cpu": "1"}, limits={"cpu": "2"})),
    ("at-min", item(min={"memory": "1Gi"}), ctr(requests={"memory": "1024Mi"})),
    ("ratio-equal", item(maxLimitRequestRatio={"cpu": "2"}), ctr(requests={"cpu": "1"}, limits={"cpu": "2"})),
    ("limit-only-counts-as-request", item(min={"cpu": "1"}), ctr(limits={"cpu": "1"})),
    ("pod-sum-at-max", item("Pod", max={"cpu": "2"}), ctr(requests={"memory": "1Gi"}, limits={"cpu": "2"})),
]


@pytest.mark.parametrize("it,c", [p[1:] for p in PASSING], ids=[p[0] for p in PASSING])
def test_valid_pods_pass(it, c):
    assert limitrange.validate("pods", pod(containers=[c]), [lr(it)]) is None


POD_ERRORS = [
    ("sum-over-max", item("Pod", max={"memory": "2Gi"}),
     pod(containers=[ctr("a", limits={"memory": "1Gi"}), ctr("b", limits={"memory": "2Gi"})]),
     "maximum memory usage per Pod is 2Gi, but limit is 3Gi"),
    ("init-max-rule", item("Pod", max={"cpu": "2"}),
     pod(containers=[ctr("a", limits={"cpu": "1"})], init=[ctr("i", limits={"cpu": "3"})]),
     "maximum cpu usage per Pod is 2, but limit is 3"),
    ("sum-under-min", item("Pod", min={"cpu": "1"}),
     pod(containers=[ctr("a", requests={"cpu": "200m"}), ctr("b", requests={"cpu": "300m"})]),
     "minimum cpu usage per Pod is 1, but request is 500m"),
    ("no-limit", item("Pod", max={"cpu": "2"}), pod(containers=[ctr(requests={"cpu": "1"})]),
     "maximum cpu usage per Pod is 2.  No limit is specified"),
    ("ratio", item("Pod", maxLimitRequestRatio={"cpu": "2"}),
     pod(containers=[ctr("a", requests={"cpu": "500m"}, limits={"cpu": "2"}),
                     ctr("b", requests={"cpu": "500m"}, limits={"cpu": "2"})]),
     "cpu max limit to request ratio per Pod is 2, but provided ratio is 4.000000"),
]


@pytest.mark.parametrize("it,p,msg", [e[1:] for e in POD_ERRORS], ids=[e[0] for e in POD_ERRORS])
def test_pod_errors(it, p, msg):
    assert _forbidden("pods", p, [lr(it)]).message == f'pods "jupyter-bob" is forbidden: {msg}'


def test_pod_sums_ignore_overhead():
    p = pod(containers=[ctr(limits={"cpu": "2"})], overhead={"cpu": "1"})
    assert limitrange.validate("pods", p, [lr(item("Pod", max={"cpu": "2"}))]) is None


def pvc(storage=None):
    spec = {"accessModes": ["ReadWriteOnce"]}
    if storage is not None:
        spec["resources"] = {"requests": {"storage": storage}}
    return {"metadata": {"name": "claim-bob", "namespace": "jhub"}, "spec": spec}


PVC_CASES = [
    ("min", item("PersistentVolumeClaim", min={"storage": "1Gi"}), pvc("500Mi"),
     "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"),
    ("max", item("PersistentVolumeClaim", max={"storage": "10Gi"}), pvc("20Gi"),
     "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"),
    ("max-no-request", item("PersistentVolumeClaim", max={"storage": "10Gi"}), pvc(),
     "maximum storage usage per PersistentVolumeClaim is 10Gi.  No request is specified"),
    ("min-no-request", item("PersistentVolumeClaim", min={"storage": "1Gi"}), pvc(),
     "minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified"),
    ("both", item("PersistentVolumeClaim", min={"storage": "1Gi"}, max={"storage": "10Gi"}), pvc(),
     "[minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified, "
     "maximum storage usage per PersistentVolumeClaim is 10Gi.  No request is specified]"),
]


@pytest.mark.parametrize("it,claim,msg", [c[1:] for c in PVC_CASES], ids=[c[0] for c in PVC_CASES])
def test_pvc_errors(it, claim, msg):
    err = _forbidden("persistentvolumeclaims", claim, [lr(it)])
    assert err.message == f'persistentvolumeclaims "claim-bob" is forbidden: {msg}'


def test_pvc_within_bounds_and_container_items_ignored_for_pvcs():
    lrs = [lr(item("PersistentVolumeClaim", min={"storage": "1Gi"}, max={"storage": "10Gi"}),
              item(max={"storage": "1Mi"}))]
    assert limitrange.validate("persistentvolumeclaims", pvc("10Gi"), lrs) is None


def test_pod_items_ignored_for_pvcs_and_pvc_items_for_pods():
    assert limitrange.validate("persistentvolumeclaims", pvc("1Gi"), [lr(item("Pod", max={"cpu": "1"}))]) is None
    assert limitrange.validate("pods", pod(), [lr(item("PersistentVolumeClaim", min={"storage": "1Gi"}))]) is None


def test_other_resources_are_not_checked():
    assert limitrange.validate("secrets", {"metadata": {"name": "s"}}, [lr(item(max={"cpu": "1"}))]) is None


def test_several_errors_are_aggregated_in_brackets():
    p = pod(containers=[ctr(requests={"cpu": "1", "memory": "128Mi"}, limits={"cpu": "4", "memory": "128Mi"})])
    err = _forbidden("pods", p, [lr(item(max={"cpu": "2"}, min={"memory": "1Gi"}))])
    assert err.message == (
        'pods "jupyter-bob" is forbidden: [minimum memory usage per Container is 1Gi, but request is 128Mi, '
        "maximum cpu usage per Container is 2, but limit is 4]"
    )


def test_duplicate_errors_collapse_to_one_without_brackets():
    p = pod(containers=[ctr("a", limits={"cpu": "4"}), ctr("b", limits={"cpu": "4"})])
    err = _forbidden("pods", p, [lr(item(max={"cpu": "2"}))])
    assert err.message == 'pods "jupyter-bob" is forbidden: maximum cpu usage per Container is 2, but limit is 4'


def test_first_failing_limitrange_by_name_wins():
    p = pod(containers=[ctr(limits={"cpu": "4"})])
    lrs = [lr(item(max={"cpu": "1"}), name="z-strict"), lr(item(max={"cpu": "3"}), name="a-loose")]
    assert _forbidden("pods", p, lrs).message.endswith("maximum cpu usage per Container is 3, but limit is 4")


def test_forbidden_body_names_the_pod():
    err = _forbidden("pods", pod(containers=[ctr(limits={"cpu": "4"})]), [lr(item(max={"cpu": "2"}))])
    assert err.status()["details"] == {"name": "jupyter-bob", "kind": "pods"}


@pytest.mark.parametrize(
    "errs,expected",
    [(["a"], "a"), (["a", "b"], "[a, b]"), (["a", "a"], "a"), (["a", "b", "a"], "[a, b]")],
    ids=["one", "two", "duplicate", "duplicate-among-two"],
)
def test_aggregate_message(errs, expected):
    assert limitrange.aggregate_message(errs) == expected


def test_defaults_then_validate_pipeline_accepts_defaulted_pod():
    lrs = [lr(item(max={"cpu": "2", "memory": "4Gi"}, min={"cpu": "100m"}))]
    out = limitrange.apply_defaults(pod(), lrs)
    assert limitrange.validate("pods", out, lrs) is None
    assert _resources(out) == [{"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}]
