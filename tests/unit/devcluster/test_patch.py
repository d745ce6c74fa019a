"""PATCH handling of the devcluster emulator (``jhplatform.devcluster.patch``).

We test these aspects:

- media types: the three patch types (with a charset parameter too), 415 for plain JSON and
  server-side apply, with the apiserver's message;
- RFC 7386 merge patch: nested merge, ``null`` deletion, list replacement, namespace labels;
- RFC 6902 JSON patch: add/replace/remove/test/move, 422 on operations that do not apply,
  400 on patches that do not decode;
- strategic merge patch: container and env merge by ``name``, volumeMounts by ``mountPath``,
  container ports by ``containerPort`` vs service ports by ``port``, ownerReferences by ``uid``,
  conditions by ``type``, tolerations replaced, finalizers merged as a set;
  ``$patch: delete`` on list items and maps, ``$patch: replace`` on maps and lists,
  ``$deleteFromPrimitiveList/``, ``$retainKeys``, ``$setElementOrder/`` ignored;
  400 for a missing merge key or an unknown ``$patch``;
- bodies: raw ``str``/``bytes`` accepted, undecodable JSON and non-object patches are 400;
- inputs are never mutated.
"""

from __future__ import annotations

import copy
import json

import pytest

from jhplatform.devcluster.errors import ApiError
from jhplatform.devcluster.patch import apply_patch

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
SMP = "application/strategic-merge-patch+json"

POD = {
    "kind": "Pod",
    "apiVersion": "v1",
    "metadata": {
        "name": "jupyter-alice",
        "namespace": "default",
        "labels": {"app": "jupyterhub", "component": "singleuser-server"},
        "finalizers": ["a.example.com/keep"],
        "ownerReferences": [{"uid": "u1", "kind": "Pod", "name": "p1", "apiVersion": "v1"}],
    },
    "spec": {
        "containers": [
            {
                "name": "notebook",
                "image": "quay.io/jupyterhub/singleuser:4",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 8888, "name": "notebook-port", "protocol": "TCP"}],
                "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
                "args": ["jupyterhub-singleuser", "--debug"],
            },
            {"name": "sidecar", "image": "busybox:1"},
        ],
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}}],
        "tolerations": [{"key": "gpu", "operator": "Exists"}],
        "securityContext": {"runAsUser": 1000, "fsGroup": 100},
    },
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]},
}

SERVICE = {
    "kind": "Service",
    "metadata": {"name": "jupyter-alice"},
    "spec": {"ports": [{"name": "http", "port": 8888, "targetPort": 8888, "protocol": "TCP"}], "type": "ClusterIP"},
}


def expect(base: dict, mutate) -> dict:
    out = copy.deepcopy(base)
    mutate(out)
    return out


# -- media types ----------------------------------------------------------------------------

UNSUPPORTED = [
    ("application/json", "plain-json"),
    ("application/apply-patch+yaml", "server-side-apply"),
    ("text/plain", "text"),
    ("", "missing"),
]


@pytest.mark.parametrize("content_type", [c[0] for c in UNSUPPORTED], ids=[c[1] for c in UNSUPPORTED])
def test_unsupported_patch_type_is_415(content_type):
    with pytest.raises(ApiError) as info:
        apply_patch(POD, {"metadata": {}}, content_type)
    assert (info.value.code, info.value.reason) == (415, "UnsupportedMediaType")
    assert info.value.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json "
        f"(got {content_type})"
    )


def test_charset_parameter_is_accepted():
    out = apply_patch(POD, {"metadata": {"labels": {"x": "y"}}}, "application/merge-patch+json; charset=utf-8")
    assert out["metadata"]["labels"] == {"app": "jupyterhub", "component": "singleuser-server", "x": "y"}


# -- RFC 7386 -------------------------------------------------------------------------------

