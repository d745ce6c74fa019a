"""Object storage for the emulator: one global resourceVersion, bounded history, watch fan-out.

Objects are stored as plain API-form dicts and treated as immutable once stored: every write
stores a new dict, so readers (HTTP lists, watchers, controllers) share references safely and
each object version is serialised to JSON at most once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from . import errors

# Resources the emulator serves, with whether they are namespaced.
RESOURCES: dict[str, bool] = {
    "namespaces": False,
    "nodes": False,
    "pods": True,
    "services": True,
    "secrets": True,
    "configmaps": True,
    "persistentvolumeclaims": True,
    "events": True,
    "resourcequotas": True,
    "limitranges": True,
    "serviceaccounts": True,
    "storageclasses": False,
    # RBAC (enforced by the HTTP layer, see rbac.py), NetworkPolicy (stored only) and the
    # access review kubectl auth can-i creates (answered, never stored).
    "roles": True,
    "rolebindings": True,
    "clusterroles": False,
    "clusterrolebindings": False,
    "networkpolicies": True,
    "selfsubjectaccessreviews": False,
}

# Resources outside the core group, by the group version that serves them; everything else is
# core "v1" (served under /api/v1, the others under /apis/<group>/<version>).
GROUP_VERSIONS: dict[str, str] = {
    "storageclasses": "storage.k8s.io/v1",
    "roles": "rbac.authorization.k8s.io/v1",
    "rolebindings": "rbac.authorization.k8s.io/v1",
    "clusterroles": "rbac.authorization.k8s.io/v1",
    "clusterrolebindings": "rbac.authorization.k8s.io/v1",
    "networkpolicies": "networking.k8s.io/v1",
    "selfsubjectaccessreviews": "authorization.k8s.io/v1",
}


def api_version(resource: str) -> str:
    """The apiVersion of ``resource``'s objects: "v1" or "<group>/<version>"."""
    return GROUP_VERSIONS.get(resource, "v1")


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass
class Change:
    """One storage write, as a watcher sees it."""

    rv: int
    resource: str
    namespace: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: dict
    old: dict | None = None
    _raw: bytes | None = field(default=None, repr=False)

    @property
    def raw(self) -> bytes:
        """The object's compact JSON, computed once per change and shared by all watchers."""
        if self._raw is None:
            self._raw = dumps(self.obj)
        return self._raw


class Watcher:
    """A filtered view of the change stream, with its own queue.

    ``matches(obj)`` decides membership; a change that moves an object into or out of the
    selection is delivered as ADDED or DELETED (the apiserver's watch-cache semantics).
    """

    def __init__(self, store: "Store", resource: str, namespace: str | None, matches: Callable[[dict], bool]):
        self.store = store
        self.resource = resource
        self.namespace = namespace
        self.matches = matches
        self.queue: asyncio.Queue[tuple[str, Change] | None] = asyncio.Queue()
        self.closed = False

    def offer(self, change: Change) -> None:
        if self.namespace is not None and change.namespace != self.namespace:
            return
        new_match = self.matches(change.obj)
        if change.type == "ADDED":
            if new_match:
                self.queue.put_nowait(("ADDED", change))
        elif change.type == "DELETED":
            if new_match:
                self.queue.put_nowait(("DELETED", change))
        else:
            old_match = change.old is not None and self.matches(change.old)
            if new_match and old_match:
                self.queue.put_nowait(("MODIFIED", change))
            elif new_match:
                self.queue.put_nowait(("ADDED", change))
            elif old_match:
                self.queue.put_nowait(("DELETED", change))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)
            self.store._watchers.get(self.resource, set()).discard(self)


