"""The emulated kubelet: walks scheduled pods through their phases (kube-emulator-spec §2.3).

One :class:`Kubelet` serves every node. It watches pods through the store, and for each pod
that has a ``spec.nodeName`` it writes the status a real kubelet would write, one storage write
per state change, and records the kubelet's legacy events:

- S1 → S2 (ContainerCreating): ``hostIP``/``hostIPs``, ``startTime``, the five conditions,
  container statuses waiting in ``ContainerCreating``; volumes referencing a missing
  secret/configMap/PVC keep the pod here with ``Warning FailedMount`` until the object exists;
- init containers run first, one after the other (sidecars, ``restartPolicy: Always``, keep
  running once started);
- per container: ``Pulling``/``Pulled``/``Created``/``Started`` events, then S3 (Running,
  ``podIP``, ready);
- container exit follows the pod's ``restartPolicy`` (``CrashLoopBackOff`` with a scaled
  back-off, or a terminal phase);
- graceful deletion: ``Killing`` events, containers terminated (143 on SIGTERM, 137 when the
  grace period runs out), a terminal phase in one write, then the final removal;
- eviction and ``activeDeadlineSeconds`` → phase ``Failed``.

Test and fault behaviours come from :class:`Behaviour` objects (``kubelet.add_behaviour``) and
from pod annotations with the prefix ``devcluster.jhplatform.io/`` (see :data:`ANNOTATIONS`).

The simulated kubelet runs nothing: containers "run" until a behaviour makes them exit.
:class:`~jhplatform.devcluster.process_kubelet.ProcessKubelet` overrides the container hooks
(``_launch``, ``_wait_exit``, ``_readiness``, ``_stop_container`` …) to run real processes.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import hashlib
import logging
import time
from dataclasses import dataclass, fields
from typing import Any

from .store import Change, now_rfc3339

log = logging.getLogger("jhplatform.devcluster.kubelet")

ANNOTATION_PREFIX = "devcluster.jhplatform.io/"

#: Pod annotations the kubelet reads (name without the prefix → meaning).
ANNOTATIONS = {
    "pull-error": "image pulls fail (ErrImagePull, then ImagePullBackOff); value = error message or 'true'",
    "exit-code": "containers exit with this code (after exit-after seconds)",
    "exit-after": "seconds a container runs before exiting with exit-code (default 0)",
    "never-ready": "'true': containers run but never become ready",
    "config-error": "CreateContainerConfigError; value = message or 'true'",
    "step-delay": "seconds between the kubelet's steps for this pod",
    "stop-after": "seconds a container takes to stop after SIGTERM (>= grace: SIGKILL, 137)",
    "container": "restrict the annotation faults above to this container name",
}

TERMINAL = ("Succeeded", "Failed")
_FALSE_WORDS = ("", "0", "f", "false", "n", "no", "off")


class _PodGone(Exception):
    """The pod this runtime manages is no longer in the store (or has a new uid)."""


class _StartError(Exception):
    """A container could not be started; the container waits with ``reason``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Behaviour:
    """A test or fault behaviour for matching containers.

    Match fields (``None`` matches anything): ``image`` is a substring of the container image,
    ``name`` an fnmatch pattern for the pod name, ``namespace`` and ``container`` exact names.
    Effect fields left ``None`` do not change anything, so behaviours can be layered; later
    behaviours and then pod annotations win.
    """

    image: str | None = None
    name: str | None = None
    namespace: str | None = None
    container: str | None = None
    # effects
    pull_error: str | bool | None = None
    exit_code: int | None = None
    exit_after: float | None = None
    never_ready: bool | None = None
    config_error: str | bool | None = None
    step_delay: float | None = None
    stop_after: float | None = None

    _MATCH = ("image", "name", "namespace", "container")

    def matches(self, pod: dict, container: dict | None = None) -> bool:
        md = pod.get("metadata") or {}
        if self.namespace is not None and md.get("namespace") != self.namespace:
            return False
        if self.name is not None and not fnmatch.fnmatchcase(md.get("name", ""), self.name):
            return False
        if container is None:
            spec = pod.get("spec") or {}
            containers = list(spec.get("initContainers") or []) + list(spec.get("containers") or [])
            if self.image is None and self.container is None:
                return True
            return any(self._matches_container(c) for c in containers)
        return self._matches_container(container)

    def _matches_container(self, container: dict) -> bool:
        if self.container is not None and container.get("name") != self.container:
            return False
        if self.image is not None and self.image not in (container.get("image") or ""):
            return False
        return True

    def effects(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self._MATCH and getattr(self, f.name) is not None}


@dataclass
class _Effective:
    pull_error: str | None = None
    exit_code: int | None = None
    exit_after: float = 0.0
    never_ready: bool = False
    config_error: str | None = None
    step_delay: float | None = None
    stop_after: float | None = None


def _truthy(value: str) -> bool:
    return value.strip().lower() not in _FALSE_WORDS


def _message_or_default(value: Any, default: str) -> str | None:
    if value is None or value is False:
        return None
    if value is True:
        return default
    text = str(value)
    if text.strip().lower() in ("true", "1", "yes", "y", "t"):
        return default
    if text.strip().lower() in _FALSE_WORDS:
        return None
    return text


