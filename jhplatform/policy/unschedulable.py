"""Why the scheduler cannot place a GPU pod, read from its message (pure: no I/O).

kube-scheduler writes the same text into the pod's ``PodScheduled`` condition and its
``FailedScheduling`` event (``FitError.Error()``), a histogram of each node's first failing
filter, then the preemption verdict::

    0/4 nodes are available: 2 Insufficient nvidia.com/gpu, 2 node(s) had untolerated taint
    {nvidia.com/gpu: present}. preemption: 0/4 nodes are available: 2 No preemption victims
    found for incoming pod, 2 Preemption is not helpful for scheduling.

:func:`classify_unschedulable` tells apart

- ``capacity``: nodes that could take the pod lack free resources (``Insufficient <name>``,
  ``Too many pods``): wait or pick something smaller. Only this one is "no free GPU";
- ``untolerated_taint``: a node the pod does not tolerate (the GPU pool's taint): a
  configuration problem;
- ``node_affinity``: the pod's node selector or required affinity matches no node that could
  take it: a configuration problem (a label value that no node has);
- ``other``: anything else (cordoned or not-ready nodes, missing claims, no nodes at all).

The histogram does not say which nodes have GPUs, so the rule reads it as a hub admin would.
Nodes without the GPU always report ``Insufficient <gpu>``, so an untolerated *GPU* taint (a
taint whose key is a GPU resource or the vendor's ``<domain>/gpu``) is the reason even next to
``Insufficient``; any other taint is the reason only when no node reports ``Insufficient``
(else the GPU nodes are tolerated and full). With no taint, ``Insufficient`` is capacity; a
node selector or affinity that no node matches (every node reports it) is ``node_affinity``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .gpu_ledger import is_gpu_resource

CAPACITY = "capacity"
UNTOLERATED_TAINT = "untolerated_taint"
NODE_AFFINITY = "node_affinity"
OTHER = "other"
KINDS = (CAPACITY, UNTOLERATED_TAINT, NODE_AFFINITY, OTHER)

# "2 node(s) had untolerated taint {k: v}" (1.25+) and "... had taint {k: v}, that the pod didn't
# tolerate" (before 1.25).
_TAINT = re.compile(r"node\(s\) had (?:untolerated )?taints? \{(?P<key>[^:{}]*):\s?(?P<value>[^{}]*)\}")
# "node(s) didn't match Pod's node affinity/selector" (1.21+), "node(s) didn't match node
# selector" (older).
_AFFINITY = re.compile(r"node\(s\) didn't match (?:Pod's node affinity/selector|node selector)")
# A resource name ends at a comma, a space or the sentence's period (not at "." inside a name).
_INSUFFICIENT = re.compile(r"Insufficient (?P<name>[^\s,]+?)(?=,|\s|\.(?:\s|$)|$)")
_COUNT = re.compile(r"(?:^|,\s*)(?P<n>\d+) ")


@dataclass(frozen=True)
class Unschedulable:
    """The scheduler's verdict on a pod, classified."""

    kind: str  # one of KINDS
    message: str  # the scheduler's message, as written
    #: GPU resources (of the pod's) some node lacks.
    insufficient_gpu: tuple[str, ...] = ()
    #: Other resources some node lacks ("cpu", "memory", "pods").
    insufficient_other: tuple[str, ...] = ()
    #: Untolerated taints as ``(key, value)``.
    taints: tuple[tuple[str, str], ...] = ()
    #: Some node did not match the pod's node selector / affinity.
    affinity_mismatch: bool = False

    @property
    def is_capacity(self) -> bool:
        return self.kind == CAPACITY


def _filters_part(message: str) -> str:
    # The per-node histogram: after "are available:" and before the preemption verdict.
    text = message.split(". preemption:", 1)[0]
    head, sep, rest = text.partition("nodes are available:")
    return rest if sep else text


# Taints the node lifecycle controller and cloud providers set for a node's state (not ready,
# unreachable, cordoned, under pressure): the cluster's condition, not the profile's setup.
_NODE_STATE_TAINTS = ("node.kubernetes.io/", "node.cloudprovider.kubernetes.io/")


def _vendor_taint(key: str) -> bool:
    return is_gpu_resource(key) or key.endswith("/gpu")


