"""Server-side Table output (``meta.k8s.io/v1`` ``Table``): the columns ``kubectl get`` prints.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`` and prints the
``columnDefinitions`` and ``rows`` it gets back; a server that answers plain JSON gets NAME and
AGE only. The columns, their order, priorities (1 = only with ``-o wide``) and cell formats follow
the apiserver's printers (kubernetes ``pkg/printers/internalversion/printers.go``) for the kinds
the emulator serves; ages are ``duration.HumanDuration``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

TABLE_MEDIA = "as=Table"
_NONE = "<none>"


def wants_table(accept: str | None) -> bool:
    """Whether the Accept header's first choice is a meta.k8s.io Table."""
    if not accept:
        return False
    first = accept.split(",")[0].replace(" ", "")
    params = set(first.split(";")[1:])
    return "as=Table" in params and "g=meta.k8s.io" in params and ("v=v1" in params or "v=v1beta1" in params)


def include_object(query: dict[str, str]) -> str:
    return query.get("includeObject") or "Metadata"


# -- formatting ------------------------------------------------------------------------------


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """``duration.HumanDuration``: 45s, 3m20s, 12m, 5h10m, 3d4h, 2y30d ..."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(value: str | None, now: datetime) -> str:
    """``translateTimestampSince``."""
    t = _parse_time(value)
    if t is None:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


def _col(name: str, description: str, priority: int = 0, type_: str = "string", format_: str = "") -> dict:
    return {"name": name, "type": type_, "format": format_, "description": description, "priority": priority}


NAME = _col("Name", "Name must be unique within a namespace. Is required when creating resources, although some resources may "
            "allow a client to request the generation of an appropriate name automatically. Name is primarily intended for "
            "creation idempotence and configuration definition. Cannot be updated.", format_="name")
AGE = _col("Age", "CreationTimestamp is a timestamp representing the server time when this object was created.")
CREATED_AT = _col("Created At", "CreationTimestamp is a timestamp representing the server time when this object was created.",
                  type_="date")


# -- pods ------------------------------------------------------------------------------------

POD_COLUMNS = [
    NAME,
    _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    _col("Status", "The aggregate status of the containers in this pod."),
    _col("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    _col("IP", "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1),
    _col("Node", "NodeName is a request to schedule this pod onto a specific node.", 1),
    _col("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node.", 1),
    _col("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness.", 1),
]


def _pod_row(pod: dict, now: datetime) -> list:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    restarts = 0
    ready = 0
    last_restart: datetime | None = None
    reason = status.get("reason") or status.get("phase") or ""
    init_specs = spec.get("initContainers") or []
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term is not None and term.get("exitCode") == 0:
            continue
        if term is not None:
            reason = "Init:" + term["reason"] if term.get("reason") else (
                f"Init:Signal:{term['signal']}" if term.get("signal") else f"Init:ExitCode:{term.get('exitCode', 0)}")
        elif wait is not None and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True" for c in status.get("conditions") or [])
    if not initializing or initialized:
        restarts = 0
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
            t = _parse_time(last)
            if t is not None and (last_restart is None or t > last_restart):
                last_restart = t
            state = cs.get("state") or {}
            wait, term = state.get("waiting"), state.get("terminated")
            if wait is not None and wait.get("reason"):
                reason = wait["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode', 0)}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            has_ready = any(c.get("type") == "Ready" for c in status.get("conditions") or [])
            reason = "Running" if has_ready else "NotReady"
    if pod["metadata"].get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif pod["metadata"].get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"
    ips = status.get("podIPs") or ([{"ip": status["podIP"]}] if status.get("podIP") else [])
    gates = spec.get("readinessGates") or []
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        gates_cell = f"{sum(1 for g in gates if conditions.get(g.get('conditionType')) == 'True')}/{len(gates)}"
    else:
        gates_cell = _NONE
    return [
        pod["metadata"]["name"], f"{ready}/{len(spec.get('containers') or [])}", reason, restarts_cell,
        since(pod["metadata"].get("creationTimestamp"), now),
        (ips[0].get("ip") if ips else "") or _NONE, spec.get("nodeName") or _NONE, status.get("nominatedNodeName") or _NONE, gates_cell,
    ]


# -- nodes, namespaces -------------------------------------------------------------------------

NODE_COLUMNS = [
    NAME,
    _col("Status", "The status of the node"),
    _col("Roles", "The roles of the node"),
    AGE,
    _col("Version", "Kubelet Version reported by the node."),
    _col("Internal-IP", "List of addresses reachable to the node. Queried from cloud provider, if available.", 1),
    _col("External-IP", "List of addresses reachable to the node. Queried from cloud provider, if available.", 1),
    _col("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
    _col("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
    _col("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", 1),
]


def _node_row(node: dict, now: datetime) -> list:
    status = node.get("status") or {}
    states = []
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            states.append("Ready" if c.get("status") == "True" else "NotReady")
    if not states:
        states.append("Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    labels = node["metadata"].get("labels") or {}
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k}
                   | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()))
    addresses = status.get("addresses") or []
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        return next((a["address"] for a in addresses if a.get("type") == kind), _NONE)

    return [
        node["metadata"]["name"], ",".join(states), ",".join(roles) or _NONE, since(node["metadata"].get("creationTimestamp"), now),
        info.get("kubeletVersion", ""), address("InternalIP"), address("ExternalIP"),
        info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or "<unknown>",
    ]


NAMESPACE_COLUMNS = [NAME, _col("Status", "The status of the namespace"), AGE]


def _namespace_row(ns: dict, now: datetime) -> list:
    return [ns["metadata"]["name"], (ns.get("status") or {}).get("phase", ""), since(ns["metadata"].get("creationTimestamp"), now)]


# -- storage -----------------------------------------------------------------------------------

PVC_COLUMNS = [
    NAME,
    _col("Status", "Phase represents the current phase of PersistentVolumeClaim."),
    _col("Volume", "VolumeName is the binding reference to the PersistentVolume backing this claim."),
    _col("Capacity", "Capacity represents the actual resources of the underlying volume."),
    _col("Access Modes", "AccessModes contains the desired access modes the volume should have."),
    _col("StorageClass", "StorageClassName is the name of the StorageClass required by the claim."),
    _col("VolumeAttributesClass", "VolumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim."),
    AGE,
    _col("VolumeMode", "VolumeMode defines what type of volume is required by the claim.", 1),
]

_ACCESS_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def _access_modes(modes: list[str]) -> str:
    # GetAccessModesAsString: in this fixed order, each once.
    return ",".join(_ACCESS_MODES[m] for m in _ACCESS_MODES if m in (modes or []))


def _pvc_row(pvc: dict, now: datetime) -> list:
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    phase = status.get("phase", "")
    if pvc["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    capacity, modes = "", ""
    if spec.get("volumeName"):
        modes = _access_modes(status.get("accessModes") or [])
        capacity = (status.get("capacity") or {}).get("storage", "")
    return [
        pvc["metadata"]["name"], phase, spec.get("volumeName", ""), capacity, modes,
        spec.get("storageClassName") or "", spec.get("volumeAttributesClassName") or "<unset>",
        since(pvc["metadata"].get("creationTimestamp"), now), spec.get("volumeMode") or "<unset>",
    ]


STORAGECLASS_COLUMNS = [
    NAME,
    _col("Provisioner", "Provisioner indicates the type of the provisioner."),
    _col("ReclaimPolicy", "Dynamically provisioned PersistentVolumes of this storage class are created with this reclaimPolicy. Defaults to Delete."),
    _col("VolumeBindingMode", "VolumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound. When unset, VolumeBindingImmediate is used."),
    _col("AllowVolumeExpansion", "AllowVolumeExpansion shows whether the storage class allow volume expand."),
    AGE,
]


def _storageclass_row(sc: dict, now: datetime) -> list:
    name = sc["metadata"]["name"]
    annotations = sc["metadata"].get("annotations") or {}
    if annotations.get("storageclass.kubernetes.io/is-default-class") == "true" or annotations.get("storageclass.beta.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [name, sc.get("provisioner", ""), sc.get("reclaimPolicy") or "Delete", sc.get("volumeBindingMode") or "Immediate",
            bool(sc.get("allowVolumeExpansion")), since(sc["metadata"].get("creationTimestamp"), now)]


# -- events, quotas, limits --------------------------------------------------------------------

EVENT_COLUMNS = [
    _col("Last Seen", "The last time the event was seen"),
    _col("Type", "Type of this event (Normal, Warning), new types could be added in the future."),
    _col("Reason", "This should be a short, machine understandable string that gives the reason for this event being generated."),
    _col("Object", "The object that this event is about."),
    _col("Subobject", "The subobject that this event is about.", 1),
    _col("Source", "The component reporting this event. Should be a short machine understandable string.", 1),
    _col("Message", "A human-readable description of the status of this operation."),
    _col("First Seen", "The first time the event was seen", 1),
    _col("Count", "The number of times this event has occurred.", 1),
    _col("Name", "Name must be unique within a namespace.", 1, format_="name"),
]


def _event_row(ev: dict, now: datetime) -> list:
    first_ts = ev.get("firstTimestamp") or ev.get("eventTime") or ev["metadata"].get("creationTimestamp")
    last_ts = ev.get("lastTimestamp") or ev.get("eventTime") or first_ts
    count = ev.get("count") or 1
    series = ev.get("series") or {}
    if series:
        count = series.get("count") or count
        last_ts = series.get("lastObservedTime") or last_ts
    first = since(first_ts, now)
    last = since(last_ts, now)
    if count > 1 and first != last:
        last = f"{last} (x{count} over {first})"
    obj = ev.get("involvedObject") or {}
    source = ev.get("source") or {}
    source_cell = source.get("component") or ev.get("reportingComponent") or ""
    if source.get("host"):
        source_cell = f"{source_cell}, {source['host']}"
    return [last, ev.get("type", ""), ev.get("reason", ""), f"{(obj.get('kind') or '').lower()}/{obj.get('name', '')}",
            obj.get("fieldPath", ""), source_cell, (ev.get("message") or "").strip(), first, int(count), ev["metadata"]["name"]]


QUOTA_COLUMNS = [
    NAME,
    AGE,
    _col("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
    _col("Limit", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
]


def _quota_row(rq: dict, now: datetime) -> list:
    status = rq.get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used") or {}
    requests, limits = [], []
    for name in sorted(hard):
        target = limits if name.split(".")[0] == "limits" and "." in name else requests
        target.append(f"{name}: {used.get(name, '0')}/{hard[name]}")
    return [rq["metadata"]["name"], since(rq["metadata"].get("creationTimestamp"), now), ", ".join(requests), ", ".join(limits)]


def _created_at_row(obj: dict, now: datetime) -> list:
    return [obj["metadata"]["name"], obj["metadata"].get("creationTimestamp")]


# -- other core kinds --------------------------------------------------------------------------

SERVICE_COLUMNS = [
    NAME,
    _col("Type", "type determines how the Service is exposed."),
    _col("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
    _col("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    _col("Port(s)", "The list of ports that are exposed by this service."),
    AGE,
    _col("Selector", "Route service traffic to pods with label keys and values matching this selector.", 1),
]


def _service_row(svc: dict, now: datetime) -> list:
    spec = svc.get("spec") or {}
    ports = []
    for p in spec.get("ports") or []:
        text = f"{p.get('port')}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort"):
            text = f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        ports.append(text)
    external = ",".join(spec.get("externalIPs") or []) or _NONE
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or _NONE
    return [svc["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP") or _NONE, external,
            ",".join(ports) or _NONE, since(svc["metadata"].get("creationTimestamp"), now), selector]


CONFIGMAP_COLUMNS = [NAME, _col("Data", "Data contains the configuration data.", type_="integer"), AGE]
SECRET_COLUMNS = [NAME, _col("Type", "Used to facilitate programmatic handling of secret data."),
                  _col("Data", "Data contains the secret data.", type_="integer"), AGE]
SERVICEACCOUNT_COLUMNS = [NAME, _col("Secrets", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.", type_="integer"), AGE]
NETWORKPOLICY_COLUMNS = [NAME, _col("Pod-Selector", "Selects the pods to which this NetworkPolicy object applies."), AGE]
BINDING_COLUMNS = [
    NAME,
    _col("Role", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
    AGE,
    _col("Users", "Users in the roleBinding", 1),
    _col("Groups", "Groups in the roleBinding", 1),
    _col("ServiceAccounts", "ServiceAccounts in the roleBinding", 1),
]


def _label_selector(selector: dict | None) -> str:
    # metav1.FormatLabelSelector: "<none>" for an empty selector.
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op = e.get("operator", "")
        values = ",".join(e.get("values") or [])
        parts.append({"In": f"{e['key']} in ({values})", "NotIn": f"{e['key']} notin ({values})",
                      "Exists": e["key"], "DoesNotExist": f"!{e['key']}"}.get(op, f"{e['key']} {op}"))
    return ",".join(parts) or _NONE


def _binding_row(b: dict, now: datetime) -> list:
    ref = b.get("roleRef") or {}
    users, groups, sas = [], [], []
    for s in b.get("subjects") or []:
        if s.get("kind") == "User":
            users.append(s.get("name", ""))
        elif s.get("kind") == "Group":
            groups.append(s.get("name", ""))
        elif s.get("kind") == "ServiceAccount":
            sas.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
    return [b["metadata"]["name"], f"{ref.get('kind', '')}/{ref.get('name', '')}", since(b["metadata"].get("creationTimestamp"), now),
            ", ".join(users), ", ".join(groups), ", ".join(sas)]


PRINTERS: dict[str, tuple[list[dict], Callable[[dict, datetime], list]]] = {
    "pods": (POD_COLUMNS, _pod_row),
    "nodes": (NODE_COLUMNS, _node_row),
    "namespaces": (NAMESPACE_COLUMNS, _namespace_row),
    "persistentvolumeclaims": (PVC_COLUMNS, _pvc_row),
    "storageclasses": (STORAGECLASS_COLUMNS, _storageclass_row),
    "events": (EVENT_COLUMNS, _event_row),
    "resourcequotas": (QUOTA_COLUMNS, _quota_row),
    "limitranges": ([NAME, CREATED_AT], _created_at_row),
    "services": (SERVICE_COLUMNS, _service_row),
    "configmaps": (CONFIGMAP_COLUMNS, lambda o, now: [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                                                      since(o["metadata"].get("creationTimestamp"), now)]),
    "secrets": (SECRET_COLUMNS, lambda o, now: [o["metadata"]["name"], o.get("type", ""), len(o.get("data") or {}),
                                                since(o["metadata"].get("creationTimestamp"), now)]),
    "serviceaccounts": (SERVICEACCOUNT_COLUMNS, lambda o, now: [o["metadata"]["name"], len(o.get("secrets") or []),
                                                                since(o["metadata"].get("creationTimestamp"), now)]),
    "networkpolicies": (NETWORKPOLICY_COLUMNS, lambda o, now: [o["metadata"]["name"], _label_selector((o.get("spec") or {}).get("podSelector")),
                                                               since(o["metadata"].get("creationTimestamp"), now)]),
    "roles": ([NAME, CREATED_AT], _created_at_row),
    "clusterroles": ([NAME, CREATED_AT], _created_at_row),
    "rolebindings": (BINDING_COLUMNS, _binding_row),
    "clusterrolebindings": (BINDING_COLUMNS, _binding_row),
}


def _row_object(obj: dict, include: str) -> Any:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def table(resource: str, objects: list[dict], resource_version: str | None, include: str = "Metadata",
          now: datetime | None = None, columns: bool = True) -> dict:
    """The Table for ``objects`` of ``resource`` (one object for a GET, a list otherwise)."""
    now = now or datetime.now(timezone.utc)
    definitions, row_of = PRINTERS.get(resource, ([NAME, CREATED_AT], _created_at_row))
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_of(obj, now)}
        o = _row_object(obj, include)
        if o is not None:
            row["object"] = o
        rows.append(row)
    metadata = {"resourceVersion": resource_version} if resource_version else {}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": definitions if columns else None, "rows": rows}
