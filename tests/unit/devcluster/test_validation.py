"""Object validation of the devcluster emulator (``jhplatform.devcluster.validation``).

We test these aspects:

- KubeSpawner's recorded pod (spec §1.4), raw and defaulted, and its PVC, Service and Secret pass;
- the 422 body: ``<Kind> "<name>" is invalid: <field>: <message>``, several causes joined as
  ``[c1, c2]``, ``details.causes`` with ``reason``/``message``/``field``;
- names: pod DNS-1123 subdomain (length and syntax), namespace DNS-1123 label (dots),
  service DNS-1035 label, missing name;
- labels (key prefix/name, value length and syntax, empty value allowed), annotation size,
  ownerReferences uid;
- containers: at least one, name syntax, uniqueness across init and regular containers,
  image required, port names (IANA_SVC_NAME), containerPort range, protocols, env names,
  volume mounts, restart policy;
- resources: unparseable quantities, negative values, unknown resource names,
  requests <= limits for cpu/memory, GPU (extended resource) rules: integer, request == limit,
  request without limit;
- PVC access modes and storage, Service type/ports/targetPort/selector, Secret keys, base64 and
  size, ResourceQuota and LimitRange quantities.
"""

from __future__ import annotations

import base64
import copy

import pytest

from jhplatform.devcluster.defaults import default_object
from jhplatform.devcluster.errors import ApiError
from jhplatform.devcluster.validation import collect_causes, validate

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
QUANTITY_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"