MERGE_CASES = [
    (
        {"metadata": {"labels": {"component": None, "tier": "gpu"}}},
        lambda o: o["metadata"].update(labels={"app": "jupyterhub", "tier": "gpu"}),
        "null-deletes-and-adds",
    ),
    ({"status": None}, lambda o: o.pop("status"), "null-deletes-subtree"),
    ({"metadata": {"missing": None}}, lambda o: None, "null-on-absent-key-is-noop"),
    (
        {"spec": {"tolerations": [{"key": "other", "operator": "Exists"}]}},
        lambda o: o["spec"].update(tolerations=[{"key": "other", "operator": "Exists"}]),
        "lists-replaced",
    ),
    (
        {"spec": {"containers": [{"name": "notebook", "image": "x:1"}]}},
        lambda o: o["spec"].update(containers=[{"name": "notebook", "image": "x:1"}]),
        "containers-replaced-not-merged",
    ),
    (
        {"spec": {"securityContext": "scalar"}},
        lambda o: o["spec"].update(securityContext="scalar"),
        "scalar-replaces-object",
    ),
    ({}, lambda o: None, "empty-patch"),
]


@pytest.mark.parametrize("patch, mutate", [c[:2] for c in MERGE_CASES], ids=[c[2] for c in MERGE_CASES])
def test_merge_patch(patch, mutate):
    before = copy.deepcopy(POD)
    patch_before = copy.deepcopy(patch)
    assert apply_patch(POD, patch, MERGE) == expect(POD, mutate)
    assert POD == before and patch == patch_before


