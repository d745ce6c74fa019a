"""The GPU ledger: who may have which GPU right now (pure: no I/O, no traitlets, no clock).

:class:`GpuLedger` answers one question, fast and without a Kubernetes request: may this user
start a server with ``count`` GPUs of this kind now? It keeps

- **capacity**, from three sources, the tightest of which wins:

  - the namespace's ResourceQuotas (``requests.<gpu>`` in ``status.hard`` and ``status.used``),
  - admin-declared pool sizes per GPU type (:attr:`Policy.pools`, for clusters without quotas),
  - optionally the allocatable GPUs of schedulable, Ready nodes (:attr:`Policy.capacity_from_nodes`);

- **usage** by this hub: its pods (what KubeSpawner's pod reflector sees, terminal pods left
  out) plus reservations for spawns in flight, keyed by pod (``namespace/name``, the
  reflector's key) so a reservation and the pod it becomes are never counted twice;
- **caps** per user and per group (:class:`Policy`).

The spawner glue (:mod:`jhplatform.spawner.gpu`) feeds it from watches and calls
:meth:`GpuLedger.decide` then :meth:`GpuLedger.reserve` with no ``await`` in between, which is
what makes a reservation atomic on the hub's single event loop.

Every aggregate is kept incrementally, so a decision costs O(quotas + groups of the user),
independent of the number of running pods.

How quota usage is counted
--------------------------
A quota's ``status.used`` counts every pod in the namespace: this hub's and other workloads'.
The ledger takes ``others = max(0, used - this hub's pods)`` (pods the watch shows, plus pods the
apiserver has accepted that the watch does not show yet, see :meth:`GpuLedger.pod_created`) and
adds this hub's pods and its reservations that have no pod yet. The pod watch and the quota
watch can still disagree for a moment (a quota not yet updated for a new pod makes the ledger
count one GPU too few, only when other workloads use the quota too; one that has not yet seen a
stop, one too many). The apiserver's quota admission stays the final word, and the spawner turns
its "exceeded quota" refusal into a clear message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

#: Pod annotations the spawner writes so usage can be rebuilt from pods after a hub restart.
GPU_ANNOTATION = "jhplatform.io/gpu"  # "nvidia.com/gpu=1"
GPU_TYPE_ANNOTATION = "jhplatform.io/gpu-type"  # "A100"
GPU_GROUPS_ANNOTATION = "jhplatform.io/gpu-groups"  # JSON list of the user's groups at spawn
#: KubeSpawner's own annotation with the raw (unescaped) user name.
USER_ANNOTATION = "hub.jupyter.org/username"

#: Why a spawn was refused; the ``reason`` label of ``jhplatform_gpu_refusals_total``.
REASONS = {
    "user_cap": "the user's GPU limit",
    "group_cap": "a group's GPU limit",
    "quota": "the namespace ResourceQuota",
    "pool": "the declared GPU pool (PlatformSpawner.gpu_pools)",
    "nodes": "the GPUs allocatable on schedulable nodes",
    "quota_exceeded": "the apiserver refused the pod: exceeded quota",
    "unschedulable": "the scheduler found no node with a free GPU",
    "untolerated_taint": "the GPU nodes carry a taint the pod does not tolerate (configuration)",
    "node_affinity": "the pod's node selector or affinity matches no node that could take it (configuration)",
    "unschedulable_other": "the scheduler could not place the pod for another reason",
}

# Device-plugin resource names of the common GPU vendors; profiles can name others.
_GPU_RESOURCE = re.compile(r"^(nvidia\.com/(gpu|mig-[0-9a-z.\-]+)|amd\.com/gpu|gpu\.intel\.com/[0-9a-z.\-]+)$")
_TERMINAL = ("Succeeded", "Failed")


def is_gpu_resource(name: str, known: Iterable[str] = ()) -> bool:
    """Whether a container resource name is a GPU: a vendor's device-plugin name or one of ``known``."""
    return name in known or bool(_GPU_RESOURCE.match(name))


