"""ResourceQuota evaluation: usage of objects, admission checks and the quota controller.

Pure functions over plain dicts (the JSON shapes of the API objects). The behaviour follows
``pkg/quota/v1/evaluator/core`` (pod, PVC, service evaluators), ``pkg/quota/v1/generic``
(object counts, usage stats) and ``apiserver/pkg/admission/plugin/resourcequota/controller.go``
(``CheckRequest``). See kube-emulator-spec.md sections 4.2-4.4.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from jhplatform.devcluster import errors
from jhplatform.policy.quantity import Quantity

ResourceList = dict[str, Quantity]

# Evaluators for these resources exist in every apiserver; object-count evaluators for other
# resources are created on demand from the ``count/<resource>`` keys a quota names.
_LEGACY_COUNT_ALIASES = {
    "configmaps": "configmaps",
    "resourcequotas": "resourcequotas",
    "replicationcontrollers": "replicationcontrollers",
    "secrets": "secrets",
}
_POD_RESOURCES = frozenset({
    "count/pods", "pods",
    "cpu", "memory", "ephemeral-storage",
    "requests.cpu", "requests.memory", "requests.ephemeral-storage",
    "limits.cpu", "limits.memory", "limits.ephemeral-storage",
})
_POD_PREFIXES = ("hugepages-", "requests.hugepages-")
_PVC_RESOURCES = ("persistentvolumeclaims", "requests.storage")
_STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
_SERVICE_RESOURCES = frozenset({
    "count/services", "services", "services.nodeports", "services.loadbalancers",
})
# Quotas on any of these force every container to state the value (a historical coupling
# of quota and validation that Kubernetes keeps for backward compatibility).
_CONSTRAINED = frozenset({
    "cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory",
})
_QUALIFIED_NAME = re.compile(
    r"(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)


# --- ResourceList helpers (pkg/quota/v1/resources.go) --------------------------------------


def resource_list(raw: dict[str, Any] | None) -> ResourceList:
    """Parse a ``{name: "quantity"}`` mapping into Quantities."""
    return {k: Quantity.parse(v) for k, v in (raw or {}).items()}


def _add(a: ResourceList, b: ResourceList) -> ResourceList:
    # quota.Add: the left side is the receiver, so it decides the printing format.
    out = {k: (v + b[k] if k in b else v) for k, v in a.items()}
    out.update({k: v for k, v in b.items() if k not in out})
    return out


def _subtract_non_negative(a: ResourceList, b: ResourceList) -> ResourceList:
    out: ResourceList = {}
    for k, v in a.items():
        d = v - b[k] if k in b else v
        out[k] = d if d > 0 else Quantity(0)
    out.update({k: Quantity(0) for k in b if k not in out})
    return out


def _mask(a: ResourceList, names: Iterable[str]) -> ResourceList:
    keep = set(names)
    return {k: v for k, v in a.items() if k in keep}


def _pretty(rl: ResourceList) -> str:
    # prettyPrint: keys sorted bytewise, "k=v" joined by "," with no space.
    return ",".join(f"{k}={rl[k]}" for k in sorted(rl))


def _serialize(rl: ResourceList) -> dict[str, str]:
    return {k: str(rl[k]) for k in sorted(rl)}


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_extended(name: str) -> bool:
    # helper.IsExtendedResourceName: not native, not already "requests.", and the quota key
    # "requests.<name>" must be a qualified name.
    if _is_native(name) or name.startswith("requests."):
        return False
    return _QUALIFIED_NAME.fullmatch(f"requests.{name}") is not None


def _is_extended_quota_key(name: str) -> bool:
    # Extended resources can only be quota'd as "requests.<name>": limits.* never matches.
    return not _is_native(name) and name.startswith("requests.")


# --- Pods -----------------------------------------------------------------------------------


def _containers(pod: dict, key: str) -> list[dict]:
    return list((pod.get("spec") or {}).get(key) or [])


def _defaulted_resources(container: dict) -> tuple[ResourceList, ResourceList]:
    # SetDefaults_Pod: a resource with only a limit gets request = limit (at decode time).
    res = container.get("resources") or {}
    limits = resource_list(res.get("limits"))
    requests = resource_list(res.get("requests"))
    for k, v in limits.items():
        requests.setdefault(k, v)
    return requests, limits


def default_pod_requests(pod: dict) -> dict:
    """Return a deep copy of ``pod`` with decode-time defaulting: missing requests = limits."""
    out = copy.deepcopy(pod)
    for key in ("containers", "initContainers"):
        for c in (out.get("spec") or {}).get(key) or []:
            res = c.get("resources") or {}
            limits = res.get("limits")
            if not limits:
                continue
            reqs = dict(res.get("requests") or {})
            for k, v in limits.items():
                reqs.setdefault(k, v)
            c.setdefault("resources", {})["requests"] = reqs
    return out


def _add_into(acc: ResourceList, rl: ResourceList) -> None:
    for k, v in rl.items():
        acc[k] = acc[k] + v if k in acc else v


def _max_into(acc: ResourceList, rl: ResourceList) -> None:
    for k, v in rl.items():
        if k not in acc or v > acc[k]:
            acc[k] = v


def _aggregate(pod: dict, which: int) -> ResourceList:
    # resourcehelper.AggregateContainerRequests/Limits.
    total: ResourceList = {}
    for c in _containers(pod, "containers"):
        _add_into(total, _defaulted_resources(c)[which])
    sidecars: ResourceList = {}
    init_max: ResourceList = {}
    for c in _containers(pod, "initContainers"):
        own = _defaulted_resources(c)[which]
        if c.get("restartPolicy") == "Always":
            # A sidecar keeps running next to the app containers, so it adds to the total,
            # and it is also running while every later init container runs.
            _add_into(total, own)
            _add_into(sidecars, own)
            during = dict(sidecars)
        else:
            during = dict(own)
            _add_into(during, sidecars)
        _max_into(init_max, during)
    # Init containers run one at a time before the app containers: the pod needs the max.
    _max_into(total, init_max)
    return total


def pod_requests(pod: dict, *, overhead: bool = True) -> ResourceList:
    """Effective pod requests (``resourcehelper.PodRequests``), including ``spec.overhead``."""
    reqs = _aggregate(pod, 0)
    if overhead:
        _add_into(reqs, resource_list((pod.get("spec") or {}).get("overhead")))
    return reqs


def pod_limits(pod: dict, *, overhead: bool = True) -> ResourceList:
    """Effective pod limits (``resourcehelper.PodLimits``).

    Overhead is added only to resources that already have a limit: an unlimited resource
    stays unlimited.
    """
    limits = _aggregate(pod, 1)
    if overhead:
        for k, v in resource_list((pod.get("spec") or {}).get("overhead")).items():
            if k in limits:
                limits[k] = limits[k] + v
    return limits


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def charges_compute(pod: dict, now: datetime | None = None) -> bool:
    """``QuotaV1Pod``: terminal pods and pods past their deletion grace charge no compute."""
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    ts, grace = meta.get("deletionTimestamp"), meta.get("deletionGracePeriodSeconds")
    if ts and grace is not None:
        now = now or datetime.now(timezone.utc)
        # Pods stuck terminating (lost node) must not block the user from scaling up.
        if now > _parse_time(ts) + timedelta(seconds=int(grace)):
            return False
    return True


def _pod_compute_usage(requests: ResourceList, limits: ResourceList) -> ResourceList:
    # podComputeUsageHelper: only keys present are charged; "pods" counts as compute.
    out: ResourceList = {"pods": Quantity(1)}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            out[name] = requests[name]
            out[f"requests.{name}"] = requests[name]
        if name in limits:
            out[f"limits.{name}"] = limits[name]
    for name, q in requests.items():
        if name.startswith("hugepages-"):
            out[name] = q
            out[f"requests.{name}"] = q
        if _is_extended(name):
            out[f"requests.{name}"] = q
    return out


def _pod_usage(pod: dict, now: datetime | None) -> ResourceList:
    # count/pods tracks every pod in storage; everything else ends with the pod's life.
    out: ResourceList = {"count/pods": Quantity(1)}
    if not charges_compute(pod, now):
        return out
    return _add(out, _pod_compute_usage(pod_requests(pod), pod_limits(pod)))


def _is_terminating(pod: dict) -> bool:
    ads = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    return ads is not None and int(ads) >= 0


def is_best_effort(pod: dict) -> bool:
    """QoS BestEffort: no container asks for or limits cpu/memory with a positive value."""
    for key in ("containers", "initContainers"):
        for c in _containers(pod, key):
            for rl in _defaulted_resources(c):
                if any(rl.get(n, Quantity(0)) > 0 for n in ("cpu", "memory")):
                    return False
    return True


def _cross_namespace_affinity(pod: dict) -> bool:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        a = affinity.get(kind) or {}
        terms = list(a.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [w.get("podAffinityTerm") or {}
                  for w in a.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
            return True
    return False


def _pod_matches_scope(sel: dict, pod: dict) -> bool:
    scope, op = sel.get("scopeName"), sel.get("operator", "Exists")
    if scope == "Terminating":
        return _is_terminating(pod)
    if scope == "NotTerminating":
        return not _is_terminating(pod)
    if scope == "BestEffort":
        return is_best_effort(pod)
    if scope == "NotBestEffort":
        return not is_best_effort(pod)
    if scope == "CrossNamespacePodAffinity":
        return _cross_namespace_affinity(pod)
    if scope == "PriorityClass":
        # Evaluated as a label selector over {"PriorityClass": name}, the label being absent
        # when the pod names no priority class.
        pc = (pod.get("spec") or {}).get("priorityClassName") or ""
        values = sel.get("values") or []
        return {
            "Exists": bool(pc),
            "DoesNotExist": not pc,
            "In": bool(pc) and pc in values,
            "NotIn": not pc or pc not in values,
        }.get(op, False)
    return False


# --- Other evaluators -------------------------------------------------------------------------


def _pvc_usage(pvc: dict) -> ResourceList:
    out: ResourceList = {"persistentvolumeclaims": Quantity(1), "count/persistentvolumeclaims": Quantity(1)}
    meta, spec = pvc.get("metadata") or {}, pvc.get("spec") or {}
    sc = (meta.get("annotations") or {}).get("volume.beta.kubernetes.io/storage-class")
    if sc is None:
        sc = spec.get("storageClassName") or ""
    if sc:
        out[f"{sc}{_STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = Quantity(1)
    req = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    storage = Quantity.parse(req).round_up(0) if req is not None else None
    allocated = ((pvc.get("status") or {}).get("allocatedResources") or {}).get("storage")
    if allocated is not None:
        alloc = Quantity.parse(allocated)
        # A resize in progress charges whichever is larger, in whole bytes (issue 94313).
        if storage is None or alloc > storage:
            storage = alloc.round_up(0)
    if storage is not None:
        out["requests.storage"] = storage
        if sc:
            out[f"{sc}{_STORAGE_CLASS_SUFFIX}requests.storage"] = storage
    return out


def _service_usage(svc: dict) -> ResourceList:
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    out: ResourceList = {"count/services": Quantity(1), "services": Quantity(1),
                         "services.loadbalancers": Quantity(0), "services.nodeports": Quantity(0)}
    if spec.get("type") == "NodePort":
        out["services.nodeports"] = Quantity(len(ports))
    elif spec.get("type") == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is False:
            out["services.nodeports"] = Quantity(sum(1 for p in ports if p.get("nodePort")))
        else:
            out["services.nodeports"] = Quantity(len(ports))
        out["services.loadbalancers"] = Quantity(1)
    return out


def matching_resources(resource: str, names: Iterable[str]) -> list[str]:
    """The quota keys among ``names`` that the evaluator for ``resource`` can account for."""
    names = list(dict.fromkeys(names))
    if resource == "pods":
        return sorted(n for n in names if n in _POD_RESOURCES or n.startswith(_POD_PREFIXES)
                      or _is_extended_quota_key(n))
    if resource == "persistentvolumeclaims":
        return sorted(n for n in names if n == "count/persistentvolumeclaims" or n in _PVC_RESOURCES
                      or any(n.endswith(_STORAGE_CLASS_SUFFIX + r) for r in _PVC_RESOURCES))
    if resource == "services":
        return sorted(n for n in names if n in _SERVICE_RESOURCES)
    own = {f"count/{resource}"} | ({_LEGACY_COUNT_ALIASES[resource]} if resource in _LEGACY_COUNT_ALIASES else set())
    return sorted(n for n in names if n in own)


def usage(resource: str, obj: dict, now: datetime | None = None) -> ResourceList:
    """Quota usage of one object of ``resource`` (plural), with zero entries removed.

    ``now`` decides whether a pod in graceful deletion is past its grace period.
    """
    if resource == "pods":
        out = _pod_usage(obj, now)
    elif resource == "persistentvolumeclaims":
        out = _pvc_usage(obj)
    elif resource == "services":
        out = _service_usage(obj)
    else:
        out = {f"count/{resource}": Quantity(1)}
        if resource in _LEGACY_COUNT_ALIASES:
            out[_LEGACY_COUNT_ALIASES[resource]] = Quantity(1)
    return {k: v for k, v in out.items() if not v.is_zero()}


def _scope_selectors(quota: dict) -> list[dict]:
    spec = quota.get("spec") or {}
    sels = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or []]
    sels += list((spec.get("scopeSelector") or {}).get("matchExpressions") or [])
    return sels


def _matches_scopes(resource: str, quota: dict, obj: dict) -> bool:
    sels = _scope_selectors(quota)
    if resource == "pods":
        return all(_pod_matches_scope(s, obj) for s in sels)
    # Non-pod evaluators use MatchesNoScopeFunc: a scoped quota never covers them.
    return not sels


def quota_applies(quota: dict, resource: str, obj: dict) -> bool:
    """Whether ``quota`` covers ``obj``: some ``status.hard`` key is tracked and all scopes match.

    ``status.hard`` (not ``spec.hard``) is used, so a quota the controller has not yet
    processed does not apply at all.
    """
    hard = ((quota.get("status") or {}).get("hard") or {}).keys()
    return bool(matching_resources(resource, hard)) and _matches_scopes(resource, quota, obj)


def _constraints(resource: str, required: list[str], obj: dict) -> str | None:
    if resource != "pods":
        return None
    req = set(required) & _CONSTRAINED
    missing: dict[str, set[str]] = {}
    for key in ("containers", "initContainers"):
        for c in _containers(obj, key):
            have = set(_pod_compute_usage(*_defaulted_resources(c)))
            for name in req - have:
                missing.setdefault(name, set()).add(c.get("name", ""))
    if not missing:
        return None
    parts = [f"{r} for: {','.join(sorted(missing[r]))}" for r in sorted(missing)]
    return "must specify " + "; ".join(parts)


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def admit(resource: str, obj: dict, quotas: list[dict], old: dict | None = None,
          now: datetime | None = None) -> list[dict]:
    """Run ResourceQuota admission (``CheckRequest``) for creating (or, with ``old``, updating) ``obj``.

    Quotas are checked in name order and the first failure raises ``ApiError`` 403. On success,
    returns deep copies of the quotas whose ``status.used`` changed, with ``status.used`` set to
    ``used + requested`` (canonical strings); an empty list means nothing to write.
    Object-count-only resources are charged on CREATE only, as in Kubernetes.
    """
    if old is not None and resource not in ("pods", "persistentvolumeclaims", "services"):
        return []
    name = _name(obj)
    ordered = sorted(quotas, key=lambda q: _name(q))
    interesting: list[dict] = []
    for q in ordered:
        if not quota_applies(q, resource, obj):
            continue
        status = q.get("status") or {}
        restricted = matching_resources(resource, (status.get("hard") or {}).keys())
        err = _constraints(resource, restricted, obj)
        if err:
            raise errors.forbidden(resource, name, f"failed quota: {_name(q)}: {err}")
        used_keys = set((status.get("used") or {}).keys())
        if any(k not in used_keys for k in restricted):
            raise errors.forbidden(
                resource, name,
                f"status unknown for quota: {_name(q)}, resources: {','.join(sorted(restricted))}")
        interesting.append(q)

    delta = usage(resource, obj, now)
    negative = sorted(k for k, v in delta.items() if v < 0)
    if negative:
        raise errors.forbidden(resource, name,
                               f"quota usage is negative for resource(s): {','.join(negative)}")
    if old is not None and (old.get("metadata") or {}).get("resourceVersion"):
        delta = _subtract_non_negative(delta, usage(resource, old, now))
    delta = {k: v for k, v in delta.items() if not v.is_zero()}
    if not delta or not interesting:
        return []

    out: list[dict] = []
    for q in interesting:
        status = q.get("status") or {}
        hard, used = resource_list(status.get("hard")), resource_list(status.get("used"))
        requested = _mask(delta, hard)
        new = _add(used, requested)
        exceeded = [k for k in requested if new[k] > hard[k]]
        if exceeded:
            raise errors.forbidden(
                resource, name,
                f"exceeded quota: {_name(q)}, requested: {_pretty(_mask(requested, exceeded))}, "
                f"used: {_pretty(_mask(used, exceeded))}, limited: {_pretty(_mask(hard, exceeded))}")
        if not requested:
            continue  # nothing charged here: Go skips quotas whose used did not change
        updated = copy.deepcopy(q)
        updated.setdefault("status", {})["used"] = _serialize(new)
        out.append(updated)
    return out


def _evaluated_resources(hard_keys: Iterable[str]) -> list[str]:
    found = ["pods", "persistentvolumeclaims", "services", *_LEGACY_COUNT_ALIASES]
    found += [k[len("count/"):] for k in hard_keys if k.startswith("count/")]
    return list(dict.fromkeys(found))


def recompute(quota: dict, objects: dict[str, list[dict]], now: datetime | None = None) -> dict:
    """The quota controller's sync: the new ``status`` of ``quota``.

    ``objects`` maps a resource (plural) to the objects of the quota's namespace. ``hard``
    becomes ``spec.hard``; ``used`` is the summed usage of matching objects for every hard key
    some evaluator tracks (``"0"`` when nothing uses it). Keys no evaluator tracks (such as
    ``limits.nvidia.com/gpu``) keep any previous value and are otherwise left out.
    """
    hard = resource_list((quota.get("spec") or {}).get("hard"))
    used = resource_list((quota.get("status") or {}).get("used"))
    resources = _evaluated_resources(hard)
    tracked = {k for r in resources for k in matching_resources(r, hard)}
    new_usage: ResourceList = {}
    for r in resources:
        keys = matching_resources(r, tracked)
        if not keys:
            continue
        stats: ResourceList = {k: Quantity(0) for k in keys}
        for obj in objects.get(r, []):
            if _matches_scopes(r, quota, obj):
                stats = _add(stats, usage(r, obj, now))
        new_usage = _add(new_usage, stats)
    used.update(new_usage)
    return {"hard": _serialize(hard), "used": _serialize(_mask(used, hard))}


# --- The quota controller's usage, kept incrementally -----------------------------------------


def _sub(a: ResourceList, b: ResourceList) -> ResourceList:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, Quantity(0)) - v
    return out


class _Tracked:
    """One quota's usage: what each object contributes (masked to ``hard``) and their sum."""

    __slots__ = ("spec", "hard", "keys", "contribs", "total")

    def __init__(self, quota: dict):
        self.spec = copy.deepcopy(quota.get("spec") or {})
        self.hard = resource_list(self.spec.get("hard"))
        resources = _evaluated_resources(self.hard)
        tracked = {k for r in resources for k in matching_resources(r, self.hard)}
        # Per evaluated resource, the keys it accounts for (recompute's zero-initialised stats).
        self.keys = {r: keys for r in resources if (keys := matching_resources(r, tracked))}
        self.contribs: dict[tuple[str, str], ResourceList] = {}
        self.total: ResourceList = {k: Quantity(0) for keys in self.keys.values() for k in keys}

    def contribution(self, resource: str, obj: dict | None, quota: dict, now: datetime | None) -> ResourceList:
        if obj is None or resource not in self.keys or not _matches_scopes(resource, quota, obj):
            return {}
        return _mask(usage(resource, obj, now), self.hard)

    def set(self, resource: str, name: str, contribution: ResourceList) -> bool:
        key = (resource, name)
        old = self.contribs.pop(key, {})
        if contribution:
            self.contribs[key] = contribution
        if old == contribution:
            return False
        self.total = _add(_sub(self.total, old), contribution)
        return True


