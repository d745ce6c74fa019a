"""GPU profiles as data (pure: no I/O, no traitlets).

A ``profile_list`` entry becomes a GPU profile by carrying a ``gpu`` key::

    {
        "display_name": "A100",
        "slug": "a100",
        "gpu": {
            "resource": "nvidia.com/gpu",          # or "amd.com/gpu", "nvidia.com/mig-1g.10gb", ...
            "count": 1,                            # fixed; or "option": "gpus" (below)
            "type": "A100",                        # what users see; the key of gpu_pools
            "type_label": "nvidia.com/gpu.product",
            "type_value": "NVIDIA-A100-SXM4-40GB", # or a list of equivalent products
        },
    }

With ``"option": "gpus"`` the count comes from the choice of the profile option ``gpus``: the
choice's ``gpu_count``, or its key when that is a whole number (``{"1": {...}, "2": {...}}``).

:func:`normalize_profiles` adds the scheduling that goes with it to ``kubespawner_override``
(never replacing what the admin wrote there):

- ``extra_resource_limits: {resource: count}`` (per choice for an option);
- a toleration for the GPU node taint (``nvidia.com/gpu:NoSchedule`` by default, also for MIG
  resources; ``"toleration": False`` for none, or a toleration dict / list of your own),
  *appended* to the configured tolerations rather than replacing them (z2jh's own
  tolerations for user nodes must survive);
- ``node_selector: {type_label: type_value}``, or with ``"scheduling": "affinity"`` (or several
  ``type_value`` s) a required node-affinity expression ANDed into every configured term.

:func:`validate_profiles` checks all of it when the hub loads its configuration, and
:func:`build_form_view` turns a ledger view into what the spawn form shows per profile and
choice.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .gpu_ledger import Decision, Selector, availability_text, count_of, is_gpu_resource

SETTING = "PlatformSpawner.profile_list"
GPU_KEYS = ("resource", "count", "type", "type_label", "type_value", "option", "toleration", "scheduling")
SCHEDULING = ("node_selector", "affinity")
_RESOURCE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


class GpuProfileError(ValueError):
    """A GPU profile that cannot work; the message names the setting and each problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def taint_key(resource: str) -> str:
    """The taint GPU node pools usually carry for ``resource``: the vendor's ``<domain>/gpu``.

    NVIDIA's GPU operator and the cloud providers taint GPU nodes ``nvidia.com/gpu`` also when
    the node exposes MIG slices (``nvidia.com/mig-1g.10gb``).
    """
    domain = resource.split("/", 1)[0]
    return f"{domain}/gpu" if domain in ("nvidia.com", "amd.com") else resource


def default_toleration(resource: str) -> dict:
    return {"key": taint_key(resource), "operator": "Exists", "effect": "NoSchedule"}


# -- override values that extend instead of replacing -----------------------------------------


class ExtendList:
    """A ``kubespawner_override`` value that appends ``items`` to the spawner's current list.

    KubeSpawner replaces a list trait with an override's list, which would drop the configured
    tolerations (z2jh's ``hub.jupyter.org/dedicated`` ones among them); a callable override is
    evaluated against the spawner instead, so this keeps them and adds the GPU's.
    """

    def __init__(self, trait: str, items: list):
        self.trait = trait
        self.items = list(items)

    def __call__(self, spawner) -> list:
        current = list(getattr(spawner, self.trait) or [])
        return current + [i for i in self.items if i not in current]

    def __eq__(self, other) -> bool:
        return isinstance(other, ExtendList) and (self.trait, self.items) == (other.trait, other.items)

    def __repr__(self) -> str:
        return f"ExtendList({self.trait!r}, {self.items!r})"


