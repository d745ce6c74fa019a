"""The emulator's Kubernetes REST API, through the real kubernetes_asyncio client and raw HTTP.

We test these aspects:
- create: HTTP 201, server-set ``uid``/``resourceVersion``/``creationTimestamp``/``namespace``,
  TypeMeta defaulted from the URL (a Service without ``apiVersion``, a Namespace without
  ``kind``/``apiVersion``); one global, strictly increasing resourceVersion shared by all
  resources; ``metadata.resourceVersion`` on list responses;
- the Status error bodies of spec §4.7 (compact one-line JSON, ``Content-Type:
  application/json``, exact messages): 404 NotFound, 409 AlreadyExists, 422 Invalid, 400 for a
  namespace mismatch, a malformed label selector and an unsupported field label, 404 for a
  create in a missing namespace;
- admission order (§4.1): 404 namespace -> 422 validation -> 403 quota -> 409 storage; PodSecurity
  ``baseline`` lists only baseline failures; LimitRange defaults and their annotation; 403 with a
  ``NamespaceTerminating`` cause in a terminating namespace;
- list with label selectors (``= == != in notin exists !exists``) and field selectors
  (``status.phase``, ``spec.nodeName``, ``involvedObject.kind`` on events);
- watch: ``watch=True`` (and the other boolean spellings) is a watch; resume from a
  resourceVersion replays only later changes, in order, with no synthetic ADDED; an unset/``0``
  resourceVersion starts with synthetic ADDED; ``timeoutSeconds`` ends the stream cleanly; an
  expired resourceVersion gives an in-stream 410 ERROR (and ApiException 410 in the client);
  BOOKMARK only with ``allowWatchBookmarks=true``; a selector-filtered watch turns a label
  change into DELETED/ADDED; DELETED carries the last state with a new resourceVersion;
- PATCH: merge-patch (null deletes), strategic merge (keyed merge of containers and env by
  name, via the client's default content type for dict bodies), JSON patch (list bodies), 415
  for plain ``application/json``, the ``status`` subresource changing only status, pod spec
  immutability; PUT with a stale resourceVersion -> 409 Conflict;
- DELETE: graceful pod deletion (deletionTimestamp/deletionGracePeriodSeconds, then DELETED),
  grace 0 and unscheduled pods removed at once, a Success Status for secrets, pvc-protection,
  owner-reference garbage collection by uid, namespace deletion (Terminating -> contents removed
  -> gone);
- discovery: ``/version``, ``/api``, ``/api/v1``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid

import aiohttp
import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from helpers import wait_for

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
PVC_SPEC = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> str:
    """A Failure Status exactly as the apiserver serialises it (Go struct key order)."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return compact(body)


def pod_body(name: str, image: str = "busybox:1.36", **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": image}], **spec}}


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture
async def api(cluster):
    cfg = client.Configuration()
    # The emulator's API itself is under test here: act as the cluster admin.
    await config.load_kube_config(config_file=str(cluster.admin_kubeconfig), client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as api_client:
        yield api_client


@pytest.fixture
def core(api):
    return client.CoreV1Api(api)


class Raw:
    """Raw HTTP to the emulator, for what the client hides (status lines, headers, bytes)."""

    def __init__(self, session: aiohttp.ClientSession, base: str):
        self.session = session
        self.base = base

    async def __call__(self, method: str, path: str, body=None, *, params=None, content_type="application/json"):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", "Content-Type": content_type}
        async with self.session.request(method, self.base + path, data=data, params=params, headers=headers) as resp:
            return resp.status, resp.headers, await resp.text()

    async def watch(self, path: str, params: dict, max_events: int | None = None, timeout: float = 10):
        """Read a watch stream to its end (or ``max_events`` lines); returns (events, clean_end)."""
        events = []
        async with self.session.get(self.base + path, params=params, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.headers.get("Transfer-Encoding") == "chunked"
            while max_events is None or len(events) < max_events:
                line = await resp.content.readline()
                if not line:
                    return events, resp.content.at_eof()
                assert line.endswith(b"\n") and line.count(b"\n") == 1
                events.append(json.loads(line))
        return events, False


@pytest.fixture
async def raw(cluster):
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {cluster.tokens.admin_token}"}) as session:
        yield Raw(session, cluster.url)


def names(items) -> list[str]:
    return sorted(i.metadata.name for i in items)


async def wait_running(cluster, ns: str, name: str) -> dict:
    def running():
        pod = cluster.cluster.store.find("pods", ns, name)
        return pod if pod is not None and (pod.get("status") or {}).get("phase") == "Running" else None

    return await wait_for(running, 10, message=f"pod {ns}/{name} Running")


# -- create ------------------------------------------------------------------------------


async def test_create_returns_201_with_server_fields(cluster, core, raw):
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p1"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")]),
    )
    pod, code, _ = await core.create_namespaced_pod_with_http_info("default", body)
    assert code == 201
    assert pod.kind == "Pod" and pod.api_version == "v1"
    assert str(uuid.UUID(pod.metadata.uid)) == pod.metadata.uid and uuid.UUID(pod.metadata.uid).version == 4
    assert pod.metadata.namespace == "default"
    assert pod.metadata.resource_version.isdigit() and int(pod.metadata.resource_version) > 0
    assert pod.status.phase == "Pending"
    stored = cluster.cluster.store.find("pods", "default", "p1")
    assert stored["metadata"]["uid"] == pod.metadata.uid
    assert RFC3339.match(stored["metadata"]["creationTimestamp"])

    # The raw response: 201, and server fields on a body that had none.
    code, headers, text = await raw("POST", "/api/v1/namespaces/default/secrets", {"metadata": {"name": "s1"}, "data": {}})
    assert code == 201
    assert headers["Content-Type"] == "application/json"
    secret = json.loads(text)
    assert (secret["kind"], secret["apiVersion"], secret["type"]) == ("Secret", "v1", "Opaque")
    assert RFC3339.match(secret["metadata"]["creationTimestamp"])
    assert secret["metadata"]["namespace"] == "default"
    assert int(secret["metadata"]["resourceVersion"]) > int(pod.metadata.resource_version)


