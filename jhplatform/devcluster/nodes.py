"""The emulated node pool: Node objects from a compact spec string or a manifest file.

A compact spec lists pools separated by ``;``. Each pool is ``NAME[xCOUNT]:key=value,...``:

* ``NAME`` alone makes one node called ``NAME``; ``NAMExCOUNT`` makes ``NAME-0`` ...
  ``NAME-(COUNT-1)`` (a trailing ``x<digits>`` is always read as a count).
* ``cpu``, ``memory``, ``pods``, ``ephemeral-storage``: capacity (defaults 4, 16Gi, 110, 100Gi).
* any name with a ``/`` (``nvidia.com/gpu=4``): an extended resource, a whole number.
* ``label:KEY=VALUE``: a node label; ``taint:KEY=VALUE:EFFECT`` or ``taint:KEY:EFFECT``: a taint.
* ``unschedulable=true``: a cordoned node.

Example (the default pool)::

    cpux2:cpu=8,memory=32Gi,pods=110;gpu-a100x2:cpu=16,memory=128Gi,nvidia.com/gpu=4,...

A file (YAML or JSON) holds a list of Node manifests, ``{"nodes": [...]}`` or a ``kind: List``;
missing status fields (allocatable, conditions, addresses, nodeInfo) are filled in.
"""

from __future__ import annotations

import copy
import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from jhplatform.policy.quantity import Quantity

from .selectors import label_value_errors, qualified_name_errors

DEFAULT_NODES = (
    "cpux2:cpu=8,memory=32Gi,pods=110;"
    "gpu-a100x2:cpu=16,memory=128Gi,pods=110,nvidia.com/gpu=4,"
    "label:nvidia.com/gpu.product=NVIDIA-A100-SXM4-40GB,"
    "label:hub.jupyter.org/node-purpose=user,"
    "taint:nvidia.com/gpu=present:NoSchedule"
)

EXAMPLE = "cpux2:cpu=8,memory=32Gi;gpux1:cpu=16,memory=128Gi,nvidia.com/gpu=4,taint:nvidia.com/gpu=present:NoSchedule"

DEFAULT_CAPACITY = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
KUBELET_VERSION = "v1.31.4"

_COUNTED = re.compile(r"(?P<name>.+)x(?P<count>[0-9]+)")
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _error(what: str) -> ValueError:
    return ValueError(f"invalid node spec: {what}. Example: {EXAMPLE!r}")