class RequireNodeLabel:
    """A ``node_affinity_required`` override that ANDs ``label In values`` into every term.

    Required node-affinity terms are ORed by Kubernetes, so appending a term would let the pod
    land on any node matching an existing term; the expression goes into each term instead.
    """

    def __init__(self, label: str, values: list[str], terms: list | None = None):
        self.label = label
        self.values = list(values)
        self.terms = terms  # the admin's explicit terms, else the spawner's configured ones

    @property
    def expression(self) -> dict:
        return {"key": self.label, "operator": "In", "values": list(self.values)}

    def __call__(self, spawner) -> list:
        terms = copy.deepcopy(self.terms if self.terms is not None else list(getattr(spawner, "node_affinity_required") or []))
        if not terms:
            return [{"matchExpressions": [self.expression]}]
        for t in terms:
            exprs = t.setdefault("matchExpressions", [])
            if self.expression not in exprs:
                exprs.append(self.expression)
        return terms

    def __eq__(self, other) -> bool:
        return isinstance(other, RequireNodeLabel) and (self.label, self.values, self.terms) == (other.label, other.values, other.terms)

    def __repr__(self) -> str:
        return f"RequireNodeLabel({self.label!r}, {self.values!r})"


# -- the model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuSpec:
    """A profile's ``gpu`` entry, parsed (see the module docstring)."""

    resource: str
    count: int | None  # fixed count; None when an option gives it
    type: str = ""
    type_label: str | None = None
    type_values: tuple[str, ...] = ()
    option: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)  # option choice -> count
    toleration: Any = True
    scheduling: str = "node_selector"

    @property
    def selector(self) -> Selector:
        """The node labels the type means, as the ledger matches nodes."""
        if self.type_label and self.type_values:
            return ((self.type_label, self.type_values),)
        return ()

    def count_for(self, choice: str | None) -> int | None:
        if self.option is None:
            return self.count
        return self.counts.get(choice) if choice is not None else None

    @property
    def kind(self) -> str:
        return self.type or self.resource


def _name(profile: Mapping, index: int) -> str:
    return str(profile.get("slug") or profile.get("display_name") or f"#{index + 1}")


def _choice_count(key: str, choice: Mapping) -> int | None:
    value = choice.get("gpu_count", key) if isinstance(choice, Mapping) else key
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _profiles(profile_list) -> list:
    # KubeSpawner also accepts a dict of profiles, shown sorted by key.
    if isinstance(profile_list, Mapping):
        return [profile_list[k] for k in sorted(profile_list)]
    return list(profile_list or [])