async def test_typemeta_defaulted_from_the_url(cluster, raw, core):
    # KubeSpawner's Service body has no apiVersion (spec R15).
    code, _, text = await raw(
        "POST",
        "/api/v1/namespaces/default/services",
        {"kind": "Service", "metadata": {"name": "svc"}, "spec": {"ports": [{"name": "http", "port": 8888, "targetPort": 8888}]}},
    )
    assert code == 201
    svc = json.loads(text)
    assert (svc["kind"], svc["apiVersion"]) == ("Service", "v1")
    # KubeSpawner's Namespace body has neither kind nor apiVersion (spec R6).
    code, _, text = await raw("POST", "/api/v1/namespaces", {"metadata": {"annotations": {}, "labels": {}, "name": "user-start"}})
    assert code == 201
    ns = json.loads(text)
    assert (ns["kind"], ns["apiVersion"]) == ("Namespace", "v1")
    assert "namespace" not in ns["metadata"]
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "user-start"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}
    # Reads return the same TypeMeta.
    read = await core.read_namespace("user-start")
    assert (read.kind, read.api_version) == ("Namespace", "v1")


async def test_one_global_increasing_resource_version(cluster, core):
    rvs = []
    ns = await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="rv")))
    rvs.append(ns.metadata.resource_version)
    cm = await core.create_namespaced_config_map("rv", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a")))
    rvs.append(cm.metadata.resource_version)
    secret = await core.create_namespaced_secret("rv", client.V1Secret(metadata=client.V1ObjectMeta(name="a")))
    rvs.append(secret.metadata.resource_version)
    cm2 = await core.patch_namespaced_config_map("a", "rv", {"data": {"k": "v"}})
    rvs.append(cm2.metadata.resource_version)
    svc = await core.create_namespaced_service(
        "rv", client.V1Service(metadata=client.V1ObjectMeta(name="a"), spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]))
    )
    rvs.append(svc.metadata.resource_version)
    numbers = [int(rv) for rv in rvs]
    assert all(isinstance(rv, str) and rv.isdigit() for rv in rvs)
    assert numbers == sorted(set(numbers)), f"not strictly increasing across resources: {rvs}"

    # Lists carry the store's current rv, the same for every resource.
    cms = await core.list_namespaced_config_map("rv")
    secrets = await core.list_namespaced_secret("rv")
    current = str(cluster.cluster.store.rv)
    assert cms.metadata.resource_version == current == secrets.metadata.resource_version
    assert int(current) >= numbers[-1]
    assert [c.metadata.name for c in cms.items] == ["a"]


# -- Status bodies (§4.7) ------------------------------------------------------------------


async def test_404_not_found_status(cluster, raw, core):
    code, headers, text = await raw("GET", "/api/v1/namespaces/default/pods/nope")
    assert code == 404
    assert headers["Content-Type"] == "application/json"
    assert text == status_body(404, "NotFound", 'pods "nope" not found', {"name": "nope", "kind": "pods"})
    with pytest.raises(ApiException) as info:
        await core.read_namespaced_secret("nope", "default")
    assert info.value.status == 404
    assert json.loads(info.value.body)["message"] == 'secrets "nope" not found'


async def test_409_already_exists_status(cluster, raw):
    body = {"metadata": {"name": "dup"}, "data": {"a": "1"}}
    assert (await raw("POST", "/api/v1/namespaces/default/configmaps", body))[0] == 201
    code, headers, text = await raw("POST", "/api/v1/namespaces/default/configmaps", {**body, "data": {"a": "2"}})
    assert code == 409
    assert headers["Content-Type"] == "application/json"
    assert text == status_body(409, "AlreadyExists", 'configmaps "dup" already exists', {"name": "dup", "kind": "configmaps"})
    assert cluster.cluster.get("configmaps", "default", "dup")["data"] == {"a": "1"}


async def test_422_invalid_status(cluster, raw):
    code, headers, text = await raw("POST", "/api/v1/namespaces/default/pods", {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}})
    assert code == 422
    assert headers["Content-Type"] == "application/json"
    assert "\n" not in text
    assert text == status_body(
        422,
        "Invalid",
        'Pod "x" is invalid: spec.containers[0].image: Required value',
        {
            "name": "x",
            "kind": "Pod",
            "causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image"}],
        },
    )
    assert cluster.cluster.store.find("pods", "default", "x") is None