def annotation_effects(pod: dict, container: dict | None, *, init: bool = False) -> dict[str, Any]:
    """The behaviour effects set by ``devcluster.jhplatform.io/*`` annotations for a container.

    Without a ``container`` annotation they apply to every regular container (not to init
    containers); with one, only to the container of that name.
    """
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    values = {k[len(ANNOTATION_PREFIX):]: v for k, v in ann.items() if k.startswith(ANNOTATION_PREFIX)}
    if not values:
        return {}
    target = values.get("container")
    if container is not None:
        if target is not None and container.get("name") != target:
            return {"step_delay": _float(values.get("step-delay"))} if "step-delay" in values else {}
        if target is None and init:
            return {"step_delay": _float(values.get("step-delay"))} if "step-delay" in values else {}
    out: dict[str, Any] = {}
    for key, value in values.items():
        value = str(value)
        try:
            if key == "pull-error":
                out["pull_error"] = value
            elif key == "config-error":
                out["config_error"] = value
            elif key == "exit-code":
                out["exit_code"] = int(value)
            elif key == "exit-after":
                out["exit_after"] = float(value)
            elif key == "never-ready":
                out["never_ready"] = _truthy(value)
            elif key == "step-delay":
                out["step_delay"] = float(value)
            elif key == "stop-after":
                out["stop_after"] = float(value)
        except ValueError:
            log.warning("ignoring annotation %s%s=%r: not a number", ANNOTATION_PREFIX, key, value)
    return {k: v for k, v in out.items() if v is not None}


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration.String`` (``10s``, ``1m20s``, ``5m0s``, ``20ms``)."""
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:.0f}ms" if ms >= 1 else f"{seconds * 1e6:.0f}µs"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    secs_text = f"{secs:.3f}".rstrip("0").rstrip(".") if secs != int(secs) else str(int(secs))
    if hours:
        return f"{hours}h{minutes}m{secs_text}s"
    if minutes:
        return f"{minutes}m{secs_text}s"
    return f"{secs_text}s"


def _sha(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def image_repo(image: str) -> str:
    """The image name without tag or digest (what ``imageID`` is prefixed with)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


def image_id(image: str) -> str:
    return f"{image_repo(image)}@sha256:{_sha('image', image)}"


class _PodRuntime:
    """What the kubelet knows about one pod (keyed by uid)."""

    def __init__(self, pod: dict):
        md, spec = pod["metadata"], pod.get("spec") or {}
        self.uid: str = md["uid"]
        self.namespace: str = md["namespace"]
        self.name: str = md["name"]
        self.node: str = spec.get("nodeName") or ""
        self.spec: dict = spec
        self.restart_policy: str = spec.get("restartPolicy") or "Always"
        self.init_specs: list[dict] = list(spec.get("initContainers") or [])
        self.main_specs: list[dict] = list(spec.get("containers") or [])
        self.init_status: dict[str, dict] = {}
        self.main_status: dict[str, dict] = {}
        self.accepted = False
        self.init_done = not self.init_specs
        self.sandbox_ready = False
        self.host_ip: str | None = None
        self.pod_ip: str | None = None
        self.start_time: str | None = None
        self.forced_phase: str | None = None
        self.reason: str | None = None
        self.message: str | None = None
        self.disruption: dict | None = None
        self.tasks: set[asyncio.Task] = set()
        self.lifecycle: asyncio.Task | None = None
        self.terminator: asyncio.Task | None = None
        self.deleting = False
        self.grace: float | None = None
        self.deadline: float | None = None  # loop time at which containers get SIGKILL
        self.wake = asyncio.Event()
        self.started: dict[str, asyncio.Event] = {}
        self.step_delay: float = 0.0
        self.finished = False  # terminal status written for deletion
        self.data: dict[str, Any] = {}  # subclass state (processes, directories)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def pod_ref(self) -> str:
        """``name_namespace(uid)``, the kubelet's ``format.Pod``."""
        return f"{self.name}_{self.namespace}({self.uid})"

    def status_of(self, kind: str, name: str) -> dict:
        return (self.main_status if kind == "main" else self.init_status)[name]

    def started_event(self, name: str) -> asyncio.Event:
        return self.started.setdefault(name, asyncio.Event())


