"""Create-time defaulting of the devcluster emulator (``jhplatform.devcluster.defaults``).

We test these aspects:

- KubeSpawner's recorded pod body (spec §1.4) gets exactly the apiserver's defaults, whole-dict;
- pod details: requests copied from limits (containers and init containers, GPUs included),
  imagePullPolicy by tag, hostNetwork ports, volume defaults, the serviceAccount alias, the
  DefaultTolerationSeconds tolerations added only when not already tolerated, client status
  discarded, the QoS class table;
- Service: TypeMeta filled in (KubeSpawner sends no apiVersion), ClusterIP from the injected
  allocator or the default counter, targetPort, headless and ExternalName services;
- PVC, Secret (type, stringData folding), Namespace (KubeSpawner's body), Event (both timestamp
  keys present), LimitRange item defaults;
- the input is never mutated and server-owned metadata (uid, resourceVersion,
  creationTimestamp) is never set.
"""

from __future__ import annotations

import copy

import pytest

from jhplatform.devcluster.defaults import default_object, qos_class

KUBESPAWNER_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "annotations": {"hub.jupyter.org/username": "start", "hub.jupyter.org/servername": "srv1"},
        "labels": {"component": "singleuser-server", "hub.jupyter.org/servername": "srv1"},
        "name": "jupyter-start--srv1",
    },
    "spec": {
        "automountServiceAccountToken": False,
        "containers": [
            {
                "args": ["jupyterhub-singleuser"],
                "env": [{"name": "JUPYTERHUB_API_TOKEN", "value": "t"}],
                "image": "quay.io/jupyterhub/singleuser:latest",
                "lifecycle": {},
                "name": "notebook",
                "ports": [{"containerPort": 8888, "name": "notebook-port"}],
                "resources": {"limits": {}, "requests": {}},
                "securityContext": {"allowPrivilegeEscalation": False},
                "volumeMounts": [],
            }
        ],
        "imagePullSecrets": [],
        "restartPolicy": "OnFailure",
        "volumes": [],
    },
}

TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]


def test_kubespawner_pod_gets_apiserver_defaults():
    before = copy.deepcopy(KUBESPAWNER_POD)
    out = default_object("pods", KUBESPAWNER_POD, "default")
    assert KUBESPAWNER_POD == before
    assert out == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**before["metadata"], "namespace": "default", "generation": 1},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [
                {
                    **before["spec"]["containers"][0],
                    "ports": [{"containerPort": 8888, "name": "notebook-port", "protocol": "TCP"}],
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "Always",
                }
            ],
            "imagePullSecrets": [],
            "restartPolicy": "OnFailure",
            "volumes": [],
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "enableServiceLinks": True,
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "priority": 0,
            "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": TOLERATIONS,
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }
    for key in ("uid", "resourceVersion", "creationTimestamp"):
        assert key not in out["metadata"]