def gpu_problems(profile_list) -> list[str]:
    """Every problem with the GPU entries of ``profile_list``, each naming the profile."""
    problems = []
    for i, profile in enumerate(_profiles(profile_list)):
        if not isinstance(profile, Mapping) or "gpu" not in profile:
            continue
        where = f"{SETTING} profile {_name(profile, i)!r}"
        gpu = profile["gpu"]
        if not isinstance(gpu, Mapping):
            problems.append(f"{where}: gpu must be a dict such as {{'resource': 'nvidia.com/gpu', 'count': 1}}, not {gpu!r}")
            continue
        unknown = sorted(set(gpu) - set(GPU_KEYS))
        if unknown:
            problems.append(f"{where}: gpu has unknown key(s) {', '.join(map(repr, unknown))} (known: {', '.join(GPU_KEYS)})")
        resource = gpu.get("resource")
        if not isinstance(resource, str) or not _RESOURCE.match(resource) or "kubernetes.io" in resource:
            problems.append(
                f"{where}: gpu.resource must be an extended resource name such as 'nvidia.com/gpu', "
                f"'amd.com/gpu' or 'nvidia.com/mig-1g.10gb', not {resource!r}"
            )
            resource = None
        option, count = gpu.get("option"), gpu.get("count")
        counts: dict[str, int] = {}
        if option is not None and count is not None:
            problems.append(f"{where}: give either gpu.count (a fixed number) or gpu.option (a profile option whose choices give it), not both")
        elif option is None:
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                problems.append(f"{where}: gpu.count must be a whole number of GPUs, 1 or more, not {count!r}")
        else:
            options = profile.get("profile_options") or {}
            spec = options.get(option) if isinstance(options, Mapping) else None
            if not isinstance(spec, Mapping) or not spec.get("choices"):
                problems.append(f"{where}: gpu.option {option!r} must name one of the profile's profile_options with choices")
            else:
                if (spec.get("unlisted_choice") or {}).get("enabled"):
                    problems.append(f"{where}: profile option {option!r} gives the GPU count, so it cannot allow an unlisted (free-text) choice")
                for key, choice in spec["choices"].items():
                    n = _choice_count(key, choice)
                    if n is None or n < 1:
                        problems.append(
                            f"{where}: choice {key!r} of option {option!r} needs a GPU count: a whole-number key "
                            f"such as '2' or 'gpu_count': 2 (1 or more)"
                        )
                    else:
                        counts[key] = n
        label, value = gpu.get("type_label"), gpu.get("type_value")
        if (label is None) != (value is None):
            problems.append(f"{where}: give gpu.type_label and gpu.type_value together (the node label that tells the GPU type, and its value)")
        if label is not None and (not isinstance(label, str) or not _LABEL_KEY.match(label)):
            problems.append(f"{where}: gpu.type_label must be a node label key such as 'nvidia.com/gpu.product', not {label!r}")
        values = [value] if isinstance(value, str) else value
        if value is not None and (not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values)):
            problems.append(f"{where}: gpu.type_value must be a label value or a non-empty list of them, not {value!r}")
        if "type" in gpu and not isinstance(gpu["type"], str):
            problems.append(f"{where}: gpu.type must be a short name such as 'A100', not {gpu['type']!r}")
        tol = gpu.get("toleration", True)
        if not (isinstance(tol, bool) or isinstance(tol, Mapping) or (isinstance(tol, list) and all(isinstance(t, Mapping) for t in tol))):
            problems.append(f"{where}: gpu.toleration must be true, false, a toleration dict or a list of them, not {tol!r}")
        scheduling = gpu.get("scheduling", "node_selector")
        if scheduling not in SCHEDULING:
            problems.append(f"{where}: gpu.scheduling must be one of {', '.join(SCHEDULING)}, not {scheduling!r}")
        if resource is None:
            continue
        # What the admin wrote in kubespawner_override must agree with the gpu entry: the
        # ledger counts the entry, the scheduler and the quota count the pod.
        for key, n in counts.items():
            choice = profile["profile_options"][option]["choices"][key]
            ov = (choice.get("kubespawner_override") or {}) if isinstance(choice, Mapping) else {}
            explicit = (ov.get("extra_resource_limits") or {}).get(resource)
            if explicit is not None and str(explicit) != str(n):
                problems.append(
                    f"{where}: choice {key!r} of option {option!r} sets extra_resource_limits[{resource!r}] = {explicit!r} "
                    f"but its GPU count is {n}; remove the override (it is added for you) or make them agree"
                )
        ov = profile.get("kubespawner_override") or {}
        explicit = (ov.get("extra_resource_limits") or {}).get(resource) if isinstance(ov, Mapping) else None
        if explicit is not None:
            if option is not None:
                problems.append(
                    f"{where}: kubespawner_override sets extra_resource_limits[{resource!r}] for the whole profile, but "
                    f"the count comes from option {option!r}; remove it (each choice gets its own)"
                )
            elif isinstance(count, int) and str(explicit) != str(count):
                problems.append(
                    f"{where}: kubespawner_override sets extra_resource_limits[{resource!r}] = {explicit!r} but gpu.count "
                    f"is {count}; remove the override (it is added for you) or make them agree"
                )
        if isinstance(label, str) and isinstance(value, str) and isinstance(ov, Mapping):
            current = (ov.get("node_selector") or {}).get(label)
            if current is not None and current != value:
                problems.append(
                    f"{where}: kubespawner_override sets node_selector[{label!r}] = {current!r} but gpu.type_value is "
                    f"{value!r}; the GPU type and the nodes the pod may use must agree"
                )
    return problems


