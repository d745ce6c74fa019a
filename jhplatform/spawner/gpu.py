"""Quota-aware GPU profiles for PlatformSpawner: the glue between KubeSpawner and the policy.

The policy is pure and lives elsewhere: :mod:`jhplatform.policy.profiles` (GPU profiles as data, the
form's view) and :mod:`jhplatform.policy.gpu_ledger` (the :class:`~jhplatform.policy.gpu_ledger.GpuLedger`). This
module feeds the ledger from watches and applies its decisions at KubeSpawner's extension points:

- ``profile_list`` is validated when the config is loaded and normalized (each GPU profile gets
  its resource limit, toleration and node selection in ``kubespawner_override``);
- what a profile asks for is :func:`jhplatform.policy.profiles.resolved_gpus` everywhere, so a
  profile written the plain KubeSpawner way (``extra_resource_limits``) is a GPU profile too;
- ``get_pod_manifest`` gives a pod that asks for a GPU the toleration of the taint named like
  its resource (``gpu_default_toleration``, as GKE's ExtendedResourceToleration admission);
- the spawn form (``options_form``) is rendered per request, from a template compiled once,
  and shows what is free;
- ``run_options_from_form`` (form submissions) and ``load_user_options`` (every spawn, the REST
  API's included) decide and reserve **synchronously**: there is no ``await`` between the
  ledger's decision and the reservation, so on the hub's single event loop two spawns can never
  both get the last GPU. A refusal is a form error or an HTTP 400 with a clear message, made
  before any Kubernetes request, and it does not count toward ``consecutive_failure_limit``;
- ``_start`` turns an "exceeded quota" 403 from the apiserver into a clear message, stops a pod
  the scheduler cannot place with a message by the real reason (no free GPU, or how the
  cluster is set up: :mod:`jhplatform.policy.unschedulable`), and releases the reservation
  however the spawn ends.

Where the data comes from, with no Kubernetes request per decision:

- pods: KubeSpawner's own class-level pod reflector, with its store swapped for one that tells
  the ledger about every change (:class:`GpuPodReflector`);
- ResourceQuotas: a reflector of the same kind, one per namespace (:class:`GpuQuotaReflector`);
  the hub needs ``get/list/watch`` on ``resourcequotas`` (``helm-values/gpu-rbac.yaml``);
- nodes, only with ``gpu_capacity_from_nodes``: :class:`GpuNodeReflector` (cluster-scoped, so it
  needs the optional ClusterRole in the same manifest).

See docs/gpu.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from functools import partial

from jupyterhub.utils import maybe_future
from kubernetes_asyncio import watch as k8s_watch
from kubernetes_asyncio.client.rest import ApiException
from kubespawner.reflector import ResourceReflector
from kubespawner.spawner import PodReflector
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from tornado import web
from traitlets import Bool, Dict, Float, Int, TraitError, default, validate
from traitlets.config import LoggingConfigurable

from ..policy.profiles import (
    GpuProfileError,
    annotate_profiles,
    build_form_view,
    find_profile,
    gpu_plans,
    gpu_problems,
    gpu_request,
    gpu_spec,
    gpu_specs,
    gpu_tolerations,
    normalize_profiles,
    suggest_alternative,
    validate_profiles,
)
from ..policy.unschedulable import (
    REFUSAL_REASONS,
    admin_fix,
    classify_unschedulable,
    unschedulable_condition,
    user_message,
)
from ..policy.gpu_ledger import (
    REASONS,
    Decision,
    GpuLedger,
    Policy,
    Usage,
    count_of,
    gpu_annotations,
    is_gpu_resource,
    render_message,
)

# -- the process-wide ledger ------------------------------------------------------------------

_LEDGER = GpuLedger()


def gpu_ledger() -> GpuLedger:
    """The hub process's ledger, shared by every spawner (like KubeSpawner's reflectors)."""
    return _LEDGER


def reset_gpu_ledger() -> GpuLedger:
    """Start over with an empty ledger and no remembered watch failures (for tests that run
    spawners in-process)."""
    global _LEDGER
    _LEDGER = GpuLedger()
    GpuQuotaMixin._gpu_failed_at.clear()
    return _LEDGER


# -- metrics (served by JupyterHub at /hub/metrics) ----------------------------------------------

GPU_REFUSALS = Counter(
    "jhplatform_gpu_refusals",
    "GPU spawns refused, by reason (user_cap, group_cap, quota, pool, nodes, quota_exceeded, unschedulable, "
    "untolerated_taint, node_affinity, unschedulable_other)",
    ["reason"],
)


class _GpuGauges:
    """``jhplatform_gpus_in_use`` and ``jhplatform_gpus_free`` per resource and type, computed from
    the ledger at scrape time so they are never stale."""

    def describe(self):
        yield GaugeMetricFamily("jhplatform_gpus_in_use", "GPUs this hub's servers hold or have reserved", labels=["resource", "type"])
        yield GaugeMetricFamily("jhplatform_gpus_free", "GPUs a new server could still get (tightest of quota, pool, nodes)", labels=["resource", "type"])

    def collect(self):
        in_use = GaugeMetricFamily("jhplatform_gpus_in_use", "GPUs this hub's servers hold or have reserved", labels=["resource", "type"])
        free = GaugeMetricFamily("jhplatform_gpus_free", "GPUs a new server could still get (tightest of quota, pool, nodes)", labels=["resource", "type"])
        for resource, type_, used, available in _LEDGER.kind_stats():
            in_use.add_metric([resource, type_], used)
            if available is not None:
                free.add_metric([resource, type_], available)
        yield in_use
        yield free


if not getattr(REGISTRY, "_jhplatform_gpu_gauges", False):
    REGISTRY.register(_GpuGauges())
    REGISTRY._jhplatform_gpu_gauges = True


# -- reflectors that keep the ledger current ----------------------------------------------------


class _Tracked(dict):
    """The reflector's store, telling ``on_set``/``on_pop`` about each watch event."""

    def __init__(self, data, on_set, on_pop):
        super().__init__(data)
        self._on_set, self._on_pop = on_set, on_pop

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._on_set(key, value)

    def pop(self, key, *default):
        present = key in self
        value = super().pop(key, *default)
        if present:
            self._on_pop(key)
        return value