class UsageTracker:
    """``status.used`` of every ResourceQuota, kept up to date one write at a time.

    The API server's quota controller keeps usage in each quota's status and replenishes it
    when objects change, instead of re-listing the namespace on every write. This does the same:
    a quota's first sync (and any change to its ``spec``) sums the usage of every object of its
    namespace once (:func:`recompute`'s rules); after that each object write moves the sum by the
    difference between the object's old and new contribution, so a pod write costs the same with
    5 or 5,000 pods in the namespace. :meth:`status` gives what :func:`recompute` would.
    """

    def __init__(self) -> None:
        self._quotas: dict[tuple[str, str], _Tracked] = {}

    def reset(self) -> None:
        self._quotas.clear()

    def forget(self, namespace: str, name: str) -> None:
        self._quotas.pop((namespace, name), None)

    def sync(self, quota: dict, objects: dict[str, list[dict]], now: datetime | None = None) -> dict:
        """A full sync of one quota from all the objects of its namespace; returns its status."""
        tracked = _Tracked(quota)
        for resource in tracked.keys:
            for obj in objects.get(resource, []):
                c = tracked.contribution(resource, obj, quota, now)
                if c:
                    tracked.set(resource, obj["metadata"]["name"], c)
        self._quotas[(quota["metadata"]["namespace"], quota["metadata"]["name"])] = tracked
        return self.status(quota)

    def is_synced(self, quota: dict) -> bool:
        tracked = self._quotas.get((quota["metadata"]["namespace"], quota["metadata"]["name"]))
        return tracked is not None and tracked.spec == (quota.get("spec") or {})

    def observe(self, quota: dict, resource: str, obj: dict, deleted: bool, now: datetime | None = None) -> bool:
        """Account one object write for ``quota``; whether the quota's usage changed."""
        tracked = self._quotas[(quota["metadata"]["namespace"], quota["metadata"]["name"])]
        c = {} if deleted else tracked.contribution(resource, obj, quota, now)
        return tracked.set(resource, obj["metadata"]["name"], c)

    def status(self, quota: dict) -> dict:
        """The quota's ``status`` as :func:`recompute` computes it."""
        tracked = self._quotas[(quota["metadata"]["namespace"], quota["metadata"]["name"])]
        used = resource_list((quota.get("status") or {}).get("used"))
        used.update(tracked.total)
        return {"hard": _serialize(tracked.hard), "used": _serialize(_mask(used, tracked.hard))}