def validate_profiles(profile_list) -> None:
    """Raise :class:`GpuProfileError` listing every problem of the GPU profiles, if any."""
    problems = gpu_problems(profile_list)
    if problems:
        raise GpuProfileError(problems)


def gpu_spec(profile: Mapping) -> GpuSpec | None:
    """The parsed ``gpu`` entry of a (valid) profile, or ``None`` for a profile without GPUs."""
    gpu = profile.get("gpu") if isinstance(profile, Mapping) else None
    if not isinstance(gpu, Mapping):
        return None
    option = gpu.get("option")
    counts = {}
    if option is not None:
        choices = ((profile.get("profile_options") or {}).get(option) or {}).get("choices") or {}
        counts = {k: n for k, c in choices.items() if (n := _choice_count(k, c)) is not None}
    value = gpu.get("type_value")
    return GpuSpec(
        resource=gpu["resource"],
        count=gpu.get("count") if option is None else None,
        type=gpu.get("type") or "",
        type_label=gpu.get("type_label"),
        type_values=tuple([value] if isinstance(value, str) else value or ()),
        option=option,
        counts=counts,
        toleration=gpu.get("toleration", True),
        scheduling=gpu.get("scheduling", "node_selector"),
    )


def gpu_specs(profile_list) -> list[GpuSpec]:
    return [s for p in _profiles(profile_list) if (s := gpu_spec(p)) is not None]


def _set_limit(override: dict, resource: str, count: int) -> None:
    limits = dict(override.get("extra_resource_limits") or {})
    limits.setdefault(resource, str(count))
    override["extra_resource_limits"] = limits


def normalize_profiles(profile_list) -> list:
    """A copy of ``profile_list`` whose GPU profiles carry their scheduling in ``kubespawner_override``.

    Never modifies its argument; values the admin set explicitly are kept (see the module
    docstring). Profiles without ``gpu`` are copied unchanged. Idempotent.
    """
    out = copy.deepcopy(_profiles(profile_list))
    for profile in out:
        spec = gpu_spec(profile)
        if spec is None:
            continue
        ov = profile.setdefault("kubespawner_override", {})
        if spec.option is None:
            _set_limit(ov, spec.resource, spec.count)
        else:
            choices = profile["profile_options"][spec.option]["choices"]
            for key, n in spec.counts.items():
                _set_limit(choices[key].setdefault("kubespawner_override", {}), spec.resource, n)
        if spec.toleration is not False:
            wanted = [default_toleration(spec.resource)] if spec.toleration is True else (
                [dict(spec.toleration)] if isinstance(spec.toleration, Mapping) else [dict(t) for t in spec.toleration]
            )
            current = ov.get("tolerations")
            if current is None:
                ov["tolerations"] = ExtendList("tolerations", wanted)
            elif isinstance(current, list):
                ov["tolerations"] = current + [t for t in wanted if t not in current]
            elif isinstance(current, ExtendList):
                ov["tolerations"] = ExtendList("tolerations", current.items + [t for t in wanted if t not in current.items])
            # an admin's own callable is left alone: it decides the tolerations
        else:
            # "no toleration" also means none by default (PlatformSpawner.gpu_default_toleration)
            ov.setdefault("gpu_default_toleration", False)
        if spec.type_label and spec.type_values:
            if spec.scheduling == "node_selector" and len(spec.type_values) == 1:
                selector = dict(ov.get("node_selector") or {})
                selector.setdefault(spec.type_label, spec.type_values[0])
                ov["node_selector"] = selector
            else:
                current = ov.get("node_affinity_required")
                if not isinstance(current, RequireNodeLabel) and not callable(current):
                    ov["node_affinity_required"] = RequireNodeLabel(spec.type_label, list(spec.type_values), current)
    return out


# -- what the user asked for ------------------------------------------------------------------


