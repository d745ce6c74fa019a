"""The emulated kube-scheduler: binds pending pods to nodes of the pool, or says why it cannot.

Pods are taken one at a time, highest ``spec.priority`` first, then in creation order. Each
runs through kube-scheduler's default filters, in its plugin order, stopping at the first that
rejects a node:

    NodeUnschedulable -> TaintToleration -> NodeAffinity (nodeSelector and required affinity)
    -> NodePorts -> NodeResourcesFit

Claims are checked first, for all nodes at once (the VolumeRestrictions/VolumeBinding
pre-filters): a missing or deleting claim makes every node infeasible. The feasible node with
the most free cpu wins (a container without a cpu request counts as 100m, as in scoring
upstream), ties broken by name. A pod that fits nowhere gets ``PodScheduled=False``
with the FitError text and a ``FailedScheduling`` event, and is retried when a change could
make it fit (a pod freed resources, a node or claim appeared or changed) or after
``retry_interval`` seconds.

Filter decisions are pure functions of (pod, node, pods on the node) at module level.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable

from . import errors
from .controllers import SELECTED_NODE, ChangeFeed, is_terminal
from .nodes import allocatable as node_allocatable
from .quota import pod_requests
from .store import Change

if TYPE_CHECKING:
    from .cluster import Cluster

log = logging.getLogger("jhplatform.devcluster")

SCHEDULER_NAME = "default-scheduler"
RETRY_INTERVAL = 5.0

# Reason strings of the kube-scheduler plugins (pkg/scheduler/framework/plugins/...).
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_PORTS = "node(s) didn't have free ports for the requested pod ports"
REASON_TOO_MANY_PODS = "Too many pods"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_NODES = "no nodes available to schedule pods"

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
_BASIC = ("cpu", "memory", "ephemeral-storage")


# -- pure scheduling policy -----------------------------------------------------------------


def requests_of(pod: dict) -> dict[str, int]:
    """Effective pod requests as integers: cpu in millicores, everything else in units
    (rounded up, like Go's ``MilliValue``/``Value``)."""
    out = {}
    for name, q in pod_requests(pod).items():
        out[name] = q.milli_value() if name == "cpu" else q.int_value()
    return out


def allocatable_of(node: dict) -> dict[str, int]:
    out = {}
    for name, value in node_allocatable(node).items():
        out[name] = int((value * 1000).to_integral_value(rounding="ROUND_CEILING")) if name == "cpu" else int(
            value.to_integral_value(rounding="ROUND_CEILING")
        )
    return out


# Scoring counts a container without a cpu request as 100m (schedutil.DefaultMilliCPURequest),
# so best-effort pods spread over nodes instead of piling onto the first one.
DEFAULT_MILLI_CPU_REQUEST = 100


def nonzero_cpu(pod: dict, requests: dict[str, int]) -> int:
    """Millicores the pod counts for when scoring (``GetNonzeroRequests``)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    missing = sum(1 for c in containers if not ((c.get("resources") or {}).get("requests") or {}).get("cpu"))
    return requests.get("cpu", 0) + DEFAULT_MILLI_CPU_REQUEST * missing


@dataclass
class NodeUsage:
    """What the pods bound to one node already take."""

    requested: Counter = field(default_factory=Counter)
    pods: int = 0
    # cpu for scoring, with the non-zero default for containers without a request.
    score_cpu: int = 0
    host_ports: list[tuple[str, str, int]] = field(default_factory=list)


def host_ports(pod: dict) -> list[tuple[str, str, int]]:
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"])))
    return out


def tolerates(toleration: dict, taint: dict) -> bool:
    """``Toleration.ToleratesTaint`` (core/v1 helpers)."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return op == "Exists"


def effective_taints(node: dict) -> list[dict]:
    """The node's taints plus those the node lifecycle controller would add
    (TaintNodesByCondition): unschedulable, not-ready, unreachable."""
    spec = node.get("spec") or {}
    taints = list(spec.get("taints") or [])
    keys = {t.get("key") for t in taints}
    extra = []
    if spec.get("unschedulable"):
        extra.append(UNSCHEDULABLE_TAINT)
    ready = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    status = (ready or {}).get("status", "Unknown")
    if status == "False":
        extra.append(NOT_READY_TAINT)
    elif status != "True":
        extra.append(UNREACHABLE_TAINT)
    taints.extend({"key": k, "effect": "NoSchedule"} for k in extra if k not in keys)
    return taints


def untolerated_taint(pod: dict, node: dict) -> dict | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in effective_taints(node):
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _match_expression(req: dict, labels: dict[str, str]) -> bool:
    key, op, values = req.get("key", ""), req.get("operator"), req.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt"):
        if key not in labels or len(values) != 1:
            return False
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _match_field(req: dict, node: dict) -> bool:
    if req.get("key") != "metadata.name":
        return False
    name = node["metadata"]["name"]
    values = req.get("values") or []
    if req.get("operator") == "In":
        return name in values
    if req.get("operator") == "NotIn":
        return name not in values
    return False


def matches_node_selector_terms(terms: list[dict], node: dict) -> bool:
    """Terms are ORed; within a term expressions and fields are ANDed; an empty term matches
    nothing (``nodeaffinity.NodeSelector.Match``)."""
    labels = node["metadata"].get("labels") or {}
    for term in terms or []:
        exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
        if not exprs and not fields:
            continue
        if all(_match_expression(e, labels) for e in exprs) and all(_match_field(f, node) for f in fields):
            return True
    return False


def matches_node_affinity(pod: dict, node: dict) -> bool:
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is not None:
        return matches_node_selector_terms(required.get("nodeSelectorTerms") or [], node)
    return True


def _ports_conflict(wanted: list[tuple[str, str, int]], used: list[tuple[str, str, int]]) -> bool:
    for ip, proto, port in wanted:
        for uip, uproto, uport in used:
            if port == uport and proto == uproto and (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def insufficient_resources(requests: dict[str, int], alloc: dict[str, int], usage: NodeUsage) -> list[str]:
    """NodeResourcesFit's reasons (``fitsRequest``): pod count, cpu, memory, ephemeral
    storage, then every scalar (extended, hugepages) resource the pod asks for."""
    reasons = []
    if usage.pods + 1 > alloc.get("pods", 0):
        reasons.append(REASON_TOO_MANY_PODS)
    for name, want in requests.items():
        if name == "pods" or want <= 0:
            continue
        if want > alloc.get(name, 0) - usage.requested.get(name, 0):
            reasons.append(f"Insufficient {name}")
    order = {n: i for i, n in enumerate(_BASIC)}
    head = [r for r in reasons if r == REASON_TOO_MANY_PODS]
    rest = sorted((r for r in reasons if r != REASON_TOO_MANY_PODS), key=lambda r: (order.get(r[len("Insufficient "):], 9), r))
    return head + rest


def filter_node(pod: dict, requests: dict[str, int], node: dict, usage: NodeUsage) -> tuple[list[str], bool]:
    """Run the filters on one node. Returns (reasons, resolvable); no reasons means it fits.

    ``resolvable`` is False for UnschedulableAndUnresolvable plugins, which preemption
    cannot help.
    """
    spec = node.get("spec") or {}
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    if spec.get("unschedulable") and not any(
        tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}) for t in tolerations
    ):
        return [REASON_UNSCHEDULABLE], False
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return [f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value') or ''}}}"], False
    if not matches_node_affinity(pod, node):
        return [REASON_AFFINITY], False
    if _ports_conflict(host_ports(pod), usage.host_ports):
        return [REASON_PORTS], True
    reasons = insufficient_resources(requests, allocatable_of(node), usage)
    return reasons, True


def claim_problem(pod: dict, find_claim) -> str | None:
    """The pre-filter verdict on the pod's claims: a message if one is missing or being
    deleted, else None. ``find_claim(name)`` returns the PVC or None."""
    md = pod["metadata"]
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        pvc_ref = vol.get("persistentVolumeClaim")
        if pvc_ref:
            name = pvc_ref.get("claimName", "")
            claim = find_claim(name)
            if claim is None:
                return f'persistentvolumeclaim "{name}" not found'
        elif vol.get("ephemeral") is not None:
            name = f"{md['name']}-{vol.get('name', '')}"
            claim = find_claim(name)
            if claim is None:
                return f'waiting for ephemeral volume controller to create the persistentvolumeclaim "{name}"'
            owners = claim["metadata"].get("ownerReferences") or []
            if not any(o.get("uid") == md.get("uid") and o.get("controller") for o in owners):
                return f"PVC {md['namespace']}/{name} was not created for pod {md['namespace']}/{md['name']} (pod is not owner)"
        else:
            continue
        if claim["metadata"].get("deletionTimestamp"):
            return f'persistentvolumeclaim "{name}" is being deleted'
    return None


def _histogram(reasons: Iterable[str]) -> str:
    counts = Counter(reasons)
    return ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))