async def test_400_namespace_mismatch(cluster, raw):
    code, headers, text = await raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "m", "namespace": "kube-system"}})
    assert code == 400
    assert headers["Content-Type"] == "application/json"
    assert text == status_body(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
    assert cluster.cluster.store.find("configmaps", "default", "m") is None
    assert cluster.cluster.store.find("configmaps", "kube-system", "m") is None


@pytest.mark.parametrize(
    "path, params, message",
    [
        ("/api/v1/namespaces/default/pods", {"labelSelector": "a in (b"}, "unable to parse requirement: found '', expected: ',' or ')'"),
        ("/api/v1/namespaces/default/pods", {"labelSelector": "a=b,"}, "found '', expected: identifier after ','"),
        ("/api/v1/namespaces/default/pods", {"fieldSelector": "x=1"}, "field label not supported: x"),
        ("/api/v1/namespaces/default/events", {"fieldSelector": "status.phase=Running"}, "field label not supported: status.phase"),
        ("/api/v1/pods", {"fieldSelector": "x=1", "watch": "True"}, "field label not supported: x"),
    ],
)
async def test_400_bad_selectors(cluster, raw, path, params, message):
    code, headers, text = await raw("GET", path, params=params)
    assert code == 400
    assert headers["Content-Type"] == "application/json"
    assert text == status_body(400, "BadRequest", message)


async def test_404_create_in_missing_namespace(cluster, raw, core):
    code, headers, text = await raw("POST", "/api/v1/namespaces/ghost/secrets", {"metadata": {"name": "s"}})
    assert code == 404
    assert headers["Content-Type"] == "application/json"
    assert text == status_body(404, "NotFound", 'namespaces "ghost" not found', {"name": "ghost", "kind": "namespaces"})
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_pod("ghost", client.V1Pod(**{"metadata": client.V1ObjectMeta(name="p")}))
    assert info.value.status == 404
    assert json.loads(info.value.body)["message"] == 'namespaces "ghost" not found'


# -- admission order (§4.1) ------------------------------------------------------------------


async def test_admission_order_quota_403_beats_409(cluster, core, raw):
    core_pvc = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="claim-a"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"})
        ),
    )
    await core.create_namespaced_resource_quota(
        "default", client.V1ResourceQuota(metadata=client.V1ObjectMeta(name="storage"), spec=client.V1ResourceQuotaSpec(hard={"persistentvolumeclaims": "1"}))
    )
    await core.create_namespaced_persistent_volume_claim("default", core_pvc)
    quota = await core.read_namespaced_resource_quota("storage", "default")
    assert quota.status.used == {"persistentvolumeclaims": "1"}

    # The quota is full and the claim exists: quota admission (403) runs before storage (409).
    code, _, text = await raw("POST", "/api/v1/namespaces/default/persistentvolumeclaims", {"metadata": {"name": "claim-a"}, "spec": PVC_SPEC})
    assert code == 403
    assert text == status_body(
        403,
        "Forbidden",
        'persistentvolumeclaims "claim-a" is forbidden: exceeded quota: storage, requested: persistentvolumeclaims=1, '
        "used: persistentvolumeclaims=1, limited: persistentvolumeclaims=1",
        {"name": "claim-a", "kind": "persistentvolumeclaims"},
    )
    # Validation (422) comes before quota.
    code, _, text = await raw("POST", "/api/v1/namespaces/default/persistentvolumeclaims", {"metadata": {"name": "claim-a"}, "spec": {}})
    assert code == 422 and json.loads(text)["reason"] == "Invalid"
    # The namespace check (404) comes first of all.
    code, _, text = await raw("POST", "/api/v1/namespaces/ghost/persistentvolumeclaims", {"metadata": {"name": "claim-a"}, "spec": {}})
    assert code == 404 and json.loads(text)["message"] == 'namespaces "ghost" not found'
    # With room in the quota the same request reaches storage: 409.
    await core.patch_namespaced_resource_quota("storage", "default", {"spec": {"hard": {"persistentvolumeclaims": "2"}}})
    code, _, text = await raw("POST", "/api/v1/namespaces/default/persistentvolumeclaims", {"metadata": {"name": "claim-a"}, "spec": PVC_SPEC})
    assert code == 409
    assert json.loads(text)["reason"] == "AlreadyExists"


async def test_pod_security_baseline_lists_only_baseline_failures(cluster, core, raw):
    await core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name="base", labels={"pod-security.kubernetes.io/enforce": "baseline"}))
    )
    # Violates baseline (privileged, hostNetwork) and restricted (runAsNonRoot, seccomp, ...).
    bad = pod_body("priv", hostNetwork=True)
    bad["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    code, _, text = await raw("POST", "/api/v1/namespaces/base/pods", bad)
    assert code == 403
    assert text == status_body(
        403,
        "Forbidden",
        'pods "priv" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), '
        'privileged (container "c" must not set securityContext.privileged=true)',
        {"name": "priv", "kind": "pods"},
    )
    assert cluster.cluster.store.find("pods", "base", "priv") is None
    # A pod that only fails restricted checks is admitted under baseline.
    code, _, _ = await raw("POST", "/api/v1/namespaces/base/pods", pod_body("plain"))
    assert code == 201


async def test_limitrange_defaults_annotate_the_pod(cluster, core):
    await core.create_namespaced_limit_range(
        "default",
        client.V1LimitRange(
            metadata=client.V1ObjectMeta(name="defaults"),
            spec=client.V1LimitRangeSpec(
                limits=[
                    client.V1LimitRangeItem(
                        type="Container", default={"cpu": "1", "memory": "1Gi"}, default_request={"cpu": "100m", "memory": "128Mi"}
                    )
                ]
            ),
        ),
    )
    pod = await core.create_namespaced_pod("default", client.V1Pod(**{"metadata": client.V1ObjectMeta(name="lr"), "spec": client.V1PodSpec(containers=[client.V1Container(name="notebook", image="busybox:1.36")])}))
    assert pod.metadata.annotations == {
        "kubernetes.io/limit-ranger": "LimitRanger plugin set: cpu, memory request for container notebook; cpu, memory limit for container notebook"
    }
    assert pod.spec.containers[0].resources.limits == {"cpu": "1", "memory": "1Gi"}
    assert pod.spec.containers[0].resources.requests == {"cpu": "100m", "memory": "128Mi"}
    # A container that sets its own values keeps them; only the missing ones are defaulted.
    own = client.V1Container(name="notebook", image="busybox:1.36", resources=client.V1ResourceRequirements(limits={"cpu": "2"}))
    pod = await core.create_namespaced_pod("default", client.V1Pod(metadata=client.V1ObjectMeta(name="lr2"), spec=client.V1PodSpec(containers=[own])))
    assert pod.spec.containers[0].resources.limits == {"cpu": "2", "memory": "1Gi"}
    assert pod.spec.containers[0].resources.requests == {"cpu": "2", "memory": "128Mi"}
    assert pod.metadata.annotations == {
        "kubernetes.io/limit-ranger": "LimitRanger plugin set: memory request for container notebook; memory limit for container notebook"
    }


async def test_terminating_namespace_refuses_creates(cluster, core, raw):
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    # A finalizer holds one object, and with it the namespace, in Terminating.
    await core.create_namespaced_config_map("doomed", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="held", finalizers=["example.com/hold"])))
    # delete_namespace's :rtype: is V1Status, but a namespace with finalizers comes back as
    # the Namespace object (spec §1.5): read it raw.
    code, _, text = await raw("DELETE", "/api/v1/namespaces/doomed")
    assert code == 200
    assert json.loads(text)["status"]["phase"] == "Terminating"
    code, headers, text = await raw("POST", "/api/v1/namespaces/doomed/secrets", {"metadata": {"name": "s"}})
    assert code == 403
    assert headers["Content-Type"] == "application/json"
    assert text == status_body(
        403,
        "Forbidden",
        'secrets "s" is forbidden: unable to create new content in namespace doomed because it is being terminated',
        {
            "name": "s",
            "kind": "secrets",
            "causes": [{"reason": "NamespaceTerminating", "message": "namespace doomed is being terminated", "field": "metadata.namespace"}],
        },
    )
    held = await wait_for(
        lambda: (cluster.cluster.store.find("configmaps", "doomed", "held") or {}).get("metadata", {}).get("deletionTimestamp"),
        5,
        message="namespace controller deletes the held object",
    )
    assert RFC3339.match(held)
    assert cluster.cluster.store.find("namespaces", "", "doomed")["status"]["phase"] == "Terminating"
    # Releasing the finalizer lets the namespace go.
    await core.patch_namespaced_config_map("held", "doomed", [{"op": "remove", "path": "/metadata/finalizers"}])
    await wait_for(lambda: cluster.cluster.store.find("namespaces", "", "doomed") is None, 5, message="namespace removed")


