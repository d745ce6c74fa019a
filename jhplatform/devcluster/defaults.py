"""What the apiserver fills in when an object is created, before any controller runs.

This is the union of three upstream stages, all of which a client sees in the 201 body:

- API defaulting (``SetDefaults_*`` in ``pkg/apis/core/v1/defaults.go``): pod and container
  defaults, requests copied from limits, service and PVC spec defaults, LimitRange items.
- Mutating admission: Priority (``priority``/``preemptionPolicy``), ServiceAccount (the
  ``default`` account), DefaultTolerationSeconds, StorageObjectInUseProtection (the PVC
  finalizer), DefaultStorageClass, and the NamespaceLifecycle label.
- ``PrepareForCreate`` of each REST strategy: pod status reset to ``Pending`` with its QoS
  class, PVC/namespace status, service ClusterIP allocation.

Server-owned metadata (uid, resourceVersion, creationTimestamp) is the store's job.
"""

from __future__ import annotations

import base64
import copy
import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from jhplatform.policy.quantity import parse_quantity

from .errors import KINDS
from .store import api_version

CLUSTER_SCOPED = frozenset({"namespaces", "nodes", "storageclasses", "clusterroles", "clusterrolebindings", "selfsubjectaccessreviews"})

# DefaultTolerationSeconds admission: pods ride out a node going NotReady/Unreachable for 5 min.
_DEFAULT_TOLERATION_KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
_DEFAULT_TOLERATION_SECONDS = 300

_fallback_ips = itertools.count(11)


def _next_fallback_ip() -> str:
    # 10.96.0.1 is the kubernetes service and 10.96.0.10 kube-dns in kubeadm clusters.
    n = next(_fallback_ips)
    return f"10.96.{n // 254}.{n % 254 + 1}" if n >= 254 else f"10.96.0.{n}"


def default_object(
    resource: str,
    obj: dict,
    namespace: str | None,
    *,
    allocate_ip: Callable[[], str] | None = None,
    default_storage_class: str | None = None,
) -> dict:
    """Return a deep copy of ``obj`` with everything the apiserver sets on ``POST``.

    Parameters
    ----------
    resource:
        Plural lower-case resource name from the URL (``pods``, ``services`` ...).
    obj:
        The decoded request body; not mutated.
    namespace:
        The namespace from the URL; copied into ``metadata.namespace`` when the body has
        none (cluster-scoped resources ignore it).
    allocate_ip:
        Returns a free ClusterIP for a new Service. Defaults to a module-level counter
        handing out ``10.96.0.x``.
    default_storage_class:
        What DefaultStorageClass admission puts into a PVC without ``storageClassName``;
        ``None`` means the cluster has no default class.
    """
    out = copy.deepcopy(obj)
    kind = KINDS.get(resource)
    # Clients may omit TypeMeta (KubeSpawner's Service has no apiVersion, its Namespace neither
    # kind nor apiVersion); the server fills it from the URL.
    if kind is not None:
        out.setdefault("kind", kind)
        out.setdefault("apiVersion", api_version(resource))
    meta = out.setdefault("metadata", {})
    if namespace and resource not in CLUSTER_SCOPED:
        meta.setdefault("namespace", namespace)
    handler = _HANDLERS.get(resource)
    if handler is not None:
        if resource == "services":
            handler(out, allocate_ip=allocate_ip or _next_fallback_ip)
        elif resource == "persistentvolumeclaims":
            handler(out, default_storage_class=default_storage_class)
        else:
            handler(out)
    return out


# -- pods ---------------------------------------------------------------------------------


def _default_pod(pod: dict) -> None:
    spec = pod.setdefault("spec", {})
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            _default_container(container, host_network=bool(spec.get("hostNetwork")))
            if field != "ephemeralContainers":
                _requests_from_limits(container)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for volume in spec.get("volumes") or []:
        _default_volume(volume)
    # ServiceAccount admission; serviceAccount is the deprecated alias kept in sync.
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = account
    spec["serviceAccount"] = account
    # Priority admission: no priorityClassName means the global default, priority 0.
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec["tolerations"] = _with_default_tolerations(spec.get("tolerations") or [])
    pod["metadata"].setdefault("generation", 1)
    # PrepareForCreate discards any client-sent status.
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod)}


def _default_container(container: dict, *, host_network: bool) -> None:
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if host_network and "containerPort" in port:
            # With hostNetwork the host port is the container port.
            port.setdefault("hostPort", port["containerPort"])
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("imagePullPolicy", _image_pull_policy(container.get("image") or ""))
    for env in container.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            if isinstance(probe.get("httpGet"), dict):
                probe["httpGet"].setdefault("path", "/")
                probe["httpGet"].setdefault("scheme", "HTTP")