def find_profile(profile_list: list, slug: str | None) -> Mapping | None:
    """The profile ``slug`` names, or the default one (KubeSpawner's rule) when it names none."""
    profiles = _profiles(profile_list)
    if not profiles:
        return None
    if slug:
        return next((p for p in profiles if p.get("slug") == slug), None)
    return next((p for p in profiles if p.get("default")), profiles[0])


def default_choice(profile: Mapping, option: str) -> str | None:
    choices = ((profile.get("profile_options") or {}).get(option) or {}).get("choices") or {}
    return next((k for k, c in choices.items() if isinstance(c, Mapping) and c.get("default")), next(iter(choices), None))


@dataclass(frozen=True)
class GpuRequest:
    resource: str
    count: int
    type: str = ""
    selector: Selector = ()


def _override(obj) -> Mapping:
    ov = obj.get("kubespawner_override") if isinstance(obj, Mapping) else None
    return ov if isinstance(ov, Mapping) else {}


def _gpu_limits(limits: Mapping, known: tuple[str, ...]) -> dict[str, int]:
    """The GPU entries of an ``extra_resource_limits``/``guarantees`` mapping, as counts."""
    out = {}
    for name, value in (limits or {}).items() if isinstance(limits, Mapping) else ():
        if isinstance(name, str) and is_gpu_resource(name, known) and not callable(value):
            out[name] = count_of(value)
    return out


def resolved_gpus(profile: Mapping | None, choices: Mapping | None = None, *,
                  base: Mapping | None = None) -> GpuRequest | None:
    """The GPUs a profile asks for with the given option ``choices``; ``None`` if none.

    The one notion of a GPU profile, used by the quota, the spawn form, the default toleration,
    the metrics, the messages and the culler. A profile (with its chosen options) asks for a GPU
    when its resolved ``extra_resource_limits``/``extra_resource_guarantees`` name a GPU
    resource (``nvidia.com/gpu``, ``nvidia.com/mig-*``, ``amd.com/gpu``, ``gpu.intel.com/*``, or
    a profile's ``gpu.resource``) with a count above 0, whether they come from a ``gpu:`` entry
    or were written the plain KubeSpawner way in ``kubespawner_override``.

    Parameters
    ----------
    profile:
        A ``profile_list`` entry (normalized or not).
    choices:
        ``{option: choice}`` as in ``user_options``; options not given take their default
        choice. An unknown choice gives ``None`` (KubeSpawner refuses it with its own message).
    base:
        The spawner's configured ``{"extra_resource_limits": ..., "extra_resource_guarantees":
        ...}`` the overrides merge into (KubeSpawner merges dict overrides).
    """
    if not isinstance(profile, Mapping):
        return None
    choices = choices or {}
    spec = gpu_spec(profile)
    known = (spec.resource,) if spec is not None else ()
    base = base or {}
    limits = {**_gpu_limits(base.get("extra_resource_guarantees"), known), **_gpu_limits(base.get("extra_resource_limits"), known)}
    guarantees: dict[str, int] = {}
    layers = [_override(profile)]
    options = profile.get("profile_options") or {}
    for name, option in options.items() if isinstance(options, Mapping) else ():
        option_choices = (option or {}).get("choices") or {} if isinstance(option, Mapping) else {}
        choice = choices.get(name) or default_choice(profile, name)
        if choice is None:
            continue
        if choice not in option_choices:
            if spec is not None and spec.option == name:
                return None
            continue
        layers.append(_override(option_choices[choice]))
    for ov in layers:
        guarantees.update(_gpu_limits(ov.get("extra_resource_guarantees"), known))
        limits.update(_gpu_limits(ov.get("extra_resource_limits"), known))
    if spec is not None:
        count = spec.count if spec.option is None else spec.counts.get(choices.get(spec.option) or default_choice(profile, spec.option))
        if count is None:
            return None
        limits.setdefault(spec.resource, count)
    # Requests default to limits for extended resources; a guarantee alone is the request.
    wanted = {**guarantees, **{r: n for r, n in limits.items() if n > 0 or r not in guarantees}}
    wanted = {r: n for r, n in wanted.items() if n > 0}
    if not wanted:
        return None
    resource = spec.resource if spec is not None and spec.resource in wanted else sorted(wanted)[0]
    if spec is not None and spec.resource == resource:
        return GpuRequest(resource, wanted[resource], spec.type, spec.selector)
    return GpuRequest(resource, wanted[resource], "", _plain_selector(layers))