# -- selectors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selector, expected",
    [
        ("", ["a", "b", "c", "d"]),
        ("env=prod", ["a", "c"]),
        ("env==prod", ["a", "c"]),
        ("env!=prod", ["b", "d"]),
        ("env in (dev,qa)", ["b"]),
        ("env notin (prod)", ["b", "d"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c", "d"]),
        ("env=prod,tier", ["a"]),
        ("env in (prod),!tier", ["c"]),
        ("env=qa", []),
    ],
)
async def test_list_label_selectors(cluster, core, selector, expected):
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="sel")))
    labels = {"a": {"env": "prod", "tier": "web"}, "b": {"env": "dev", "tier": "web"}, "c": {"env": "prod"}, "d": None}
    for name, lbl in labels.items():
        await core.create_namespaced_config_map("sel", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=lbl)))
    result = await core.list_namespaced_config_map("sel", label_selector=selector)
    assert names(result.items) == expected
    # The same selector on a cross-namespace list.
    everywhere = await core.list_config_map_for_all_namespaces(label_selector=selector)
    assert sorted(f"{i.metadata.namespace}/{i.metadata.name}" for i in everywhere.items) == [f"sel/{n}" for n in expected]


async def test_list_field_selectors(cluster, core, raw):
    await core.create_namespaced_pod("default", client.V1Pod(metadata=client.V1ObjectMeta(name="running"), spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")])))
    await core.create_namespaced_pod(
        "default",
        client.V1Pod(metadata=client.V1ObjectMeta(name="waiting"), spec=client.V1PodSpec(scheduler_name="manual", containers=[client.V1Container(name="c", image="busybox:1.36")])),
    )
    pod = await wait_running(cluster, "default", "running")
    node = pod["spec"]["nodeName"]

    async def pods(selector: str) -> list[str]:
        return names((await core.list_namespaced_pod("default", field_selector=selector)).items)

    assert await pods("status.phase=Running") == ["running"]
    assert await pods("status.phase==Pending") == ["waiting"]
    assert await pods("status.phase!=Running") == ["waiting"]
    assert await pods(f"spec.nodeName={node}") == ["running"]
    assert await pods("spec.nodeName=") == ["waiting"], "a missing field compares as empty"
    assert await pods("metadata.name=waiting,status.phase=Pending") == ["waiting"]
    assert await pods("metadata.name=waiting,status.phase=Running") == []

    code, _, _ = await raw(
        "POST",
        "/api/v1/namespaces/default/events",
        {
            "metadata": {"name": "node-event"},
            "involvedObject": {"kind": "Node", "name": node, "apiVersion": "v1"},
            "reason": "Tested",
            "message": "a node event",
            "type": "Normal",
            "firstTimestamp": "2025-01-02T03:04:05Z",
            "lastTimestamp": "2025-01-02T03:04:05Z",
            "eventTime": None,
        },
    )
    assert code == 201
    node_events = await core.list_namespaced_event("default", field_selector="involvedObject.kind=Node")
    assert names(node_events.items) == ["node-event"]
    pod_events = await core.list_namespaced_event("default", field_selector="involvedObject.kind=Pod")
    assert pod_events.items, "the scheduler and kubelet wrote events about the running pod"
    assert {e.involved_object.kind for e in pod_events.items} == {"Pod"}
    for_running = await core.list_event_for_all_namespaces(field_selector="involvedObject.kind=Pod,involvedObject.name=running")
    assert for_running.items and {e.involved_object.name for e in for_running.items} == {"running"}
    assert {e.reason for e in for_running.items} >= {"Scheduled", "Started"}


# -- watch -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value, is_watch", [("True", True), ("true", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("F", False), ("no", False), ("", False)])
async def test_watch_flag_parsing(cluster, raw, value, is_watch):
    await raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "w"}})
    params = {"watch": value, "timeoutSeconds": "1"}
    if is_watch:
        events, clean = await raw.watch("/api/v1/namespaces/default/configmaps", params)
        assert clean
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w")]
        assert events[0]["object"]["kind"] == "ConfigMap"
    else:
        code, _, text = await raw("GET", "/api/v1/namespaces/default/configmaps", params=params)
        assert code == 200
        body = json.loads(text)
        assert body["kind"] == "ConfigMapList"
        assert [i["metadata"]["name"] for i in body["items"]] == ["w"]
    assert cluster.requests[-1]["verb"] == ("watch" if is_watch else "list")


async def test_client_watch_sends_watch_true(cluster, core):
    await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w")))
    w = watch.Watch()
    seen = []
    async with w.stream(core.list_namespaced_config_map, "default", timeout_seconds=1) as stream:
        async for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
    assert seen == [("ADDED", "w")]
    watches = [r for r in cluster.requests if r.get("verb") == "watch"]
    assert len(watches) == 1
    assert "watch=True" in watches[0]["path_qs"] and "timeoutSeconds=1" in watches[0]["path_qs"]


async def test_watch_resume_replays_only_later_changes_in_order(cluster, core):
    store = cluster.cluster.store
    await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="early"), data={"k": "0"}))
    a = await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a"), data={"k": "1"}))
    since = a.metadata.resource_version
    a2 = await core.patch_namespaced_config_map("a", "default", {"data": {"k": "2"}})
    b = await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="b")))
    await core.create_namespaced_secret("default", client.V1Secret(metadata=client.V1ObjectMeta(name="not-a-configmap")))
    await core.delete_namespaced_config_map("a", "default")
    deleted_rv = str(store.rv)

    seen = []
    async with watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=since, timeout_seconds=1) as stream:
        async for event in stream:
            raw_obj = event["raw_object"]
            seen.append((event["type"], raw_obj["metadata"]["name"], raw_obj["metadata"]["resourceVersion"]))
    assert seen == [
        ("MODIFIED", "a", a2.metadata.resource_version),
        ("ADDED", "b", b.metadata.resource_version),
        ("DELETED", "a", deleted_rv),
    ]