def fit_error(
    pod: dict,
    num_nodes: int,
    node_reasons: dict[str, tuple[list[str], bool]],
    pre_filter_msg: str | None = None,
) -> str:
    """kube-scheduler's ``FitError.Error()`` text plus the DefaultPreemption post-filter part.

    ``node_reasons`` maps each node to (reasons, resolvable). With a pre-filter failure the
    message names it instead of per-node reasons, and preemption can help no node.

    The text ends in a single period, as kube-emulator-spec §2.3 shows it. Upstream appears to
    wrap the already period-terminated preemption message in ``" %v."`` once more (so real
    clusters likely print ``...incoming pod..``); unverified, and nothing here parses it.
    """
    head = f"0/{num_nodes} nodes are available:"
    if pre_filter_msg:
        msg = f"{head} {pre_filter_msg}."
    else:
        msg = f"{head} {_histogram(r for reasons, _ in node_reasons.values() for r in reasons)}."
    if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
        return f"{msg} preemption: not eligible due to preemptionPolicy=Never."
    if pre_filter_msg:
        verdicts = [NOT_HELPFUL] * num_nodes
    else:
        verdicts = [NO_VICTIMS if resolvable else NOT_HELPFUL for _, resolvable in node_reasons.values()]
    return f"{msg} preemption: {head} {_histogram(verdicts)}."