def test_gpu_limit_becomes_request_and_client_status_is_discarded():
    pod = copy.deepcopy(KUBESPAWNER_POD)
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1", "cpu": "2", "memory": "4Gi"}}
    pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}}}]
    pod["status"] = {"phase": "Running", "podIP": "1.2.3.4"}
    out = default_object("pods", pod, "default")
    assert out["spec"]["containers"][0]["resources"] == {
        "limits": {"nvidia.com/gpu": "1", "cpu": "2", "memory": "4Gi"},
        "requests": {"nvidia.com/gpu": "1", "cpu": "2", "memory": "4Gi"},
    }
    # An explicit request is kept; only missing ones are copied.
    assert out["spec"]["initContainers"][0]["resources"] == {"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}}
    assert out["status"] == {"phase": "Pending", "qosClass": "Burstable"}


PULL_POLICIES = [
    ("quay.io/jupyterhub/singleuser:latest", "Always", "latest"),
    ("quay.io/jupyterhub/singleuser", "Always", "no-tag"),
    ("quay.io/jupyterhub/singleuser:4.1", "IfNotPresent", "tag"),
    ("registry.local:5000/nb", "Always", "registry-port-no-tag"),
    ("registry.local:5000/nb:2", "IfNotPresent", "registry-port-tag"),
    ("nb@sha256:" + "a" * 64, "IfNotPresent", "digest"),
]


@pytest.mark.parametrize("image, policy", [c[:2] for c in PULL_POLICIES], ids=[c[2] for c in PULL_POLICIES])
def test_image_pull_policy(image, policy):
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": image}]}}
    assert default_object("pods", pod, "ns")["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_explicit_pull_policy_and_service_account_kept():
    pod = {"metadata": {"name": "p"}, "spec": {"serviceAccount": "hub", "containers": [{"name": "c", "image": "x", "imagePullPolicy": "Never"}]}}
    out = default_object("pods", pod, "ns")
    assert out["spec"]["containers"][0]["imagePullPolicy"] == "Never"
    assert (out["spec"]["serviceAccountName"], out["spec"]["serviceAccount"]) == ("hub", "hub")


def test_host_network_volumes_and_probes():
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "hostNetwork": True,
            "containers": [
                {
                    "name": "c",
                    "image": "x:1",
                    "ports": [{"containerPort": 80}],
                    "readinessProbe": {"httpGet": {"port": 80}},
                    "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                }
            ],
            "volumes": [
                {"name": "certs", "secret": {"secretName": "s", "defaultMode": 511}},
                {"name": "cfg", "configMap": {"name": "c"}},
                {"name": "scratch"},
            ],
        },
    }
    out = default_object("pods", pod, "ns")
    c = out["spec"]["containers"][0]
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP", "hostPort": 80}]
    assert c["readinessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3,
    }
    assert c["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "spec.nodeName", "apiVersion": "v1"}
    assert out["spec"]["volumes"] == [
        {"name": "certs", "secret": {"secretName": "s", "defaultMode": 511}},
        {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}},
        {"name": "scratch", "emptyDir": {}},
    ]


TOLERATION_CASES = [
    ([], TOLERATIONS, "none-given"),
    (
        [{"operator": "Exists"}],
        [{"operator": "Exists"}],
        "wildcard-tolerates-everything",
    ),
    (
        [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}],
        [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}, TOLERATIONS[1]],
        "custom-not-ready-kept",
    ),
    (
        [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}],
        [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}, *TOLERATIONS],
        "other-effect-does-not-count",
    ),
    (
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, *TOLERATIONS],
        "gpu-toleration-kept",
    ),
]


@pytest.mark.parametrize("given, expected", [c[:2] for c in TOLERATION_CASES], ids=[c[2] for c in TOLERATION_CASES])
def test_default_toleration_seconds(given, expected):
    pod = {"metadata": {"name": "p"}, "spec": {"tolerations": given, "containers": [{"name": "c", "image": "x"}]}}
    assert default_object("pods", pod, "ns")["spec"]["tolerations"] == expected


def _pod(*containers, init=()):
    return {"spec": {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(containers)],
                     "initContainers": [{"name": f"i{i}", "resources": r} for i, r in enumerate(init)]}}