def count_of(value) -> int:
    """An extended-resource quantity as a whole number (they cannot be fractional); 0 if invalid."""
    from .quantity import Quantity

    # The usual spellings ("1", 2) without parsing a quantity: the form resolves every profile
    # on each render.
    if isinstance(value, int) and not isinstance(value, bool):
        return max(0, value)
    if isinstance(value, str) and value.isdigit() and value.isascii():
        return int(value)
    try:
        return max(0, Quantity.parse(value).round_up(0).int_value())
    except (ValueError, TypeError, ArithmeticError):
        return 0


# -- data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """GPUs held by one pod or reservation."""

    user: str
    namespace: str
    counts: tuple[tuple[str, int], ...]  # ((resource, count), ...), counts > 0
    type: str = ""
    groups: frozenset[str] = frozenset()

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)

    @classmethod
    def of(cls, user: str, namespace: str, resource: str, count: int, type: str = "", groups: Iterable[str] = ()):
        return cls(user, namespace, ((resource, int(count)),) if count > 0 else (), type, frozenset(groups))


@dataclass(frozen=True)
class Reservation:
    usage: Usage
    #: Clock time after which an unclaimed reservation lapses (``None``: held until released).
    expires: float | None = None
    #: The apiserver accepted the pod (so quotas count it) but the pod watch has not shown it yet.
    created: bool = False


@dataclass(frozen=True)
class Policy:
    """The admin's GPU caps and pools (``PlatformSpawner.gpu_*`` settings)."""

    #: GPU type (or resource name) -> GPUs this hub may use, for clusters without quotas.
    pools: Mapping[str, int] = field(default_factory=dict)
    #: GPUs one user may hold across all their servers; 0 means no limit.
    user_limit: int = 0
    #: Group -> per-user limit for its members (the largest of the user's groups applies).
    user_limit_by_group: Mapping[str, int] = field(default_factory=dict)
    #: Group -> GPUs all members together may hold.
    group_limits: Mapping[str, int] = field(default_factory=dict)
    #: Also cap by the GPUs allocatable on schedulable, Ready nodes.
    capacity_from_nodes: bool = False

    def user_cap(self, groups: Iterable[str]) -> int | None:
        by_group = [self.user_limit_by_group[g] for g in groups if g in self.user_limit_by_group]
        if by_group:
            return max(by_group)
        return self.user_limit or None


@dataclass(frozen=True)
class Capacity:
    """One capacity constraint for a kind of GPU: ``free`` of ``total`` by ``source``."""

    source: str  # "quota" | "pool" | "nodes"
    name: str  # quota name, pool key, or "nodes"
    free: int
    total: int


@dataclass(frozen=True)
class Decision:
    """The answer to "may this user have ``count`` of these GPUs now?"."""

    allowed: bool
    reason: str | None  # one of REASONS, None when allowed
    message: str  # for the user; empty when allowed
    free: int | None  # by the tightest capacity source; None when no source is known
    total: int | None
    user_used: int
    user_cap: int | None
    count: int = 0
    resource: str = ""
    type: str = ""
    source: str | None = None  # which capacity decided: "quota <name>", "pool <key>", "nodes"
    group: str | None = None  # the group whose cap refused
    group_used: int | None = None
    group_cap: int | None = None


# -- parsing API objects ----------------------------------------------------------------------