def classify_unschedulable(message: str, resources: Iterable[str] = (), known: Iterable[str] = ()) -> Unschedulable:
    """Classify a ``FailedScheduling`` message for a pod asking for GPU ``resources``.

    ``known`` are GPU resource names besides the vendors' usual ones. See the module docstring
    for the rule.
    """
    resources = tuple(resources)
    known = tuple(known) + resources
    part = _filters_part(message or "")
    names = [m.group("name") for m in _INSUFFICIENT.finditer(part)]
    gpu = tuple(dict.fromkeys(n for n in names if n in resources or (not resources and is_gpu_resource(n, known))))
    other = tuple(dict.fromkeys(n for n in names if n not in gpu))
    if "Too many pods" in part:
        other = other + ("pods",)
    taints = tuple(dict.fromkeys((m.group("key"), m.group("value").strip()) for m in _TAINT.finditer(part)))
    affinity = bool(_AFFINITY.search(part))
    kwargs = dict(message=message, insufficient_gpu=gpu, insufficient_other=other, taints=taints, affinity_mismatch=affinity)
    config_taints = [k for k, _ in taints if not k.startswith(_NODE_STATE_TAINTS)]
    if any(_vendor_taint(k) for k in config_taints):
        return Unschedulable(UNTOLERATED_TAINT, **kwargs)
    if config_taints and not (gpu or other):
        return Unschedulable(UNTOLERATED_TAINT, **kwargs)
    if gpu or other:
        return Unschedulable(CAPACITY, **kwargs)
    if affinity:
        return Unschedulable(NODE_AFFINITY, **kwargs)
    return Unschedulable(OTHER, **kwargs)


def unschedulable_condition(pod: Mapping | None) -> str | None:
    """The scheduler's message while ``pod`` is ``PodScheduled=False/Unschedulable``, else ``None``."""
    if not pod or (pod.get("spec") or {}).get("nodeName"):
        return None
    conditions = (pod.get("status") or {}).get("conditions") or []
    cond = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
    if not cond or cond.get("status") != "False" or cond.get("reason") != "Unschedulable":
        return None
    return cond.get("message") or ""


# -- what people read ---------------------------------------------------------------------------

#: The ``reason`` label of ``jhplatform_gpu_refusals_total`` for each kind.
REFUSAL_REASONS = {
    CAPACITY: "unschedulable",
    UNTOLERATED_TAINT: "untolerated_taint",
    NODE_AFFINITY: "node_affinity",
    OTHER: "unschedulable_other",
}


def user_message(verdict: Unschedulable, profile: str, type: str = "", alternative: str | None = None) -> str:
    """What the user is told when the spawn is stopped for ``verdict``.

    Capacity: no free GPU, try later. Anything else: this profile cannot start because of how
    the cluster is set up, and the hub admin has the details. ``alternative`` is a profile
    without a GPU (never the refused one); without one the message says there is none.
    """
    kind = f"{type} GPU" if type else "GPU"
    if alternative:
        instead = f"Pick the {alternative} profile"
    else:
        instead = "There is no profile without a GPU to pick instead"
    if verdict.kind == CAPACITY:
        if verdict.insufficient_gpu:
            head = f"No node has a free {kind} right now, so your server was stopped instead of waiting."
        else:
            head = f"No {kind} node has room for your server right now, so it was stopped instead of waiting."
        tail = f"{instead} or try again later." if alternative else f"{instead}; try again later."
        return f"{head} {tail}"
    name = f"The {profile} profile" if profile else "This profile"
    tail = f"{instead}." if alternative else f"{instead}; please contact your hub admin."
    return (
        f"{name} cannot start because of how the cluster is set up, so your server was stopped. "
        f"Your hub admin can see the details in the hub log. {tail}"
    )


def admin_fix(verdict: Unschedulable, pod_spec: Mapping | None = None, resources: Iterable[str] = ()) -> str:
    """The fix for the hub log: the toleration to add, the label value to check."""
    spec = pod_spec or {}
    if verdict.kind == UNTOLERATED_TAINT:
        wanted = [{"key": k, "operator": "Exists", "effect": "NoSchedule"} for k, _ in verdict.taints]
        return (
            f"The pod does not tolerate the node taint(s) {', '.join(f'{k}={v}' for k, v in verdict.taints)}. "
            f"Fix: keep c.PlatformSpawner.gpu_default_toleration = True (it tolerates the taint named like "
            f"the GPU resource {', '.join(resources) or ''}), or add to the profile's kubespawner_override "
            f"'tolerations': {wanted!r}."
        )
    if verdict.kind == NODE_AFFINITY:
        selector = spec.get("nodeSelector") or {}
        required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                    .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
        labels = ", ".join(f"{k}={v}" for k, v in selector.items()) or "none"
        return (
            f"No node that could take the pod matches its node selector ({labels})"
            + (f" and required node affinity {required!r}" if required else "")
            + ". Fix: set the profile's node_selector (or gpu.type_value) to a label value your GPU nodes have "
            "(kubectl get nodes --show-labels)."
        )
    if verdict.kind == CAPACITY:
        return "The GPU nodes are full; the spawn was stopped instead of waiting (c.PlatformSpawner.gpu_unschedulable_timeout)."
    return "Read the scheduler's message above; the pod was stopped instead of waiting."


__all__ = [
    "CAPACITY",
    "KINDS",
    "NODE_AFFINITY",
    "OTHER",
    "REFUSAL_REASONS",
    "UNTOLERATED_TAINT",
    "Unschedulable",
    "admin_fix",
    "classify_unschedulable",
    "unschedulable_condition",
    "user_message",
]
