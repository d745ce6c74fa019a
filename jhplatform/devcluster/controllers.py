"""Volume, namespace and event controllers of the emulated control plane.

- :class:`PersistentVolumeController` binds claims (Immediate or WaitForFirstConsumer), expands
  bound claims, and runs pvc-protection (the ``kubernetes.io/pvc-protection`` finalizer).
- :class:`NamespaceController` empties a terminating namespace and then removes it.
- :class:`EventTTL` drops events older than the apiserver's ``--event-ttl``.

Each follows the controller protocol of :class:`~jhplatform.devcluster.cluster.Cluster`
(``run()``, ``stop()``, ``reset()``), reacts to store changes through :class:`ChangeFeed`
and writes through ``cluster.write`` / ``cluster.delete``: stored objects are never mutated.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Iterable

from jhplatform.policy.quantity import Quantity, format_quantity

from . import errors
from .store import RESOURCES, Change, Store

if TYPE_CHECKING:
    from .cluster import Cluster

log = logging.getLogger("jhplatform.devcluster")

TERMINAL_PHASES = ("Succeeded", "Failed")
PVC_PROTECTION = "kubernetes.io/pvc-protection"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
DEFAULT_PROVISIONER = "devcluster.jhplatform.io/hostpath"


class ChangeFeed:
    """An in-process subscription to store changes that a controller can wait on with a timeout.

    Waiting keeps one pending ``queue.get()`` task across calls instead of cancelling it, so a
    change that arrives just as a timeout fires is never lost.
    """

    def __init__(self, store: Store, resources: Iterable[str]):
        self.store = store
        self.queue: asyncio.Queue = store.subscribe(resources)
        self._get: asyncio.Future | None = None

    async def next(self, timeout: float | None = None) -> Change | None:
        """The next change, or ``None`` after ``timeout`` seconds without one."""
        if self._get is None:
            if not self.queue.empty():
                return self.queue.get_nowait()
            self._get = asyncio.ensure_future(self.queue.get())
        done, _ = await asyncio.wait({self._get}, timeout=timeout)
        if not done:
            return None
        change = self._get.result()
        self._get = None
        return change

    def drain(self) -> list[Change]:
        """Every change already delivered, in order, without waiting."""
        out = []
        if self._get is not None and self._get.done():
            out.append(self._get.result())
            self._get = None
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    def close(self) -> None:
        if self._get is not None:
            self._get.cancel()
            self._get = None
        self.store.unsubscribe(self.queue)


# -- pure helpers ---------------------------------------------------------------------------


def is_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def claim_names(pod: dict) -> list[str]:
    """Names of the PVCs a pod mounts: ``persistentVolumeClaim`` volumes and generic ephemeral
    volumes (whose claim is ``<pod>-<volume>``)."""
    names = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        pvc = vol.get("persistentVolumeClaim")
        if pvc and pvc.get("claimName"):
            names.append(pvc["claimName"])
        elif vol.get("ephemeral") is not None:
            names.append(f"{pod['metadata']['name']}-{vol.get('name', '')}")
    return names


def claim_in_use(store: Store, pvc: dict) -> bool:
    """True while a non-terminal pod in the claim's namespace mounts it (pvc-protection)."""
    md = pvc["metadata"]
    for pod in store.list("pods", md["namespace"]):
        if not is_terminal(pod) and md["name"] in claim_names(pod):
            return True
    return False


def without_finalizer(obj: dict, finalizer: str) -> dict:
    """A copy of ``obj`` whose ``metadata.finalizers`` lacks ``finalizer``."""
    md = dict(obj["metadata"])
    md["finalizers"] = [f for f in md.get("finalizers") or [] if f != finalizer]
    if not md["finalizers"]:
        del md["finalizers"]
    return {**obj, "metadata": md}