async def test_watch_without_resource_version_sends_synthetic_added(cluster, core, raw):
    await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    y = await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="y")))
    y2 = await core.patch_namespaced_config_map("y", "default", {"data": {"k": "v"}})
    for params in ({"watch": "True", "timeoutSeconds": "1"}, {"watch": "True", "timeoutSeconds": "1", "resourceVersion": "0"}):
        events, clean = await raw.watch("/api/v1/namespaces/default/configmaps", params)
        assert clean
        got = sorted((e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"]["resourceVersion"]) for e in events)
        current_x = cluster.cluster.get("configmaps", "default", "x")["metadata"]["resourceVersion"]
        assert got == [("ADDED", "x", current_x), ("ADDED", "y", y2.metadata.resource_version)]
    assert int(y2.metadata.resource_version) > int(y.metadata.resource_version)


async def test_watch_timeout_seconds_ends_stream_cleanly(cluster, core, raw):
    started = time.monotonic()
    rv = str(cluster.cluster.store.rv)
    events, clean = await raw.watch("/api/v1/namespaces/default/pods", {"watch": "True", "timeoutSeconds": "1", "resourceVersion": rv})
    elapsed = time.monotonic() - started
    assert events == []
    assert clean, "the server ends the chunked body with a terminating chunk"
    assert 0.9 <= elapsed < 2.5, elapsed
    # The client's stream simply stops (no exception) when timeoutSeconds is given.
    started = time.monotonic()
    async with watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=1, _preload_content=False) as stream:
        got = [e async for e in stream]
    assert got == [] and 0.9 <= time.monotonic() - started < 2.5


async def test_watch_expired_resource_version(cluster, core, raw):
    store = cluster.cluster.store
    old = await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="old")))
    await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="new")))
    store.compacted = store.rv  # history before this rv is gone
    old_rv = old.metadata.resource_version
    events, clean = await raw.watch("/api/v1/namespaces/default/configmaps", {"watch": "True", "resourceVersion": old_rv, "timeoutSeconds": "5"})
    assert clean
    assert events == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {old_rv} ({store.compacted})",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]
    with pytest.raises(ApiException) as info:
        async with watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=old_rv, timeout_seconds=5) as stream:
            async for _ in stream:
                pass
    assert info.value.status == 410
    assert info.value.reason == f"Expired: too old resource version: {old_rv} ({store.compacted})"
    # The current rv is still watchable.
    events, clean = await raw.watch("/api/v1/namespaces/default/configmaps", {"watch": "True", "resourceVersion": str(store.rv), "timeoutSeconds": "1"})
    assert events == [] and clean


async def test_bookmarks_only_when_requested(cluster, raw):
    rv = str(cluster.cluster.store.rv)
    base = {"watch": "True", "timeoutSeconds": "2", "resourceVersion": rv}
    (asked, _), (unasked, _), (declined, _) = await asyncio.gather(
        raw.watch("/api/v1/namespaces/default/pods", {**base, "allowWatchBookmarks": "true"}),
        raw.watch("/api/v1/namespaces/default/pods", base),
        raw.watch("/api/v1/namespaces/default/pods", {**base, "allowWatchBookmarks": "false"}),
    )
    assert asked, "a bookmark within 2 s of an idle watch"
    assert {e["type"] for e in asked} == {"BOOKMARK"}
    assert asked[0]["object"] == {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": rv}}
    assert unasked == [] and declined == []


async def test_selector_watch_turns_label_changes_into_deleted_and_added(cluster, core, raw):
    rv = str(cluster.cluster.store.rv)
    params = {"watch": "True", "labelSelector": "app=x", "resourceVersion": rv, "timeoutSeconds": "10"}
    reader = asyncio.create_task(raw.watch("/api/v1/namespaces/default/configmaps", params, max_events=4))
    await wait_for(lambda: any(r.get("verb") == "watch" for r in cluster.requests), 5, message="watch open")
    expected = []
    m = await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="m", labels={"app": "x"})))
    expected.append(("ADDED", "m", m.metadata.resource_version, "x"))
    await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="other", labels={"app": "y"})))
    m = await core.patch_namespaced_config_map("m", "default", {"metadata": {"labels": {"app": "y"}}})
    expected.append(("DELETED", "m", m.metadata.resource_version, "y"))
    await core.patch_namespaced_config_map("m", "default", {"data": {"unseen": "1"}})  # filtered out: no event
    m = await core.patch_namespaced_config_map("m", "default", {"metadata": {"labels": {"app": "x"}}})
    expected.append(("ADDED", "m", m.metadata.resource_version, "x"))
    await core.delete_namespaced_config_map("m", "default")
    expected.append(("DELETED", "m", str(cluster.cluster.store.rv), "x"))
    events, _ = await asyncio.wait_for(reader, 10)
    got = [(e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"]["resourceVersion"], e["object"]["metadata"]["labels"]["app"]) for e in events]
    assert got == expected
    assert events[2]["object"]["data"] == {"unseen": "1"}


async def test_deleted_event_carries_last_state_with_new_rv(cluster, core, raw):
    await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="gone", labels={"l": "1"}), data={"k": "v1"}))
    last = await core.patch_namespaced_config_map("gone", "default", {"data": {"k": "v2"}})
    status = await core.delete_namespaced_config_map("gone", "default")
    assert status.status == "Success"
    events, _ = await raw.watch(
        "/api/v1/namespaces/default/configmaps", {"watch": "True", "resourceVersion": last.metadata.resource_version, "timeoutSeconds": "1"}
    )
    assert [e["type"] for e in events] == ["DELETED"]
    obj = events[0]["object"]
    assert int(obj["metadata"]["resourceVersion"]) > int(last.metadata.resource_version)
    assert obj["data"] == {"k": "v2"} and obj["metadata"]["labels"] == {"l": "1"}
    assert obj["metadata"]["uid"] == last.metadata.uid
    assert obj["kind"] == "ConfigMap" and obj["metadata"]["namespace"] == "default"


