"""What the emulator serves for kubectl, without HTTP: Tables, discovery, OpenAPI, apply, tokens.

We test these aspects:
- ``HumanDuration`` ages as a table (seconds to years, "<invalid>" in the future);
- the pod STATUS/READY/RESTARTS cells for pending, running, init, waiting, crashed, completed and
  terminating pods, restarts with "(Xm ago)", and the wide cells;
- node STATUS with cordoning, roles from labels; PVC access modes and unbound claims; quota
  request/limit split; event OBJECT and "(xN over ...)"; RBAC binding cells; a kind without a
  printer gets NAME / CREATED AT;
- the Table's shape: PartialObjectMetadata rows by default, whole objects or none on request,
  column definitions left out for later watch events; Accept parsing;
- discovery: short names and categories, subresources, create-only access reviews;
- OpenAPI v3: the index names every group version with a hash URL, each PATCH advertises
  ``fieldValidation`` with the kind's GVK, unknown documents are None;
- server-side apply helpers: merge keeps server fields, FieldsV1 of a config, the manager's
  entry replaced not duplicated, bad YAML refused;
- protobuf access reviews decoded (resource and non-resource), a body without the envelope refused;
- tokens: admin, issued ServiceAccount token (stable per account), anonymous, unknown and
  non-bearer headers.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from jhplatform.devcluster import apply, discovery, errors, openapi, printers, protobuf
from jhplatform.devcluster.tokens import ADMIN_USER, TokenAuthenticator

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=timezone.utc)


def ago(**kw) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


DURATIONS = [
    ("future", -5, "<invalid>"), ("skew", -1, "0s"), ("zero", 0, "0s"), ("seconds", 119, "119s"), ("two-minutes", 120, "2m"),
    ("minutes-seconds", 200, "3m20s"), ("ten-minutes", 600, "10m"), ("three-hours", 3 * 3600, "3h"),
    ("hours-minutes", 5 * 3600 + 600, "5h10m"), ("a-day", 30 * 3600, "30h"), ("days-hours", 3 * 86400 + 4 * 3600, "3d4h"),
    ("days", 100 * 86400, "100d"), ("years-days", 800 * 86400, "2y70d"), ("years", 9 * 365 * 86400, "9y"),
]


@pytest.mark.parametrize("seconds,text", [d[1:] for d in DURATIONS], ids=[d[0] for d in DURATIONS])
def test_human_duration(seconds, text):
    assert printers.human_duration(seconds) == text


def pod(phase="Running", statuses=None, init_statuses=None, deleting=False, inits=0, **status):
    md = {"name": "p", "namespace": "ns", "creationTimestamp": ago(seconds=30)}
    if deleting:
        md["deletionTimestamp"] = ago(seconds=1)
    spec = {"containers": [{"name": "a"}, {"name": "b"}][: len(statuses) if statuses else 1], "nodeName": "n1"}
    if inits:
        spec["initContainers"] = [{"name": f"i{i}"} for i in range(inits)]
    st = {"phase": phase, **status}
    if statuses is not None:
        st["containerStatuses"] = statuses
    if init_statuses is not None:
        st["initContainerStatuses"] = init_statuses
    return {"metadata": md, "spec": spec, "status": st}


RUNNING = {"ready": True, "restartCount": 0, "state": {"running": {}}}
POD_CASES = [
    ("pending", pod("Pending"), ["0/1", "Pending", "0"]),
    ("running", pod(statuses=[RUNNING]), ["1/1", "Running", "0"]),
    ("not-ready", pod(statuses=[{**RUNNING, "ready": False}]), ["0/1", "Running", "0"]),
    ("two-containers", pod(statuses=[RUNNING, {**RUNNING, "ready": False}]), ["1/2", "Running", "0"]),
    ("creating", pod("Pending", statuses=[{"ready": False, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]),
     ["0/1", "ContainerCreating", "0"]),
    ("crashloop", pod(statuses=[{"ready": False, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                 "lastState": {"terminated": {"finishedAt": ago(minutes=4)}}}]),
     ["0/1", "CrashLoopBackOff", "3 (4m ago)"]),
    ("completed", pod("Succeeded", statuses=[{"ready": False, "restartCount": 0, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]),
     ["0/1", "Completed", "0"]),
    ("exit-code", pod("Failed", statuses=[{"ready": False, "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}]),
     ["0/1", "ExitCode:2", "0"]),
    ("signal", pod("Failed", statuses=[{"ready": False, "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}}]),
     ["0/1", "Signal:9", "0"]),
    ("init-running", pod("Pending", inits=2, init_statuses=[{"restartCount": 0, "state": {"running": {}}}]), ["0/1", "Init:0/2", "0"]),
    ("init-error", pod("Pending", inits=1, init_statuses=[{"restartCount": 1, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]),
     ["0/1", "Init:Error", "1"]),
    ("init-pull", pod("Pending", inits=1, init_statuses=[{"restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]),
     ["0/1", "Init:ImagePullBackOff", "0"]),
    ("terminating", pod(statuses=[RUNNING], deleting=True), ["1/1", "Terminating", "0"]),
    ("evicted", pod("Failed", reason="Evicted"), ["0/1", "Evicted", "0"]),
]


@pytest.mark.parametrize("obj,cells", [c[1:] for c in POD_CASES], ids=[c[0] for c in POD_CASES])
def test_pod_cells(obj, cells):
    row = printers.table("pods", [obj], "1", now=NOW)["rows"][0]["cells"]
    assert row[1:4] == cells and row[4] == "30s"


def test_pod_wide_cells():
    running = pod(statuses=[RUNNING], podIP="10.244.0.5", podIPs=[{"ip": "10.244.0.5"}])
    assert printers.table("pods", [running], "1", now=NOW)["rows"][0]["cells"][5:] == ["10.244.0.5", "n1", "<none>", "<none>"]
    assert printers.table("pods", [pod("Pending")], "1", now=NOW)["rows"][0]["cells"][5] == "<none>"


def test_node_cells():
    node = {"metadata": {"name": "gpu-0", "creationTimestamp": ago(hours=2), "labels": {"node-role.kubernetes.io/gpu": ""}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "False"}], "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                       "nodeInfo": {"kubeletVersion": "v1.37.0", "osImage": "Debian", "kernelVersion": "6.8", "containerRuntimeVersion": "containerd://2"}}}
    assert printers.table("nodes", [node], "1", now=NOW)["rows"][0]["cells"] == [
        "gpu-0", "NotReady,SchedulingDisabled", "gpu", "120m", "v1.37.0", "10.0.0.1", "<none>", "Debian", "6.8", "containerd://2"]


def test_pvc_quota_event_binding_and_default_cells():
    claim = {"metadata": {"name": "c", "creationTimestamp": ago(seconds=5)},
             "spec": {"volumeName": "pv-1", "storageClassName": "standard", "accessModes": ["ReadWriteMany", "ReadWriteOnce"]},
             "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}}
    assert printers.table("persistentvolumeclaims", [claim], "1", now=NOW)["rows"][0]["cells"] == [
        "c", "Bound", "pv-1", "10Gi", "RWO,RWX", "standard", "<unset>", "5s", "<unset>"]
    pending = {"metadata": {"name": "c", "creationTimestamp": ago(seconds=5)}, "spec": {}, "status": {"phase": "Pending"}}
    assert printers.table("persistentvolumeclaims", [pending], "1", now=NOW)["rows"][0]["cells"][1:5] == ["Pending", "", "", ""]
    quota = {"metadata": {"name": "q", "creationTimestamp": ago(days=1)},
             "status": {"hard": {"requests.nvidia.com/gpu": "8", "limits.memory": "64Gi", "pods": "10"}, "used": {"requests.nvidia.com/gpu": "2"}}}
    assert printers.table("resourcequotas", [quota], "1", now=NOW)["rows"][0]["cells"] == [
        "q", "24h", "pods: 0/10, requests.nvidia.com/gpu: 2/8", "limits.memory: 0/64Gi"]
    event = {"metadata": {"name": "e1"}, "type": "Warning", "reason": "BackOff", "message": "Back-off ",
             "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{a}"}, "source": {"component": "kubelet", "host": "n1"},
             "firstTimestamp": ago(minutes=5), "lastTimestamp": ago(seconds=10), "count": 4}
    assert printers.table("events", [event], "1", now=NOW)["rows"][0]["cells"] == [
        "10s (x4 over 5m)", "Warning", "BackOff", "pod/p", "spec.containers{a}", "kubelet, n1", "Back-off", "5m", 4, "e1"]
    binding = {"metadata": {"name": "b", "creationTimestamp": ago(seconds=1)}, "roleRef": {"kind": "Role", "name": "hub"},
               "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": "jhub"}, {"kind": "Group", "name": "g"}, {"kind": "User", "name": "u"}]}
    assert printers.table("rolebindings", [binding], "1", now=NOW)["rows"][0]["cells"] == ["b", "Role/hub", "1s", "u", "g", "jhub/hub"]
    assert printers.table("roles", [{"metadata": {"name": "r", "creationTimestamp": "2026-01-01T00:00:00Z"}}], "1", now=NOW)["rows"][0]["cells"] == [
        "r", "2026-01-01T00:00:00Z"]
    unknown = printers.table("selfsubjectaccessreviews", [{"metadata": {"name": "x"}}], "1", now=NOW)
    assert [c["name"] for c in unknown["columnDefinitions"]] == ["Name", "Created At"]


def test_table_shape_and_accept():
    obj = pod(statuses=[RUNNING])
    t = printers.table("pods", [obj], "42", now=NOW)
    assert (t["kind"], t["apiVersion"], t["metadata"]) == ("Table", "meta.k8s.io/v1", {"resourceVersion": "42"})
    assert t["rows"][0]["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
    assert [c["priority"] for c in t["columnDefinitions"]] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert printers.table("pods", [obj], "1", "Object", now=NOW)["rows"][0]["object"] is obj
    assert "object" not in printers.table("pods", [obj], "1", "None", now=NOW)["rows"][0]
    assert printers.table("pods", [obj], "1", columns=False, now=NOW)["columnDefinitions"] is None
    kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
    assert printers.wants_table(kubectl)
    assert not printers.wants_table("application/json")
    assert not printers.wants_table(None)
    assert not printers.wants_table("application/json;as=Table;v=v1;g=example.io")


def test_discovery():
    core = {r["name"]: r for r in discovery.resource_list("v1")["resources"]}
    assert {name: r.get("shortNames") for name, r in core.items() if r.get("shortNames")} == {
        "namespaces": ["ns"], "nodes": ["no"], "pods": ["po"], "services": ["svc"], "configmaps": ["cm"],
        "persistentvolumeclaims": ["pvc"], "events": ["ev"], "resourcequotas": ["quota"], "limitranges": ["limits"],
        "serviceaccounts": ["sa"]}
    assert core["pods"]["categories"] == ["all"] and core["pods/log"]["verbs"] == ["get"]
    assert discovery.resource_list("networking.k8s.io/v1")["resources"][0]["shortNames"] == ["netpol"]
    [review] = discovery.resource_list("authorization.k8s.io/v1")["resources"]
    assert (review["name"], review["verbs"], review["namespaced"]) == ("selfsubjectaccessreviews", ["create"], False)
    assert discovery.resource_list("example.io/v1")["resources"] == []


def test_openapi():
    index = openapi.index()["paths"]
    assert set(index) == {"api/v1", "apis/authorization.k8s.io/v1", "apis/networking.k8s.io/v1", "apis/rbac.authorization.k8s.io/v1",
                          "apis/storage.k8s.io/v1"}
    assert index["api/v1"]["serverRelativeURL"].startswith("/openapi/v3/api/v1?hash=")
    doc = json.loads(openapi.document_for_path("apis/rbac.authorization.k8s.io/v1"))
    patch = doc["paths"]["/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "rbac.authorization.k8s.io", "version": "v1", "kind": "RoleBinding"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert "/api/v1/nodes/{name}" in json.loads(openapi.document_for_path("/api/v1/"))["paths"]
    assert openapi.document_for_path("apis/example.io/v1") is None


def test_server_side_apply_helpers():
    existing = {"kind": "ConfigMap", "metadata": {"name": "c", "uid": "u", "labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"b": "2"}}, "data": {"y": "3"}, "status": {"z": 1}}
    assert apply.merged(existing, config) == {"kind": "ConfigMap", "apiVersion": "v1",
                                              "metadata": {"name": "c", "uid": "u", "labels": {"a": "1", "b": "2"}},
                                              "data": {"x": "1", "y": "3"}}
    entry = apply.managed_entry("kubectl", "v1", config)
    assert entry["fieldsV1"] == {"f:data": {"f:y": {}}, "f:status": {"f:z": {}}, "f:metadata": {"f:labels": {"f:b": {}}}}
    twice = apply.with_managed_fields(apply.with_managed_fields(existing, entry), {**entry, "time": "later"})
    assert [m["time"] for m in twice["metadata"]["managedFields"]] == ["later"]
    assert apply.parse(b"a: 1\n") == {"a": 1}
    for bad in (b"- a\n- b\n", b"a: [\n"):
        with pytest.raises(errors.ApiError) as info:
            apply.parse(bad)
        assert info.value.code == 400


def _field(number: int, value: bytes) -> bytes:
    return bytes([number << 3 | 2, len(value)]) + value


def _review(spec: bytes) -> bytes:
    raw = _field(2, spec)
    return protobuf.MAGIC + _field(1, _field(1, b"authorization.k8s.io/v1") + _field(2, b"SelfSubjectAccessReview")) + _field(2, raw)


def test_protobuf_access_review():
    attrs = _field(1, b"jhub") + _field(2, b"get") + _field(5, b"pods") + _field(6, b"log")
    assert protobuf.access_review(_review(_field(1, attrs))) == {
        "spec": {"resourceAttributes": {"namespace": "jhub", "verb": "get", "resource": "pods", "subresource": "log"}}}
    assert protobuf.access_review(_review(_field(2, _field(1, b"/api") + _field(2, b"get")))) == {
        "spec": {"nonResourceAttributes": {"path": "/api", "verb": "get"}}}
    for bad in (b'{"spec": {}}', protobuf.MAGIC + b"\x12\x40short"):
        with pytest.raises(errors.ApiError) as info:
            protobuf.access_review(bad)
        assert info.value.code == 400


def test_tokens():
    tokens = TokenAuthenticator()
    assert tokens.authenticate("Bearer devcluster") == ADMIN_USER
    issued = tokens.issue("jhub", "hub")
    assert tokens.issue("jhub", "hub") == issued and tokens.issue("other", "hub") != issued
    user = tokens.authenticate(f"Bearer {issued}")
    assert user.name == "system:serviceaccount:jhub:hub"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:jhub", "system:authenticated")
    assert tokens.authenticate(None).name == "system:anonymous"
    assert tokens.authenticate("Bearer nope") is None
    assert tokens.authenticate("Basic dXNlcjpwYXNz") is None
    assert tokens.authenticate("Bearer ") is None