def pod_usage(pod: Mapping, known_resources: Iterable[str] = ()) -> Usage | None:
    """GPUs a pod holds, from its spec (the truth) and the spawner's annotations (who, what type).

    ``None`` for a pod without GPUs or in a terminal phase (the scheduler and the quota no
    longer charge it). Requests default to limits, as the apiserver does for extended resources.
    Init containers run one at a time before the others, so the pod needs the larger of their
    maximum and the containers' sum.
    """
    if ((pod.get("status") or {}).get("phase")) in _TERMINAL:
        return None
    known = tuple(known_resources)
    spec = pod.get("spec") or {}

    def gpus(container: Mapping) -> dict[str, int]:
        res = container.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        out = {}
        for name in set(limits) | set(requests):
            if is_gpu_resource(name, known):
                n = count_of(requests.get(name, limits.get(name)))
                if n:
                    out[name] = n
        return out

    total: dict[str, int] = {}
    for c in spec.get("containers") or []:
        for r, n in gpus(c).items():
            total[r] = total.get(r, 0) + n
    for c in spec.get("initContainers") or []:
        for r, n in gpus(c).items():
            total[r] = max(total.get(r, 0), n)
    if not total:
        return None
    md = pod.get("metadata") or {}
    ann = md.get("annotations") or {}
    try:
        groups = frozenset(str(g) for g in json.loads(ann.get(GPU_GROUPS_ANNOTATION) or "[]"))
    except (ValueError, TypeError):
        groups = frozenset()
    return Usage(
        user=ann.get(USER_ANNOTATION, ""),
        namespace=md.get("namespace", ""),
        counts=tuple(sorted(total.items())),
        type=ann.get(GPU_TYPE_ANNOTATION, ""),
        groups=groups,
    )


def gpu_annotations(resource: str, count: int, type: str, groups: Iterable[str]) -> dict[str, str]:
    """The annotations that let :func:`pod_usage` attribute a pod after a hub restart."""
    return {
        GPU_ANNOTATION: f"{resource}={int(count)}",
        GPU_TYPE_ANNOTATION: type,
        GPU_GROUPS_ANNOTATION: json.dumps(sorted(groups)),
    }


@dataclass(frozen=True)
class _Quota:
    name: str
    hard: Mapping[str, int]  # resource -> count
    used: Mapping[str, int]


def unschedulable_for_gpu(pod: Mapping | None, resource: str) -> str | None:
    """The scheduler's message if ``pod`` cannot be placed because no node has a free ``resource``.

    Reads the ``PodScheduled`` condition (the scheduler writes there the same text as in its
    ``FailedScheduling`` event). ``None`` while the pod is bound, pending for another reason, or
    unknown.
    """
    if not pod or (pod.get("spec") or {}).get("nodeName"):
        return None
    conditions = (pod.get("status") or {}).get("conditions") or []
    cond = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
    if not cond or cond.get("status") != "False" or cond.get("reason") != "Unschedulable":
        return None
    message = cond.get("message") or ""
    # The name ends at a space, a comma or the sentence's period: "nvidia.com/gpu" must not
    # match "nvidia.com/gpu.shared" or "nvidia.com/gpu-extra".
    if re.search(rf"Insufficient {re.escape(resource)}(?=[\s,]|\.(?:\s|$)|$)", message):
        return message
    return None


def _quota_state(quota: Mapping) -> _Quota:
    # Extended resources can only be quota'd as "requests.<name>". status (not spec) is what the
    # quota controller has processed and what admission uses.
    status = quota.get("status") or {}

    def gpu_keys(rl: Mapping) -> dict[str, int]:
        return {k[len("requests."):]: count_of(v) for k, v in (rl or {}).items() if k.startswith("requests.") and "/" in k}

    return _Quota((quota.get("metadata") or {}).get("name", ""), gpu_keys(status.get("hard")), gpu_keys(status.get("used")))


@dataclass(frozen=True)
class _Node:
    labels: Mapping[str, str]
    allocatable: Mapping[str, int]
    schedulable: bool