def _image_pull_policy(image: str) -> str:
    """``Always`` for ``:latest`` or no tag, else ``IfNotPresent`` (digests count as a tag)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]  # a registry host may carry a :port
    if ":" not in last:
        return "Always"
    return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"


def _requests_from_limits(container: dict) -> None:
    # SetDefaults_Pod: a limit without a request sets the request (e.g. nvidia.com/gpu: 1).
    resources = container.get("resources")
    if not isinstance(resources, dict):
        return
    limits = resources.get("limits") or {}
    if not limits:
        return
    requests = resources.get("requests")
    if not isinstance(requests, dict):
        requests = resources["requests"] = {}
    for name, value in limits.items():
        requests.setdefault(name, value)


def _default_volume(volume: dict) -> None:
    sources = [k for k in volume if k != "name"]
    if not sources:
        volume["emptyDir"] = {}  # SetDefaults_Volume
    # 0644, the mode secret/configMap/projected/downwardAPI files get unless the client chose.
    for source in ("secret", "configMap", "projected", "downwardAPI"):
        if isinstance(volume.get(source), dict):
            volume[source].setdefault("defaultMode", 420)


def _tolerates(tolerations: list[dict], key: str) -> bool:
    # DefaultTolerationSeconds skips a taint the pod already tolerates: same key or an empty
    # (wildcard) key, with effect NoExecute or empty (all effects).
    return any(
        (t.get("key") in (key, None, "")) and (t.get("effect") in ("NoExecute", None, ""))
        for t in tolerations
        if isinstance(t, dict)
    )


def _with_default_tolerations(tolerations: list[dict]) -> list[dict]:
    out = list(tolerations)
    for key in _DEFAULT_TOLERATION_KEYS:
        if not _tolerates(tolerations, key):
            out.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": _DEFAULT_TOLERATION_SECONDS}
            )
    return out


def _positive(value: Any) -> Decimal | None:
    try:
        q = parse_quantity(value)
    except (ValueError, TypeError, ArithmeticError):
        return None  # validation reports the bad quantity; QoS just ignores it
    return q if q > 0 else None


def qos_class(pod: dict) -> str:
    """The pod's QoS class, as ``ComputePodQOS`` (``pkg/apis/core/helper/qos``) derives it.

    Only cpu and memory count; init and regular containers are summed. ``BestEffort``: no
    positive request or limit anywhere. ``Guaranteed``: every container has cpu and memory
    limits and the summed requests equal the summed limits. Otherwise ``Burstable``.
    Call it on a defaulted pod (requests already copied from limits).
    """
    spec = pod.get("spec") or {}
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        resources = container.get("resources") or {}
        for name, value in (resources.get("requests") or {}).items():
            q = _positive(value) if name in ("cpu", "memory") else None
            if q is not None:
                requests[name] = requests.get(name, Decimal(0)) + q
        found = set()
        for name, value in (resources.get("limits") or {}).items():
            q = _positive(value) if name in ("cpu", "memory") else None
            if q is not None:
                found.add(name)
                limits[name] = limits.get(name, Decimal(0)) + q
        if found != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(n) == v for n, v in requests.items()) and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


# -- other kinds --------------------------------------------------------------------------


def _default_service(svc: dict, *, allocate_ip: Callable[[], str]) -> None:
    spec = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        cluster_ip = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0] or allocate_ip()
        spec["clusterIP"] = cluster_ip
        spec.setdefault("clusterIPs", [cluster_ip])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        # An unset targetPort means "the same number as port".
        if "port" in port:
            port.setdefault("targetPort", port["port"])
    svc["status"] = {"loadBalancer": {}}


def _default_pvc(pvc: dict, *, default_storage_class: str | None) -> None:
    spec = pvc.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    if default_storage_class and "storageClassName" not in spec:
        spec["storageClassName"] = default_storage_class
    # StorageObjectInUseProtection: the claim is not removed while a pod uses it.
    finalizers = pvc["metadata"].setdefault("finalizers", [])
    if "kubernetes.io/pvc-protection" not in finalizers:
        finalizers.append("kubernetes.io/pvc-protection")
    pvc["status"] = {"phase": "Pending"}


def _default_secret(secret: dict) -> None:
    secret.setdefault("type", "Opaque")
    # stringData is write-only: the apiserver folds it into data (stringData wins) and drops it.
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = secret.get("data")
        if not isinstance(data, dict):
            data = secret["data"] = {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _default_namespace(ns: dict) -> None:
    meta = ns["metadata"]
    if meta.get("name"):
        # NamespaceLifecycle keeps this label equal to the name, whatever the client sent.
        labels = meta.get("labels")
        if not isinstance(labels, dict):
            labels = meta["labels"] = {}
        labels["kubernetes.io/metadata.name"] = meta["name"]
    spec = ns.get("spec")
    if not isinstance(spec, dict):
        spec = ns["spec"] = {}
    spec.setdefault("finalizers", ["kubernetes"])
    ns["status"] = {"phase": "Active"}


def _default_event(event: dict) -> None:
    # Go serialises zero metav1.Time/MicroTime as null rather than omitting them, and
    # KubeSpawner sorts by event["lastTimestamp"] or event["eventTime"]: both keys must exist.
    for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        event.setdefault(key, None)
    event.setdefault("involvedObject", {})
    event.setdefault("source", {})
    # reportingComponent/reportingInstance have no omitempty tag.
    event.setdefault("reportingComponent", "")
    event.setdefault("reportingInstance", "")


def _default_limitrange(lr: dict) -> None:
    # SetDefaults_LimitRangeItem for Container items: default <- max; defaultRequest <-
    # default, else min.
    for item in (lr.get("spec") or {}).get("limits") or []:
        if not isinstance(item, dict) or item.get("type") != "Container":
            continue
        default = dict(item.get("default") or {})
        default_request = dict(item.get("defaultRequest") or {})
        for name, value in (item.get("max") or {}).items():
            default.setdefault(name, value)
        for name, value in default.items():
            default_request.setdefault(name, value)
        for name, value in (item.get("min") or {}).items():
            default_request.setdefault(name, value)
        if default:
            item["default"] = default
        if default_request:
            item["defaultRequest"] = default_request


_HANDLERS: dict[str, Callable[..., None]] = {
    "pods": _default_pod,
    "services": _default_service,
    "persistentvolumeclaims": _default_pvc,
    "secrets": _default_secret,
    "namespaces": _default_namespace,
    "events": _default_event,
    "limitranges": _default_limitrange,
}