GUARANTEED = {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}
QOS_CASES = [
    (_pod({}), "BestEffort", "no-resources"),
    (_pod({"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}), "BestEffort", "gpu-only"),
    (_pod({"requests": {"cpu": "0"}}), "BestEffort", "zero-request"),
    (_pod(GUARANTEED), "Guaranteed", "equal"),
    (_pod({"limits": {"cpu": "1000m", "memory": "1024Mi"}, "requests": {"cpu": "1", "memory": "1Gi"}}), "Guaranteed", "equal-different-units"),
    (_pod(GUARANTEED, GUARANTEED), "Guaranteed", "two-containers"),
    (_pod(GUARANTEED, {}), "Burstable", "one-container-without"),
    (_pod(GUARANTEED, init=[{"requests": {"cpu": "100m"}}]), "Burstable", "init-container-counts"),
    (_pod({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}), "Burstable", "request-below-limit"),
    (_pod({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}), "Burstable", "cpu-only"),
    (_pod({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "0", "memory": "1Gi"}}), "Burstable", "zero-request-under-limit"),
    (_pod({"requests": {"memory": "1Gi"}}), "Burstable", "request-only"),
    (_pod({"requests": {"cpu": "lots"}, "limits": {"cpu": "1"}}), "Burstable", "unparseable-ignored"),
]


@pytest.mark.parametrize("pod, qos", [c[:2] for c in QOS_CASES], ids=[c[2] for c in QOS_CASES])
def test_qos_class(pod, qos):
    assert qos_class(pod) == qos


def test_limits_only_pod_is_guaranteed_after_defaulting():
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}
    assert default_object("pods", pod, "ns")["status"]["qosClass"] == "Guaranteed"


# -- services -------------------------------------------------------------------------------

KUBESPAWNER_SERVICE = {
    "kind": "Service",
    "metadata": {"name": "jupyter-start", "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "jupyter-start", "uid": "u"}]},
    "spec": {"ports": [{"name": "http", "port": 8888, "targetPort": 8888}], "selector": {"component": "singleuser-server"}, "type": "ClusterIP"},
}


def test_kubespawner_service_defaults():
    out = default_object("services", KUBESPAWNER_SERVICE, "default", allocate_ip=lambda: "10.96.7.7")
    assert out == {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {**KUBESPAWNER_SERVICE["metadata"], "namespace": "default"},
        "spec": {
            "ports": [{"name": "http", "port": 8888, "targetPort": 8888, "protocol": "TCP"}],
            "selector": {"component": "singleuser-server"},
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "clusterIP": "10.96.7.7",
            "clusterIPs": ["10.96.7.7"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    }
    assert "apiVersion" not in KUBESPAWNER_SERVICE


def test_service_target_port_defaults_to_port_and_default_allocator_counts():
    svc = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
    a = default_object("services", svc, "ns")
    b = default_object("services", svc, "ns")
    assert a["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert a["spec"]["clusterIP"].startswith("10.96.") and b["spec"]["clusterIP"].startswith("10.96.")
    assert a["spec"]["clusterIP"] != b["spec"]["clusterIP"]


SERVICE_IP_CASES = [
    ({"clusterIP": "None", "ports": [{"port": 80}]}, ("None", ["None"]), "headless-not-allocated"),
    ({"clusterIP": "10.96.50.50", "ports": [{"port": 80}]}, ("10.96.50.50", ["10.96.50.50"]), "explicit-kept"),
    ({"type": "ExternalName", "externalName": "example.com"}, (None, None), "externalname-no-ip"),
]


@pytest.mark.parametrize("spec, ips", [c[:2] for c in SERVICE_IP_CASES], ids=[c[2] for c in SERVICE_IP_CASES])
def test_service_cluster_ip(spec, ips):
    def allocate():
        raise AssertionError("no allocation expected")

    out = default_object("services", {"metadata": {"name": "s"}, "spec": spec}, "ns", allocate_ip=allocate)
    assert (out["spec"].get("clusterIP"), out["spec"].get("clusterIPs")) == ips


# -- PVC, Secret, Namespace, Event, LimitRange ----------------------------------------------


def test_kubespawner_pvc_defaults():
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "claim-start", "labels": {"component": "singleuser-storage"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    assert default_object("persistentvolumeclaims", pvc, "default") == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "claim-start", "labels": {"component": "singleuser-storage"}, "namespace": "default",
                     "finalizers": ["kubernetes.io/pvc-protection"]},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"},
        "status": {"phase": "Pending"},
    }
    with_class = default_object("persistentvolumeclaims", pvc, "default", default_storage_class="standard")
    assert with_class["spec"]["storageClassName"] == "standard"
    pvc_explicit = {**pvc, "spec": {**pvc["spec"], "storageClassName": ""}}
    assert default_object("persistentvolumeclaims", pvc_explicit, "d", default_storage_class="standard")["spec"]["storageClassName"] == ""


def test_pvc_finalizer_not_duplicated():
    pvc = {"metadata": {"name": "c", "finalizers": ["kubernetes.io/pvc-protection"]}, "spec": {}}
    assert default_object("persistentvolumeclaims", pvc, "d")["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]


SECRET_CASES = [
    ({"metadata": {"name": "s"}, "data": {"a": "eA=="}}, {"type": "Opaque", "data": {"a": "eA=="}}, "type-opaque"),
    ({"metadata": {"name": "s"}, "type": "kubernetes.io/tls"}, {"type": "kubernetes.io/tls"}, "type-kept"),
    (
        {"metadata": {"name": "s"}, "data": {"a": "eA==", "b": "eA=="}, "stringData": {"b": "hello"}},
        {"type": "Opaque", "data": {"a": "eA==", "b": "aGVsbG8="}},
        "stringData-folded-into-data",
    ),
]


@pytest.mark.parametrize("secret, expected", [c[:2] for c in SECRET_CASES], ids=[c[2] for c in SECRET_CASES])
def test_secret_defaults(secret, expected):
    out = default_object("secrets", secret, "ns")
    assert out == {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s", "namespace": "ns"}, **expected}


def test_kubespawner_namespace_defaults():
    body = {"metadata": {"annotations": {}, "labels": {}, "name": "user-start"}}
    assert default_object("namespaces", body, None) == {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"annotations": {}, "labels": {"kubernetes.io/metadata.name": "user-start"}, "name": "user-start"},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
    # Cluster-scoped: a URL namespace is never copied in; a forged name label is corrected.
    forged = {"metadata": {"name": "a", "labels": {"kubernetes.io/metadata.name": "b"}}}
    out = default_object("namespaces", forged, "default")
    assert "namespace" not in out["metadata"]
    assert out["metadata"]["labels"] == {"kubernetes.io/metadata.name": "a"}


EVENT_CASES = [
    ({}, {"firstTimestamp": None, "lastTimestamp": None, "eventTime": None}, "all-null"),
    (
        {"lastTimestamp": "2025-01-02T03:04:05Z", "firstTimestamp": "2025-01-02T03:04:05Z"},
        {"firstTimestamp": "2025-01-02T03:04:05Z", "lastTimestamp": "2025-01-02T03:04:05Z", "eventTime": None},
        "kubelet-style",
    ),
    (
        {"eventTime": "2025-01-02T03:04:05.123456Z"},
        {"firstTimestamp": None, "lastTimestamp": None, "eventTime": "2025-01-02T03:04:05.123456Z"},
        "scheduler-style",
    ),
]


@pytest.mark.parametrize("given, times", [c[:2] for c in EVENT_CASES], ids=[c[2] for c in EVENT_CASES])
def test_event_timestamp_keys_present(given, times):
    event = {"metadata": {"name": "p.1"}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Pulled", **given}
    out = default_object("events", event, "ns")
    assert {k: out[k] for k in ("firstTimestamp", "lastTimestamp", "eventTime")} == times
    assert (out["kind"], out["source"], out["reportingComponent"], out["reportingInstance"]) == ("Event", {}, "", "")


def test_limitrange_item_defaults():
    lr = {"metadata": {"name": "lr"}, "spec": {"limits": [
        {"type": "Container", "max": {"cpu": "2", "memory": "4Gi"}, "min": {"cpu": "100m", "ephemeral-storage": "1Gi"},
         "default": {"memory": "1Gi"}},
        {"type": "Pod", "max": {"cpu": "4"}},
    ]}}
    out = default_object("limitranges", lr, "ns")
    assert out["spec"]["limits"] == [
        {"type": "Container", "max": {"cpu": "2", "memory": "4Gi"}, "min": {"cpu": "100m", "ephemeral-storage": "1Gi"},
         "default": {"memory": "1Gi", "cpu": "2"},
         "defaultRequest": {"memory": "1Gi", "cpu": "2", "ephemeral-storage": "1Gi"}},
        {"type": "Pod", "max": {"cpu": "4"}},
    ]
    assert "default" not in lr["spec"]["limits"][1] and "cpu" not in lr["spec"]["limits"][0]["default"]


TYPEMETA_CASES = [
    ("configmaps", "ConfigMap"),
    ("serviceaccounts", "ServiceAccount"),
    ("resourcequotas", "ResourceQuota"),
    ("nodes", "Node"),
]


@pytest.mark.parametrize("resource, kind", TYPEMETA_CASES, ids=[c[0] for c in TYPEMETA_CASES])
def test_typemeta_from_resource(resource, kind):
    out = default_object(resource, {"metadata": {"name": "x"}}, None)
    assert (out["kind"], out["apiVersion"]) == (kind, "v1")
