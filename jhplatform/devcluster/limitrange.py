"""LimitRange admission: defaulting (mutating) and min/max/ratio checks (validating).

Pure functions over plain dicts, after ``plugin/pkg/admission/limitranger/admission.go`` and
``SetDefaults_LimitRangeItem``. See kube-emulator-spec.md section 4.5.
"""

from __future__ import annotations

import copy

from jhplatform.devcluster import errors
from jhplatform.devcluster.quota import ResourceList, default_pod_requests, pod_limits, pod_requests, resource_list
from jhplatform.policy.quantity import Quantity, format_quantity

ANNOTATION = "kubernetes.io/limit-ranger"
# Go's MaxMilliValue: below it, comparisons use milli units for precision.
_MAX_MILLI = (2**63 - 1) // 1000


def _items(lr: dict) -> list[dict]:
    return list((lr.get("spec") or {}).get("limits") or [])


def default_limitrange(lr: dict) -> dict:
    """Return a deep copy of ``lr`` with ``SetDefaults_LimitRangeItem`` applied to Container items.

    A missing ``default`` comes from ``max``; a missing ``defaultRequest`` comes from ``default``,
    else from ``min``.
    """
    out = copy.deepcopy(lr)
    for item in _items(out):
        if item.get("type") != "Container":
            continue
        default = dict(item.get("default") or {})
        default_request = dict(item.get("defaultRequest") or {})
        for k, v in (item.get("max") or {}).items():
            default.setdefault(k, format_quantity(v))
        for k, v in default.items():
            default_request.setdefault(k, format_quantity(v))
        for k, v in (item.get("min") or {}).items():
            default_request.setdefault(k, format_quantity(v))
        # Empty maps are omitted on the wire (omitempty).
        if default:
            item["default"] = default
        if default_request:
            item["defaultRequest"] = default_request
    return out


def _sorted_by_name(limitranges: list[dict]) -> list[dict]:
    return sorted(limitranges, key=lambda lr: (lr.get("metadata") or {}).get("name") or "")


def _merge_container(container: dict, limits: dict, requests: dict, label: str) -> list[str]:
    res = container.setdefault("resources", {})
    added: dict[str, list[str]] = {}
    for field, defaults in (("limits", limits), ("requests", requests)):
        have = dict(res.get(field) or {})
        added[field] = sorted(k for k in defaults if k not in have)
        have.update({k: defaults[k] for k in added[field]})
        if have:  # empty maps are omitted on the wire
            res[field] = have
    if not res:
        del container["resources"]
    name = container.get("name", "")
    # mergeContainerResources notes what it set, requests first, names sorted.
    return [f"{', '.join(added[field])} {word} for {label} {name}"
            for field, word in (("requests", "request"), ("limits", "limit")) if added[field]]


def apply_defaults(pod: dict, limitranges: list[dict]) -> dict:
    """Return a deep copy of ``pod`` with LimitRange ``Container`` defaults filled in.

    Decode-time defaulting (a missing request takes the limit) is applied first, as the
    apiserver does before admission. Each LimitRange that sets something rewrites the
    ``kubernetes.io/limit-ranger`` annotation, like the plugin running once per LimitRange.
    """
    out = default_pod_requests(pod)
    for lr in _sorted_by_name(limitranges):
        limits: dict[str, str] = {}
        requests: dict[str, str] = {}
        for item in _items(default_limitrange(lr)):
            if item.get("type") == "Container":
                requests.update({k: format_quantity(v) for k, v in (item.get("defaultRequest") or {}).items()})
                limits.update({k: format_quantity(v) for k, v in (item.get("default") or {}).items()})
        notes: list[str] = []
        spec = out.get("spec") or {}
        for key, label in (("containers", "container"), ("initContainers", "init container")):
            for c in spec.get(key) or []:
                notes += _merge_container(c, limits, requests, label)
        if notes:
            meta = out.setdefault("metadata", {})
            annotations = meta.get("annotations") or {}
            annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)
            meta["annotations"] = annotations
    return out


def _values(req: Quantity | None, lim: Quantity | None, enforced: Quantity) -> tuple[int, int, int]:
    # requestLimitEnforcedValues: integer units, or milli units when nothing would overflow.
    r = req.int_value() if req is not None else 0
    li = lim.int_value() if lim is not None else 0
    e = enforced.int_value()
    if r <= _MAX_MILLI and li <= _MAX_MILLI and e <= _MAX_MILLI:
        r = req.milli_value() if req is not None else 0
        li = lim.milli_value() if lim is not None else 0
        e = enforced.milli_value()
    return r, li, e


