"""The emulated control plane: API verbs with apiserver admission, on top of the store.

``Cluster`` is what the HTTP layer and in-process callers (tests, the demo, controllers) use.
Its create path follows the apiserver's order (kube-emulator-spec §4.1):

    namespace exists / not terminating (404 / 403)
    -> defaulting -> LimitRanger defaults -> ServiceAccount
    -> ExtendedResourceToleration (only with ``extended_resource_toleration``)
    -> validation (422)
    -> LimitRanger validation (403) -> PodSecurity (403) -> ResourceQuota (403, last)
    -> storage (409)
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets as _secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from ..policy import security
from . import defaults, errors, extended_resource_toleration, limitrange, quota, rbac, storageclasses, validation
from .store import RESOURCES, Change, Store, now_rfc3339

log = logging.getLogger("jhplatform.devcluster")

# Pod phases after which a pod uses no compute and is not running.
TERMINAL_PHASES = ("Succeeded", "Failed")

# Resources whose writes change ResourceQuota usage.
QUOTA_RESOURCES = ("pods", "persistentvolumeclaims", "services", "secrets", "configmaps", "resourcequotas")


def _rfc3339(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class Cluster:
    """An in-memory Kubernetes control plane.

    Parameters
    ----------
    store:
        Where objects live; a new one by default.
    """

    def __init__(self, store: Store | None = None):
        self.store = store or Store()
        self.store.hooks.append(self._garbage_collect)
        self.store.hooks.append(self._recompute_quotas)
        self.quota_usage = quota.UsageTracker()
        self._ip_counter = 0
        self._event_counter = 0
        self.controllers: list[Any] = []
        self._tasks: list[asyncio.Task] = []
        # Checks on changes to an existing claim's spec: immutability, no shrinking below the
        # volume's capacity, and PersistentVolumeClaimResize (growing needs a StorageClass with
        # allowVolumeExpansion). A real apiserver always runs them; DevCluster turns them on
        # (it creates StorageClasses at bootstrap), a bare Cluster leaves them off so claims of
        # classes that do not exist as objects can still be grown by hand.
        self.claim_update_admission = False
        # The optional ExtendedResourceToleration admission plugin (GKE enables it); off, as on
        # most clusters, so a pod must tolerate a GPU pool's taint by itself.
        self.extended_resource_toleration = False

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        for controller in self.controllers:
            self._tasks.append(asyncio.create_task(controller.run(), name=type(controller).__name__))

    async def stop(self) -> None:
        for controller in self.controllers:
            stop = getattr(controller, "stop", None)
            if stop is not None:
                await stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()

    async def add_controller(self, controller: Any) -> None:
        """Attach and start a controller on a running cluster."""
        self.controllers.append(controller)
        if self._tasks:
            self._tasks.append(asyncio.create_task(controller.run(), name=type(controller).__name__))

    async def remove_controller(self, controller: Any) -> None:
        """Stop and detach a controller."""
        if controller not in self.controllers:
            return
        index = self.controllers.index(controller)
        self.controllers.remove(controller)
        stop = getattr(controller, "stop", None)
        if stop is not None:
            await stop()
        if self._tasks:
            task = self._tasks.pop(index)
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    async def reset(self) -> None:
        """Forget all objects (keeping the rv monotonic); controllers drop their state."""
        for controller in self.controllers:
            reset = getattr(controller, "reset", None)
            if reset is not None:
                await reset()
        self.store.reset()
        self.quota_usage.reset()

    # -- reads ---------------------------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> dict:
        self._check_resource(resource)
        return self.store.get(resource, namespace if RESOURCES[resource] else "", name)

    def list(self, resource: str, namespace: str | None = None) -> list[dict]:
        self._check_resource(resource)
        return self.store.list(resource, namespace if RESOURCES[resource] else None)

    # -- create --------------------------------------------------------------------------

    def create(self, resource: str, namespace: str | None, body: dict) -> dict:
        """Admit and store a new object, as ``POST`` does."""
        self._check_resource(resource)
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise errors.bad_request("metadata must be an object")
        namespaced = RESOURCES[resource]
        if namespaced:
            if md.get("namespace") and md["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            md["namespace"] = namespace
        else:
            md.pop("namespace", None)
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + _secrets.token_hex(3)[:5]
        name = md.get("name") or ""
        if not name:
            raise errors.invalid(
                resource, "", [{"reason": "FieldValueRequired", "message": "name or generateName is required", "field": "metadata.name"}]
            )

        if namespaced:
            self._namespace_lifecycle(resource, namespace, name)

        if resource == "storageclasses":
            obj = storageclasses.default_class_object(obj)
        obj = defaults.default_object(
            resource,
            obj,
            namespace,
            allocate_ip=self._allocate_cluster_ip,
            # DefaultStorageClass admission: None while no class is marked default.
            default_storage_class=storageclasses.default_storage_class(self.store.list("storageclasses")),
        )
        limitranges = []
        if resource == "pods":
            limitranges = self.store.list("limitranges", namespace)
            if limitranges:
                obj = limitrange.apply_defaults(obj, limitranges)
            self._service_account(obj)
            if self.extended_resource_toleration:
                obj = extended_resource_toleration.admit(obj)
        validation.validate(resource, obj)
        if resource == "storageclasses":
            storageclasses.validate_class(obj)
        if resource in ("pods", "persistentvolumeclaims") and limitranges is not None:
            lrs = limitranges if resource == "pods" else self.store.list("limitranges", namespace)
            if lrs:
                limitrange.validate(resource, obj, lrs)
        if resource == "pods":
            self._pod_security(obj)
        quota_updates = []
        if namespaced and resource != "events":
            quotas = self.store.list("resourcequotas", namespace)
            if quotas:
                quota_updates = quota.admit(resource, obj, quotas)
        if self.store.find(resource, md.get("namespace", ""), name) is not None:
            raise errors.already_exists(resource, name)
        created = self.store.create(resource, obj)
        for q in quota_updates:
            self._write_quota_status(q)
        if resource == "namespaces":
            self._ensure_default_service_account(name)
        return created

    def _check_resource(self, resource: str) -> None:
        if resource not in RESOURCES:
            raise errors.not_found(resource, "")

    def _namespace_lifecycle(self, resource: str, namespace: str, name: str) -> None:
        ns = self.store.find("namespaces", "", namespace)
        if ns is None:
            raise errors.ApiError(
                404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"}
            )
        if ns.get("status", {}).get("phase") == "Terminating" or ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                resource,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
                causes=[
                    {
                        "reason": "NamespaceTerminating",
                        "message": f"namespace {namespace} is being terminated",
                        "field": "metadata.namespace",
                    }
                ],
            )

    def _service_account(self, pod: dict) -> None:
        spec = pod["spec"]
        ns = pod["metadata"]["namespace"]
        sa = spec.get("serviceAccountName") or "default"
        if self.store.find("serviceaccounts", ns, sa) is None:
            raise errors.forbidden(
                "pods",
                pod["metadata"]["name"],
                f'error looking up service account {ns}/{sa}: serviceaccount "{sa}" not found',
            )

    def _pod_security(self, pod: dict) -> None:
        ns = self.store.find("namespaces", "", pod["metadata"]["namespace"])
        labels = (ns or {}).get("metadata", {}).get("labels") or {}
        level, version = security.namespace_policy(labels, "enforce")
        if level == "privileged":
            return
        violations = security.evaluate(pod, level, version)
        if violations:
            raise errors.ApiError(
                403,
                "Forbidden",
                security.forbidden_message(pod["metadata"]["name"], violations, level, version),
                {"name": pod["metadata"]["name"], "kind": "pods"},
            )

    def _ensure_default_service_account(self, namespace: str) -> None:
        # The ServiceAccount controller creates "default" in every new namespace; doing it
        # synchronously avoids a race the real cluster has (pod create 403 right after ns create).
        if self.store.find("serviceaccounts", namespace, "default") is None:
            self.store.create(
                "serviceaccounts",
                {"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "default", "namespace": namespace}},
            )

    def _allocate_cluster_ip(self) -> str:
        self._ip_counter += 1
        n = self._ip_counter
        return f"10.96.{(n // 250) % 250}.{n % 250 + 1}"

    # -- update --------------------------------------------------------------------------

    def replace(self, resource: str, namespace: str | None, name: str, body: dict, subresource: str | None = None) -> dict:
        """``PUT``: replace the object (or only its status with ``subresource="status"``)."""
        self._check_resource(resource)
        ns = namespace if RESOURCES[resource] else ""
        old = self.store.get(resource, ns, name)
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        body_md = body.get("metadata") or {}
        if body_md.get("name") and body_md["name"] != name:
            raise errors.bad_request("the name of the object does not match the name on the URL")
        expect_rv = body_md.get("resourceVersion")
        if subresource == "status":
            new = {**old, "status": copy.deepcopy(body.get("status", {}))}
            new["metadata"] = dict(old["metadata"])
        else:
            new = copy.deepcopy(body)
            new.setdefault("kind", old.get("kind"))
            new.setdefault("apiVersion", old.get("apiVersion"))
            md = new.setdefault("metadata", {})
            md["name"] = name
            if RESOURCES[resource]:
                md["namespace"] = ns
            # Status is owned by the status subresource; a main-resource update keeps it.
            if "status" in old:
                new["status"] = old["status"]
            # deletionTimestamp can't be set or cleared through an update.
            for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                if key in old["metadata"]:
                    md[key] = old["metadata"][key]
                else:
                    md.pop(key, None)
        return self._update(resource, old, new, expect_rv, subresource)

    def patch(self, resource: str, namespace: str | None, name: str, patch: Any, content_type: str, subresource: str | None = None) -> dict:
        """``PATCH`` with merge, strategic-merge or JSON patch."""
        from .patch import apply_patch

        self._check_resource(resource)
        ns = namespace if RESOURCES[resource] else ""
        old = self.store.get(resource, ns, name)
        patched = apply_patch(old, patch, content_type)
        return self.replace(resource, namespace, name, patched, subresource)

    def _update(self, resource: str, old: dict, new: dict, expect_rv: str | None, subresource: str | None) -> dict:
        if subresource is None:
            validation.validate(resource, new)
            self._check_immutable(resource, old, new)
            if resource == "pods" and new.get("spec") != old.get("spec"):
                self._pod_security(new)
            if resource == "storageclasses":
                storageclasses.validate_class(new, old)
            if resource == "persistentvolumeclaims" and self.claim_update_admission:
                classes = {c["metadata"]["name"]: c for c in self.store.list("storageclasses")}
                refusal = storageclasses.claim_update_error(old, new, classes)
                if refusal is not None:
                    raise refusal
        if resource == "persistentvolumeclaims" and subresource is None:
            quotas = self.store.list("resourcequotas", new["metadata"]["namespace"])
            if quotas:
                for q in quota.admit(resource, new, quotas, old=old):
                    self._write_quota_status(q)
        if resource == "resourcequotas" and subresource is None:
            # The quota controller rewrites status.hard/used when spec.hard changes.
            pass
        stored = self.store.update(resource, new, expect_rv)
        return self._maybe_finalize(resource, stored)

    def _check_immutable(self, resource: str, old: dict, new: dict) -> None:
        if resource in ("rolebindings", "clusterrolebindings"):
            rbac.check_role_ref_unchanged(old, new, resource)
        if resource != "pods":
            return
        # Pod spec is immutable apart from a few fields (ValidatePodUpdate).
        mutable = ("activeDeadlineSeconds", "tolerations", "schedulingGates")

        def munged(spec: dict) -> dict:
            # Only containers[*].image and initContainers[*].image may change within containers.
            s = {k: v for k, v in spec.items() if k not in mutable}
            for key in ("containers", "initContainers"):
                if isinstance(s.get(key), list):
                    s[key] = [{**c, "image": None} if isinstance(c, dict) else c for c in s[key]]
            return s

        o = munged(old.get("spec") or {})
        n = munged(new.get("spec") or {})
        if o != n and not (not o.get("nodeName") and n.get("nodeName") and {**o, "nodeName": n["nodeName"]} == n):
            raise errors.invalid(
                "pods",
                new["metadata"]["name"],
                [
                    {
                        "reason": "FieldValueForbidden",
                        "message": "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
                        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
                        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                        "field": "spec",
                    }
                ],
            )

    def write(self, resource: str, obj: dict) -> dict:
        """Store a new version of an object without admission: what controllers (scheduler,
        kubelet, binder) do through the binding and status subresources."""
        stored = self.store.update(resource, obj)
        return self._maybe_finalize(resource, stored)

    def _maybe_finalize(self, resource: str, obj: dict) -> dict:
        md = obj["metadata"]
        if md.get("deletionTimestamp") and not md.get("finalizers") and resource not in ("pods", "namespaces"):
            return self.store.remove(resource, md.get("namespace", ""), md["name"])
        if resource == "namespaces" and md.get("deletionTimestamp") and not (obj.get("spec") or {}).get("finalizers") and not md.get("finalizers"):
            return self.store.remove(resource, "", md["name"])
        return obj

    # -- delete --------------------------------------------------------------------------

    def delete(self, resource: str, namespace: str | None, name: str, grace_period: int | None = None) -> dict:
        """``DELETE``. Returns the object (pods, services, PVCs, namespaces) or a Status."""
        self._check_resource(resource)
        ns = namespace if RESOURCES[resource] else ""
        obj = self.store.get(resource, ns, name)
        md = obj["metadata"]
        if resource == "pods":
            return self._delete_pod(obj, grace_period)
        if resource == "namespaces":
            if md.get("deletionTimestamp"):
                return obj
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new.setdefault("status", {})["phase"] = "Terminating"
            return self.store.update("namespaces", new)
        if md.get("finalizers"):
            if md.get("deletionTimestamp"):
                return obj
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self.store.update(resource, new)
        last = self.store.remove(resource, ns, name)
        if resource in ("secrets", "configmaps", "events", "resourcequotas", "limitranges", "serviceaccounts"):
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "kind": resource, "uid": md["uid"]},
            }
        return last

    def _delete_pod(self, pod: dict, grace_period: int | None) -> dict:
        md, spec = pod["metadata"], pod.get("spec") or {}
        # CheckGracefulDelete: default from the spec; 0 for unscheduled or terminal pods.
        grace = grace_period if grace_period is not None else spec.get("terminationGracePeriodSeconds", 30)
        if grace is None:
            grace = 30
        if grace < 0:
            grace = 1
        phase = (pod.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in TERMINAL_PHASES:
            grace = 0
        if md.get("deletionTimestamp"):
            current = md.get("deletionGracePeriodSeconds", 0)
            if grace >= current:
                return pod
        new = copy.deepcopy(pod)
        now = datetime.now(timezone.utc)
        new["metadata"]["deletionTimestamp"] = _rfc3339(now + timedelta(seconds=grace))
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        if grace == 0 and not md.get("finalizers"):
            self.store.update("pods", new)
            return self.store.remove("pods", md["namespace"], md["name"])
        return self.store.update("pods", new)

    def finish_pod_deletion(self, pod: dict) -> None:
        """The kubelet's final grace-0 delete once containers have stopped."""
        md = pod["metadata"]
        current = self.store.find("pods", md["namespace"], md["name"])
        if current is None or current["metadata"]["uid"] != md["uid"]:
            return
        if current["metadata"].get("finalizers"):
            return
        self.store.remove("pods", md["namespace"], md["name"])

    # -- events --------------------------------------------------------------------------

    def record_event(
        self,
        involved: dict,
        type: str,
        reason: str,
        message: str,
        *,
        component: str = "kubelet",
        host: str | None = None,
        field_path: str | None = None,
        new_style: bool = False,
        action: str | None = None,
    ) -> dict | None:
        """Write a core/v1 Event about ``involved`` (spec §2.5).

        ``new_style`` events (the scheduler's, written through events.k8s.io/v1) have
        ``eventTime`` set and null legacy timestamps; legacy (kubelet) events the reverse.
        Both keys are always present because KubeSpawner sorts on them.
        """
        md = involved["metadata"]
        ns = md.get("namespace", "default")
        if self.store.find("namespaces", "", ns) is None:
            return None
        self._event_counter += 1
        now = datetime.now(timezone.utc)
        stamp = now_rfc3339()
        involved_ref = {
            "kind": involved.get("kind", "Pod"),
            "namespace": ns,
            "name": md["name"],
            "uid": md.get("uid", ""),
            "apiVersion": involved.get("apiVersion", "v1"),
            "resourceVersion": md.get("resourceVersion", ""),
        }
        if field_path:
            involved_ref["fieldPath"] = field_path
        event = {
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {"name": f"{md['name']}.{int(now.timestamp() * 1e9) + self._event_counter:x}"[:253], "namespace": ns},
            "involvedObject": involved_ref,
            "reason": reason,
            "message": message,
            "type": type,
            "reportingComponent": component,
            "reportingInstance": host or "",
        }
        if new_style:
            event.update(
                source={},
                firstTimestamp=None,
                lastTimestamp=None,
                eventTime=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                action=action or reason,
            )
        else:
            event.update(
                source={"component": component, **({"host": host} if host else {})},
                firstTimestamp=stamp,
                lastTimestamp=stamp,
                count=1,
                eventTime=None,
            )
        return self.store.create("events", event)

    # -- built-in controllers that run synchronously on every write ----------------------

    def _garbage_collect(self, change: Change) -> None:
        """Background-propagation GC: dependents whose owners are all gone are deleted.

        Runs on DELETED; the real GC matches owners by uid, not by name.
        """
        if change.type != "DELETED":
            return
        uid = change.obj["metadata"].get("uid")
        ns = change.namespace
        for resource, namespaced in RESOURCES.items():
            if resource in ("events",) or (namespaced and not ns and change.resource != "namespaces"):
                continue
            for obj in self.store.list(resource, ns if namespaced else None):
                refs = obj["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                remaining = [r for r in refs if r.get("uid") != uid and self._owner_exists(r, obj)]
                if remaining:
                    new = copy.deepcopy(obj)
                    new["metadata"]["ownerReferences"] = remaining
                    self.store.update(resource, new)
                else:
                    try:
                        self.delete(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
                    except errors.ApiError:
                        pass

    def _owner_exists(self, ref: dict, dependent: dict) -> bool:
        kind_to_resource = {v: k for k, v in errors.KINDS.items()}
        resource = kind_to_resource.get(ref.get("kind", ""))
        if resource is None:
            return True
        ns = dependent["metadata"].get("namespace", "") if RESOURCES[resource] else ""
        owner = self.store.find(resource, ns, ref.get("name", ""))
        return owner is not None and owner["metadata"]["uid"] == ref.get("uid")

    def _recompute_quotas(self, change: Change) -> None:
        """The quota controller, made synchronous: keep ``status`` of every quota in the
        namespace up to date after a write that changes usage (spec §4.4 recommendation).

        A quota is synced in full when it is created or its spec changes; after that each
        object write moves its usage by that object's difference (:class:`quota.UsageTracker`),
        so the cost of a write does not grow with the namespace."""
        if change.resource not in QUOTA_RESOURCES or not change.namespace:
            return
        if change.resource == "resourcequotas":
            if change.type == "DELETED":
                self.quota_usage.forget(change.namespace, change.obj["metadata"]["name"])
                return
            if change.old is not None and change.old.get("spec") == change.obj.get("spec") and self.quota_usage.is_synced(change.obj):
                return
            quotas = [change.obj]
        else:
            if change.type == "MODIFIED" and not self._usage_may_change(change):
                return
            quotas = self.store.list("resourcequotas", change.namespace)
        for q in quotas:
            if self.quota_usage.is_synced(q):
                if change.resource == "resourcequotas" or not self.quota_usage.observe(
                    q, change.resource, change.obj, deleted=change.type == "DELETED"
                ):
                    continue
                status = self.quota_usage.status(q)
            else:
                objects = {r: self.store.list(r, change.namespace) for r in QUOTA_RESOURCES if r != "resourcequotas"}
                objects["resourcequotas"] = self.store.list("resourcequotas", change.namespace)
                status = self.quota_usage.sync(q, objects)
            if status != q.get("status"):
                current = self.store.find("resourcequotas", change.namespace, q["metadata"]["name"])
                if current is not None:
                    self.store.update("resourcequotas", {**current, "status": status, "metadata": dict(current["metadata"])})

    @staticmethod
    def _usage_may_change(change: Change) -> bool:
        old, new = change.old or {}, change.obj
        if change.resource == "pods":
            return (
                (old.get("status") or {}).get("phase") != (new.get("status") or {}).get("phase")
                or old["metadata"].get("deletionTimestamp") != new["metadata"].get("deletionTimestamp")
            )
        return old.get("spec") != new.get("spec") or old.get("status") != new.get("status")

    def _write_quota_status(self, q: dict) -> None:
        current = self.store.find("resourcequotas", q["metadata"]["namespace"], q["metadata"]["name"])
        if current is not None and current.get("status") != q.get("status"):
            self.store.update("resourcequotas", {**current, "status": q["status"], "metadata": dict(current["metadata"])})