def test_merge_patch_namespace_pod_security_labels():
    ns = {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "user-a", "labels": {"kubernetes.io/metadata.name": "user-a"}}}
    patch = {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    assert apply_patch(ns, patch, MERGE)["metadata"]["labels"] == {
        "kubernetes.io/metadata.name": "user-a",
        "pod-security.kubernetes.io/enforce": "restricted",
    }


@pytest.mark.parametrize(
    "raw", [json.dumps({"metadata": {"labels": {"x": "1"}}}), json.dumps({"metadata": {"labels": {"x": "1"}}}).encode()],
    ids=["str", "bytes"],
)
def test_raw_body_is_decoded(raw):
    assert apply_patch(POD, raw, MERGE)["metadata"]["labels"]["x"] == "1"


BAD_BODIES = [
    (MERGE, "{nope", "error decoding patch: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)", "bad-json"),
    (MERGE, [1, 2], "json: cannot unmarshal array into Go value of type map[string]interface {}", "merge-array"),
    (SMP, "x", "error decoding patch: Expecting value: line 1 column 1 (char 0)", "smp-bad-json"),
    (SMP, json.dumps("s"), "json: cannot unmarshal string into Go value of type map[string]interface {}", "smp-string"),
    (JSON_PATCH, {"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch", "jsonpatch-object"),
    (JSON_PATCH, [{"op": "frobnicate", "path": "/a"}], "Unknown operation 'frobnicate'", "jsonpatch-unknown-op"),
    (JSON_PATCH, [{"path": "/a"}], "Operation does not contain 'op' member", "jsonpatch-no-op"),
    (JSON_PATCH, [{"op": "add", "path": "a", "value": 1}], "Location must start with /", "jsonpatch-bad-pointer"),
    (JSON_PATCH, [{"op": "add", "path": "/a"}], "The operation does not contain a 'value' member", "jsonpatch-no-value"),
]


@pytest.mark.parametrize("ct, body, message", [c[:3] for c in BAD_BODIES], ids=[c[3] for c in BAD_BODIES])
def test_undecodable_patch_is_400(ct, body, message):
    with pytest.raises(ApiError) as info:
        apply_patch(POD, body, ct)
    assert (info.value.code, info.value.reason, info.value.message) == (400, "BadRequest", message)


# -- RFC 6902 -------------------------------------------------------------------------------

JSON_PATCH_CASES = [
    (
        [{"op": "add", "path": "/metadata/labels/tier", "value": "gpu"}],
        lambda o: o["metadata"]["labels"].update(tier="gpu"),
        "add",
    ),
    (
        [{"op": "replace", "path": "/spec/containers/0/image", "value": "x:2"}],
        lambda o: o["spec"]["containers"][0].update(image="x:2"),
        "replace-in-list",
    ),
    (
        [{"op": "remove", "path": "/spec/containers/1"}],
        lambda o: o["spec"]["containers"].pop(1),
        "remove-list-item",
    ),
    (
        [{"op": "test", "path": "/metadata/name", "value": "jupyter-alice"}, {"op": "remove", "path": "/status"}],
        lambda o: o.pop("status"),
        "test-then-remove",
    ),
    (
        [{"op": "move", "from": "/metadata/labels/app", "path": "/metadata/labels/application"}],
        lambda o: o["metadata"]["labels"].update(application=o["metadata"]["labels"].pop("app")),
        "move",
    ),
    (
        [{"op": "add", "path": "/spec/tolerations/-", "value": {"key": "b"}}],
        lambda o: o["spec"]["tolerations"].append({"key": "b"}),
        "append",
    ),
]


@pytest.mark.parametrize("patch, mutate", [c[:2] for c in JSON_PATCH_CASES], ids=[c[2] for c in JSON_PATCH_CASES])
def test_json_patch(patch, mutate):
    before = copy.deepcopy(POD)
    assert apply_patch(POD, patch, JSON_PATCH) == expect(POD, mutate)
    assert POD == before


JSON_PATCH_FAILURES = [
    (
        [{"op": "test", "path": "/metadata/name", "value": "bob"}],
        "jupyter-alice (<class 'str'>) is not equal to tested value bob (<class 'str'>)",
        "test-fails",
    ),
    ([{"op": "remove", "path": "/metadata/nope"}], "can't remove a non-existent object 'nope'", "remove-missing"),
    ([{"op": "replace", "path": "/spec/containers/9", "value": {}}], "can't replace outside of list", "replace-out-of-range"),
]


@pytest.mark.parametrize("patch, message", [c[:2] for c in JSON_PATCH_FAILURES], ids=[c[2] for c in JSON_PATCH_FAILURES])
def test_json_patch_that_does_not_apply_is_422(patch, message):
    with pytest.raises(ApiError) as info:
        apply_patch(POD, patch, JSON_PATCH)
    assert (info.value.code, info.value.reason, info.value.message) == (422, "Invalid", message)


# -- strategic merge ------------------------------------------------------------------------


def _env(o, env):
    o["spec"]["containers"][0]["env"] = env


SMP_CASES = [
    (
        {"spec": {"containers": [{"name": "notebook", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]}]}},
        lambda o: _env(o, [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]),
        "container-env-merge-by-name",
    ),
    (
        {"spec": {"containers": [{"name": "notebook", "env": [{"name": "A", "$patch": "delete"}]}]}},
        lambda o: _env(o, [{"name": "B", "value": "2"}]),
        "env-item-patch-delete",
    ),
    (
        {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}},
        lambda o: o["spec"]["containers"].pop(1),
        "container-patch-delete",
    ),
    (
        {"spec": {"containers": [{"name": "debug", "image": "busybox:2"}]}},
        lambda o: o["spec"]["containers"].append({"name": "debug", "image": "busybox:2"}),
        "new-container-appended",
    ),
    (
        {"spec": {"containers": [{"name": "notebook", "args": ["x"]}]}},
        lambda o: o["spec"]["containers"][0].update(args=["x"]),
        "primitive-list-in-item-replaced",
    ),
    (
        {"spec": {"containers": [{"name": "notebook", "image": None}]}},
        lambda o: o["spec"]["containers"][0].pop("image"),
        "null-inside-keyed-item",
    ),
    (
        {"spec": {"containers": [{"name": "notebook", "volumeMounts": [{"mountPath": "/home/jovyan", "readOnly": True},
                                                                       {"name": "data", "mountPath": "/data"}]}]}},
        lambda o: o["spec"]["containers"][0].update(
            volumeMounts=[{"name": "home", "mountPath": "/home/jovyan", "readOnly": True}, {"name": "data", "mountPath": "/data"}]
        ),
        "volumeMounts-by-mountPath",
    ),
    (
        {"spec": {"containers": [{"name": "notebook", "ports": [{"containerPort": 8888, "name": "http"}]}]}},
        lambda o: o["spec"]["containers"][0]["ports"][0].update(name="http"),
        "container-ports-by-containerPort",
    ),
    (
        {"spec": {"volumes": [{"name": "scratch", "emptyDir": {}}]}},
        lambda o: o["spec"]["volumes"].append({"name": "scratch", "emptyDir": {}}),
        "volumes-by-name",
    ),
    (
        {"spec": {"tolerations": [{"key": "other", "operator": "Exists"}]}},
        lambda o: o["spec"].update(tolerations=[{"key": "other", "operator": "Exists"}]),
        "tolerations-replaced",
    ),
    (
        {"metadata": {"finalizers": ["b.example.com/x", "a.example.com/keep"]}},
        lambda o: o["metadata"].update(finalizers=["a.example.com/keep", "b.example.com/x"]),
        "finalizers-merged-as-set",
    ),
    (
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/keep"]}},
        lambda o: o["metadata"].update(finalizers=[]),
        "deleteFromPrimitiveList",
    ),
    (
        {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}, {"uid": "u2", "kind": "Pod", "name": "p2", "apiVersion": "v1"}]}},
        lambda o: o["metadata"].update(
            ownerReferences=[
                {"uid": "u1", "kind": "Pod", "name": "p1", "apiVersion": "v1", "controller": True},
                {"uid": "u2", "kind": "Pod", "name": "p2", "apiVersion": "v1"},
            ]
        ),
        "ownerReferences-by-uid",
    ),
    (
        {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]}},
        lambda o: o["status"].update(
            conditions=[{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}, {"type": "PodScheduled", "status": "True"}]
        ),
        "conditions-by-type",
    ),
    (
        {"spec": {"securityContext": {"$patch": "delete"}}},
        lambda o: o["spec"].pop("securityContext"),
        "map-patch-delete",
    ),
    (
        {"spec": {"securityContext": {"$patch": "replace", "runAsNonRoot": True}}},
        lambda o: o["spec"].update(securityContext={"runAsNonRoot": True}),
        "map-patch-replace",
    ),
    (
        {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x:1"}]}},
        lambda o: o["spec"].update(containers=[{"name": "only", "image": "x:1"}]),
        "list-patch-replace",
    ),
    (
        {"spec": {"securityContext": {"$retainKeys": ["runAsUser"], "runAsUser": 1001}}},
        lambda o: o["spec"].update(securityContext={"runAsUser": 1001}),
        "retainKeys",
    ),
    (
        {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "notebook"}],
                  "containers": [{"name": "sidecar", "image": "busybox:2"}]}},
        lambda o: o["spec"]["containers"][1].update(image="busybox:2"),
        "setElementOrder-ignored",
    ),
    (
        {"metadata": {"labels": {"component": None}}},
        lambda o: o["metadata"]["labels"].pop("component"),
        "null-deletes-label",
    ),
    ({"$patch": "merge"}, lambda o: None, "explicit-merge-directive"),
]