def _plain_selector(layers: list[Mapping]) -> Selector:
    # The node labels a plain profile's node_selector asks for, as the ledger matches nodes.
    selector: dict[str, str] = {}
    for ov in layers:
        ns = ov.get("node_selector")
        if isinstance(ns, Mapping):
            selector.update({str(k): str(v) for k, v in ns.items() if isinstance(v, str)})
    return tuple((k, (v,)) for k, v in sorted(selector.items()))


def asks_for_gpu(profile: Mapping, base: Mapping | None = None) -> bool:
    """Whether any choice of ``profile`` asks for a GPU (see :func:`resolved_gpus`)."""
    if resolved_gpus(profile, base=base) is not None:
        return True
    option, by_choice = gpu_choices(profile, base=base)
    return any(r is not None for r in by_choice.values())


def gpu_choices(profile: Mapping, base: Mapping | None = None) -> tuple[str | None, dict[str, GpuRequest | None]]:
    """The option whose choices change the GPUs ``profile`` asks for, and each choice's GPUs.

    ``(None, {})`` when no option does (the profile asks for the same GPUs, or none, whatever
    the user picks). A ``gpu.option`` is that option; otherwise the first option with a choice
    that resolves to other GPUs than the default.
    """
    spec = gpu_spec(profile)
    options = profile.get("profile_options") if isinstance(profile, Mapping) else None
    if not isinstance(options, Mapping):
        return None, {}
    default = resolved_gpus(profile, base=base)
    names = [spec.option] if spec is not None and spec.option else list(options)
    for name in names:
        option_choices = (options.get(name) or {}).get("choices") or {} if isinstance(options.get(name), Mapping) else {}
        by_choice = {k: resolved_gpus(profile, {name: k}, base=base) for k in option_choices}
        if spec is not None and spec.option == name or any(r != default for r in by_choice.values()):
            return name, by_choice
    return None, {}


@dataclass(frozen=True)
class GpuPlan:
    """What one profile can ask for: its GPUs with the default choices, and per choice of the
    option that changes them (see :func:`gpu_choices`)."""

    request: GpuRequest | None
    option: str | None = None
    by_choice: Mapping[str, GpuRequest | None] = field(default_factory=dict)

    @property
    def asks_for_gpu(self) -> bool:
        return self.request is not None or any(r is not None for r in self.by_choice.values())

    def requests(self) -> list[GpuRequest]:
        out = [self.request] if self.request is not None else []
        return out + [r for r in self.by_choice.values() if r is not None]


def gpu_plans(profile_list, base: Mapping | None = None) -> list[GpuPlan]:
    """The :class:`GpuPlan` of each profile of ``profile_list``, in order.

    The plans depend only on the profiles and the configured limits, so callers rendering the
    form on every request compute them once per configuration.
    """
    out = []
    for profile in _profiles(profile_list):
        option, by_choice = gpu_choices(profile, base)
        out.append(GpuPlan(resolved_gpus(profile, base=base), option, by_choice))
    return out


def suggest_alternative(profile_list, refused: str | None = None, base: Mapping | None = None,
                        plans: list[GpuPlan] | None = None) -> str | None:
    """The display name of a profile to suggest instead of the refused one, or ``None``.

    Never the refused profile (by slug) and never a profile any of whose choices asks for a
    GPU: pointing back at the problem helps nobody. ``None`` means there is no such profile, and
    the message must then say so and name none.
    """
    profiles = _profiles(profile_list)
    plans = plans if plans is not None and len(plans) == len(profiles) else [None] * len(profiles)
    for profile, plan in zip(profiles, plans):
        if not isinstance(profile, Mapping) or not profile.get("display_name"):
            continue
        if refused is not None and profile.get("slug") == refused:
            continue
        if plan.asks_for_gpu if plan is not None else asks_for_gpu(profile, base):
            continue
        return str(profile["display_name"])
    return None