def _min(kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    r, li, e = _values(req, lim, enforced)
    if req is None:
        return f"minimum {name} usage per {kind} is {enforced}.  No request is specified"
    if r < e:
        return f"minimum {name} usage per {kind} is {enforced}, but request is {req}"
    if lim is not None and li < e:
        return f"minimum {name} usage per {kind} is {enforced}, but limit is {lim}"
    return None


def _max(kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    r, li, e = _values(req, lim, enforced)
    if lim is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No limit is specified"
    if li > e:
        return f"maximum {name} usage per {kind} is {enforced}, but limit is {lim}"
    if req is not None and r > e:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {req}"
    return None


def _max_request(kind: str, name: str, enforced: Quantity, requests: ResourceList) -> str | None:
    # PVCs have no limits the user sets, so max is enforced on the request.
    req = requests.get(name)
    r, _, e = _values(req, None, enforced)
    if req is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No request is specified"
    if r > e:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {req}"
    return None


def _ratio(kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    r, li, _ = _values(req, lim, enforced)
    if req is None or r == 0:
        return f"{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
    if lim is None or li == 0:
        return f"{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
    observed = li / r
    shown = observed
    allowed = float(enforced.int_value())
    if enforced.int_value() <= _MAX_MILLI:
        observed *= 1000
        allowed = float(enforced.milli_value())
    if observed > allowed:
        return f"{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {shown:f}"
    return None


def _check_item(item: dict, requests: ResourceList, limits: ResourceList) -> list[str]:
    kind = item.get("type", "")
    # Go ranges over maps (random order); sorting makes the joined message stable.
    found = [_min(kind, k, v, requests, limits) for k, v in sorted(resource_list(item.get("min")).items())]
    found += [_max(kind, k, v, requests, limits) for k, v in sorted(resource_list(item.get("max")).items())]
    found += [_ratio(kind, k, v, requests, limits)
              for k, v in sorted(resource_list(item.get("maxLimitRequestRatio")).items())]
    return [e for e in found if e]


def _pod_errors(lr: dict, pod: dict) -> list[str]:
    errs: list[str] = []
    for item in _items(lr):
        if item.get("type") == "Container":
            for key in ("containers", "initContainers"):
                for c in (pod.get("spec") or {}).get(key) or []:
                    res = c.get("resources") or {}
                    errs += _check_item(item, resource_list(res.get("requests")), resource_list(res.get("limits")))
        elif item.get("type") == "Pod":
            # The plugin's own pod sums ignore spec.overhead.
            errs += _check_item(item, pod_requests(pod, overhead=False), pod_limits(pod, overhead=False))
    return errs


def _pvc_errors(lr: dict, pvc: dict) -> list[str]:
    errs: list[str] = []
    requests = resource_list(((pvc.get("spec") or {}).get("resources") or {}).get("requests"))
    for item in _items(lr):
        if item.get("type") != "PersistentVolumeClaim":
            continue
        kind = "PersistentVolumeClaim"
        errs += [e for k, v in sorted(resource_list(item.get("min")).items())
                 if (e := _min(kind, k, v, requests, {}))]
        errs += [e for k, v in sorted(resource_list(item.get("max")).items())
                 if (e := _max_request(kind, k, v, requests))]
    return errs


def aggregate_message(errs: list[str]) -> str:
    """``utilerrors.NewAggregate(errs).Error()``: duplicates dropped, several wrapped in ``[..]``."""
    unique = list(dict.fromkeys(errs))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def validate(resource: str, obj: dict, limitranges: list[dict]) -> None:
    """Check ``obj`` (a pod or PVC, after ``apply_defaults``) against each LimitRange by name.

    The first LimitRange with violations raises ``ApiError`` 403 listing all of its errors.
    Other resources pass untouched.
    """
    if resource == "pods":
        obj = default_pod_requests(obj)
        check = _pod_errors
    elif resource == "persistentvolumeclaims":
        check = _pvc_errors
    else:
        return
    for lr in _sorted_by_name(limitranges):
        errs = check(lr, obj)
        if errs:
            name = (obj.get("metadata") or {}).get("name") or ""
            raise errors.forbidden(resource, name, aggregate_message(errs))