class Store:
    """Objects keyed by resource, namespace and name, versioned by one global counter."""

    def __init__(self, history_size: int = 20000):
        self.rv = 0
        self.history: deque[Change] = deque(maxlen=history_size)
        # The newest rv that is no longer in history: a watch from an older rv is Expired.
        self.compacted = 0
        self._objects: dict[str, dict[tuple[str, str], dict]] = {r: {} for r in RESOURCES}
        self._raw: dict[int, bytes] = {}
        self._watchers: dict[str, set[Watcher]] = {}
        # Synchronous hooks run after every write, in registration order (quota recompute, GC).
        self.hooks: list[Callable[[Change], None]] = []
        self._subscribers: list[tuple[set[str], asyncio.Queue]] = []

    # -- reads ---------------------------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> dict:
        obj = self._objects[resource].get((namespace, name))
        if obj is None:
            raise errors.not_found(resource, name)
        return obj

    def find(self, resource: str, namespace: str, name: str) -> dict | None:
        return self._objects[resource].get((namespace, name))

    def list(self, resource: str, namespace: str | None = None) -> list[dict]:
        objs = self._objects[resource]
        if namespace is None:
            return list(objs.values())
        return [o for (ns, _), o in objs.items() if ns == namespace]

    def count(self, resource: str) -> int:
        return len(self._objects[resource])

    def raw(self, obj: dict) -> bytes:
        """Compact JSON of a stored object, cached per resourceVersion."""
        rv = int(obj["metadata"]["resourceVersion"])
        data = self._raw.get(rv)
        if data is None:
            data = self._raw[rv] = dumps(obj)
        return data

    # -- writes --------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _key(self, obj: dict) -> tuple[str, str]:
        md = obj["metadata"]
        return (md.get("namespace", ""), md["name"])

    def create(self, resource: str, obj: dict) -> dict:
        """Store a new object; sets uid, resourceVersion and creationTimestamp. 409 if it exists."""
        key = self._key(obj)
        if key in self._objects[resource]:
            raise errors.already_exists(resource, key[1])
        md = obj["metadata"]
        md["uid"] = md.get("uid") or str(uuid.uuid4())
        md["creationTimestamp"] = md.get("creationTimestamp") or now_rfc3339()
        rv = self._next_rv()
        md["resourceVersion"] = str(rv)
        self._objects[resource][key] = obj
        self._emit(Change(rv, resource, key[0], "ADDED", obj))
        return obj

    def update(self, resource: str, obj: dict, expect_rv: str | None = None) -> dict:
        """Replace a stored object with ``obj`` (a new dict). 409 Conflict on a stale rv."""
        key = self._key(obj)
        old = self._objects[resource].get(key)
        if old is None:
            raise errors.not_found(resource, key[1])
        if expect_rv and expect_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(resource, key[1])
        md = obj["metadata"]
        # Identity fields are server-owned.
        md["uid"] = old["metadata"]["uid"]
        md["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        rv = self._next_rv()
        md["resourceVersion"] = str(rv)
        self._objects[resource][key] = obj
        self._emit(Change(rv, resource, key[0], "MODIFIED", obj, old))
        return obj

    def remove(self, resource: str, namespace: str, name: str) -> dict:
        """Remove an object from storage (the final step of a delete); emits DELETED."""
        old = self._objects[resource].pop((namespace, name), None)
        if old is None:
            raise errors.not_found(resource, name)
        rv = self._next_rv()
        last = {**old, "metadata": {**old["metadata"], "resourceVersion": str(rv)}}
        self._emit(Change(rv, resource, namespace, "DELETED", last, old))
        return last

    def _emit(self, change: Change) -> None:
        if len(self.history) == self.history.maxlen:
            dropped = self.history[0]
            self.compacted = dropped.rv
            self._raw.pop(dropped.rv, None)
        self.history.append(change)
        if change.old is not None:
            self._raw.pop(int(change.old["metadata"]["resourceVersion"]), None)
        for w in tuple(self._watchers.get(change.resource, ())):
            w.offer(change)
        for resources, queue in self._subscribers:
            if change.resource in resources:
                queue.put_nowait(change)
        # Hooks run last: the writes they make (quota status, GC deletes) get later rvs and
        # must reach watchers after the change that caused them.
        for hook in self.hooks:
            hook(change)

    # -- watches -------------------------------------------------------------------------

    def watch(
        self,
        resource: str,
        namespace: str | None,
        matches: Callable[[dict], bool],
        since: int | None,
    ) -> Watcher:
        """Open a watch. ``since=None`` replays current objects as ADDED; otherwise replays
        history after ``since``. Raises 410 Expired (as ApiError) if ``since`` is compacted."""
        if since is not None and since < self.compacted:
            raise errors.expired(since, self.compacted)
        w = Watcher(self, resource, namespace, matches)
        if since is None:
            for obj in self.list(resource, namespace):
                if matches(obj):
                    rv = int(obj["metadata"]["resourceVersion"])
                    w.queue.put_nowait(("ADDED", Change(rv, resource, obj["metadata"].get("namespace", ""), "ADDED", obj)))
        else:
            replay = []
            for change in reversed(self.history):
                if change.rv <= since:
                    break
                if change.resource == resource:
                    replay.append(change)
            for change in reversed(replay):
                w.offer(change)
        self._watchers.setdefault(resource, set()).add(w)
        return w

    def subscribe(self, resources: Iterable[str]) -> asyncio.Queue:
        """An unfiltered queue of every Change to ``resources``, for in-process controllers."""
        queue: asyncio.Queue = asyncio.Queue()
        self._subscribers.append((set(resources), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers = [(r, q) for r, q in self._subscribers if q is not queue]

    def reset(self) -> None:
        """Drop every object and close every watch. The rv stays monotonic so that clients
        holding an old rv get a clean relist instead of 'too large resource version'."""
        for resource in self._objects:
            self._objects[resource] = {}
        self._raw.clear()
        self.history.clear()
        self.compacted = self.rv
        for watchers in list(self._watchers.values()):
            for w in list(watchers):
                w.close()
        self._watchers.clear()