class GpuPodReflector(PodReflector):
    """KubeSpawner's pod reflector whose store also updates the GPU ledger.

    ResourceReflector replaces ``resources`` wholesale on every (re)list and sets or pops single
    keys on watch events; the validator below wraps each new store so both reach the ledger.
    A relist is also how usage is rebuilt after a hub restart.
    """

    @validate("resources")
    def _track(self, proposal):
        ledger = gpu_ledger()
        ledger.rebuild(proposal["value"], namespace=None if self.omit_namespace else self.namespace)
        return _Tracked(proposal["value"], ledger.pod_updated, ledger.pod_removed)


class GpuQuotaReflector(ResourceReflector):
    """Watches the ResourceQuotas of the spawner's namespace (of all namespaces with
    ``enable_user_namespaces``) for the GPU ledger."""

    kind = "resourcequotas"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("list_method_name", "list_resource_quota_for_all_namespaces" if kwargs.get("omit_namespace")
                          else "list_namespaced_resource_quota")
        super().__init__(*args, **kwargs)

    def _sync(self, namespace: str) -> None:
        gpu_ledger().set_quotas(namespace, [q for q in self.resources.values() if q["metadata"].get("namespace") == namespace])

    @validate("resources")
    def _track(self, proposal):
        value = proposal["value"]
        namespaces = {q["metadata"].get("namespace", "") for q in value.values()} | {self.namespace or ""}
        ledger = gpu_ledger()
        for ns in namespaces:
            ledger.set_quotas(ns, [q for q in value.values() if q["metadata"].get("namespace") == ns])
        return _Tracked(value, lambda k, q: self._sync(q["metadata"].get("namespace", "")), lambda k: self._sync(k.split("/", 1)[0]))


class GpuNodeReflector(ResourceReflector):
    """Watches nodes (cluster-scoped) for node-allocatable GPU capacity.

    KubeSpawner's ResourceReflector keys objects by ``metadata.namespace``, which nodes do not
    have, so this one lists and watches by itself (same shape: ``start``, ``stop``,
    ``first_load_future``), relisting after every watch timeout or error.
    """

    kind = "nodes"

    def __init__(self, *args, **kwargs):
        kwargs.update(list_method_name="list_node", omit_namespace=True)
        super().__init__(*args, **kwargs)
        self._rv: str | None = None

    async def _list_and_update(self, resource_version=None):
        resp = await self.api.list_node(_request_timeout=self.request_timeout, _preload_content=False)
        if resp.status >= 400:
            # A refusal (403 without the nodes ClusterRole) must read as the apiserver's message.
            body = await resp.read()
            try:
                message = json.loads(body).get("message") or body.decode(errors="replace")
            except (ValueError, AttributeError):
                message = body.decode(errors="replace")
            raise RuntimeError(f"{resp.status}: {message}")
        data = json.loads(await resp.read())
        self.resources = {n["metadata"]["name"]: n for n in data["items"]}
        gpu_ledger().set_nodes(self.resources.values())
        if not self.first_load_future.done():
            self.first_load_future.set_result(None)
        self._rv = data["metadata"]["resourceVersion"]
        return self._rv

    async def _watch_and_update(self):
        delay = 0.1
        while not self._stopping:
            w = k8s_watch.Watch()
            try:
                # start() has just listed; afterwards relist before every new watch.
                rv, self._rv = self._rv or await self._list_and_update(), None
                delay = 0.1
                method = partial(self.api.list_node, _preload_content=False)
                async with w.stream(method, resource_version=rv, timeout_seconds=self.timeout_seconds,
                                    _request_timeout=self.request_timeout) as stream:
                    async for event in stream:
                        node = event["raw_object"]
                        name = node.get("metadata", {}).get("name")
                        if event["type"] == "DELETED":
                            self.resources.pop(name, None)
                        elif event["type"] in ("ADDED", "MODIFIED") and name:
                            self.resources[name] = node
                        else:
                            break  # ERROR (e.g. 410 Gone): relist
                        gpu_ledger().set_nodes(self.resources.values())
                        if self._stopping:
                            break
            except asyncio.CancelledError:
                if self._stopping:
                    return  # stop() cancelled us: a clean end, as KubeSpawner's reflectors do
                raise
            except Exception:
                delay = min(delay * 2, 30)
                self.log.exception("Error watching nodes for GPU capacity, retrying in %ss", delay)
                await asyncio.sleep(delay)
            finally:
                w.stop()
                await w.close()