# -- PATCH / PUT -------------------------------------------------------------------------------


async def test_merge_patch_null_deletes(cluster, core):
    await core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="mp", labels={"a": "1", "b": "2"}), data={"x": "1", "y": "2"})
    )
    patched = await core.patch_namespaced_config_map(
        "mp", "default", {"metadata": {"labels": {"a": None, "c": "3"}}, "data": {"y": None}}, _content_type="application/merge-patch+json"
    )
    assert patched.metadata.labels == {"b": "2", "c": "3"}
    assert patched.data == {"x": "1"}
    assert cluster.requests[-1]["verb"] == "patch" and cluster.requests[-1]["status"] == 200


async def test_strategic_merge_patch_merges_containers_and_env_by_name(cluster, core):
    spec = client.V1PodSpec(
        scheduler_name="manual",
        containers=[
            client.V1Container(name="main", image="busybox:1.36", env=[client.V1EnvVar(name="A", value="1"), client.V1EnvVar(name="B", value="2")]),
            client.V1Container(name="side", image="busybox:1.36"),
        ],
    )
    await core.create_namespaced_pod("default", client.V1Pod(metadata=client.V1ObjectMeta(name="smp"), spec=spec))
    # A dict body goes out as application/strategic-merge-patch+json (the client's default).
    patched = await core.patch_namespaced_pod(
        "smp",
        "default",
        {"metadata": {"labels": {"patched": "yes"}}, "spec": {"containers": [{"name": "main", "image": "busybox:1.37", "env": [{"name": "B", "value": "2"}]}]}},
    )
    main, side = patched.spec.containers
    assert (main.name, main.image) == ("main", "busybox:1.37")
    assert [(e.name, e.value) for e in main.env] == [("A", "1"), ("B", "2")], "env merged by name, not replaced"
    assert (side.name, side.image) == ("side", "busybox:1.36"), "containers merged by name, not replaced"
    assert patched.metadata.labels == {"patched": "yes"}
    # The same list in a merge patch replaces the list.
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_pod(
            "smp", "default", {"spec": {"containers": [{"name": "main", "image": "busybox:1.38"}]}}, _content_type="application/merge-patch+json"
        )
    assert info.value.status == 422
    # Pod spec is immutable apart from images (ValidatePodUpdate): an env change is refused.
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_pod("smp", "default", {"spec": {"containers": [{"name": "main", "env": [{"name": "C", "value": "3"}]}]}})
    assert info.value.status == 422
    body = json.loads(info.value.body)
    assert body["message"].startswith('Pod "smp" is invalid: spec: Forbidden: pod updates may not change fields other than')
    assert [e["name"] for e in cluster.cluster.get("pods", "default", "smp")["spec"]["containers"][0]["env"]] == ["A", "B"]


async def test_strategic_merge_patch_directives(cluster, core):
    await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="d", labels={"a": "1", "b": "2"})))
    patched = await core.patch_namespaced_config_map("d", "default", {"metadata": {"labels": {"$patch": "replace", "c": "3"}}})
    assert patched.metadata.labels == {"c": "3"}


async def test_json_patch_with_list_body(cluster, core):
    await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="jp", labels={"keep": "1"}), data={"k": "v1", "drop": "x"}))
    patched = await core.patch_namespaced_config_map(
        "jp",
        "default",
        [
            {"op": "test", "path": "/data/k", "value": "v1"},
            {"op": "replace", "path": "/data/k", "value": "v2"},
            {"op": "remove", "path": "/data/drop"},
            {"op": "add", "path": "/metadata/labels/new", "value": "2"},
        ],
    )
    assert patched.data == {"k": "v2"}
    assert patched.metadata.labels == {"keep": "1", "new": "2"}
    # A failing test op changes nothing.
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_config_map("jp", "default", [{"op": "test", "path": "/data/k", "value": "nope"}, {"op": "remove", "path": "/data/k"}])
    assert info.value.status in (409, 422)
    assert cluster.cluster.get("configmaps", "default", "jp")["data"] == {"k": "v2"}


async def test_plain_json_patch_is_415(cluster, core, raw):
    await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="p"), data={"k": "v"}))
    rv = cluster.cluster.get("configmaps", "default", "p")["metadata"]["resourceVersion"]
    code, headers, text = await raw("PATCH", "/api/v1/namespaces/default/configmaps/p", {"data": {"k": "changed"}}, content_type="application/json")
    assert code == 415
    assert headers["Content-Type"] == "application/json"
    body = json.loads(text)
    assert (body["kind"], body["status"], body["reason"], body["code"]) == ("Status", "Failure", "UnsupportedMediaType", 415)
    assert "application/merge-patch+json" in body["message"]
    current = cluster.cluster.get("configmaps", "default", "p")
    assert current["data"] == {"k": "v"} and current["metadata"]["resourceVersion"] == rv


async def test_status_subresource_patch_changes_only_status(cluster, core):
    await core.create_namespaced_pod(
        "default",
        client.V1Pod(metadata=client.V1ObjectMeta(name="st", labels={"a": "1"}), spec=client.V1PodSpec(scheduler_name="manual", containers=[client.V1Container(name="c", image="busybox:1.36")])),
    )
    before = cluster.cluster.get("pods", "default", "st")
    patched = await core.patch_namespaced_pod_status(
        "st",
        "default",
        {"metadata": {"labels": {"a": "2"}}, "spec": {"activeDeadlineSeconds": 5}, "status": {"phase": "Failed", "reason": "Tested"}},
    )
    assert patched.status.phase == "Failed" and patched.status.reason == "Tested"
    assert patched.metadata.labels == {"a": "1"}
    assert patched.spec.active_deadline_seconds is None
    after = cluster.cluster.get("pods", "default", "st")
    assert after["spec"] == before["spec"] and after["metadata"]["labels"] == before["metadata"]["labels"]
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    # A main-resource patch cannot change status.
    patched = await core.patch_namespaced_pod("st", "default", {"metadata": {"labels": {"a": "3"}}, "status": {"phase": "Running"}})
    assert patched.status.phase == "Failed" and patched.metadata.labels == {"a": "3"}