def gpu_request(profile_list: list, user_options: Mapping | None, base: Mapping | None = None) -> GpuRequest | None:
    """The GPUs ``user_options`` ask for with this (initialized) profile list, or ``None``."""
    user_options = user_options or {}
    profile = find_profile(profile_list, user_options.get("profile"))
    if profile is None:
        return None
    choices = {k: v for k, v in user_options.items() if k != "profile" and isinstance(v, str)}
    return resolved_gpus(profile, choices, base=base)


def gpu_tolerations(resources: Iterable[str], tolerations: Iterable[Mapping]) -> list[dict]:
    """The tolerations a pod asking for ``resources`` should get, beyond ``tolerations``.

    What GKE's ExtendedResourceToleration admission does: for each extended resource the pod
    asks for, tolerate the taint of that name (``operator: Exists, effect: NoSchedule``). For
    MIG slices also the vendor's ``nvidia.com/gpu`` taint, which NVIDIA pools carry. Taints the
    pod already tolerates get nothing new. Empty for a pod without GPUs.
    """
    current = [t for t in tolerations if isinstance(t, Mapping)]
    out: list[dict] = []
    for resource in sorted(set(resources)):
        for key in dict.fromkeys((resource, taint_key(resource))):
            taint = {"key": key, "value": "present", "effect": "NoSchedule"}
            if any(_tolerates_any_value(t, taint) for t in current + out):
                continue
            out.append({"key": key, "operator": "Exists", "effect": "NoSchedule"})
    return out


def _tolerates_any_value(toleration: Mapping, taint: Mapping) -> bool:
    # Toleration.ToleratesTaint, for a taint of any value: only Exists (or an empty key) does.
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("key") and toleration["key"] != taint["key"]:
        return False
    return (toleration.get("operator") or "Equal") == "Exists"


# -- the spawn form ---------------------------------------------------------------------------


@dataclass
class ChoiceView:
    value: str
    count: int
    available: bool
    reason: str = ""
    reason_code: str = ""
    free: int | None = None
    selected: bool = False


@dataclass
class ProfileView:
    """What the spawn form shows for one profile."""

    slug: str
    gpu: bool = False
    available: bool = True
    checked: bool = False
    resource: str = ""
    type: str = ""
    count: int | None = None
    text: str = ""  # "3 of 8 A100 free · you use 0 of 1"
    reason: str = ""  # why it is disabled, for the user
    reason_code: str = ""  # one of jhplatform.policy.gpu_ledger.REASONS
    free: int | None = None
    total: int | None = None
    user_used: int = 0
    user_cap: int | None = None
    option: str | None = None
    choices: dict[str, ChoiceView] = field(default_factory=dict)

    def as_dict(self) -> dict:
        # What asdict() gives, without its deep copies (the form renders this on every request).
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["choices"] = {k: {f.name: getattr(c, f.name) for f in fields(c)} for k, c in self.choices.items()}
        return out


def _apply_decision(view: ProfileView, d: Decision) -> None:
    view.free, view.total, view.user_used, view.user_cap = d.free, d.total, d.user_used, d.user_cap
    view.text = availability_text(d)