def parse_nodes(spec: str) -> list[dict]:
    """Node objects (API form) for a compact spec string or a YAML/JSON file path.

    Raises ``ValueError`` saying what is wrong, with an example of a valid spec.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise _error("the spec is empty")
    text = spec.strip()
    # Compact specs contain "/" only inside keys (nvidia.com/gpu=4), always after a ":".
    looks_like_path = ":" not in text and os.sep in text
    if text.endswith((".yaml", ".yml", ".json")) or looks_like_path or os.path.isfile(text):
        return _from_file(Path(text))
    nodes: list[dict] = []
    for pool in text.split(";"):
        pool = pool.strip()
        if not pool:
            continue
        nodes.extend(_parse_pool(pool, first_index=len(nodes)))
    if not nodes:
        raise _error("no pools given")
    _check_unique(nodes)
    return nodes


def _parse_pool(pool: str, first_index: int) -> list[dict]:
    head, sep, body = pool.partition(":")
    head = head.strip()
    m = _COUNTED.fullmatch(head)
    name, count = (m.group("name"), m.group("count")) if m else (head, None)
    if not _NODE_NAME.fullmatch(name):
        raise _error(f"pool name {head!r} must be a lower-case DNS name, optionally followed by xCOUNT")
    capacity = dict(DEFAULT_CAPACITY)
    labels: dict[str, str] = {}
    taints: list[dict] = []
    unschedulable = False
    for item in (body.split(",") if sep else []):
        item = item.strip()
        if not item:
            continue
        if item.startswith("label:"):
            key, eq, value = item[len("label:"):].partition("=")
            if not eq:
                raise _error(f"label {item!r} in pool {head!r} needs KEY=VALUE")
            _check_label(key, value, head)
            labels[key] = value
        elif item.startswith("taint:"):
            taints.append(_parse_taint(item[len("taint:"):], head))
        else:
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not value:
                raise _error(f"{item!r} in pool {head!r} needs KEY=VALUE")
            if key == "unschedulable":
                if value.lower() not in ("true", "false"):
                    raise _error(f"unschedulable in pool {head!r} must be true or false, not {value!r}")
                unschedulable = value.lower() == "true"
                continue
            capacity[key] = _parse_resource(key, value, head)
    if count is None:
        names = [name]
    else:
        n = int(count)
        if n < 1:
            raise _error(f"pool {head!r} has a count of 0")
        names = [f"{name}-{i}" for i in range(n)]
    return [
        make_node(node_name, capacity, labels=labels, taints=taints, unschedulable=unschedulable, index=first_index + i)
        for i, node_name in enumerate(names)
    ]


def _parse_resource(key: str, value: str, pool: str) -> str:
    if key not in DEFAULT_CAPACITY and "/" not in key:
        raise _error(
            f"unknown key {key!r} in pool {pool!r}: use cpu, memory, pods, ephemeral-storage, "
            "an extended resource such as nvidia.com/gpu, label:KEY=VALUE or taint:KEY=VALUE:EFFECT"
        )
    if "/" in key and qualified_name_errors(key):
        raise _error(f"extended resource name {key!r} in pool {pool!r} is not a qualified name")
    try:
        q = Quantity.parse(value)
    except ValueError:
        raise _error(f"{key}={value!r} in pool {pool!r} is not a quantity") from None
    if q.value < 0:
        raise _error(f"{key}={value!r} in pool {pool!r} is negative")
    if (key == "pods" or "/" in key) and q.value != q.value.to_integral_value():
        raise _error(f"{key}={value!r} in pool {pool!r} must be a whole number")
    return str(q)


def _check_label(key: str, value: str, pool: str) -> None:
    problems = qualified_name_errors(key) + label_value_errors(value)
    if problems:
        raise _error(f"label {key}={value!r} in pool {pool!r}: {problems[0]}")


def _parse_taint(text: str, pool: str) -> dict:
    # KEY=VALUE:EFFECT or KEY:EFFECT, like kubectl taint.
    spec, colon, effect = text.rpartition(":")
    if not colon or not spec:
        raise _error(f"taint {text!r} in pool {pool!r} needs KEY=VALUE:EFFECT")
    if effect not in TAINT_EFFECTS:
        raise _error(f"taint effect {effect!r} in pool {pool!r} must be one of {', '.join(TAINT_EFFECTS)}")
    key, eq, value = spec.partition("=")
    _check_label(key, value, pool)
    # Field order as the apiserver returns it; an empty value is omitted (omitempty).
    return {"key": key, **({"value": value} if value else {}), "effect": effect}


def make_node(
    name: str,
    capacity: dict[str, str],
    *,
    labels: dict[str, str] | None = None,
    taints: list[dict] | None = None,
    unschedulable: bool = False,
    index: int = 0,
) -> dict:
    """A Ready Node called ``name`` with ``capacity`` (allocatable is the same)."""
    if not _NODE_NAME.fullmatch(name) or len(name) > 253:
        raise _error(f"node name {name!r} is not a DNS subdomain")
    spec: dict[str, Any] = {
        "podCIDR": f"10.244.{index}.0/24",
        "podCIDRs": [f"10.244.{index}.0/24"],
    }
    if taints:
        spec["taints"] = copy.deepcopy(taints)
    if unschedulable:
        spec["unschedulable"] = True
    node = {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                **(labels or {}),
            },
        },
        "spec": spec,
        "status": {},
    }
    return _fill_status(node, dict(capacity), index)


def _fill_status(node: dict, capacity: dict[str, str] | None, index: int) -> dict:
    status = node.setdefault("status", {})
    name = node["metadata"]["name"]
    if capacity is not None:
        status["capacity"] = capacity
    status.setdefault("capacity", dict(DEFAULT_CAPACITY))
    status.setdefault("allocatable", dict(status["capacity"]))
    status.setdefault(
        "conditions",
        [
            _condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            _condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            _condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            _condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
    )
    status.setdefault(
        "addresses",
        [{"type": "InternalIP", "address": f"10.0.{index // 250}.{index % 250 + 10}"}, {"type": "Hostname", "address": name}],
    )
    status.setdefault(
        "nodeInfo",
        {
            "machineID": f"{index:032x}",
            "systemUUID": f"00000000-0000-0000-0000-{index:012x}",
            "bootID": f"00000000-0000-0000-0001-{index:012x}",
            "kernelVersion": "6.8.0-devcluster",
            "osImage": "jhplatform devcluster",
            "containerRuntimeVersion": "containerd://1.7.24",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    )
    status.setdefault("daemonEndpoints", {"kubeletEndpoint": {"Port": 10250}})
    return node


def _condition(type_: str, status: str, reason: str, message: str) -> dict:
    # Nodes are created "now"; a fixed timestamp keeps parse_nodes deterministic.
    stamp = "2025-01-01T00:00:00Z"
    return {
        "type": type_,
        "status": status,
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def _from_file(path: Path) -> list[dict]:
    if not path.is_file():
        raise _error(f"node file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # yaml.YAMLError / json.JSONDecodeError
        raise _error(f"cannot parse {str(path)!r}: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        items = data["nodes"]
    elif isinstance(data, dict) and data.get("kind") == "List" and isinstance(data.get("items"), list):
        items = data["items"]
    elif isinstance(data, list):
        items = data
    else:
        raise _error(f"{str(path)!r} must hold a list of Node manifests or {{\"nodes\": [...]}}")
    nodes = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("metadata"), dict) or not item["metadata"].get("name"):
            raise _error(f"item {i} of {str(path)!r} is not a Node manifest with metadata.name")
        if item.get("kind", "Node") != "Node":
            raise _error(f"item {i} of {str(path)!r} is a {item.get('kind')}, not a Node")
        node = copy.deepcopy(item)
        node["kind"], node["apiVersion"] = "Node", "v1"
        name = node["metadata"]["name"]
        if not isinstance(name, str) or not _NODE_NAME.fullmatch(name):
            raise _error(f"node name {name!r} in {str(path)!r} is not a DNS subdomain")
        node["metadata"].setdefault("labels", {}).setdefault("kubernetes.io/hostname", name)
        node.setdefault("spec", {})
        capacity = (node.get("status") or {}).get("capacity")
        if capacity is not None:
            if not isinstance(capacity, dict):
                raise _error(f"status.capacity of node {name!r} must be a mapping")
            capacity = {k: _parse_resource(k, str(v), name) for k, v in capacity.items()}
        _fill_status(node, capacity, i)
        nodes.append(node)
    if not nodes:
        raise _error(f"{str(path)!r} lists no nodes")
    _check_unique(nodes)
    return nodes


def _check_unique(nodes: list[dict]) -> None:
    seen: set[str] = set()
    for node in nodes:
        name = node["metadata"]["name"]
        if name in seen:
            raise _error(f"node {name!r} is defined twice")
        seen.add(name)


def allocatable(node: dict) -> dict[str, Decimal]:
    """``status.allocatable`` as Decimals (falls back to capacity)."""
    status = node.get("status") or {}
    raw = status.get("allocatable") or status.get("capacity") or {}
    return {k: Quantity.parse(v).value for k, v in raw.items()}