class Kubelet:
    """A simulated kubelet for every node of the emulated cluster.

    Parameters
    ----------
    cluster:
        The :class:`~jhplatform.devcluster.cluster.Cluster` whose pods it runs.
    step_delay:
        Seconds between steps (accept, pull, start …); per pod with the ``step-delay``
        annotation or behaviour.
    pod_cidr_prefix:
        The first two octets of pod IPs (``10.244`` gives ``10.244.0.1``, ``10.244.0.2`` …).
    restart_backoff:
        The simulated length of the first crash-loop back-off (the message says 10s, as on a
        real kubelet); it doubles per restart up to 30 times this value.
    retry_interval:
        How often a waiting pod retries mounts, image pulls and container config, at most
        (it also retries whenever a secret, configMap or PVC in its namespace changes).
    stop_time:
        How long a simulated container takes to stop after SIGTERM (default: the step delay).
    """

    def __init__(
        self,
        cluster: Any,
        *,
        step_delay: float = 0.02,
        pod_cidr_prefix: str = "10.244",
        restart_backoff: float = 0.5,
        retry_interval: float = 0.5,
        stop_time: float | None = None,
    ):
        self.cluster = cluster
        self.step_delay = step_delay
        self.pod_cidr_prefix = pod_cidr_prefix
        self.restart_backoff = restart_backoff
        self.retry_interval = retry_interval
        self.stop_time = stop_time
        self.behaviours: list[Behaviour] = []
        self.pods: dict[str, _PodRuntime] = {}
        self._queue: asyncio.Queue | None = None
        self._ip_counter = 0
        self._ips_in_use: set[str] = set()
        self._node_ips: dict[str, str] = {}
        self._node_counters: dict[str, int] = {}
        self._images: dict[str, set[str]] = {}
        self._background: set[asyncio.Task] = set()
        self._stopping = False

    # -- behaviours -------------------------------------------------------------------------

    def add_behaviour(self, behaviour: Behaviour | None = None, **kwargs: Any) -> Behaviour:
        """Add a behaviour (or build one from keyword arguments) and return it."""
        behaviour = behaviour or Behaviour(**kwargs)
        self.behaviours.append(behaviour)
        return behaviour

    def remove_behaviour(self, behaviour: Behaviour) -> None:
        if behaviour in self.behaviours:
            self.behaviours.remove(behaviour)

    def clear_behaviours(self) -> None:
        self.behaviours.clear()

    def effective(self, pod: dict, container: dict | None, *, init: bool = False) -> _Effective:
        """The behaviour for one container of ``pod``: behaviours in order, then annotations."""
        values: dict[str, Any] = {}
        for b in list(self.behaviours):
            if b.matches(pod, container):
                values.update(b.effects())
        values.update(annotation_effects(pod, container, init=init))
        eff = _Effective()
        eff.pull_error = _message_or_default(values.get("pull_error"), "")
        eff.config_error = _message_or_default(values.get("config_error"), "")
        eff.exit_code = values.get("exit_code")
        eff.exit_after = float(values.get("exit_after") or 0.0)
        eff.never_ready = bool(values.get("never_ready") or False)
        eff.step_delay = values.get("step_delay")
        eff.stop_after = values.get("stop_after")
        return eff

    def _behaviour(self, rt: _PodRuntime, container: dict, kind: str) -> _Effective:
        pod = self.cluster.store.find("pods", rt.namespace, rt.name)
        if pod is None or pod["metadata"]["uid"] != rt.uid:
            raise _PodGone()
        return self.effective(pod, container, init=kind != "main")

    # -- controller protocol ----------------------------------------------------------------

    async def run(self) -> None:
        self._stopping = False
        self._queue = self.cluster.store.subscribe(["pods", "secrets", "configmaps", "persistentvolumeclaims"])
        try:
            for pod in list(self.cluster.store.list("pods")):
                self._safe(self._on_pod, "ADDED", pod, None)
            while True:
                change: Change = await self._queue.get()
                if change.resource == "pods":
                    self._safe(self._on_pod, change.type, change.obj, change.old)
                else:
                    self._safe(self._on_dependency, change)
        finally:
            if self._queue is not None:
                self.cluster.store.unsubscribe(self._queue)
                self._queue = None

    def _safe(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # a bad pod must not stop the kubelet
            log.exception("kubelet: error handling %s", fn.__name__)

    async def stop(self) -> None:
        """Stop every pod worker (the pods keep their last status)."""
        self._stopping = True
        await self._drop_all()
        if self._queue is not None:
            self.cluster.store.unsubscribe(self._queue)
            self._queue = None

    async def reset(self) -> None:
        """Forget all pods (the store is about to be emptied)."""
        await self._drop_all()
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait()
        self._ip_counter = 0
        self._ips_in_use.clear()
        self._node_ips.clear()
        self._node_counters.clear()
        self._images.clear()
        self.behaviours.clear()

    async def _drop_all(self) -> None:
        runtimes = list(self.pods.values())
        self.pods.clear()
        tasks: list[asyncio.Task] = []
        for rt in runtimes:
            tasks.extend(self._cancel_tasks(rt, include_terminator=True))
        tasks.extend(self._background)
        for t in self._background:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._background.clear()
        results = await asyncio.gather(*(self._cleanup(rt, deleted=True, force=True) for rt in runtimes), return_exceptions=True)
        for rt, result in zip(runtimes, results):
            if isinstance(result, BaseException):
                log.error("kubelet: cleanup of %s failed: %r", rt.key, result)

    # -- change handling ---------------------------------------------------------------------

    def _on_dependency(self, change: Change) -> None:
        for rt in self.pods.values():
            if rt.namespace == change.namespace:
                rt.wake.set()

    def _on_pod(self, type_: str, pod: dict, old: dict | None) -> None:
        if self._stopping:
            return
        md = pod["metadata"]
        uid = md.get("uid")
        rt = self.pods.get(uid)
        if type_ == "DELETED":
            if rt is not None:
                self.pods.pop(uid, None)
                self._spawn_background(self._forget(rt))
            return
        if rt is None:
            if not (pod.get("spec") or {}).get("nodeName"):
                return
            phase = (pod.get("status") or {}).get("phase")
            if phase in TERMINAL:
                return
            rt = _PodRuntime(pod)
            self.pods[uid] = rt
            if (pod.get("status") or {}).get("containerStatuses"):
                self._adopt(rt, pod)
            elif not md.get("deletionTimestamp"):
                rt.lifecycle = self._spawn(rt, self._lifecycle(rt), "lifecycle")
        if md.get("deletionTimestamp"):
            grace = md.get("deletionGracePeriodSeconds")
            grace = 0 if grace is None else grace
            if not rt.deleting:
                rt.deleting = True
                rt.grace = grace
                rt.deadline = asyncio.get_running_loop().time() + grace
                rt.terminator = asyncio.get_running_loop().create_task(
                    self._guard(rt, self._terminate(rt)), name=f"kubelet-terminate-{rt.key}"
                )
            elif rt.grace is not None and grace < rt.grace:
                rt.grace = grace
                rt.deadline = min(rt.deadline or 0, asyncio.get_running_loop().time() + grace)
            elif rt.finished and not md.get("finalizers"):
                # Finalizers removed after we finished: complete the deletion now.
                self.cluster.finish_pod_deletion(pod)

    def _adopt(self, rt: _PodRuntime, pod: dict) -> None:
        """Take over a pod another kubelet started: keep its status, handle its deletion."""
        status = pod.get("status") or {}
        rt.accepted = True
        rt.init_done = True
        rt.sandbox_ready = bool(status.get("podIP"))
        rt.host_ip = status.get("hostIP")
        rt.pod_ip = status.get("podIP")
        rt.start_time = status.get("startTime")
        if rt.pod_ip:
            self._ips_in_use.add(rt.pod_ip)
        for cs in status.get("initContainerStatuses") or []:
            rt.init_status[cs["name"]] = copy.deepcopy(cs)
        for cs in status.get("containerStatuses") or []:
            rt.main_status[cs["name"]] = copy.deepcopy(cs)

    def _spawn(self, rt: _PodRuntime, coro, label: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(self._guard(rt, coro), name=f"kubelet-{label}-{rt.key}")
        rt.tasks.add(task)
        task.add_done_callback(rt.tasks.discard)
        return task

    def _spawn_background(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _guard(self, rt: _PodRuntime, coro) -> Any:
        try:
            return await coro
        except _PodGone:
            if self.pods.get(rt.uid) is rt:
                self.pods.pop(rt.uid, None)
                self._spawn_background(self._forget(rt))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("kubelet: pod %s failed", rt.key)
        return None

    def _cancel_tasks(self, rt: _PodRuntime, *, include_terminator: bool = False) -> list[asyncio.Task]:
        current = asyncio.current_task()
        tasks = [t for t in rt.tasks if t is not current]
        if include_terminator and rt.terminator is not None and rt.terminator is not current:
            tasks.append(rt.terminator)
        for t in tasks:
            t.cancel()
        return tasks

    async def _forget(self, rt: _PodRuntime) -> None:
        """The pod left the store: stop everything for it at once."""
        tasks = self._cancel_tasks(rt, include_terminator=True)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._cleanup(rt, deleted=True, force=True)

    # -- status ------------------------------------------------------------------------------

    def _current(self, rt: _PodRuntime) -> dict:
        pod = self.cluster.store.find("pods", rt.namespace, rt.name)
        if pod is None or pod["metadata"]["uid"] != rt.uid:
            raise _PodGone()
        return pod

    def _phase(self, rt: _PodRuntime, previous: str | None) -> str:
        if previous in TERMINAL:
            return previous
        if rt.forced_phase:
            return rt.forced_phase
        if not rt.accepted or not rt.init_done:
            return "Pending"
        running = waiting = stopped = succeeded = 0
        for c in rt.main_specs:
            cs = rt.main_status.get(c["name"])
            if cs is None:
                waiting += 1
                continue
            state = cs.get("state") or {}
            if "running" in state:
                running += 1
            elif "terminated" in state:
                stopped += 1
                if state["terminated"].get("exitCode") == 0:
                    succeeded += 1
            elif (cs.get("lastState") or {}).get("terminated"):
                stopped += 1
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if stopped:
            if rt.restart_policy == "Always":
                return "Running"
            if stopped == succeeded and all(
                "terminated" in (rt.main_status[c["name"]].get("state") or {}) for c in rt.main_specs
            ):
                return "Succeeded"
            if rt.restart_policy == "Never":
                return "Failed"
            return "Running"
        return "Pending"

    @staticmethod
    def _condition(prev: dict[str, dict], type_: str, ok: bool, reason: str | None = None, message: str | None = None) -> dict:
        status = "True" if ok else "False"
        old = prev.get(type_)
        cond = {"type": type_, "status": status, "lastProbeTime": None}
        if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
            cond["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            cond["lastTransitionTime"] = now_rfc3339()
        if not ok and reason:
            cond["reason"] = reason
        if not ok and message:
            cond["message"] = message
        return cond

    def _build_status(self, rt: _PodRuntime, pod: dict) -> dict:
        prev = pod.get("status") or {}
        owned = (
            "phase", "conditions", "hostIP", "hostIPs", "podIP", "podIPs", "startTime",
            "initContainerStatuses", "containerStatuses", "reason", "message",
        )
        status = {k: v for k, v in prev.items() if k not in owned}
        phase = self._phase(rt, prev.get("phase"))
        prev_conds = {c.get("type"): c for c in prev.get("conditions") or []}
        conditions = []
        if rt.disruption is not None:
            conditions.append({**self._condition(prev_conds, "DisruptionTarget", True), **rt.disruption})
        conditions.append(self._condition(prev_conds, "PodReadyToStartContainers", rt.sandbox_ready and phase not in TERMINAL))
        pending_init = [c["name"] for c in rt.init_specs if not self._init_complete(rt, c)]
        initialized = rt.init_done or not pending_init
        conditions.append(
            self._condition(
                prev_conds,
                "Initialized",
                initialized,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending_init)}]",
            )
        )
        unready = [c["name"] for c in rt.main_specs if not (rt.main_status.get(c["name"]) or {}).get("ready")]
        unready += [
            c["name"]
            for c in rt.init_specs
            if c.get("restartPolicy") == "Always" and not (rt.init_status.get(c["name"]) or {}).get("ready")
        ]
        ready = not unready and initialized and phase == "Running"
        if phase == "Succeeded":
            reason, message = "PodCompleted", None
        else:
            reason, message = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
        conditions.append(self._condition(prev_conds, "Ready", ready, reason, message))
        conditions.append(self._condition(prev_conds, "ContainersReady", ready, reason, message))
        scheduled = prev_conds.get("PodScheduled")
        conditions.append(scheduled if scheduled is not None else self._condition(prev_conds, "PodScheduled", True))
        status["phase"] = phase
        status["conditions"] = conditions
        if rt.host_ip:
            status["hostIP"] = rt.host_ip
            status["hostIPs"] = [{"ip": rt.host_ip}]
        if rt.sandbox_ready and rt.pod_ip:
            status["podIP"] = rt.pod_ip
            status["podIPs"] = [{"ip": rt.pod_ip}]
        if rt.start_time:
            status["startTime"] = rt.start_time
        if rt.init_specs:
            status["initContainerStatuses"] = [
                copy.deepcopy(rt.init_status[c["name"]]) for c in rt.init_specs if c["name"] in rt.init_status
            ]
        status["containerStatuses"] = [
            copy.deepcopy(rt.main_status[c["name"]]) for c in rt.main_specs if c["name"] in rt.main_status
        ]
        if rt.reason:
            status["reason"] = rt.reason
        if rt.message:
            status["message"] = rt.message
        status.setdefault("qosClass", prev.get("qosClass"))
        if status["qosClass"] is None:
            status.pop("qosClass")
        return status

    def _init_complete(self, rt: _PodRuntime, c: dict) -> bool:
        cs = rt.init_status.get(c["name"]) or {}
        state = cs.get("state") or {}
        if c.get("restartPolicy") == "Always":
            return bool(cs.get("started"))
        return (state.get("terminated") or {}).get("exitCode") == 0

    def _publish(self, rt: _PodRuntime) -> dict:
        """Write the pod status derived from ``rt`` (no write if nothing changed)."""
        pod = self._current(rt)
        status = self._build_status(rt, pod)
        if status == pod.get("status"):
            return pod
        new = {**pod, "metadata": dict(pod["metadata"]), "status": status}
        return self.cluster.write("pods", new)

    def phase_of(self, rt: _PodRuntime) -> str:
        try:
            return (self._current(rt).get("status") or {}).get("phase") or "Pending"
        except _PodGone:
            return "Gone"

    def _event(self, rt: _PodRuntime, type_: str, reason: str, message: str, *, kind: str | None = None, container: str | None = None) -> None:
        pod = self.cluster.store.find("pods", rt.namespace, rt.name)
        if pod is None or pod["metadata"]["uid"] != rt.uid:
            return
        field_path = None
        if container is not None:
            field_path = f"spec.{'containers' if kind == 'main' else 'initContainers'}{{{container}}}"
        self.cluster.record_event(pod, type_, reason, message, component="kubelet", host=rt.node or None, field_path=field_path)

    # -- addresses ---------------------------------------------------------------------------

    def _host_ip(self, rt: _PodRuntime) -> str:
        ip = self._node_ips.get(rt.node)
        if ip:
            return ip
        node = self.cluster.store.find("nodes", "", rt.node) if rt.node else None
        for addr in ((node or {}).get("status") or {}).get("addresses") or []:
            if addr.get("type") == "InternalIP" and addr.get("address"):
                ip = addr["address"]
                break
        if not ip:
            ip = f"192.168.49.{len(self._node_ips) % 250 + 2}"
        self._node_ips[rt.node] = ip
        return ip

    def _allocate_pod_ip(self, rt: _PodRuntime) -> str:
        # From the node's podCIDR (a /24 such as 10.244.3.0/24) when it has one.
        node = self.cluster.store.find("nodes", "", rt.node) if rt.node else None
        cidr = ((node or {}).get("spec") or {}).get("podCIDR") or ""
        if cidr.endswith(".0/24"):
            prefix = cidr[: -len(".0/24")]
            counter = self._node_counters.get(rt.node, 0)
            for _ in range(253):
                ip = f"{prefix}.{counter % 253 + 2}"
                counter += 1
                if ip not in self._ips_in_use:
                    self._node_counters[rt.node] = counter
                    self._ips_in_use.add(ip)
                    return ip
        for _ in range(65000):
            n = self._ip_counter
            self._ip_counter += 1
            ip = f"{self.pod_cidr_prefix}.{(n // 254) % 256}.{n % 254 + 1}"
            if ip not in self._ips_in_use:
                self._ips_in_use.add(ip)
                return ip
        raise RuntimeError("pod IP range exhausted")

    def _release_pod_ip(self, rt: _PodRuntime) -> None:
        if rt.pod_ip:
            self._ips_in_use.discard(rt.pod_ip)

    # -- the pod lifecycle -------------------------------------------------------------------

    def _pod_step_delay(self, pod: dict) -> float:
        delay = None
        for b in self.behaviours:
            if b.step_delay is not None and b.matches(pod):
                delay = b.step_delay
        ann = annotation_effects(pod, None)
        if ann.get("step_delay") is not None:
            delay = ann["step_delay"]
        return max(0.0, float(self.step_delay if delay is None else delay))

    @staticmethod
    def _waiting(reason: str, message: str | None = None) -> dict:
        waiting = {"reason": reason}
        if message:
            waiting["message"] = message
        return {"waiting": waiting}

    def _initial_status(self, c: dict, reason: str) -> dict:
        return {
            "name": c["name"],
            "state": self._waiting(reason),
            "lastState": {},
            "ready": False,
            "restartCount": 0,
            "image": c.get("image") or "",
            "imageID": "",
            "started": False,
        }

    async def _lifecycle(self, rt: _PodRuntime) -> None:
        pod = self._current(rt)
        rt.step_delay = self._pod_step_delay(pod)
        await asyncio.sleep(rt.step_delay)
        pod = self._current(rt)
        # S1 -> S2: the kubelet accepted the pod.
        rt.accepted = True
        rt.host_ip = self._host_ip(rt)
        rt.start_time = now_rfc3339()
        for c in rt.init_specs:
            rt.init_status[c["name"]] = self._initial_status(c, "PodInitializing")
        main_reason = "PodInitializing" if rt.init_specs else "ContainerCreating"
        for c in rt.main_specs:
            rt.main_status[c["name"]] = self._initial_status(c, main_reason)
        self._publish(rt)
        await self._mount_volumes(rt)
        await self._setup_sandbox(rt)
        rt.sandbox_ready = True
        deadline = rt.spec.get("activeDeadlineSeconds")
        if isinstance(deadline, (int, float)) and deadline > 0:
            self._spawn(rt, self._active_deadline(rt, float(deadline)), "deadline")
        for c in rt.init_specs:
            if c.get("restartPolicy") == "Always":
                self._spawn(rt, self._supervise(rt, c, "sidecar"), f"sidecar-{c['name']}")
                await rt.started_event(c["name"]).wait()
                continue
            code = await self._supervise(rt, c, "init")
            if code != 0:
                return
        if rt.init_specs:
            rt.init_done = True
            for c in rt.main_specs:
                rt.main_status[c["name"]] = self._initial_status(c, "ContainerCreating")
            self._publish(rt)
        for c in rt.main_specs:
            self._spawn(rt, self._supervise(rt, c, "main"), f"container-{c['name']}")

    async def _active_deadline(self, rt: _PodRuntime, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if not rt.deleting:
            self.evict(
                {"metadata": {"namespace": rt.namespace, "name": rt.name, "uid": rt.uid}},
                reason="DeadlineExceeded",
                message="Pod was active on the node longer than the specified deadline",
            )

    async def _wait_wake(self, rt: _PodRuntime, timeout: float) -> None:
        rt.wake.clear()
        try:
            await asyncio.wait_for(rt.wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def _missing_volume(self, rt: _PodRuntime) -> str | None:
        """The FailedMount message for the first volume whose source object is missing."""
        store = self.cluster.store
        for vol in rt.spec.get("volumes") or []:
            name = vol.get("name", "")
            missing = None
            if isinstance(vol.get("secret"), dict):
                src = vol["secret"]
                if not src.get("optional") and store.find("secrets", rt.namespace, src.get("secretName", "")) is None:
                    missing = f'secret "{src.get("secretName", "")}" not found'
            elif isinstance(vol.get("configMap"), dict):
                src = vol["configMap"]
                if not src.get("optional") and store.find("configmaps", rt.namespace, src.get("name", "")) is None:
                    missing = f'configmap "{src.get("name", "")}" not found'
            elif isinstance(vol.get("persistentVolumeClaim"), dict):
                claim = vol["persistentVolumeClaim"].get("claimName", "")
                if store.find("persistentvolumeclaims", rt.namespace, claim) is None:
                    missing = f'persistentvolumeclaim "{claim}" not found'
            elif isinstance(vol.get("projected"), dict):
                for src in vol["projected"].get("sources") or []:
                    if isinstance(src.get("secret"), dict) and not src["secret"].get("optional"):
                        if store.find("secrets", rt.namespace, src["secret"].get("name", "")) is None:
                            missing = f'secret "{src["secret"].get("name", "")}" not found'
                            break
                    if isinstance(src.get("configMap"), dict) and not src["configMap"].get("optional"):
                        if store.find("configmaps", rt.namespace, src["configMap"].get("name", "")) is None:
                            missing = f'configmap "{src["configMap"].get("name", "")}" not found'
                            break
            if missing:
                return f'MountVolume.SetUp failed for volume "{name}" : {missing}'
        return None

    async def _mount_volumes(self, rt: _PodRuntime) -> None:
        last = None
        while True:
            self._current(rt)
            message = self._missing_volume(rt)
            if message is None:
                return
            if message != last:
                self._event(rt, "Warning", "FailedMount", message)
                last = message
            await self._wait_wake(rt, self.retry_interval)

    async def _setup_sandbox(self, rt: _PodRuntime) -> None:
        """Create the pod sandbox: allocate the pod IP (and, in subclasses, directories)."""
        rt.pod_ip = self._allocate_pod_ip(rt)

    def _config_error(self, rt: _PodRuntime, c: dict, b: _Effective) -> str | None:
        """Why the container's config cannot be built (CreateContainerConfigError), or None."""
        if b.config_error is not None:
            return b.config_error or (
                f'container has runAsNonRoot and image will run as root (pod: "{rt.pod_ref}", container: {c["name"]})'
            )
        store = self.cluster.store
        for env in c.get("env") or []:
            src = env.get("valueFrom") or {}
            for key, resource, kind in (("secretKeyRef", "secrets", "secret"), ("configMapKeyRef", "configmaps", "configmap")):
                ref = src.get(key)
                if not isinstance(ref, dict) or ref.get("optional"):
                    continue
                obj = store.find(resource, rt.namespace, ref.get("name", ""))
                if obj is None:
                    return f'{kind} "{ref.get("name", "")}" not found'
                data = dict(obj.get("data") or {})
                if resource == "configmaps":
                    data.update(obj.get("binaryData") or {})
                if ref.get("key") not in data:
                    label = "Secret" if resource == "secrets" else "ConfigMap"
                    return f"couldn't find key {ref.get('key')} in {label} {rt.namespace}/{ref.get('name', '')}"
        for src in c.get("envFrom") or []:
            for key, resource, kind in (("secretRef", "secrets", "secret"), ("configMapRef", "configmaps", "configmap")):
                ref = src.get(key)
                if isinstance(ref, dict) and not ref.get("optional"):
                    if store.find(resource, rt.namespace, ref.get("name", "")) is None:
                        return f'{kind} "{ref.get("name", "")}" not found'
        return None

    async def _pull(self, rt: _PodRuntime, c: dict, kind: str) -> None:
        name, image = c["name"], c.get("image") or ""
        policy = c.get("imagePullPolicy") or "IfNotPresent"
        attempts = 0
        while True:
            b = self._behaviour(rt, c, kind)
            cached = self._images.setdefault(rt.node, set())
            if b.pull_error is None and (policy == "Never" or (policy == "IfNotPresent" and image in cached)):
                self._event(rt, "Normal", "Pulled", f'Container image "{image}" already present on machine', kind=kind, container=name)
                return
            self._event(rt, "Normal", "Pulling", f'Pulling image "{image}"', kind=kind, container=name)
            began = time.monotonic()
            await asyncio.sleep(rt.step_delay)
            b = self._behaviour(rt, c, kind)
            if b.pull_error is None:
                cached.add(image)
                took = go_duration(max(time.monotonic() - began, 0.001))
                size = 100_000_000 + int(_sha("size", image)[:6], 16)
                self._event(
                    rt,
                    "Normal",
                    "Pulled",
                    f'Successfully pulled image "{image}" in {took} ({took} including waiting). Image size: {size} bytes.',
                    kind=kind,
                    container=name,
                )
                return
            error = b.pull_error or (
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                f'failed to resolve reference "{image}": {image}: not found'
            )
            st = rt.status_of(kind, name)
            self._event(rt, "Warning", "Failed", f'Failed to pull image "{image}": {error}', kind=kind, container=name)
            self._event(rt, "Warning", "Failed", "Error: ErrImagePull", kind=kind, container=name)
            st.update(state=self._waiting("ErrImagePull", error), ready=False, started=False)
            self._publish(rt)
            await asyncio.sleep(rt.step_delay)
            self._current(rt)
            backoff = f'Back-off pulling image "{image}"'
            self._event(rt, "Normal", "BackOff", backoff, kind=kind, container=name)
            self._event(rt, "Warning", "Failed", "Error: ImagePullBackOff", kind=kind, container=name)
            st.update(state=self._waiting("ImagePullBackOff", backoff))
            self._publish(rt)
            attempts += 1
            await asyncio.sleep(min(self.retry_interval * 2 ** (attempts - 1), self.retry_interval * 30))

    async def _wait_config(self, rt: _PodRuntime, c: dict, kind: str) -> None:
        last = None
        while True:
            b = self._behaviour(rt, c, kind)
            message = self._config_error(rt, c, b)
            if message is None:
                return
            st = rt.status_of(kind, c["name"])
            st.update(state=self._waiting("CreateContainerConfigError", message), ready=False, started=False)
            if message != last:  # one event per distinct error, not one per retry
                self._event(rt, "Warning", "Failed", f"Error: {message}", kind=kind, container=c["name"])
                last = message
            self._publish(rt)
            await self._wait_wake(rt, self.retry_interval)

    def _backoff(self, restarts: int) -> tuple[float, str]:
        """(simulated seconds, real-kubelet text) of the crash-loop back-off after N restarts."""
        real = min(10 * 2 ** (restarts - 1), 300)
        simulated = min(self.restart_backoff * 2 ** (restarts - 1), self.restart_backoff * 30)
        return simulated, go_duration(real)

    def _container_policy(self, rt: _PodRuntime, kind: str) -> str:
        if kind == "sidecar":
            return "Always"
        if kind == "init":
            return "Never" if rt.restart_policy == "Never" else "OnFailure"
        return rt.restart_policy

    async def _supervise(self, rt: _PodRuntime, c: dict, kind: str) -> int:
        """Run one container until it stops for good; returns its last exit code."""
        name = c["name"]
        policy = self._container_policy(rt, kind)
        restarts = 0
        start_failures = 0
        while True:
            await self._pull(rt, c, kind)
            await self._wait_config(rt, c, kind)
            b = self._behaviour(rt, c, kind)
            st = rt.status_of(kind, name)
            try:
                await self._launch(rt, c, kind, b)
            except _StartError as exc:
                st.update(state=self._waiting(exc.reason, exc.message), ready=False, started=False)
                self._event(rt, "Warning", "Failed", f"Error: {exc.message}", kind=kind, container=name)
                self._publish(rt)
                start_failures += 1
                delay, _ = self._backoff(start_failures)
                await self._wait_wake(rt, max(delay, self.retry_interval))
                continue
            container_id = f"containerd://{_sha('container', rt.uid, name, str(restarts), str(time.time_ns()))}"
            started_at = now_rfc3339()
            self._event(rt, "Normal", "Created", f"Created container: {name}", kind=kind, container=name)
            self._event(rt, "Normal", "Started", f"Started container {name}", kind=kind, container=name)
            st.update(
                state={"running": {"startedAt": started_at}},
                ready=False,
                started=True,
                imageID=image_id(c.get("image") or ""),
                containerID=container_id,
            )
            if kind != "init":
                st["ready"] = self._ready_on_start(rt, c, kind, b)
            rt.started_event(name).set()
            self._publish(rt)
            ready_task = None
            if kind != "init" and not st["ready"] and not b.never_ready:
                ready_task = self._spawn(rt, self._probe_until_ready(rt, c, kind, st), f"ready-{name}")
            try:
                code = await self._wait_exit(rt, c, kind, b)
            finally:
                if ready_task is not None:
                    ready_task.cancel()
            self._current(rt)
            terminated = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": started_at,
                    "finishedAt": now_rfc3339(),
                    "containerID": container_id,
                }
            }
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
            if not restart:
                st.update(state=terminated, ready=False, started=False)
                if kind == "init" and code != 0:
                    rt.forced_phase = "Failed"
                self._publish(rt)
                await self._after_exit(rt, c, kind)
                return code
            restarts += 1
            delay, text = self._backoff(restarts)
            st.update(
                state=self._waiting(
                    "CrashLoopBackOff", f"back-off {text} restarting failed container={name} pod={rt.pod_ref}"
                ),
                lastState=terminated,
                restartCount=st.get("restartCount", 0) + 1,
                ready=False,
                started=False,
            )
            self._publish(rt)
            self._event(
                rt, "Warning", "BackOff", f"Back-off restarting failed container {name} in pod {rt.pod_ref}", kind=kind, container=name
            )
            await asyncio.sleep(delay)

    async def _probe_until_ready(self, rt: _PodRuntime, c: dict, kind: str, st: dict) -> None:
        await self._readiness(rt, c, kind)
        self._current(rt)
        if "running" in (st.get("state") or {}):
            st["ready"] = True
            self._publish(rt)

    # -- container hooks (overridden by the process kubelet) -----------------------------------

    async def _launch(self, rt: _PodRuntime, c: dict, kind: str, b: _Effective) -> None:
        """Start the container; raise :class:`_StartError` if it cannot start."""

    def _ready_on_start(self, rt: _PodRuntime, c: dict, kind: str, b: _Effective) -> bool:
        """Simulated containers are ready as soon as they run (unless ``never-ready``)."""
        return not b.never_ready

    async def _readiness(self, rt: _PodRuntime, c: dict, kind: str) -> None:
        """Return once the container is ready (the simulated kubelet never waits here)."""
        await asyncio.Event().wait()

    async def _wait_exit(self, rt: _PodRuntime, c: dict, kind: str, b: _Effective) -> int:
        """Wait for the container to exit and return its exit code.

        Simulated init containers complete (exit 0) after one step unless a behaviour says
        otherwise; other containers run until a behaviour makes them exit.
        """
        if b.exit_code is None:
            if kind == "init":
                await asyncio.sleep(max(rt.step_delay, b.exit_after))
                return 0
            await asyncio.Event().wait()
        await asyncio.sleep(max(0.0, b.exit_after))
        return int(b.exit_code)

    async def _after_exit(self, rt: _PodRuntime, c: dict, kind: str) -> None:
        """Hook after a container stopped for good."""

    def _sigkill_time(self, rt: _PodRuntime) -> float:
        return rt.deadline if rt.deadline is not None else asyncio.get_running_loop().time()

    async def _stop_container(self, rt: _PodRuntime, c: dict, kind: str) -> int:
        """SIGTERM the container, SIGKILL it at ``rt.deadline``; return its exit code."""
        try:
            b = self._behaviour(rt, c, kind)
            stop_after = b.stop_after
        except _PodGone:
            stop_after = None
        if stop_after is None:
            stop_after = self.stop_time if self.stop_time is not None else rt.step_delay
        loop = asyncio.get_running_loop()
        stops_at = loop.time() + stop_after
        while True:
            now = loop.time()
            kill_at = self._sigkill_time(rt)
            if stops_at <= now and stops_at < kill_at:
                return 143
            if kill_at <= now:
                return 137
            await asyncio.sleep(min(0.02, max(0.0, min(stops_at, kill_at) - now)))

    def _kill_now(self, rt: _PodRuntime) -> None:
        """Kill every container of the pod at once (eviction)."""

    async def _cleanup(self, rt: _PodRuntime, *, deleted: bool, force: bool = False) -> None:
        """Release what the pod holds (IP; processes and directories in subclasses)."""
        self._release_pod_ip(rt)

    # -- deletion and eviction -----------------------------------------------------------------

    def _running_containers(self, rt: _PodRuntime) -> list[tuple[dict, str]]:
        out = []
        for c in rt.init_specs:
            if "running" in ((rt.init_status.get(c["name"]) or {}).get("state") or {}):
                out.append((c, "sidecar" if c.get("restartPolicy") == "Always" else "init"))
        for c in rt.main_specs:
            if "running" in ((rt.main_status.get(c["name"]) or {}).get("state") or {}):
                out.append((c, "main"))
        return out

    @staticmethod
    def _terminated(code: int, started_at: str | None, container_id: str | None, reason: str | None = None, message: str | None = None) -> dict:
        term: dict[str, Any] = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error")}
        if message:
            term["message"] = message
        if started_at:
            term["startedAt"] = started_at
        term["finishedAt"] = now_rfc3339()
        if container_id:
            term["containerID"] = container_id
        return {"terminated": term}

    def _finalize_statuses(self, rt: _PodRuntime, codes: dict[tuple[str, str], int]) -> None:
        """Every container ends terminated: stopped ones with their code, never-run ones unknown."""
        for kind, statuses in (("init", rt.init_status), ("main", rt.main_status)):
            for name, st in statuses.items():
                state = st.get("state") or {}
                code = codes.get((kind, name))
                if code is not None:
                    st.update(
                        state=self._terminated(code, state["running"].get("startedAt"), st.get("containerID")),
                        ready=False,
                        started=False,
                    )
                elif "terminated" in state:
                    st["ready"] = False
                elif (st.get("lastState") or {}).get("terminated"):
                    st.update(state=copy.deepcopy(st["lastState"]), ready=False, started=False)
                else:
                    st.update(
                        state=self._terminated(
                            137, None, None, "ContainerStatusUnknown", "The container could not be located when the pod was terminated"
                        ),
                        ready=False,
                        started=False,
                    )
        for c in rt.main_specs:
            if c["name"] not in rt.main_status:
                st = self._initial_status(c, "ContainerCreating")
                st.update(state=self._terminated(137, None, None, "ContainerStatusUnknown", "The container could not be located when the pod was terminated"))
                rt.main_status[c["name"]] = st

    def _terminal_phase(self, rt: _PodRuntime) -> str:
        codes = [((st.get("state") or {}).get("terminated") or {}).get("exitCode") for st in rt.main_status.values()]
        return "Succeeded" if codes and all(code == 0 for code in codes) else "Failed"

    async def _terminate(self, rt: _PodRuntime) -> None:
        """Graceful deletion: stop the containers, write the terminal status, remove the pod."""
        tasks = self._cancel_tasks(rt)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        pod = self._current(rt)
        running = self._running_containers(rt)
        for c, kind in running:
            self._event(rt, "Normal", "Killing", f"Stopping container {c['name']}", kind="main" if kind == "main" else "init", container=c["name"])
        results = await asyncio.gather(*(self._stop_container(rt, c, kind) for c, kind in running), return_exceptions=True)
        codes: dict[tuple[str, str], int] = {}
        for (c, kind), result in zip(running, results):
            key = ("main" if kind == "main" else "init", c["name"])
            codes[key] = result if isinstance(result, int) else 137
        pod = self._current(rt)
        already_terminal = (pod.get("status") or {}).get("phase") in TERMINAL
        self._finalize_statuses(rt, codes)
        if not already_terminal and rt.accepted:
            rt.forced_phase = self._terminal_phase(rt)
        elif not already_terminal:
            rt.accepted = True
            rt.init_done = True
            rt.forced_phase = self._terminal_phase(rt)
        self._publish(rt)
        rt.finished = True
        await self._cleanup(rt, deleted=True)
        self.cluster.finish_pod_deletion(self._current(rt))

    def evict(self, pod: dict | tuple[str, str], reason: str = "Evicted", message: str | None = None) -> dict | None:
        """Fail a pod as the kubelet's eviction manager does: containers killed, phase Failed.

        ``pod`` is a pod dict or a ``(namespace, name)`` pair. Returns the written pod (the pod
        stays in the store, as evicted pods do), or None if it does not exist.
        """
        if isinstance(pod, tuple):
            namespace, name = pod
            uid = None
        else:
            namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            uid = pod["metadata"].get("uid")
        current = self.cluster.store.find("pods", namespace, name)
        if current is None or (uid and current["metadata"]["uid"] != uid):
            return None
        if message is None:
            message = "The node was low on resource: memory. " if reason == "Evicted" else reason
        rt = self.pods.get(current["metadata"]["uid"])
        if rt is None:
            status = dict(current.get("status") or {})
            status.update(phase="Failed", reason=reason, message=message)
            return self.cluster.write("pods", {**current, "metadata": dict(current["metadata"]), "status": status})
        for c, kind in self._running_containers(rt):
            self._event(rt, "Normal", "Killing", f"Stopping container {c['name']}", kind="main" if kind == "main" else "init", container=c["name"])
        running = {("main" if kind == "main" else "init", c["name"]) for c, kind in self._running_containers(rt)}
        self._cancel_tasks(rt)
        self._kill_now(rt)
        self._finalize_statuses(rt, {key: 137 for key in running})
        rt.accepted = rt.init_done = True
        rt.forced_phase = "Failed"
        rt.reason, rt.message = reason, message
        if reason == "Evicted":
            rt.disruption = {"reason": "TerminationByKubelet", "message": message}
            self._event(rt, "Warning", "Evicted", message)
        elif reason == "DeadlineExceeded":
            self._event(rt, "Normal", "DeadlineExceeded", message)
        written = self._publish(rt)
        self._spawn_background(self._cleanup(rt, deleted=False, force=True))
        return written

    # -- helpers for callers -------------------------------------------------------------------

    def runtime(self, namespace: str, name: str) -> _PodRuntime | None:
        for rt in self.pods.values():
            if rt.namespace == namespace and rt.name == name:
                return rt
        return None

    def logs(self, namespace: str, name: str, container: str | None = None) -> str:
        """Container output (only the process kubelet has any)."""
        return ""

    def pids(self) -> list[int]:
        """Process ids of running containers (the simulated kubelet runs none)."""
        return []

    def pids_for(self, pod: dict | tuple[str, str]) -> list[int]:
        return []


__all__ = ["ANNOTATIONS", "ANNOTATION_PREFIX", "Behaviour", "Kubelet", "annotation_effects", "go_duration", "image_id"]