async def test_put_with_stale_resource_version_is_409_conflict(cluster, core, raw):
    cm = await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cas"), data={"k": "1"}))
    stale = cm.metadata.resource_version
    cm.data = {"k": "2"}
    fresh = await core.replace_namespaced_config_map("cas", "default", cm)
    assert fresh.data == {"k": "2"} and int(fresh.metadata.resource_version) > int(stale)
    cm.data = {"k": "3"}
    cm.metadata.resource_version = stale
    with pytest.raises(ApiException) as info:
        await core.replace_namespaced_config_map("cas", "default", cm)
    assert info.value.status == 409
    assert info.value.body == status_body(
        409,
        "Conflict",
        'Operation cannot be fulfilled on configmaps "cas": the object has been modified; please apply your changes to the latest version and try again',
        {"name": "cas", "kind": "configmaps"},
    )
    assert cluster.cluster.get("configmaps", "default", "cas")["data"] == {"k": "2"}


# -- DELETE ------------------------------------------------------------------------------------


async def test_graceful_pod_delete(cluster, core, raw):
    await core.create_namespaced_pod("default", client.V1Pod(metadata=client.V1ObjectMeta(name="g"), spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")])))
    await wait_running(cluster, "default", "g")
    since = str(cluster.cluster.store.rv)
    deleted = await core.delete_namespaced_pod("g", "default", grace_period_seconds=1)
    assert isinstance(deleted, client.V1Pod)
    assert deleted.metadata.deletion_grace_period_seconds == 1
    assert deleted.metadata.deletion_timestamp is not None
    # deletionTimestamp = now + grace, at seconds precision.
    assert time.time() - 1 <= deleted.metadata.deletion_timestamp.timestamp() <= time.time() + 2
    assert cluster.cluster.store.find("pods", "default", "g") is not None, "graceful: still there after the response"
    await wait_for(lambda: cluster.cluster.store.find("pods", "default", "g") is None, 10, message="kubelet finishes the deletion")
    events, _ = await raw.watch("/api/v1/namespaces/default/pods", {"watch": "True", "resourceVersion": since, "timeoutSeconds": "1"})
    types = [e["type"] for e in events]
    assert types[0] == "MODIFIED" and types[-1] == "DELETED" and set(types[1:-1]) <= {"MODIFIED"}, types
    first = events[0]["object"]["metadata"]
    assert first["deletionGracePeriodSeconds"] == 1 and RFC3339.match(first["deletionTimestamp"])
    assert events[-1]["object"]["metadata"]["deletionTimestamp"] == first["deletionTimestamp"]
    assert events[-1]["object"]["status"]["phase"] in ("Succeeded", "Failed")
    killing = [e for e in cluster.cluster.list("events", "default") if e["reason"] == "Killing" and e["involvedObject"]["name"] == "g"]
    assert killing and killing[0]["message"] == "Stopping container c"


async def test_grace_zero_and_unscheduled_pods_are_removed_at_once(cluster, core):
    await core.create_namespaced_pod("default", client.V1Pod(metadata=client.V1ObjectMeta(name="now"), spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")])))
    await wait_running(cluster, "default", "now")
    deleted = await core.delete_namespaced_pod("now", "default", grace_period_seconds=0)
    assert deleted.metadata.deletion_grace_period_seconds == 0
    assert cluster.cluster.store.find("pods", "default", "now") is None
    with pytest.raises(ApiException) as info:
        await core.read_namespaced_pod("now", "default")
    assert info.value.status == 404
    # An unscheduled pod is removed at once whatever the grace period.
    await core.create_namespaced_pod(
        "default", client.V1Pod(metadata=client.V1ObjectMeta(name="never"), spec=client.V1PodSpec(scheduler_name="manual", containers=[client.V1Container(name="c", image="busybox:1.36")]))
    )
    deleted = await core.delete_namespaced_pod("never", "default", grace_period_seconds=30)
    assert deleted.metadata.deletion_grace_period_seconds == 0
    assert cluster.cluster.store.find("pods", "default", "never") is None
    # A second delete of a gone pod is a 404 (KubeSpawner treats that as success).
    with pytest.raises(ApiException) as info:
        await core.delete_namespaced_pod("never", "default")
    assert info.value.status == 404


async def test_secret_delete_returns_success_status(cluster, core, raw):
    secret = await core.create_namespaced_secret("default", client.V1Secret(metadata=client.V1ObjectMeta(name="s1")))
    code, headers, text = await raw("DELETE", "/api/v1/namespaces/default/secrets/s1")
    assert code == 200
    assert headers["Content-Type"] == "application/json"
    assert text == compact(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": {"name": "s1", "kind": "secrets", "uid": secret.metadata.uid}}
    )
    await core.create_namespaced_secret("default", client.V1Secret(metadata=client.V1ObjectMeta(name="s2")))
    status = await core.delete_namespaced_secret("s2", "default")
    assert isinstance(status, client.V1Status) and status.status == "Success" and status.details.name == "s2"
    assert cluster.cluster.store.find("secrets", "default", "s2") is None
    # Services return the object instead.
    await core.create_namespaced_service("default", client.V1Service(metadata=client.V1ObjectMeta(name="svc"), spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])))
    svc = await core.delete_namespaced_service("svc", "default")
    assert isinstance(svc, client.V1Service) and svc.metadata.name == "svc"


async def test_pvc_protection(cluster, core):
    await core.create_namespaced_persistent_volume_claim(
        "default",
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name="claim-x"),
            spec=client.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"], resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"})),
        ),
    )
    volume = client.V1Volume(name="home", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name="claim-x"))
    await core.create_namespaced_pod(
        "default", client.V1Pod(metadata=client.V1ObjectMeta(name="user"), spec=client.V1PodSpec(volumes=[volume], containers=[client.V1Container(name="c", image="busybox:1.36")]))
    )
    await wait_running(cluster, "default", "user")
    pvc = await core.delete_namespaced_persistent_volume_claim("claim-x", "default")
    assert isinstance(pvc, client.V1PersistentVolumeClaim)
    assert pvc.metadata.deletion_timestamp is not None
    assert pvc.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    # While the pod uses it the claim stays; a pod event later it is still there.
    rv = cluster.cluster.store.rv
    await core.patch_namespaced_pod("user", "default", {"metadata": {"labels": {"touch": "1"}}})
    await wait_for(lambda: cluster.cluster.store.rv > rv, 2)
    await asyncio.sleep(0.2)
    assert cluster.cluster.store.find("persistentvolumeclaims", "default", "claim-x") is not None
    await core.delete_namespaced_pod("user", "default", grace_period_seconds=0)
    await wait_for(lambda: cluster.cluster.store.find("persistentvolumeclaims", "default", "claim-x") is None, 5, message="pvc-protection releases the claim")