@dataclass
class Decision:
    node: str | None
    message: str = ""


def decide(pod: dict, nodes: list[dict], usage: dict[str, NodeUsage], requests: dict[str, int], find_claim) -> Decision:
    """Where ``pod`` goes, or the FitError message if nowhere."""
    if not nodes:
        return Decision(None, NO_NODES)
    problem = claim_problem(pod, find_claim)
    if problem:
        return Decision(None, fit_error(pod, len(nodes), {}, problem))
    statuses: dict[str, tuple[list[str], bool]] = {}
    best: tuple[int, str] | None = None
    for node in nodes:
        name = node["metadata"]["name"]
        node_usage = usage.get(name) or NodeUsage()
        reasons, resolvable = filter_node(pod, requests, node, node_usage)
        if reasons:
            statuses[name] = (reasons, resolvable)
            continue
        free_cpu = allocatable_of(node).get("cpu", 0) - node_usage.score_cpu
        key = (-free_cpu, name)
        if best is None or key < best:
            best = key
    if best is not None:
        return Decision(best[1])
    return Decision(None, fit_error(pod, len(nodes), statuses))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_condition(pod: dict, condition: dict) -> dict:
    """A new pod with ``condition`` set; lastTransitionTime is kept if the status is unchanged."""
    status = dict(pod.get("status") or {})
    conditions = [dict(c) for c in status.get("conditions") or []]
    for i, c in enumerate(conditions):
        if c.get("type") == condition["type"]:
            if c.get("status") == condition["status"] and c.get("lastTransitionTime"):
                condition = {**condition, "lastTransitionTime": c["lastTransitionTime"]}
            conditions[i] = condition
            break
    else:
        conditions.append(condition)
    status["conditions"] = conditions
    return {**pod, "metadata": dict(pod["metadata"]), "status": status}


def pod_condition(pod: dict, type_: str) -> dict | None:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


# -- the controller -------------------------------------------------------------------------


def _key(obj: dict) -> tuple[str, str]:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