def _requested_storage(pvc: dict) -> str | None:
    return (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")


# -- PersistentVolumeController -------------------------------------------------------------


class PersistentVolumeController:
    """Binds, expands and protects PersistentVolumeClaims.

    Parameters
    ----------
    cluster:
        The control plane to act on.
    wait_for_first_consumer:
        StorageClass names with ``volumeBindingMode: WaitForFirstConsumer``: their claims stay
        ``Pending`` (with a ``WaitForFirstConsumer`` event) until a pod that mounts them is
        scheduled. Every other claim, including one without a class, binds at once.
    expandable_classes:
        StorageClass names with ``allowVolumeExpansion``; ``None`` (the default) means all.
        A bound claim whose ``spec.resources.requests.storage`` grows beyond its
        ``status.capacity.storage`` gets the new capacity.
    provisioner:
        The provisioner name written into the claim's annotations and events.
    """

    component = "persistentvolume-controller"

    def __init__(
        self,
        cluster: "Cluster",
        *,
        wait_for_first_consumer: Iterable[str] = (),
        expandable_classes: Iterable[str] | None = None,
        provisioner: str = DEFAULT_PROVISIONER,
    ):
        self.cluster = cluster
        self.wait_for_first_consumer: set[str] = set(wait_for_first_consumer)
        self.expandable_classes: set[str] | None = None if expandable_classes is None else set(expandable_classes)
        self.provisioner = provisioner
        # Claims (by uid) that already got their WaitForFirstConsumer event.
        self._waiting_reported: set[str] = set()

    async def run(self) -> None:
        feed = ChangeFeed(self.cluster.store, ("persistentvolumeclaims", "pods"))
        try:
            for pvc in self.cluster.store.list("persistentvolumeclaims"):
                self.sync(pvc["metadata"]["namespace"], pvc["metadata"]["name"])
            while True:
                changes = [await feed.next()] + feed.drain()
                for key in self._affected_claims(changes):
                    self.sync(*key)
        finally:
            feed.close()

    async def stop(self) -> None:
        pass

    async def reset(self) -> None:
        self._waiting_reported.clear()

    @staticmethod
    def _affected_claims(changes: list[Change]) -> list[tuple[str, str]]:
        keys: dict[tuple[str, str], None] = {}
        for change in changes:
            if change.resource == "persistentvolumeclaims":
                if change.type != "DELETED":
                    keys[(change.namespace, change.obj["metadata"]["name"])] = None
            else:
                # A pod scheduled (WaitForFirstConsumer), finished or deleted (pvc-protection).
                for pod in (change.obj, change.old):
                    if pod is not None:
                        for name in claim_names(pod):
                            keys[(change.namespace, name)] = None
        return list(keys)

    def sync(self, namespace: str, name: str) -> None:
        """Bring one claim to its desired state; a no-op if nothing is due."""
        pvc = self.cluster.store.find("persistentvolumeclaims", namespace, name)
        if pvc is None:
            return
        try:
            if pvc["metadata"].get("deletionTimestamp"):
                self._protect(pvc)
            elif (pvc.get("status") or {}).get("phase", "Pending") == "Pending" and not (pvc.get("spec") or {}).get("volumeName"):
                self._bind_or_wait(pvc)
            elif (pvc.get("status") or {}).get("phase") == "Bound":
                self._expand(pvc)
        except errors.ApiError as e:  # the claim vanished under us (namespace deletion, reset)
            log.debug("persistentvolume-controller: %s/%s: %s", namespace, name, e.message)

    def _protect(self, pvc: dict) -> None:
        if PVC_PROTECTION in (pvc["metadata"].get("finalizers") or []) and not claim_in_use(self.cluster.store, pvc):
            self.cluster.write("persistentvolumeclaims", without_finalizer(pvc, PVC_PROTECTION))

    def _storage_class(self, pvc: dict) -> str:
        return (pvc.get("spec") or {}).get("storageClassName") or ""

    def _has_consumer(self, pvc: dict) -> bool:
        if ((pvc["metadata"].get("annotations") or {}).get(SELECTED_NODE)):
            return True
        name = pvc["metadata"]["name"]
        for pod in self.cluster.store.list("pods", pvc["metadata"]["namespace"]):
            if (pod.get("spec") or {}).get("nodeName") and not is_terminal(pod) and name in claim_names(pod):
                return True
        return False

    def _bind_or_wait(self, pvc: dict) -> None:
        if self._storage_class(pvc) in self.wait_for_first_consumer and not self._has_consumer(pvc):
            uid = pvc["metadata"]["uid"]
            if uid not in self._waiting_reported:
                self._waiting_reported.add(uid)
                self.cluster.record_event(
                    pvc,
                    "Normal",
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                    component=self.component,
                )
            return
        self._bind(pvc)

    def _bind(self, pvc: dict) -> None:
        md = pvc["metadata"]
        volume = f"pvc-{md['uid']}"
        spec = dict(pvc.get("spec") or {})
        spec["volumeName"] = volume
        annotations = dict(md.get("annotations") or {})
        annotations.update(
            {
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
                "volume.beta.kubernetes.io/storage-provisioner": self.provisioner,
                "volume.kubernetes.io/storage-provisioner": self.provisioner,
            }
        )
        status: dict = {"phase": "Bound", "accessModes": list(spec.get("accessModes") or [])}
        storage = _requested_storage(pvc)
        if storage is not None:
            status["capacity"] = {"storage": format_quantity(storage)}
        bound = self.cluster.write(
            "persistentvolumeclaims", {**pvc, "metadata": {**md, "annotations": annotations}, "spec": spec, "status": status}
        )
        self._waiting_reported.discard(md["uid"])
        self.cluster.record_event(
            bound,
            "Normal",
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {volume}",
            component=self.provisioner,
        )

    def _expandable(self, pvc: dict) -> bool:
        return self.expandable_classes is None or self._storage_class(pvc) in self.expandable_classes

    def _expand(self, pvc: dict) -> None:
        requested = _requested_storage(pvc)
        status = pvc.get("status") or {}
        current = (status.get("capacity") or {}).get("storage")
        if requested is None or current is None or not self._expandable(pvc):
            return
        if Quantity.parse(requested) <= Quantity.parse(current):
            return
        size = format_quantity(requested)
        new_status = {**status, "capacity": {**status["capacity"], "storage": size}}
        new_status["allocatedResources"] = {**(status.get("allocatedResources") or {}), "storage": size}
        expanded = self.cluster.write("persistentvolumeclaims", {**pvc, "metadata": dict(pvc["metadata"]), "status": new_status})
        self.cluster.record_event(
            expanded,
            "Normal",
            "FileSystemResizeSuccessful",
            f'MountVolume.NodeExpandVolume succeeded for volume "{pvc["spec"].get("volumeName", "")}"',
            component="kubelet",
        )


# -- NamespaceController --------------------------------------------------------------------


class NamespaceController:
    """Deletes everything in a terminating namespace, then the namespace itself.

    Pods go with grace 0; claims lose their pvc-protection finalizer once no pod is left to
    use them. Objects with other finalizers are waited for, re-checked on every change in the
    namespace and every ``retry_interval`` seconds. When the namespace is empty the
    ``kubernetes`` finalizer is dropped from ``spec.finalizers`` and the namespace disappears.
    """

    def __init__(self, cluster: "Cluster", *, retry_interval: float = 1.0):
        self.cluster = cluster
        self.retry_interval = retry_interval
        self._terminating: set[str] = set()

    async def run(self) -> None:
        feed = ChangeFeed(self.cluster.store, RESOURCES)
        try:
            for ns in self.cluster.store.list("namespaces"):
                if ns["metadata"].get("deletionTimestamp"):
                    self._terminating.add(ns["metadata"]["name"])
            due = set(self._terminating)
            while True:
                for name in sorted(due):
                    self.sync(name)
                change = await feed.next(self.retry_interval if self._terminating else None)
                if change is None:  # periodic retry, for objects held by foreign finalizers
                    due = set(self._terminating)
                    continue
                due = set()
                for c in [change] + feed.drain():
                    if c.resource == "namespaces":
                        if c.type != "DELETED" and c.obj["metadata"].get("deletionTimestamp"):
                            self._terminating.add(c.obj["metadata"]["name"])
                            due.add(c.obj["metadata"]["name"])
                    elif c.namespace in self._terminating:
                        due.add(c.namespace)
        finally:
            feed.close()

    async def stop(self) -> None:
        pass

    async def reset(self) -> None:
        self._terminating.clear()

    def sync(self, namespace: str) -> bool:
        """One pass over a terminating namespace; True once the namespace is gone."""
        store = self.cluster.store
        ns = store.find("namespaces", "", namespace)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            self._terminating.discard(namespace)
            return ns is None
        # Pods first: the claims they mount can only be released once they are gone.
        order = ["pods"] + [r for r, namespaced in RESOURCES.items() if namespaced and r != "pods"]
        for resource in order:
            for obj in store.list(resource, namespace):
                self._delete(resource, namespace, obj)
        if any(store.list(resource, namespace) for resource in order):
            return False
        spec = dict(ns.get("spec") or {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]
        self.cluster.write("namespaces", {**ns, "metadata": dict(ns["metadata"]), "spec": spec})
        gone = store.find("namespaces", "", namespace) is None
        if gone:
            self._terminating.discard(namespace)
        return gone

    def _delete(self, resource: str, namespace: str, obj: dict) -> None:
        md = obj["metadata"]
        try:
            if resource == "pods":
                # Grace 0 removes the pod at once (a pod with finalizers waits for them).
                self.cluster.delete("pods", namespace, md["name"], grace_period=0)
                return
            if not md.get("deletionTimestamp"):
                self.cluster.delete(resource, namespace, md["name"])
            current = self.cluster.store.find(resource, namespace, md["name"])
            if (
                resource == "persistentvolumeclaims"
                and current is not None
                and PVC_PROTECTION in (current["metadata"].get("finalizers") or [])
                and not claim_in_use(self.cluster.store, current)
            ):
                self.cluster.write(resource, without_finalizer(current, PVC_PROTECTION))
        except errors.ApiError as e:  # already removed, e.g. by the garbage collector
            if e.code != 404:
                raise


# -- EventTTL -------------------------------------------------------------------------------


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class EventTTL:
    """Drops events older than ``ttl`` seconds (the apiserver's ``--event-ttl``, 1 h by default).

    An event's age counts from ``lastTimestamp``, else ``eventTime``, else its creation.
    ``clock`` returns the current UTC time; inject one to test expiry without waiting.
    """

    def __init__(
        self,
        cluster: "Cluster",
        *,
        ttl: float = 3600.0,
        interval: float = 60.0,
        clock: Callable[[], datetime] | None = None,
    ):
        self.cluster = cluster
        self.ttl = ttl
        self.interval = interval
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    async def run(self) -> None:
        while True:
            self.expire()
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        pass

    async def reset(self) -> None:
        pass

    def expire(self) -> int:
        """Remove expired events now; returns how many were removed."""
        cutoff = self.clock() - timedelta(seconds=self.ttl)
        removed = 0
        for event in self.cluster.store.list("events"):
            stamp = (
                _parse_time(event.get("lastTimestamp"))
                or _parse_time(event.get("eventTime"))
                or _parse_time(event["metadata"].get("creationTimestamp"))
            )
            if stamp is not None and stamp < cutoff:
                try:
                    self.cluster.store.remove("events", event["metadata"]["namespace"], event["metadata"]["name"])
                    removed += 1
                except errors.ApiError:
                    pass
        return removed