@pytest.mark.parametrize("patch, mutate", [c[:2] for c in SMP_CASES], ids=[c[2] for c in SMP_CASES])
def test_strategic_merge_patch(patch, mutate):
    before, patch_before = copy.deepcopy(POD), copy.deepcopy(patch)
    assert apply_patch(POD, patch, SMP) == expect(POD, mutate)
    assert POD == before and patch == patch_before


def test_strategic_service_ports_merge_by_port():
    patch = {"spec": {"ports": [{"port": 8888, "targetPort": 9999}, {"name": "metrics", "port": 9100}]}}
    out = apply_patch(SERVICE, patch, SMP)
    assert out["spec"]["ports"] == [
        {"name": "http", "port": 8888, "targetPort": 9999, "protocol": "TCP"},
        {"name": "metrics", "port": 9100},
    ]


SMP_ERRORS = [
    (
        {"spec": {"containers": [{"image": "x:1"}]}},
        "map: map[image:x:1] does not contain declared merge key: name",
        "missing-merge-key",
    ),
    (
        {"spec": {"securityContext": {"$patch": "explode"}}},
        "unknown patch type: explode in map: map[$patch:explode]",
        "unknown-directive",
    ),
]


@pytest.mark.parametrize("patch, message", [c[:2] for c in SMP_ERRORS], ids=[c[2] for c in SMP_ERRORS])
def test_strategic_merge_patch_errors_are_400(patch, message):
    with pytest.raises(ApiError) as info:
        apply_patch(POD, patch, SMP)
    assert (info.value.code, info.value.reason, info.value.message) == (400, "BadRequest", message)