def build_form_view(profile_list: list, ledger_view, user_options: Mapping | None = None,
                    base: Mapping | None = None, plans: list[GpuPlan] | None = None) -> list[ProfileView]:
    """Per profile of an initialized ``profile_list``: availability, disabled state and reason.

    ``ledger_view`` has ``decide(resource, type, count, selector) -> Decision`` (a
    :class:`jhplatform.policy.gpu_ledger.LedgerView`), so the form uses exactly the spawn's policy.
    A GPU profile is one :func:`resolved_gpus` says asks for a GPU (a ``gpu`` entry or plain
    ``extra_resource_limits``). The profile to check is the user's last one if available, else
    the default if available, else the first available one; likewise the selected choice of a
    GPU option. ``base`` is the spawner's configured resource limits (see :func:`resolved_gpus`);
    ``plans`` the profiles' :func:`gpu_plans`, if the caller keeps them.
    """
    user_options = user_options or {}
    views: list[ProfileView] = []
    profiles = _profiles(profile_list)
    if plans is None or len(plans) != len(profiles):
        plans = gpu_plans(profiles, base)
    for profile, plan in zip(profiles, plans):
        pv = ProfileView(slug=profile.get("slug", ""))
        option, by_choice = plan.option, plan.by_choice
        if option is None:
            req = plan.request
            if req is not None:
                pv.gpu, pv.resource, pv.type = True, req.resource, req.type
                d = ledger_view.decide(req.resource, req.type, req.count, req.selector)
                pv.count = req.count
                pv.available, pv.reason, pv.reason_code = d.allowed, d.message, d.reason or ""
                _apply_decision(pv, d)
        elif any(r is not None for r in by_choice.values()):
            first = next(r for r in by_choice.values() if r is not None)
            pv.gpu, pv.resource, pv.type, pv.option = True, first.resource, first.type, option
            decisions = {}
            for key, req in by_choice.items():
                if req is None:
                    pv.choices[key] = ChoiceView(key, 0, True)
                    continue
                d = decisions[key] = ledger_view.decide(req.resource, req.type, req.count, req.selector)
                pv.choices[key] = ChoiceView(key, req.count, d.allowed, d.message, d.reason or "", d.free)
            smallest = min(decisions, key=lambda k: pv.choices[k].count)
            _apply_decision(pv, decisions[smallest])
            pv.available = any(c.available for c in pv.choices.values())
            if not pv.available:
                pv.reason, pv.reason_code = decisions[smallest].message, decisions[smallest].reason or ""
            wanted = [user_options.get(option) if user_options.get("profile") == pv.slug else None,
                      default_choice(profile, option)]
            pick = next((k for k in wanted if k in pv.choices and pv.choices[k].available), None)
            pick = pick or next((k for k, c in pv.choices.items() if c.available), None)
            if pick is not None:
                pv.choices[pick].selected = True
                pv.count = pv.choices[pick].count
        views.append(pv)
    by_slug = {v.slug: v for v in views}
    wanted = [user_options.get("profile"), next((p.get("slug") for p in _profiles(profile_list) if p.get("default")), None)]
    pick = next((s for s in wanted if s in by_slug and by_slug[s].available), None)
    pick = pick or next((v.slug for v in views if v.available), None)
    if pick is not None:
        by_slug[pick].checked = True
    return views


def annotate_profiles(profile_list: list, views: list[ProfileView]) -> list:
    """A copy of ``profile_list`` with each profile's view under ``gpu_view`` (for the template)."""
    out = []
    for profile, view in zip(_profiles(profile_list), views):
        out.append({**profile, "gpu_view": view.as_dict()})
    return out


__all__ = [
    "ChoiceView",
    "ExtendList",
    "GpuProfileError",
    "GpuRequest",
    "GpuSpec",
    "ProfileView",
    "RequireNodeLabel",
    "annotate_profiles",
    "asks_for_gpu",
    "GpuPlan",
    "gpu_choices",
    "gpu_plans",
    "gpu_tolerations",
    "resolved_gpus",
    "suggest_alternative",
    "build_form_view",
    "default_choice",
    "default_toleration",
    "find_profile",
    "gpu_problems",
    "gpu_request",
    "gpu_spec",
    "gpu_specs",
    "normalize_profiles",
    "taint_key",
    "validate_profiles",
]