def _node_state(node: Mapping) -> _Node:
    status = node.get("status") or {}
    ready = [c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    schedulable = not (node.get("spec") or {}).get("unschedulable") and (not ready or ready[0] == "True")
    alloc = {k: count_of(v) for k, v in (status.get("allocatable") or {}).items() if "/" in k}
    return _Node(dict((node.get("metadata") or {}).get("labels") or {}), alloc, schedulable)


Selector = tuple[tuple[str, tuple[str, ...]], ...]  # ((label, (value, ...)), ...)


def _matches(labels: Mapping[str, str], selector: Selector) -> bool:
    return all(labels.get(k) in values for k, values in selector)


# -- messages --------------------------------------------------------------------------------


def _gpus(n: int, type: str) -> str:
    kind = f"{type} GPU" if type else "GPU"
    return f"{n} {kind}{'' if n == 1 else 's'}"


def _yours(used: int, cap: int | None) -> str:
    return f"yours: {used} of {cap}" if cap is not None else f"yours: {used}"


NO_ALTERNATIVE = "There is no profile without a GPU to pick instead."


def render_message(d: Decision, alternative: str | None = None) -> str:
    """The user-facing message for a refusal (empty when allowed).

    ``alternative`` names a profile without a GPU that is not the refused one ("CPU",
    :func:`jhplatform.policy.profiles.suggest_alternative`). Without one the message names no
    profile and says there is none to pick.
    """
    if d.allowed:
        return ""
    pick = f"the {alternative} profile" if alternative else None
    kind = f"{d.type} GPU" if d.type else "GPU"

    def done(text: str) -> str:
        return text if pick else f"{text} {NO_ALTERNATIVE}"

    if d.reason == "user_cap":
        cap = d.user_cap or 0
        if d.user_used >= cap:
            return done(
                f"You already use {d.user_used} of your {_gpus(cap, '')} (the per-user limit). "
                + (f"Stop a server that uses a GPU, or pick {pick}." if pick else "Stop a server that uses a GPU.")
            )
        return done(
            f"This choice needs {_gpus(d.count, '')}, but you may use only {cap - d.user_used} more "
            f"(you use {d.user_used} of {cap}). "
            + (f"Pick fewer GPUs, stop a server that uses a GPU, or pick {pick}." if pick
               else "Pick fewer GPUs or stop a server that uses a GPU.")
        )
    if d.reason == "group_cap":
        used, cap = d.group_used or 0, d.group_cap or 0
        if used >= cap:
            return done(
                f"Your group {d.group} already uses {used} of its {_gpus(cap, '')} ({_yours(d.user_used, d.user_cap)}). "
                + (f"Pick {pick}, or try again when a member of {d.group} stops a GPU server." if pick
                   else f"Try again when a member of {d.group} stops a GPU server.")
            )
        return done(
            f"This choice needs {_gpus(d.count, '')}, but your group {d.group} has only {cap - used} of its {cap} left. "
            + (f"Pick fewer GPUs or {pick}, or try again later." if pick else "Pick fewer GPUs or try again later.")
        )
    later = f"Pick {pick} or try again later." if pick else "Try again later."
    if d.reason in ("quota", "pool", "nodes"):
        free, total = max(d.free or 0, 0), d.total or 0
        if total <= 0:
            return done(f"No {kind}s are available on this hub right now. "
                        + (f"Pick {pick} or ask your hub admin." if pick else "Ask your hub admin."))
        if free <= 0:
            head = f"The only {kind} is in use" if total == 1 else f"All {_gpus(total, d.type)} are in use"
            return done(f"{head} ({_yours(d.user_used, d.user_cap)}). {later}")
        return done(
            f"Only {free} of {_gpus(total, d.type)} {'is' if free == 1 else 'are'} free and this choice needs {d.count}. "
            + (f"Pick fewer GPUs or {pick}, or try again later." if pick else "Pick fewer GPUs or try again later.")
        )
    if d.reason == "quota_exceeded":
        return done(
            f"Another workload took the last free {kind} in this namespace's quota just before your server "
            f"could start, so nothing was started. {later}"
        )
    if d.reason == "unschedulable":
        return done(f"No node has a free {kind} right now, so your server was stopped instead of waiting. {later}")
    return done(f"Your server could not get a {kind}. {later}")


def availability_text(d: Decision) -> str:
    """What the spawn form shows for one kind of GPU: "3 of 8 A100 free · you use 0 of 1"."""
    parts = []
    if d.total is not None:
        kind = f"{d.type} " if d.type else "GPUs "
        parts.append(f"{max(d.free or 0, 0)} of {d.total} {kind}free".replace("  ", " "))
    you = f"you use {d.user_used}" + (f" of {d.user_cap}" if d.user_cap is not None else "")
    if d.total is None:
        you += " GPU" if (d.user_cap or d.user_used) == 1 else " GPUs"
    parts.append(you)
    return " · ".join(parts)


# -- the ledger ------------------------------------------------------------------------------


class GpuLedger:
    """GPU capacity, usage and caps, kept current incrementally; see the module docstring.

    Parameters
    ----------
    policy:
        Caps and pools.
    known_resources:
        GPU resource names besides the vendors' usual ones (from the profiles).
    namespace:
        The namespace decisions are about when a call does not name one.
    """

    def __init__(self, policy: Policy | None = None, known_resources: Iterable[str] = (), namespace: str = ""):
        self.policy = policy or Policy()
        self.known_resources: set[str] = set(known_resources)
        self.namespace = namespace
        self._pods: dict[str, Usage] = {}
        self._pod_versions: dict[str, str] = {}  # key -> resourceVersion last parsed (relists skip these)
        self._reservations: dict[str, Reservation] = {}
        self._expiring: set[str] = set()  # keys of reservations with an expiry
        self._quotas: dict[str, dict[str, _Quota]] = {}  # namespace -> name -> quota
        self._nodes: dict[str, _Node] = {}
        self._node_capacity: dict[tuple[str, Selector], int] = {}
        #: (resource, type) -> node selector, for the kinds the profiles offer (metrics, form).
        self.kinds: dict[tuple[str, str], Selector] = {}
        # Aggregates of the effective usage of each key (its reservation, else its pod).
        self._by_user: dict[str, int] = {}
        self._by_group: dict[str, int] = {}
        self._by_kind: dict[tuple[str, str], int] = {}  # (resource, type)
        self._by_resource: dict[str, int] = {}
        # For quotas: GPUs of this hub's pods, of reservations that have no pod yet, and of those
        # whose pod the apiserver has accepted (and so quotas already count) but not yet shown.
        self._pods_in_ns: dict[tuple[str, str], int] = {}  # (namespace, resource)
        self._pending_in_ns: dict[tuple[str, str], int] = {}
        self._created_in_ns: dict[tuple[str, str], int] = {}

    # -- keeping aggregates --

    @staticmethod
    def _bump(counter: dict, key, n: int) -> None:
        value = counter.get(key, 0) + n
        if value:
            counter[key] = value
        else:
            counter.pop(key, None)

    def _contributions(self, key: str):
        """What ``key`` adds to each aggregate, as (counter, key, n) triples."""
        out = []
        pod = self._pods.get(key)
        res = self._reservations.get(key)
        effective = res.usage if res is not None else pod
        if effective is not None and effective.counts:
            total = effective.total
            out.append((self._by_user, effective.user, total))
            for g in effective.groups:
                out.append((self._by_group, g, total))
            for r, n in effective.counts:
                out.append((self._by_kind, (r, effective.type), n))
                out.append((self._by_resource, r, n))
        if pod is not None:
            for r, n in pod.counts:
                out.append((self._pods_in_ns, (pod.namespace, r), n))
        elif res is not None:
            for r, n in res.usage.counts:
                out.append((self._pending_in_ns, (res.usage.namespace, r), n))
                if res.created:
                    out.append((self._created_in_ns, (res.usage.namespace, r), n))
        return out

    def _apply(self, key: str, sign: int) -> None:
        for counter, k, n in self._contributions(key):
            self._bump(counter, k, sign * n)

    # -- pods (from the pod reflector) --

    def pod_updated(self, key: str, pod: Mapping) -> None:
        """A pod was added or changed (``key`` is ``namespace/name``)."""
        version = (pod.get("metadata") or {}).get("resourceVersion")
        if version and self._pod_versions.get(key) == version:
            return
        usage = pod_usage(pod, self.known_resources)
        if version:
            self._pod_versions[key] = version
        if usage == self._pods.get(key):
            return
        self._apply(key, -1)
        if usage is None:
            self._pods.pop(key, None)
        else:
            self._pods[key] = usage
        self._apply(key, +1)

    def pod_removed(self, key: str) -> None:
        self._pod_versions.pop(key, None)
        if key not in self._pods:
            return
        self._apply(key, -1)
        del self._pods[key]
        self._apply(key, +1)

    def rebuild(self, pods: Mapping[str, Mapping] | Iterable[Mapping], namespace: str | None = None) -> None:
        """Replace the pods of ``namespace`` (all namespaces when ``None``) with ``pods``.

        ``pods`` is the reflector's ``{"namespace/name": pod}`` dict or an iterable of pods. This
        is how usage is rebuilt after a hub restart or a relist; reservations are kept.
        """
        items = pods.items() if isinstance(pods, Mapping) else (
            (f"{(p.get('metadata') or {}).get('namespace', '')}/{(p.get('metadata') or {}).get('name', '')}", p) for p in pods
        )
        seen = set()
        for key, pod in items:
            seen.add(key)
            self.pod_updated(key, pod)  # unchanged pods (same resourceVersion) cost a lookup
        stale = [k for k, u in self._pods.items() if (namespace is None or u.namespace == namespace) and k not in seen]
        for key in stale:
            self.pod_removed(key)
        for key in [k for k in self._pod_versions if k not in seen and k not in self._pods
                    and (namespace is None or k.split("/", 1)[0] == namespace)]:
            del self._pod_versions[key]

    # -- reservations --

    def reserve(self, key: str, usage: Usage, expires: float | None = None) -> None:
        """Hold ``usage`` for the pod ``key`` (replacing any reservation it had)."""
        self._apply(key, -1)
        self._reservations[key] = Reservation(usage, expires)
        if expires is None:
            self._expiring.discard(key)
        else:
            self._expiring.add(key)
        self._apply(key, +1)

    def pod_created(self, key: str) -> None:
        """The apiserver accepted the pod of ``key``'s reservation (quotas now count it).

        Until the pod watch shows the pod, a quota's ``status.used`` may already include it; knowing
        that keeps the ledger from taking it for another workload's GPU and counting it twice.
        """
        res = self._reservations.get(key)
        if res is None or res.created:
            return
        self._apply(key, -1)
        self._reservations[key] = replace(res, created=True)
        self._apply(key, +1)

    def release(self, key: str) -> bool:
        """Drop the reservation of ``key``; its pod, if any, now counts instead. True if there was one."""
        if key not in self._reservations:
            return False
        self._apply(key, -1)
        del self._reservations[key]
        self._expiring.discard(key)
        self._apply(key, +1)
        return True

    def reservation(self, key: str) -> Reservation | None:
        return self._reservations.get(key)

    def expire(self, now: float | None) -> None:
        """Drop reservations whose expiry has passed (form reservations never claimed by a spawn)."""
        if now is None or not self._expiring:
            return
        for key in [k for k in self._expiring if (self._reservations[k].expires or 0) <= now]:
            self.release(key)

    # -- capacity sources --

    def set_quotas(self, namespace: str, quotas: Iterable[Mapping]) -> None:
        """The ResourceQuotas of ``namespace`` now (from the quota reflector)."""
        states = {q.name: q for q in (_quota_state(x) for x in quotas) if q.hard}
        if states:
            self._quotas[namespace] = states
        else:
            self._quotas.pop(namespace, None)

    def set_nodes(self, nodes: Iterable[Mapping]) -> None:
        """The cluster's nodes now (only used with ``Policy.capacity_from_nodes``)."""
        self._nodes = {(n.get("metadata") or {}).get("name", ""): _node_state(n) for n in nodes}
        self._node_capacity.clear()

    def add_kind(self, resource: str, type: str = "", selector: Selector = ()) -> None:
        """Register a kind of GPU the profiles offer (for metrics and node capacity)."""
        if resource not in self.known_resources and not is_gpu_resource(resource):
            self._pod_versions.clear()  # pods parsed before did not know it was a GPU: reparse
        self.known_resources.add(resource)
        self.kinds[(resource, type)] = tuple(selector)

    def _nodes_allocatable(self, resource: str, selector: Selector) -> int:
        key = (resource, selector)
        if key not in self._node_capacity:
            self._node_capacity[key] = sum(
                n.allocatable.get(resource, 0) for n in self._nodes.values() if n.schedulable and _matches(n.labels, selector)
            )
        return self._node_capacity[key]

    def capacities(self, resource: str, type: str = "", namespace: str | None = None, selector: Selector | None = None,
                   key: str | None = None) -> list[Capacity]:
        """Every capacity constraint on this kind of GPU, not counting ``key``'s own usage."""
        ns = self.namespace if namespace is None else namespace
        own = {}
        if key is not None:
            for counter, k, n in self._contributions(key):
                own[(id(counter), k)] = n

        def get(counter: dict, k) -> int:
            return counter.get(k, 0) - own.get((id(counter), k), 0)

        out = []
        for q in self._quotas.get(ns, {}).values():
            if resource not in q.hard:
                continue
            # What the quota counts beyond this hub's pods (seen, or accepted and not yet seen)
            # is other workloads'. Key's own pod, if any, is in both, so nothing to exclude here.
            hub_pods = self._pods_in_ns.get((ns, resource), 0) + self._created_in_ns.get((ns, resource), 0)
            others = max(0, q.used.get(resource, 0) - hub_pods)
            used = others + get(self._pods_in_ns, (ns, resource)) + get(self._pending_in_ns, (ns, resource))
            out.append(Capacity("quota", q.name, q.hard[resource] - used, q.hard[resource]))
        pools = self.policy.pools
        if type and type in pools:
            out.append(Capacity("pool", type, pools[type] - get(self._by_kind, (resource, type)), pools[type]))
        elif resource in pools:
            out.append(Capacity("pool", resource, pools[resource] - get(self._by_resource, resource), pools[resource]))
        if self.policy.capacity_from_nodes:
            sel = tuple(selector) if selector is not None else self.kinds.get((resource, type), ())
            total = self._nodes_allocatable(resource, sel)
            used = get(self._by_kind, (resource, type)) if sel else get(self._by_resource, resource)
            out.append(Capacity("nodes", "nodes", total - used, total))
        return out

    # -- decisions --

    def user_used(self, user: str, key: str | None = None) -> int:
        own = self._reservations[key].usage if key in self._reservations else self._pods.get(key) if key else None
        return self._by_user.get(user, 0) - (own.total if own is not None and own.user == user else 0)

    def group_used(self, group: str) -> int:
        return self._by_group.get(group, 0)

    def decide(self, user: str, groups: Iterable[str], resource: str, type: str = "", count: int = 1, *,
               namespace: str | None = None, selector: Selector | None = None, key: str | None = None,
               now: float | None = None, alternative: str | None = None) -> Decision:
        """May ``user`` (in ``groups``) have ``count`` GPUs of ``resource``/``type`` now?

        ``key`` is the pod the GPUs are for: its own reservation or pod is not counted against
        it (a form reservation being claimed by its spawn). ``now`` lapses expired reservations
        first. Caps are checked before capacity: a user at their limit cannot start even when
        GPUs free up, so that is what they need to hear.
        """
        self.expire(now)
        groups = frozenset(groups)
        own = None
        if key is not None:
            own = self._reservations[key].usage if key in self._reservations else self._pods.get(key)
        own_total = own.total if own is not None else 0
        used = self._by_user.get(user, 0) - (own_total if own is not None and own.user == user else 0)
        cap = self.policy.user_cap(groups)
        base = dict(user_used=used, user_cap=cap, count=count, resource=resource, type=type)

        def refuse(reason: str, free=None, total=None, **extra) -> Decision:
            d = Decision(False, reason, "", free, total, **base, **extra)
            return replace(d, message=render_message(d, alternative))

        caps = self.capacities(resource, type, namespace, selector, key) if count > 0 else []
        tight = min(caps, key=lambda c: (c.free, c.total), default=None)
        free, total = (tight.free, tight.total) if tight else (None, None)
        if count <= 0:
            return Decision(True, None, "", free, total, **base)
        if cap is not None and used + count > cap:
            return refuse("user_cap", free, total)
        for g in sorted(groups):
            limit = self.policy.group_limits.get(g)
            if limit is None:
                continue
            g_used = self._by_group.get(g, 0) - (own_total if own is not None and g in own.groups else 0)
            if g_used + count > limit:
                return refuse("group_cap", free, total, group=g, group_used=g_used, group_cap=limit)
        if tight is not None and tight.free < count:
            return refuse(tight.source, free, total, source=f"{tight.source} {tight.name}")
        return Decision(True, None, "", free, total, **base, source=f"{tight.source} {tight.name}" if tight else None)

    def view(self, user: str, groups: Iterable[str], namespace: str | None = None, key: str | None = None,
             now: float | None = None, alternative: str | None = None) -> "LedgerView":
        """The ledger as one user sees it, for rendering the spawn form."""
        self.expire(now)
        return LedgerView(self, user, frozenset(groups), namespace, key, alternative)

    # -- reporting --

    def kind_stats(self, namespace: str | None = None) -> list[tuple[str, str, int, int | None]]:
        """(resource, type, GPUs this hub uses, GPUs free or None) for every known kind."""
        kinds = set(self.kinds) | set(self._by_kind)
        out = []
        for resource, type in sorted(kinds):
            caps = self.capacities(resource, type, namespace, self.kinds.get((resource, type)))
            free = min((c.free for c in caps), default=None)
            out.append((resource, type, self._by_kind.get((resource, type), 0), None if free is None else max(free, 0)))
        return out

    @property
    def pods(self) -> Mapping[str, Usage]:
        return self._pods

    @property
    def reservations(self) -> Mapping[str, Reservation]:
        return self._reservations


@dataclass(frozen=True)
class LedgerView:
    """A user's view of the ledger: what the spawn form needs, with the spawn's own policy."""

    ledger: GpuLedger
    user: str
    groups: frozenset[str]
    namespace: str | None = None
    key: str | None = None
    alternative: str | None = None

    @property
    def user_used(self) -> int:
        return self.ledger.user_used(self.user, self.key)

    @property
    def user_cap(self) -> int | None:
        return self.ledger.policy.user_cap(self.groups)

    def decide(self, resource: str, type: str = "", count: int = 1, selector: Selector | None = None) -> Decision:
        return self.ledger.decide(self.user, self.groups, resource, type, count, namespace=self.namespace,
                                  selector=selector, key=self.key, alternative=self.alternative)


__all__ = [
    "unschedulable_for_gpu",
    "Capacity",
    "Decision",
    "GPU_ANNOTATION",
    "GPU_GROUPS_ANNOTATION",
    "GPU_TYPE_ANNOTATION",
    "GpuLedger",
    "LedgerView",
    "Policy",
    "REASONS",
    "Reservation",
    "Usage",
    "availability_text",
    "count_of",
    "gpu_annotations",
    "is_gpu_resource",
    "pod_usage",
    "render_message",
]