class _NormalizedProfileList:
    """A callable ``profile_list`` whose result is validated and normalized like a static one."""

    def __init__(self, fn):
        self.fn = fn

    async def __call__(self, spawner):
        profile_list = await maybe_future(self.fn(spawner))
        validate_profiles(profile_list)
        return normalize_profiles(profile_list) if gpu_specs(profile_list) else profile_list


# -- the mixin -----------------------------------------------------------------------------------


def _profile_shape(profile_list) -> tuple:
    """Which profiles and option choices a profile list offers (cheap to compute per render)."""
    shape = []
    for p in profile_list or []:
        if not isinstance(p, dict):
            continue
        options = tuple(
            (name, tuple((spec or {}).get("choices") or ()), bool(((spec or {}).get("unlisted_choice") or {}).get("enabled")))
            for name, spec in (p.get("profile_options") or {}).items()
        )
        shape.append((p.get("slug"), options))
    return tuple(shape)


class GpuQuotaMixin(LoggingConfigurable):
    """Quota-aware GPU profiles; mix in before KubeSpawner (see the module docstring)."""

    gpu_pools = Dict(
        value_trait=Int(),
        config=True,
        help="""
        GPUs this hub may use per GPU type (a profile's ``gpu.type``) or per resource name, for
        clusters without a ResourceQuota on GPUs. Only this hub's own servers count against a
        pool. With a quota too, the tighter limit wins.

        Example::

            c.PlatformSpawner.gpu_pools = {"A100": 8, "nvidia.com/mig-1g.10gb": 14}
        """,
    )

    gpu_user_limit = Int(
        0,
        config=True,
        help="""
        GPUs one user may hold at once, across all their servers (0, the default: no limit).

        Example::

            c.PlatformSpawner.gpu_user_limit = 1
        """,
    )

    gpu_user_limit_by_group = Dict(
        value_trait=Int(),
        config=True,
        help="""
        Per-user GPU limits for members of these groups, instead of ``gpu_user_limit`` (a user in
        several of them gets the largest). Groups are JupyterHub groups (the authenticator can
        keep them in sync with your identity provider).

        Example::

            c.PlatformSpawner.gpu_user_limit_by_group = {"researchers": 4}
        """,
    )

    gpu_group_limits = Dict(
        value_trait=Int(),
        config=True,
        help="""
        GPUs all members of a group may hold together. A server counts against the groups its
        user was in when it started, until it stops.

        Example::

            c.PlatformSpawner.gpu_group_limits = {"course-101": 4, "students": 2}
        """,
    )

    gpu_capacity_from_quotas = Bool(
        True,
        config=True,
        help="""
        Read GPU capacity from the namespace's ResourceQuotas (``requests.nvidia.com/gpu`` etc.),
        kept current by a watch. Needs get/list/watch on resourcequotas
        (helm-values/gpu-rbac.yaml). Turn off only if the hub may not read quotas; the apiserver
        still enforces them and an "exceeded quota" refusal becomes a clear message.

        Example::

            c.PlatformSpawner.gpu_capacity_from_quotas = False
        """,
    )

    gpu_capacity_from_nodes = Bool(
        False,
        config=True,
        help="""
        Also cap GPUs by what schedulable, Ready nodes can allocate (matching a profile's
        ``gpu.type_label``/``type_value``). Needs the optional ClusterRole for nodes in
        helm-values/gpu-rbac.yaml. Only this hub's servers are counted as using them.

        Example::

            c.PlatformSpawner.gpu_capacity_from_nodes = True
        """,
    )

    gpu_unschedulable_timeout = Float(
        0,
        config=True,
        help="""
        Seconds a GPU pod may stay unschedulable for lack of GPUs (``FailedScheduling …
        Insufficient nvidia.com/gpu``) before the spawn is stopped with a clear message. 0 (the
        default) stops it at once; raise it when a node autoscaler adds GPU nodes on demand.
        Configuration problems (an untolerated taint, a node selector no node matches) do not
        wait: they are stopped at once with a message that says so.

        Example::

            c.PlatformSpawner.gpu_unschedulable_timeout = 600
        """,
    )

    gpu_default_toleration = Bool(
        True,
        config=True,
        help="""
        Give every pod that asks for a GPU a toleration of the GPU node pool's taint, as GKE's
        ExtendedResourceToleration admission does: for each GPU resource the pod asks for
        (``nvidia.com/gpu``, ``amd.com/gpu``, ...) ``{"key": <resource>, "operator": "Exists",
        "effect": "NoSchedule"}`` (for MIG slices also ``nvidia.com/gpu``). On by default, so a
        profile written the plain KubeSpawner way (``extra_resource_limits``) starts on a tainted
        GPU pool. Pods without a GPU never get it. Turn it off when your GPU nodes are not
        tainted or your profiles set their own tolerations; a profile can turn it off for
        itself with ``kubespawner_override: {"gpu_default_toleration": False}``.

        Example::

            c.PlatformSpawner.gpu_default_toleration = False
        """,
    )

    gpu_form_reservation_seconds = Float(
        60,
        config=True,
        help="""
        How long a GPU reserved when the spawn form is submitted is held for the spawn to claim
        it. The spawn claims it within milliseconds; this only frees GPUs whose spawn never
        started (say, the hub's concurrent_spawn_limit refused it).

        Example::

            c.PlatformSpawner.gpu_form_reservation_seconds = 30
        """,
    )

    # KubeSpawner renders its profile form once per spawner; ours is rendered per request.
    @default("options_form")
    def _options_form_default(self):
        if not self.profile_list:
            return ""
        return self._gpu_render_options_form

    @default("profile_form_template")
    def _gpu_profile_form_template_default(self):
        from .form import FORM_TEMPLATE

        return FORM_TEMPLATE

    @validate("profile_list")
    def _gpu_validate_profile_list(self, proposal):
        value = proposal["value"]
        if callable(value):
            return value if isinstance(value, _NormalizedProfileList) else _NormalizedProfileList(value)
        try:
            validate_profiles(value)
        except GpuProfileError as e:
            raise TraitError(str(e)) from None
        return normalize_profiles(value) if gpu_specs(value) else value

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._gpu_spawning = False  # inside _start: load_user_options decides and reserves
        self._gpu_key: str | None = None  # the pod key this spawn's reservation is held under
        self._gpu_form_key: str | None = None
        self._gpu_usage: Usage | None = None
        self._gpu_inner: asyncio.Future | None = None
        self._gpu_watch_task: asyncio.Task | None = None
        self._gpu_unschedulable = None  # the scheduler's classified verdict that stopped the spawn
        self._gpu_plans_cache = None
        self._gpu_refused_profile: str | None = None  # slug of the profile this spawn asked for
        self._gpu_spawn_profiles: list | None = None
        self._gpu_profile_name = ""

    # -- sources --

    _gpu_failed_at: dict = {}  # reflector key -> time it failed to start (class-wide)

    def _gpu_sync_policy(self, profile_list) -> GpuLedger:
        ledger = gpu_ledger()
        ledger.policy = self._gpu_policy()
        ledger.namespace = self.namespace
        for req in self._gpu_profile_requests(profile_list):
            if (req.resource, req.type) not in ledger.kinds:
                ledger.add_kind(req.resource, req.type, req.selector)
        return ledger

    def _gpu_policy(self) -> Policy:
        """The ledger's caps and pools from this spawner's settings. The entitlements mixin
        (jhplatform.spawner.entitlements) overrides it so per-user and per-group caps come from
        the groups' entitlements when they are configured."""
        return Policy(
            pools=dict(self.gpu_pools),
            user_limit=self.gpu_user_limit,
            user_limit_by_group=dict(self.gpu_user_limit_by_group),
            group_limits=dict(self.gpu_group_limits),
            capacity_from_nodes=self.gpu_capacity_from_nodes,
        )

    def _gpu_profile_requests(self, profile_list) -> list:
        """Every GPU request a profile or choice of ``profile_list`` can make (for kinds and metrics)."""
        return [r for plan in self._gpu_plans(profile_list) for r in plan.requests()]

    def _gpu_plans(self, profile_list) -> list:
        """What each profile can ask for (policy.profiles.gpu_plans), once per configuration.

        A static ``profile_list`` is the same configured object on every render; the plans are
        kept for it and the configured limits. A callable one is planned on each call.
        """
        base = self._gpu_base()
        raw = self.profile_list
        # The list planned can be a subset of the configured one (entitlements drop profiles and
        # option choices per user), so its shape is part of the key.
        key = None if callable(raw) else (id(raw), repr(base), _profile_shape(profile_list))
        cached = self._gpu_plans_cache
        if key is not None and cached is not None and cached[0] == key and cached[1] is raw:
            return cached[2]
        plans = gpu_plans(profile_list, base)
        if key is not None:
            self._gpu_plans_cache = (key, raw, plans)
        return plans

    async def _gpu_start_optional(self, kind: str, reflector_class, **kwargs) -> None:
        # A missing RBAC rule must not break spawning: the apiserver still enforces quotas.
        key = self._get_reflector_key(kind)
        failed = GpuQuotaMixin._gpu_failed_at.get(key)
        if failed is not None and time.monotonic() - failed < 60:
            return
        try:
            await self._start_reflector(kind=kind, reflector_class=reflector_class, replace=failed is not None, **kwargs)
            GpuQuotaMixin._gpu_failed_at.pop(key, None)
        except Exception as e:
            GpuQuotaMixin._gpu_failed_at[key] = time.monotonic()
            # The failed reflector's first_load_future holds the error and nobody awaits it;
            # read it so asyncio does not report "Future exception was never retrieved".
            first_load = getattr(self.__class__.reflectors.get(key), "first_load_future", None)
            if first_load is not None and first_load.done() and not first_load.cancelled():
                first_load.exception()
            self.log.error(
                "Cannot watch %s for GPU capacity (%s); GPU decisions go on without them and retry in 60 s. "
                "Grant the hub get/list/watch on %s (helm-values/gpu-rbac.yaml) or turn off %s.",
                # One line: an ApiException's text spans several (KubeSpawner logs the apiserver's message).
                kind, f"{e.status} {e.reason}" if isinstance(e, ApiException) else e, kind,
                "gpu_capacity_from_quotas" if kind == "resourcequotas" else "gpu_capacity_from_nodes",
            )

    async def _gpu_ensure_sources(self, profile_list) -> GpuLedger:
        """Start the watches the ledger needs (API requests only the first time per process)."""
        ledger = self._gpu_sync_policy(profile_list)
        await self._start_watching_pods()
        if self.gpu_capacity_from_quotas:
            await self._gpu_start_optional("resourcequotas", GpuQuotaReflector, omit_namespace=self.enable_user_namespaces)
        if self.gpu_capacity_from_nodes:
            await self._gpu_start_optional("nodes", GpuNodeReflector)
            if self._get_reflector_key("nodes") in GpuQuotaMixin._gpu_failed_at:
                # Without the nodes watch there is no node data: capping by it would refuse every
                # GPU spawn ("no GPUs available"), so decide as without gpu_capacity_from_nodes.
                ledger.policy = dataclasses.replace(ledger.policy, capacity_from_nodes=False)
        return ledger

    async def _start_reflector(self, kind, reflector_class, replace=False, **kwargs):
        # KubeSpawner's pod reflector, with a store that keeps the GPU ledger current.
        if kind == "pods" and reflector_class is PodReflector:
            reflector_class = GpuPodReflector
        reflector = await super()._start_reflector(kind, reflector_class, replace=replace, **kwargs)
        if kind == "pods" and not isinstance(reflector, GpuPodReflector):
            # Started by a plain KubeSpawner in this process: count what it has now.
            gpu_ledger().rebuild(reflector.pods, namespace=None if reflector.omit_namespace else reflector.namespace)
        return reflector

    # -- helpers --

    async def _gpu_profile_list(self) -> list:
        profile_list = self._sorted_dict_values(self.profile_list)
        if callable(profile_list):
            profile_list = await maybe_future(profile_list(self))
        return self._get_initialized_profile_list(profile_list)

    def _gpu_pod_key(self) -> str:
        return f"{self.namespace}/{self.pod_name}"

    def _gpu_groups(self) -> list[str]:
        return sorted(g.name for g in (getattr(self.user, "groups", None) or []))

    def _gpu_base(self) -> dict:
        """The configured resource limits profile overrides merge into (before any override)."""
        configured = getattr(self, "_configured", {}) or {}
        return {
            "extra_resource_limits": configured.get("extra_resource_limits", self.extra_resource_limits),
            "extra_resource_guarantees": configured.get("extra_resource_guarantees", self.extra_resource_guarantees),
        }

    def _gpu_alternative(self, profile_list, refused: str | None = None) -> str | None:
        """A profile without a GPU to suggest in messages; never ``refused`` (a slug)."""
        return suggest_alternative(profile_list, refused, self._gpu_base(), self._gpu_plans(profile_list))

    def _gpu_refused_slug(self, profile_list, options=None) -> str | None:
        options = self.user_options if options is None else options
        profile = find_profile(profile_list, (options or {}).get("profile")) if profile_list else None
        return profile.get("slug") if profile is not None else None

    def _gpu_usage_for(self, resource: str, count: int, type_: str) -> Usage:
        return Usage.of(self.user.name, self.namespace, resource, count, type_, self._gpu_groups())

    def _gpu_request_from_traits(self, profile_list):
        """(resource, count, type, selector) of the pod about to be made, after every override.

        The count is what the pod will really ask for (``extra_resource_limits`` after profile,
        option and group overrides), so the ledger never counts something else than the quota
        and the scheduler will. The type comes from the selected profile's ``gpu`` entry; the
        node labels from it or from the profile's own ``node_selector`` (``resolved_gpus``).
        """
        profile = find_profile(profile_list, (self.user_options or {}).get("profile")) if profile_list else None
        spec = gpu_spec(profile) if profile is not None else None
        known = {spec.resource} if spec else set()
        limits = {**(self.extra_resource_guarantees or {}), **(self.extra_resource_limits or {})}
        gpus = {r: v for r, v in limits.items() if is_gpu_resource(r, known)}
        if not gpus:
            return None
        resource = spec.resource if spec and spec.resource in gpus else sorted(gpus)[0]
        count = count_of(gpus[resource])
        if count <= 0:
            return None
        if spec and spec.resource == resource:
            return resource, count, spec.type, spec.selector
        # A plain profile: the node labels its overrides select, as the form decided with.
        planned = gpu_request(profile_list, self.user_options or {}, self._gpu_base()) if profile_list else None
        return resource, count, "", planned.selector if planned is not None and planned.resource == resource else ()

    def _gpu_refusal(self, reason: str, message: str, detail: str = "") -> web.HTTPError:
        """The exception that refuses a spawn for ``reason`` with ``message`` for the user."""
        GPU_REFUSALS.labels(reason=reason).inc()
        self.log.warning("GPU spawn refused for %s (%s: %s). %s", self._log_name, reason, REASONS.get(reason, reason), detail)
        self._gpu_not_a_failure()
        # "%s" so a message is never taken for a format string by the API's error writer.
        error = web.HTTPError(400, "%s", message)
        error.jupyterhub_message = message
        error.gpu_reason = reason
        return error

    def _gpu_not_a_failure(self) -> None:
        """Keep this refusal out of JupyterHub's consecutive-failure count.

        ``consecutive_failure_limit`` exists to stop a hub whose spawner is broken; a full GPU
        pool is not that, and 5 users asking for a busy GPU must not make the hub exit.
        JupyterHub counts in ``_track_failure_count``, a done-callback on the spawn's future
        (``self._spawn_future``) that reads this spawner's ``consecutive_failure_limit`` and
        increments ``handler.settings["failure_count"]``. It has no public switch, so: while this
        spawn ends, its limit is 0 (no exit is scheduled), and a done-callback added now (so it
        runs right after JupyterHub's, with nothing in between) takes the count back and restores
        the limit. Spawns not driven by a hub handler have nothing to adjust.
        """
        handler = getattr(self, "handler", None)
        future = getattr(self, "_spawn_future", None)
        if handler is None or future is None or future.done():
            return
        settings = handler.settings
        limit = self.consecutive_failure_limit
        self.consecutive_failure_limit = 0

        def uncount(f):
            self.consecutive_failure_limit = limit
            if not f.cancelled() and f.exception() is not None:
                settings["failure_count"] = max(0, settings.get("failure_count", 0) - 1)

        future.add_done_callback(uncount)

    # -- the spawn form --

    async def _gpu_render_options_form(self, spawner=None):
        profile_list = await self._gpu_profile_list()
        await self._gpu_ensure_sources(profile_list)
        return self._render_options_form(profile_list)

    def _render_options_form(self, profile_list):
        # KubeSpawner's form, with each profile's GPU availability for the template. The form is
        # rendered per request, so the template is compiled once (see compiled_form_template).
        profile_list = self._get_initialized_profile_list(profile_list)
        ledger = self._gpu_sync_policy(profile_list)
        view = ledger.view(self.user.name, self._gpu_groups(), self.namespace, key=self._gpu_pod_key(),
                           now=time.monotonic(), alternative=self._gpu_alternative(profile_list))
        views = build_form_view(profile_list, view, self.user_options or {}, self._gpu_base(), self._gpu_plans(profile_list))
        user_options = self.user_options or {}
        if user_options:
            try:
                self._validate_user_options(profile_list)
            except ValueError as e:
                self.log.warning("Not pre-selecting saved user_options on the spawn form: they failed validation: %s", e)
        template = compiled_form_template(self.profile_form_template, tuple(self.additional_profile_form_template_paths))
        return template.render(profile_list=annotate_profiles(profile_list, views), user_options=self.user_options)

    async def run_options_from_form(self, form_data):
        options = await maybe_future(super().run_options_from_form(form_data))
        profile_list = await self._gpu_profile_list()
        ledger = await self._gpu_ensure_sources(profile_list)
        request = gpu_request(profile_list, options, self._gpu_base())
        key = self._gpu_pod_key()
        # No await from here on: decide and reserve atomically.
        if request is None:
            if self._gpu_form_key:
                ledger.release(self._gpu_form_key)
            return options
        now = time.monotonic()
        decision = ledger.decide(self.user.name, self._gpu_groups(), request.resource, request.type, request.count,
                                 namespace=self.namespace, selector=request.selector, key=key, now=now,
                                 alternative=self._gpu_alternative(profile_list, self._gpu_refused_slug(profile_list, options)))
        if not decision.allowed:
            # Raised before the spawn starts: the form shows the message, nothing is counted.
            raise self._gpu_refusal(decision.reason, decision.message, f"free={decision.free} total={decision.total}")
        ledger.reserve(key, self._gpu_usage_for(request.resource, request.count, request.type),
                       expires=now + self.gpu_form_reservation_seconds)
        self._gpu_form_key = key
        return options

    # -- the spawn --

    async def load_user_options(self):
        await super().load_user_options()
        if not self._gpu_spawning:
            return  # rendering for a check (jhplatform.spawner.checks), not spawning
        profile_list = await self._gpu_profile_list()
        request = self._gpu_request_from_traits(profile_list)
        key = self._gpu_pod_key()
        if request is None:
            # No GPU: no watch needed, no Kubernetes request made here. Drop what a form
            # submission may have reserved for this server.
            for k in {key, self._gpu_form_key} - {None}:
                gpu_ledger().release(k)
            self._gpu_form_key = None
            return
        ledger = await self._gpu_ensure_sources(profile_list)
        # No await from here on: decide and reserve atomically.
        if self._gpu_form_key and self._gpu_form_key != key:
            ledger.release(self._gpu_form_key)
        self._gpu_form_key = None
        resource, count, type_, selector = request
        decision = ledger.decide(self.user.name, self._gpu_groups(), resource, type_, count, namespace=self.namespace,
                                 selector=selector, key=key, now=time.monotonic(),
                                 alternative=self._gpu_alternative(profile_list, self._gpu_refused_slug(profile_list)))
        if not decision.allowed:
            ledger.release(key)
            raise self._gpu_refusal(decision.reason, decision.message, f"free={decision.free} total={decision.total}")
        self._gpu_usage = self._gpu_usage_for(resource, count, type_)
        ledger.reserve(key, self._gpu_usage)
        self._gpu_key = key
        self._gpu_spawn_profiles = profile_list  # for the messages, also of a callable profile_list
        self._gpu_refused_profile = self._gpu_refused_slug(profile_list)
        self._gpu_profile_name = next((str(p.get("display_name") or p.get("slug")) for p in profile_list
                                       if p.get("slug") == self._gpu_refused_profile), self._gpu_refused_profile or "")
        self._gpu_watch_task = asyncio.ensure_future(self._gpu_watch_scheduling(key, resource, type_))

    async def _make_create_pod_request(self, pod, request_timeout):
        # KubeSpawner's one call that creates the pod (True when the apiserver accepted it). The
        # ledger needs to know that moment: the quota counts the pod from then on, before the pod
        # watch shows it (see GpuLedger.pod_created). There is no public hook after the create.
        try:
            created = await super()._make_create_pod_request(pod, request_timeout)
        except ApiException as e:
            if not (e.status == 403 and "exceeded quota" in str(e.body or "") and await self._own_pod_exists(pod)):
                raise
            # KubeSpawner retries a create that answered slower than its request timeout; the
            # first attempt's pod already holds the GPU, so the quota refuses the retry. The pod
            # is ours (KubeSpawner reads the PVC back after a 403 for the same reason).
            self.log.info("Pod %s already exists from an earlier attempt; the quota 403 was for the retry", self.pod_name)
            created = True
        if created and self._gpu_key is not None:
            gpu_ledger().pod_created(self._gpu_key)
        return created

    async def _own_pod_exists(self, pod) -> bool:
        """Whether a live pod of this name, made by this spawner for this server, exists."""
        try:
            current = await asyncio.wait_for(
                self.api.read_namespaced_pod(self.pod_name, self.namespace), self.k8s_api_request_timeout
            )
        except (ApiException, asyncio.TimeoutError):
            return False
        annotations = current.metadata.annotations or {}
        return (
            current.metadata.deletion_timestamp is None
            and annotations.get("hub.jupyter.org/username") == self.user.name
            and annotations.get("hub.jupyter.org/servername", "") == (self.name or "")
        )

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        if self.gpu_default_toleration:
            self._gpu_add_tolerations(pod)
        usage = self._gpu_usage if self._gpu_spawning else None
        if usage is not None and usage.counts:
            resource, count = usage.counts[0]
            pod.metadata.annotations = {**(pod.metadata.annotations or {}),
                                        **gpu_annotations(resource, count, usage.type, usage.groups)}
        return pod

    def _gpu_add_tolerations(self, pod) -> None:
        """Tolerate the taint named like each GPU resource the pod asks for (ExtendedResourceToleration)."""
        known = set(self.gpu_pools) | set(gpu_ledger().known_resources)
        resources = set()
        for c in list(pod.spec.containers or []) + list(pod.spec.init_containers or []):
            res = c.resources
            if res is None:
                continue
            names = set((res.limits or {}) if isinstance(res.limits, dict) else {}) | set((res.requests or {}) if isinstance(res.requests, dict) else {})
            resources |= {n for n in names if is_gpu_resource(n, known)}
        if not resources:
            return
        current = [self._to_toleration_dict(t) for t in pod.spec.tolerations or []]
        extra = gpu_tolerations(resources, current)
        if extra:
            from kubernetes_asyncio.client.models import V1Toleration

            pod.spec.tolerations = list(pod.spec.tolerations or []) + [V1Toleration(**t) for t in extra]

    @staticmethod
    def _to_toleration_dict(t) -> dict:
        if isinstance(t, dict):
            return t
        return {"key": t.key, "operator": t.operator, "value": t.value, "effect": t.effect}

    async def _start(self):
        # KubeSpawner.start() only wraps _start() in a future it keeps for progress(); _start()
        # creates the pod and waits for it, and KubeSpawner offers no public hook around that.
        # Overriding it is the narrowest way to (1) let load_user_options know it runs for a
        # spawn, (2) turn an "exceeded quota" 403 into a clear message, (3) stop a pod the
        # scheduler cannot place, and (4) release the reservation however the spawn ends (the
        # pod, once it exists, counts in the ledger by itself).
        self._gpu_spawning = True
        self._gpu_unschedulable = None
        self._gpu_inner = inner = asyncio.ensure_future(super()._start())
        try:
            return await inner
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._gpu_unschedulable is None or (task is not None and task.cancelling()):
                raise
            verdict, spec, resources = self._gpu_unschedulable
            message = self._gpu_unschedulable_message(verdict)
            try:
                await self.stop(now=True)
            except Exception:
                self.log.exception("Could not delete the unschedulable pod of %s", self._log_name)
            detail = (f"Profile {self._gpu_profile_name!r} cannot be scheduled ({verdict.kind}). "
                      f"Scheduler: {verdict.message} {admin_fix(verdict, spec, resources)}")
            raise self._gpu_refusal(REFUSAL_REASONS[verdict.kind], message, detail) from None
        except ApiException as e:
            if e.status == 403 and "exceeded quota" in str(e.body or ""):
                try:
                    detail = json.loads(e.body).get("message", "")
                except (ValueError, TypeError, AttributeError):
                    detail = str(e.body)
                raise self._gpu_refusal("quota_exceeded", self._gpu_quota_exceeded_message(), f"apiserver: {detail}") from None
            raise
        finally:
            self._gpu_spawning = False
            if self._gpu_watch_task is not None:
                self._gpu_watch_task.cancel()
                self._gpu_watch_task = None
            if self._gpu_key is not None:
                gpu_ledger().release(self._gpu_key)
                self._gpu_key = None
            self._gpu_usage = None

    def _gpu_quota_exceeded_message(self) -> str:
        type_ = self._gpu_usage.type if self._gpu_usage else ""
        return render_message(Decision(False, "quota_exceeded", "", None, None, 0, None, type=type_),
                              self._gpu_alternative(self._gpu_message_profiles(), self._gpu_refused_profile))

    def _gpu_unschedulable_message(self, verdict) -> str:
        type_ = self._gpu_usage.type if self._gpu_usage else ""
        alternative = self._gpu_alternative(self._gpu_message_profiles(), self._gpu_refused_profile)
        return user_message(verdict, self._gpu_profile_name, type_, alternative)

    def _gpu_message_profiles(self) -> list:
        if self._gpu_spawn_profiles is not None:
            return self._gpu_spawn_profiles
        profile_list = self._sorted_dict_values(self.profile_list)
        return [] if callable(profile_list) or not profile_list else self._get_initialized_profile_list(profile_list)

    async def _gpu_watch_scheduling(self, key: str, resource: str, type_: str) -> None:
        """Stop the spawn when the scheduler cannot place our GPU pod, whatever the reason.

        Reads the pod's ``PodScheduled`` condition from the pod reflector (the scheduler writes
        the same message there as in its ``FailedScheduling`` event), every 0.25 s, until the
        pod is bound to a node, and classifies it (jhplatform.policy.unschedulable): no free GPU
        is a capacity refusal, an untolerated taint or a node selector that matches no node a
        configuration refusal.
        """
        since = None
        try:
            while True:
                await asyncio.sleep(0.25)
                reflector = self.pod_reflector
                pod = reflector.pods.get(key) if reflector is not None else None
                if pod is not None and (pod.get("spec") or {}).get("nodeName"):
                    return
                message = unschedulable_condition(pod)
                if message is None:
                    since = None
                    continue
                now = time.monotonic()
                since = since or now
                verdict = classify_unschedulable(message, (resource,))
                # Only a full pool can change by waiting (an autoscaler adding nodes).
                if not verdict.is_capacity or now - since >= self.gpu_unschedulable_timeout:
                    self._gpu_unschedulable = (verdict, pod.get("spec") or {}, (resource,))
                    if self._gpu_inner is not None and not self._gpu_inner.done():
                        self._gpu_inner.cancel()
                    return
        except asyncio.CancelledError:
            pass