async def test_owner_reference_garbage_collection_by_uid(cluster, core):
    def pod(name):
        return client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(scheduler_name="manual", containers=[client.V1Container(name="c", image="busybox:1.36")]))

    owner = await core.create_namespaced_pod("default", pod("owner"))
    keeper = await core.create_namespaced_pod("default", pod("keeper"))

    def ref(p):
        return client.V1OwnerReference(api_version="v1", kind="Pod", name=p.metadata.name, uid=p.metadata.uid, block_owner_deletion=True, controller=False)

    await core.create_namespaced_secret("default", client.V1Secret(metadata=client.V1ObjectMeta(name="owned", owner_references=[ref(owner)])))
    await core.create_namespaced_service(
        "default", client.V1Service(metadata=client.V1ObjectMeta(name="owned", owner_references=[ref(owner)]), spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]))
    )
    await core.create_namespaced_secret("default", client.V1Secret(metadata=client.V1ObjectMeta(name="shared", owner_references=[ref(owner), ref(keeper)])))
    await core.create_namespaced_secret("default", client.V1Secret(metadata=client.V1ObjectMeta(name="other", owner_references=[ref(keeper)])))

    await core.delete_namespaced_pod("owner", "default", grace_period_seconds=0)
    store = cluster.cluster.store
    await wait_for(lambda: store.find("secrets", "default", "owned") is None, 5, message="secret GC")
    await wait_for(lambda: store.find("services", "default", "owned") is None, 5, message="service GC")
    shared = store.find("secrets", "default", "shared")
    assert shared is not None, "another owner remains"
    assert [r["uid"] for r in shared["metadata"]["ownerReferences"]] == [keeper.metadata.uid]
    assert store.find("secrets", "default", "other") is not None

    # When the last owner goes, so do its remaining dependents.
    await core.delete_namespaced_pod("keeper", "default", grace_period_seconds=0)
    await wait_for(lambda: store.find("secrets", "default", "shared") is None, 5, message="shared secret GC")
    await wait_for(lambda: store.find("secrets", "default", "other") is None, 5, message="other secret GC")


async def test_namespace_delete(cluster, core, raw):
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team")))
    await core.create_namespaced_config_map("team", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm")))
    await core.create_namespaced_secret("team", client.V1Secret(metadata=client.V1ObjectMeta(name="s")))
    await core.create_namespaced_pod("team", client.V1Pod(metadata=client.V1ObjectMeta(name="p"), spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")])))
    await wait_running(cluster, "team", "p")
    since = str(cluster.cluster.store.rv)
    resp = await core.delete_namespace("team", _preload_content=False)
    assert resp.status == 200
    ns = json.loads(await resp.read())
    assert (ns["kind"], ns["status"]["phase"]) == ("Namespace", "Terminating")
    assert RFC3339.match(ns["metadata"]["deletionTimestamp"])
    store = cluster.cluster.store
    await wait_for(lambda: store.find("namespaces", "", "team") is None, 10, message="namespace removed")
    for resource in ("configmaps", "secrets", "pods", "serviceaccounts"):
        assert store.list(resource, "team") == [], resource
    ns_events, _ = await raw.watch("/api/v1/namespaces", {"watch": "True", "resourceVersion": since, "timeoutSeconds": "1", "fieldSelector": "metadata.name=team"})
    assert [e["type"] for e in ns_events][0] == "MODIFIED" and ns_events[-1]["type"] == "DELETED"
    assert ns_events[0]["object"]["status"]["phase"] == "Terminating"
    cm_events, _ = await raw.watch("/api/v1/namespaces/team/configmaps", {"watch": "True", "resourceVersion": since, "timeoutSeconds": "1"})
    assert [e["type"] for e in cm_events] == ["DELETED"]
    assert int(cm_events[0]["object"]["metadata"]["resourceVersion"]) < int(ns_events[-1]["object"]["metadata"]["resourceVersion"]), "contents go first"
    with pytest.raises(ApiException) as info:
        await core.read_namespace("team")
    assert info.value.status == 404


# -- discovery -------------------------------------------------------------------------------


async def test_discovery(cluster, api, raw):
    version = await client.VersionApi(api).get_code()
    assert (version.major, version.minor) == ("1", "37")
    assert version.git_version.startswith("v1.37.")
    assert version.platform == "linux/amd64"
    versions = await client.CoreApi(api).get_api_versions()
    assert versions.versions == ["v1"]
    assert versions.server_address_by_client_cidrs[0].client_cidr == "0.0.0.0/0"
    resources = await client.CoreV1Api(api).get_api_resources()
    assert resources.group_version == "v1"
    by_name = {r.name: r for r in resources.resources}
    assert {"pods", "pods/status", "namespaces", "services", "secrets", "persistentvolumeclaims", "events", "configmaps"} <= set(by_name)
    assert by_name["pods"].namespaced is True and by_name["pods"].kind == "Pod"
    assert by_name["namespaces"].namespaced is False and by_name["namespaces"].kind == "Namespace"
    assert set(by_name["pods"].verbs) == {"create", "delete", "get", "list", "patch", "update", "watch"}
    assert set(by_name["pods/status"].verbs) == {"get", "patch", "update"}
    code, headers, text = await raw("GET", "/api")
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(text)["kind"] == "APIVersions"
    code, _, text = await raw("GET", "/api/v1/nonsense")
    assert code == 404
    assert json.loads(text)["reason"] == "NotFound"