class Scheduler:
    """The default scheduler of the emulated cluster.

    Parameters
    ----------
    cluster:
        The control plane whose pods to schedule.
    delay:
        Seconds to wait before each bind, so tests can observe the unscheduled Pending state.
    retry_interval:
        How often pods that fit nowhere are retried when nothing relevant changed.
    """

    def __init__(self, cluster: "Cluster", *, delay: float = 0.0, retry_interval: float = RETRY_INTERVAL):
        self.cluster = cluster
        self.delay = delay
        self.retry_interval = retry_interval
        self._seq = 0
        self._order: dict[str, tuple[int, int]] = {}  # pod uid -> (-priority, arrival number)
        self._active: dict[tuple[str, str], str] = {}  # pods to try next -> uid
        self._unschedulable: dict[tuple[str, str], tuple[str, float]] = {}  # -> (uid, failed at)
        self._gated: set[str] = set()  # uids that got their SchedulingGated condition
        self._requests: dict[str, tuple[dict, dict[str, int]]] = {}  # uid -> (spec, requests)

    # -- protocol --

    async def run(self) -> None:
        feed = ChangeFeed(self.cluster.store, ("pods", "nodes", "persistentvolumeclaims"))
        try:
            self._enqueue_existing()
            while True:
                for change in feed.drain():
                    self._on_change(change)
                key = self._pop_active()
                if key is None:
                    change = await feed.next(self._time_to_retry())
                    if change is None:
                        self._flush_unschedulable(time.monotonic())
                    else:
                        self._on_change(change)
                    continue
                await self._schedule(key, feed)
        finally:
            feed.close()

    async def stop(self) -> None:
        pass

    async def reset(self) -> None:
        self._order.clear()
        self._active.clear()
        self._unschedulable.clear()
        self._gated.clear()
        self._requests.clear()

    # -- queueing --

    @staticmethod
    def is_candidate(pod: dict) -> bool:
        """A pod this scheduler should place: unbound, alive, and ours."""
        spec = pod.get("spec") or {}
        return (
            not spec.get("nodeName")
            and not pod["metadata"].get("deletionTimestamp")
            and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME
            and not is_terminal(pod)
        )

    def _note(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        if uid not in self._order:
            self._seq += 1
            # spec.priority is immutable, so the queue position is fixed on arrival.
            self._order[uid] = (-((pod.get("spec") or {}).get("priority") or 0), self._seq)

    def _enqueue_existing(self) -> None:
        pods = sorted(
            self.cluster.store.list("pods"),
            key=lambda p: (p["metadata"].get("creationTimestamp", ""), int(p["metadata"].get("resourceVersion", 0))),
        )
        for pod in pods:
            if self.is_candidate(pod):
                self._note(pod)
                self._active[_key(pod)] = pod["metadata"]["uid"]

    def _pop_active(self) -> tuple[str, str] | None:
        if not self._active:
            return None
        key = min(self._active, key=lambda k: self._order.get(self._active[k], (0, 0)))
        del self._active[key]
        return key

    def _activate_all(self) -> None:
        for key, (uid, _) in self._unschedulable.items():
            self._active[key] = uid
        self._unschedulable.clear()

    def _flush_unschedulable(self, now: float) -> None:
        for key, (uid, failed_at) in list(self._unschedulable.items()):
            if now - failed_at >= self.retry_interval:
                del self._unschedulable[key]
                self._active[key] = uid

    def _time_to_retry(self) -> float | None:
        if not self._unschedulable:
            return None
        oldest = min(failed_at for _, failed_at in self._unschedulable.values())
        return max(0.0, oldest + self.retry_interval - time.monotonic())

    def _on_change(self, change: Change) -> None:
        if change.resource == "pods":
            self._on_pod(change)
        elif change.resource == "nodes":
            if change.type == "ADDED" or (change.type == "MODIFIED" and self._node_changed(change.old or {}, change.obj)):
                self._activate_all()
        elif change.resource == "persistentvolumeclaims" and change.type == "ADDED":
            self._activate_all()

    @staticmethod
    def _node_changed(old: dict, new: dict) -> bool:
        def view(n: dict) -> tuple:
            status = n.get("status") or {}
            ready = [c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"]
            return (n.get("spec"), (n.get("metadata") or {}).get("labels"), status.get("allocatable"), ready)

        return view(old) != view(new)

    def _on_pod(self, change: Change) -> None:
        pod, old = change.obj, change.old
        key = _key(pod)
        uid = pod["metadata"]["uid"]

        def held_resources(p: dict | None) -> bool:
            return p is not None and bool((p.get("spec") or {}).get("nodeName")) and not is_terminal(p)

        if change.type == "DELETED":
            self._forget(key, uid)
            if held_resources(pod):
                self._activate_all()
            return
        if held_resources(old) and not held_resources(pod):
            # The pod turned terminal: its node has room again.
            self._activate_all()
        if not self.is_candidate(pod):
            self._forget(key, uid)
            return
        self._note(pod)
        if key in self._unschedulable:
            if self._unschedulable[key][0] != uid or (old is not None and old.get("spec") != pod.get("spec")):
                del self._unschedulable[key]
                self._active[key] = uid
            return
        self._active[key] = uid

    def _forget(self, key: tuple[str, str], uid: str) -> None:
        if self._active.get(key) == uid:
            del self._active[key]
        if key in self._unschedulable and self._unschedulable[key][0] == uid:
            del self._unschedulable[key]
        self._order.pop(uid, None)
        self._requests.pop(uid, None)

    # -- one scheduling cycle --

    def _pod_requests(self, pod: dict) -> dict[str, int]:
        uid = pod["metadata"]["uid"]
        cached = self._requests.get(uid)
        if cached is not None and cached[0] == pod.get("spec"):
            return cached[1]
        reqs = requests_of(pod)
        self._requests[uid] = (pod.get("spec"), reqs)
        return reqs

    def _usage(self) -> dict[str, NodeUsage]:
        usage: dict[str, NodeUsage] = {}
        for pod in self.cluster.store.list("pods"):
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or is_terminal(pod):
                continue
            u = usage.setdefault(node, NodeUsage())
            u.pods += 1
            reqs = self._pod_requests(pod)
            u.requested.update(reqs)
            u.score_cpu += nonzero_cpu(pod, reqs)
            u.host_ports.extend(host_ports(pod))
        return usage

    def _current(self, key: tuple[str, str]) -> dict | None:
        pod = self.cluster.store.find("pods", *key)
        if pod is None or not self.is_candidate(pod):
            return None
        return pod

    def _decide(self, pod: dict) -> Decision:
        store = self.cluster.store
        nodes = sorted(store.list("nodes"), key=lambda n: n["metadata"]["name"])
        ns = pod["metadata"]["namespace"]
        return decide(
            pod, nodes, self._usage(), self._pod_requests(pod), lambda name: store.find("persistentvolumeclaims", ns, name)
        )

    async def _schedule(self, key: tuple[str, str], feed: ChangeFeed) -> None:
        pod = self._current(key)
        if pod is None:
            return
        if (pod.get("spec") or {}).get("schedulingGates"):
            self._mark_gated(pod)
            return
        decision = self._decide(pod)
        if decision.node is not None and self.delay > 0:
            await asyncio.sleep(self.delay)
            for change in feed.drain():
                self._on_change(change)
            self._active.pop(key, None)
            pod = self._current(key)
            if pod is None:
                return
            decision = self._decide(pod)
        try:
            if decision.node is not None:
                self._bind(pod, decision.node)
            else:
                self._fail(pod, decision.message)
        except errors.ApiError as e:  # the pod went away under us (reset, namespace deletion)
            log.debug("scheduler: %s/%s: %s", key[0], key[1], e.message)
        # Let watchers and other controllers run between pods.
        await asyncio.sleep(0)

    def _bind(self, pod: dict, node: str) -> None:
        self._claim_selected_node(pod, node)
        bound = with_condition(
            {**pod, "spec": {**pod["spec"], "nodeName": node}},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": _now()},
        )
        stored = self.cluster.write("pods", bound)
        md = pod["metadata"]
        self.cluster.record_event(
            stored,
            "Normal",
            "Scheduled",
            f"Successfully assigned {md['namespace']}/{md['name']} to {node}",
            component=SCHEDULER_NAME,
            new_style=True,
            action="Binding",
        )

    def _claim_selected_node(self, pod: dict, node: str) -> None:
        # VolumeBinding PreBind: unbound claims learn the chosen node, which is what lets a
        # WaitForFirstConsumer claim be provisioned.
        store = self.cluster.store
        ns = pod["metadata"]["namespace"]
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            ref = vol.get("persistentVolumeClaim")
            if not ref:
                continue
            claim = store.find("persistentvolumeclaims", ns, ref.get("claimName", ""))
            if claim is None or (claim.get("spec") or {}).get("volumeName"):
                continue
            annotations = claim["metadata"].get("annotations") or {}
            if annotations.get(SELECTED_NODE) == node:
                continue
            md = {**claim["metadata"], "annotations": {**annotations, SELECTED_NODE: node}}
            self.cluster.write("persistentvolumeclaims", {**claim, "metadata": md})

    def _fail(self, pod: dict, message: str) -> None:
        key = _key(pod)
        self._unschedulable[key] = (pod["metadata"]["uid"], time.monotonic())
        current = pod_condition(pod, "PodScheduled")
        if current and current.get("status") == "False" and current.get("message") == message:
            return
        failed = with_condition(
            pod,
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": _now(),
                "reason": "Unschedulable",
                "message": message,
            },
        )
        stored = self.cluster.write("pods", failed)
        self.cluster.record_event(
            stored, "Warning", "FailedScheduling", message, component=SCHEDULER_NAME, new_style=True, action="Scheduling"
        )

    def _mark_gated(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self._gated:
            return
        self._gated.add(uid)
        current = pod_condition(pod, "PodScheduled")
        if current and current.get("reason") == "SchedulingGated":
            return
        gated = with_condition(
            pod,
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": _now(),
                "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates",
            },
        )
        self.cluster.write("pods", gated)