KUBESPAWNER_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "annotations": {
            "hub.jupyter.org/username": "start",
            "hub.jupyter.org/servername": "srv1",
            "hub.jupyter.org/kubespawner-version": "7.1.0",
            "hub.jupyter.org/jupyterhub-version": "6.1.1",
        },
        "labels": {
            "hub.jupyter.org/username": "start",
            "app.kubernetes.io/name": "jupyterhub",
            "app.kubernetes.io/managed-by": "kubespawner",
            "app": "jupyterhub",
            "heritage": "jupyterhub",
            "app.kubernetes.io/component": "singleuser-server",
            "component": "singleuser-server",
            "hub.jupyter.org/servername": "",
        },
        "name": "jupyter-start--srv1",
    },
    "spec": {
        "automountServiceAccountToken": False,
        "containers": [
            {
                "args": ["jupyterhub-singleuser"],
                "env": [{"name": "JUPYTERHUB_API_TOKEN", "value": "secret"}, {"name": "JUPYTERHUB_USER", "value": "start"}],
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


def pod_with(mutate) -> dict:
    pod = copy.deepcopy(KUBESPAWNER_POD)
    mutate(pod)
    return pod


def container(pod: dict) -> dict:
    return pod["spec"]["containers"][0]


def causes_of(resource: str, obj: dict) -> list[dict]:
    with pytest.raises(ApiError) as info:
        validate(resource, obj)
    assert (info.value.code, info.value.reason) == (422, "Invalid")
    return info.value.details["causes"]


# -- valid objects --------------------------------------------------------------------------


def test_kubespawner_pod_is_valid_raw_and_defaulted():
    assert collect_causes("pods", KUBESPAWNER_POD) == []
    validate("pods", default_object("pods", KUBESPAWNER_POD, "default"))


def test_kubespawner_gpu_and_ssl_pod_is_valid():
    def gpu_ssl(p):
        container(p)["resources"] = {"limits": {"nvidia.com/gpu": "1", "cpu": "4", "memory": "16Gi"}, "requests": {"cpu": "500m", "memory": "8Gi"}}
        container(p)["volumeMounts"] = [{"name": "jupyterhub-internal-certs", "mountPath": "/etc/jupyterhub/ssl/"}]
        p["spec"]["volumes"] = [{"name": "jupyterhub-internal-certs", "secret": {"secretName": "jupyter-start--srv1", "defaultMode": 511}}]

    validate("pods", default_object("pods", pod_with(gpu_ssl), "default"))


VALID_OTHERS = [
    ("persistentvolumeclaims", {"metadata": {"name": "claim-start", "namespace": "default"},
                                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    ("services", {"kind": "Service", "metadata": {"name": "jupyter-start", "ownerReferences": [
        {"apiVersion": "v1", "blockOwnerDeletion": True, "controller": False, "kind": "Pod", "name": "jupyter-start", "uid": "u-1"}]},
        "spec": {"ports": [{"name": "http", "port": 8888, "targetPort": 8888}], "selector": {"hub.jupyter.org/servername": ""}, "type": "ClusterIP"}}),
    ("secrets", {"metadata": {"name": "jupyter-start"}, "data": {"ssl.key": base64.b64encode(b"k").decode(), "notebooks-ca_trust.crt": "Y2E="}}),
    ("namespaces", {"metadata": {"annotations": {}, "labels": {}, "name": "user-start"}}),
    ("events", {"metadata": {"name": "jupyter-start.17f3a9c2b5e4d1a0"}, "involvedObject": {"kind": "Pod"}}),
    ("resourcequotas", {"metadata": {"name": "gpu"}, "spec": {"hard": {"requests.nvidia.com/gpu": "4", "pods": 10}}}),
]


@pytest.mark.parametrize("resource, obj", VALID_OTHERS, ids=[c[0] for c in VALID_OTHERS])
def test_kubespawner_objects_are_valid(resource, obj):
    assert collect_causes(resource, obj) == []


# -- the 422 body ---------------------------------------------------------------------------


def test_single_cause_message_and_body():
    pod = pod_with(lambda p: container(p).update(name="Foo_1"))
    with pytest.raises(ApiError) as info:
        validate("pods", pod)
    cause = {"reason": "FieldValueInvalid", "message": f'Invalid value: "Foo_1": {LABEL_MSG}', "field": "spec.containers[0].name"}
    assert info.value.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'Pod "jupyter-start--srv1" is invalid: spec.containers[0].name: Invalid value: "Foo_1": {LABEL_MSG}',
        "reason": "Invalid",
        "details": {"name": "jupyter-start--srv1", "kind": "Pod", "causes": [cause]},
        "code": 422,
    }


def test_several_causes_are_bracketed():
    def two(p):
        del container(p)["image"]
        container(p)["ports"][0]["containerPort"] = 70000

    with pytest.raises(ApiError) as info:
        validate("pods", pod_with(two))
    assert info.value.message == (
        'Pod "jupyter-start--srv1" is invalid: [spec.containers[0].image: Required value, '
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive]"
    )


# -- pods -----------------------------------------------------------------------------------

R, I, D, NS, TL, NF = (
    "FieldValueRequired", "FieldValueInvalid", "FieldValueDuplicate", "FieldValueNotSupported", "FieldValueTooLong", "FieldValueNotFound",
)

POD_CASES = [
    (lambda p: p["metadata"].pop("name"), [(R, "metadata.name", "Required value: name or generateName is required")], "no-name"),
    (lambda p: p["metadata"].update(name="a" * 254), [(I, "metadata.name", f'Invalid value: "{"a" * 254}": must be no more than 253 characters')], "name-too-long"),
    (lambda p: p["metadata"].update(name="Jupyter_Bob"), [(I, "metadata.name", f'Invalid value: "Jupyter_Bob": {SUBDOMAIN_MSG}')], "name-syntax"),
    (lambda p: p["metadata"].update(name="jupyter.bob"), [], "dots-ok-in-pod-name"),
    (
        lambda p: p["metadata"]["labels"].update({"bad/key/x": "v"}),
        [(I, "metadata.labels", f'Invalid value: "bad/key/x": a qualified name {QNAME_MSG} with an optional DNS subdomain prefix and \'/\' (e.g. \'example.com/MyName\')')],
        "label-key-two-slashes",
    ),
    (
        lambda p: p["metadata"]["labels"].update({"Example.com/x": "v"}),
        [(I, "metadata.labels", f'Invalid value: "Example.com/x": prefix part {SUBDOMAIN_MSG}')],
        "label-key-prefix-uppercase",
    ),
    (
        lambda p: p["metadata"]["labels"].update({"x" * 64: "v"}),
        [(I, "metadata.labels", f'Invalid value: "{"x" * 64}": name part must be no more than 63 characters')],
        "label-key-too-long",
    ),
    (
        lambda p: p["metadata"]["labels"].update(user="a" * 64),
        [(I, "metadata.labels", f'Invalid value: "{"a" * 64}": must be no more than 63 characters')],
        "label-value-too-long",
    ),
    (
        lambda p: p["metadata"]["labels"].update(user="alice@example.com"),
        [(I, "metadata.labels", 'Invalid value: "alice@example.com": a valid label must be an empty string or consist of alphanumeric '
          "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  "
          "or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")],
        "label-value-syntax",
    ),
    (lambda p: p["metadata"]["annotations"].update(big="x" * (256 * 1024)), [(TL, "metadata.annotations", "Too long: may not be more than 262144 bytes")], "annotations-too-big"),
    (lambda p: p["metadata"]["annotations"].update(ok="x" * (255 * 1024)), [], "annotations-under-limit"),
    (
        lambda p: p["metadata"].update(ownerReferences=[{"apiVersion": "v1", "kind": "Node", "name": "n"}]),
        [(I, "metadata.ownerReferences.uid", 'Invalid value: "": uid must not be empty')],
        "owner-reference-without-uid",
    ),
    (lambda p: p["spec"].update(containers=[]), [(R, "spec.containers", "Required value")], "no-containers"),
    (lambda p: p["spec"].pop("containers"), [(R, "spec.containers", "Required value")], "containers-missing"),
    (lambda p: container(p).update(name=""), [(R, "spec.containers[0].name", "Required value")], "container-name-empty"),
    (lambda p: container(p).update(name="a.b"), [(I, "spec.containers[0].name", 'Invalid value: "a.b": must not contain dots')], "container-name-dots"),
    (lambda p: container(p).pop("image"), [(R, "spec.containers[0].image", "Required value")], "image-required"),
    (
        lambda p: p["spec"]["containers"].append({"name": "notebook", "image": "x"}),
        [(D, "spec.containers[1].name", 'Duplicate value: "notebook"')],
        "duplicate-container",
    ),
    (
        lambda p: p["spec"].update(initContainers=[{"name": "notebook", "image": "x"}]),
        [(D, "spec.initContainers[0].name", 'Duplicate value: "notebook"')],
        "init-container-reuses-name",
    ),
    (
        lambda p: container(p)["ports"][0].update(name="notebook-port-http"),
        [(I, "spec.containers[0].ports[0].name", 'Invalid value: "notebook-port-http": must be no more than 15 characters')],
        "port-name-too-long",
    ),
    (
        lambda p: container(p)["ports"][0].update(name="8888"),
        [(I, "spec.containers[0].ports[0].name", 'Invalid value: "8888": must contain at least one letter (a-z)')],
        "port-name-no-letter",
    ),
    (
        lambda p: container(p)["ports"][0].update(name="Web--"),
        [
            (I, "spec.containers[0].ports[0].name", 'Invalid value: "Web--": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)'),
            (I, "spec.containers[0].ports[0].name", 'Invalid value: "Web--": must not contain consecutive hyphens'),
            (I, "spec.containers[0].ports[0].name", 'Invalid value: "Web--": must not begin or end with a hyphen'),
        ],
        "port-name-several-rules",
    ),
    (
        lambda p: container(p)["ports"].append({"containerPort": 9999, "name": "notebook-port"}),
        [(D, "spec.containers[0].ports[1].name", 'Duplicate value: "notebook-port"')],
        "port-name-duplicate",
    ),
    (lambda p: container(p)["ports"][0].update(containerPort=0), [(R, "spec.containers[0].ports[0].containerPort", "Required value")], "container-port-zero"),
    (
        lambda p: container(p)["ports"][0].update(containerPort=65536),
        [(I, "spec.containers[0].ports[0].containerPort", "Invalid value: 65536: must be between 1 and 65535, inclusive")],
        "container-port-too-big",
    ),
    (
        lambda p: container(p)["ports"][0].update(protocol="HTTP"),
        [(NS, "spec.containers[0].ports[0].protocol", 'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"')],
        "port-protocol",
    ),
    (lambda p: container(p)["env"].append({"value": "x"}), [(R, "spec.containers[0].env[2].name", "Required value")], "env-name-required"),
    (
        lambda p: container(p)["env"].append({"name": "A=B", "value": "x"}),
        [(I, "spec.containers[0].env[2].name", "Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='")],
        "env-name-equals",
    ),
    (
        lambda p: container(p).update(volumeMounts=[{"name": "home", "mountPath": "/home/jovyan"}]),
        [(NF, "spec.containers[0].volumeMounts[0].name", 'Not found: "home"')],
        "mount-without-volume",
    ),
    (
        lambda p: (p["spec"].update(volumes=[{"name": "home", "emptyDir": {}}]),
                   container(p).update(volumeMounts=[{"name": "home", "mountPath": "/a"}, {"name": "home", "mountPath": "/a"}])),
        [(I, "spec.containers[0].volumeMounts[1].mountPath", 'Invalid value: "/a": must be unique')],
        "mount-path-unique",
    ),
    (
        lambda p: p["spec"].update(volumes=[{"name": "home", "emptyDir": {}}, {"name": "home", "emptyDir": {}}]),
        [(D, "spec.volumes[1].name", 'Duplicate value: "home"')],
        "volume-duplicate",
    ),
    (
        lambda p: p["spec"].update(restartPolicy="Sometimes"),
        [(NS, "spec.restartPolicy", 'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"')],
        "restart-policy",
    ),
]


@pytest.mark.parametrize("mutate, expected", [c[:2] for c in POD_CASES], ids=[c[2] for c in POD_CASES])
def test_pod_rules(mutate, expected):
    got = [(c["reason"], c["field"], c["message"]) for c in collect_causes("pods", pod_with(mutate))]
    assert got == expected


# -- resources ------------------------------------------------------------------------------

GPU = "nvidia.com/gpu"
RES = "spec.containers[0].resources"
RESOURCE_CASES = [
    ({"limits": {GPU: "1"}, "requests": {GPU: "1"}}, [], "gpu-equal"),
    (
        {"limits": {GPU: "2"}, "requests": {GPU: "1"}},
        [(I, f"{RES}.requests[{GPU}]", 'Invalid value: "1": must be equal to nvidia.com/gpu limit of 2')],
        "gpu-request-not-equal-limit",
    ),
    (
        {"requests": {GPU: "1"}},
        [(R, f"{RES}.limits[{GPU}]", "Required value: Limit must be set for non overcommitable resources")],
        "gpu-request-without-limit",
    ),
    (
        {"limits": {GPU: "500m"}, "requests": {GPU: "500m"}},
        [(I, f"{RES}.limits[{GPU}]", 'Invalid value: "500m": must be an integer'),
         (I, f"{RES}.requests[{GPU}]", 'Invalid value: "500m": must be an integer')],
        "gpu-fractional",
    ),
    ({"limits": {GPU: 1}}, [], "gpu-json-number"),
    (
        {"limits": {"cpu": "1"}, "requests": {"cpu": "1500m"}},
        [(I, f"{RES}.requests[cpu]", 'Invalid value: "1500m": must be less than or equal to cpu limit of 1')],
        "cpu-request-over-limit",
    ),
    (
        {"limits": {"memory": "1Gi"}, "requests": {"memory": "2048Mi"}},
        [(I, f"{RES}.requests[memory]", 'Invalid value: "2Gi": must be less than or equal to memory limit of 1Gi')],
        "memory-canonical-quantities",
    ),
    ({"limits": {"cpu": "2"}, "requests": {"cpu": "0.5"}}, [], "cpu-request-under-limit"),
    ({"requests": {"cpu": "4", "memory": "8Gi"}}, [], "cpu-request-without-limit-ok"),
    ({"limits": {"cpu": "two"}}, [(I, f"{RES}.limits[cpu]", f'Invalid value: "two": {QUANTITY_MSG}')], "unparseable"),
    ({"limits": {"memory": "1Gb"}}, [(I, f"{RES}.limits[memory]", f'Invalid value: "1Gb": {QUANTITY_MSG}')], "unparseable-suffix"),
    ({"requests": {"cpu": "-1"}}, [(I, f"{RES}.requests[cpu]", 'Invalid value: "-1": must be greater than or equal to 0')], "negative"),
    ({"limits": {"gpu": "1"}}, [(I, f"{RES}.limits[gpu]", 'Invalid value: "gpu": must be a standard resource for containers')], "unqualified-unknown-name"),
    (
        {"requests": {"hugepages-2Mi": "2Mi"}},
        [(R, f"{RES}.limits[hugepages-2Mi]", "Required value: Limit must be set for non overcommitable resources")],
        "hugepages-need-limit",
    ),
]


@pytest.mark.parametrize("resources, expected", [c[:2] for c in RESOURCE_CASES], ids=[c[2] for c in RESOURCE_CASES])
def test_container_resources(resources, expected):
    pod = pod_with(lambda p: container(p).update(resources=resources))
    got = [(c["reason"], c["field"], c["message"]) for c in collect_causes("pods", pod)]
    assert got == expected


def test_gpu_422_message_as_kubespawner_sees_it():
    pod = pod_with(lambda p: container(p).update(resources={"limits": {GPU: "2"}, "requests": {GPU: "1"}}))
    with pytest.raises(ApiError) as info:
        validate("pods", default_object("pods", pod, "default"))
    assert info.value.message == (
        'Pod "jupyter-start--srv1" is invalid: spec.containers[0].resources.requests[nvidia.com/gpu]: '
        'Invalid value: "1": must be equal to nvidia.com/gpu limit of 2'
    )


def test_gpu_limit_only_is_valid_after_defaulting():
    pod = pod_with(lambda p: container(p).update(resources={"limits": {GPU: "1"}, "requests": {}}))
    validate("pods", default_object("pods", pod, "default"))


# -- other kinds ----------------------------------------------------------------------------

PVC = {"metadata": {"name": "claim-a"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
SVC = {"metadata": {"name": "jupyter-a"}, "spec": {"ports": [{"name": "http", "port": 8888, "targetPort": 8888}]}}


def with_spec(base: dict, **spec) -> dict:
    out = copy.deepcopy(base)
    out["spec"].update(spec)
    return out


OTHER_CASES = [
    ("persistentvolumeclaims", with_spec(PVC, accessModes=[]), [(R, "spec.accessModes", "Required value: at least 1 access mode is required")], "pvc-no-access-modes"),
    (
        "persistentvolumeclaims",
        with_spec(PVC, accessModes=["ReadWriteSometimes"]),
        [(NS, "spec.accessModes", 'Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"')],
        "pvc-bad-access-mode",
    ),
    ("persistentvolumeclaims", with_spec(PVC, resources={}), [(R, "spec.resources[storage]", "Required value")], "pvc-no-storage"),
    ("persistentvolumeclaims", with_spec(PVC, resources={"requests": {"storage": "0"}}), [(I, "spec.resources[storage]", 'Invalid value: "0": must be greater than zero')], "pvc-zero-storage"),
    ("persistentvolumeclaims", with_spec(PVC, resources={"requests": {"storage": "lots"}}), [(I, "spec.resources[storage]", f'Invalid value: "lots": {QUANTITY_MSG}')], "pvc-bad-storage"),
    ("services", with_spec(SVC, ports=[{"name": "http", "port": 0}]), [(I, "spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive")], "svc-port-zero"),
    ("services", with_spec(SVC, ports=[{"name": "http", "port": 70000}]), [(I, "spec.ports[0].port", "Invalid value: 70000: must be between 1 and 65535, inclusive")], "svc-port-too-big"),
    (
        "services",
        with_spec(SVC, ports=[{"name": "http", "port": 80}, {"name": "http", "port": 81}]),
        [(D, "spec.ports[1].name", 'Duplicate value: "http"')],
        "svc-duplicate-port-names",
    ),
    ("services", with_spec(SVC, ports=[{"port": 80}, {"name": "b", "port": 81}]), [(R, "spec.ports[0].name", "Required value")], "svc-multi-port-unnamed"),
    ("services", with_spec(SVC, ports=[]), [(R, "spec.ports", "Required value")], "svc-no-ports"),
    ("services", with_spec(SVC, ports=[], clusterIP="None"), [], "svc-headless-no-ports-ok"),
    ("services", with_spec(SVC, ports=[{"port": 80, "targetPort": "notebook-port"}]), [], "svc-named-target-port"),
    ("services", with_spec(SVC, ports=[{"port": 80, "targetPort": "Web"}]), [(I, "spec.ports[0].targetPort", 'Invalid value: "Web": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)')], "svc-bad-target-port-name"),
    ("services", with_spec(SVC, type="Magic"), [(NS, "spec.type", 'Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"')], "svc-type"),
    ("services", with_spec(SVC, selector={"app": "-x"}), [(I, "spec.selector", 'Invalid value: "-x": a valid label must be an empty string or consist of alphanumeric characters, \'-\', \'_\' or \'.\', and must start and end with an alphanumeric character (e.g. \'MyValue\',  or \'my_value\',  or \'12345\', regex used for validation is \'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\')')], "svc-selector"),
    ("services", {"metadata": {"name": "1-svc"}, "spec": SVC["spec"]}, [(I, "metadata.name", f'Invalid value: "1-svc": {DNS1035_MSG}')], "svc-name-dns1035"),
    ("namespaces", {"metadata": {"name": "user.start"}}, [(I, "metadata.name", 'Invalid value: "user.start": must not contain dots')], "ns-name-dots"),
    ("namespaces", {"metadata": {"name": "n" * 64}}, [(I, "metadata.name", f'Invalid value: "{"n" * 64}": must be no more than 63 characters')], "ns-name-too-long"),
    ("secrets", {"metadata": {"name": "s"}, "data": {"k": "not base64!"}}, [(I, "data[k]", "Invalid value: illegal base64 data at input byte 3")], "secret-bad-base64"),
    ("secrets", {"metadata": {"name": "s"}, "data": {"k": "abcde"}}, [(I, "data[k]", "Invalid value: illegal base64 data at input byte 4")], "secret-short-quantum"),
    (
        "secrets",
        {"metadata": {"name": "s"}, "data": {"bad key": "eA=="}},
        [(I, "data[bad key]", "Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")],
        "secret-bad-key",
    ),
    (
        "secrets",
        {"metadata": {"name": "s"}, "data": {"big": base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()}},
        [(TL, "data", "Too long: may not be more than 1048576 bytes")],
        "secret-too-big",
    ),
    ("resourcequotas", {"metadata": {"name": "q"}, "spec": {"hard": {"cpu": "x"}}}, [(I, "spec.hard[cpu]", f'Invalid value: "x": {QUANTITY_MSG}')], "quota-bad-quantity"),
    (
        "limitranges",
        {"metadata": {"name": "l"}, "spec": {"limits": [{"type": "Container", "max": {"memory": "1Zi"}}]}},
        [(I, "spec.limits[0].max[memory]", f'Invalid value: "1Zi": {QUANTITY_MSG}')],
        "limitrange-bad-quantity",
    ),
]


@pytest.mark.parametrize("resource, obj, expected", [c[:3] for c in OTHER_CASES], ids=[c[3] for c in OTHER_CASES])
def test_other_kinds(resource, obj, expected):
    got = [(c["reason"], c["field"], c["message"]) for c in collect_causes(resource, obj)]
    assert got == expected


def test_invalid_pvc_raises_with_kind_in_message():
    causes = causes_of("persistentvolumeclaims", with_spec(PVC, accessModes=[], resources={}))
    assert [c["field"] for c in causes] == ["spec.accessModes", "spec.resources[storage]"]
    with pytest.raises(ApiError) as info:
        validate("persistentvolumeclaims", with_spec(PVC, resources={}))
    assert info.value.message == 'PersistentVolumeClaim "claim-a" is invalid: spec.resources[storage]: Required value'