_FORM_TEMPLATES: dict = {}


def compiled_form_template(source: str, paths: tuple[str, ...] = ()):
    """The spawn form's Jinja template, compiled once per (template text, search paths).

    KubeSpawner's ``_render_options_form`` builds a new Environment and compiles the template
    on every call (about 95 % of a render): harmless when it renders once per spawner, costly
    for a form rendered per request. Same loaders and JSON policy as KubeSpawner's; a
    ``form.html`` found on ``additional_profile_form_template_paths`` is still reloaded when its
    file changes (Jinja's own cache checks it).
    """
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader

    key = (source, paths)
    entry = _FORM_TEMPLATES.get(key)
    if entry is None:
        env = Environment(loader=ChoiceLoader([FileSystemLoader(list(paths)), PackageLoader("kubespawner", "templates")]))
        env.policies["json.dumps_kwargs"] = {"sort_keys": False}
        entry = _FORM_TEMPLATES[key] = (env, env.from_string(source) if source else None)
    env, template = entry
    return template if template is not None else env.get_template("form.html")


def check_gpu_profiles(config) -> list[str]:
    """The GPU profile problems of a hub config (``c``), for the load-time check snippet."""
    for section in ("PlatformSpawner", "KubeSpawner"):
        if section in config and "profile_list" in config[section]:
            profile_list = config[section]["profile_list"]
            break
    else:
        return []
    if callable(profile_list):
        return []
    return gpu_problems(profile_list)


def fail_on_gpu_problems(config, stream=sys.stderr) -> None:
    """Print each GPU profile problem as ``FATAL: ...`` and exit 1 (the hub does not start)."""
    problems = check_gpu_profiles(config)
    if not problems:
        return
    for problem in problems:
        print(f"FATAL: {problem}", file=stream)
    print("FATAL: jhplatform refuses to start with GPU profiles that cannot work; see docs/gpu.md.", file=stream)
    sys.exit(1)


__all__ = [
    "GPU_REFUSALS",
    "GpuNodeReflector",
    "GpuPodReflector",
    "GpuQuotaMixin",
    "GpuQuotaReflector",
    "check_gpu_profiles",
    "fail_on_gpu_problems",
    "gpu_ledger",
    "reset_gpu_ledger",
]
