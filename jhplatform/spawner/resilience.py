"""PlatformSpawner on a misbehaving Kubernetes API: retry what an apiserver means as "try again",
recover broken watches, and tell the user in words when a spawn still fails.

KubeSpawner 7.1 retries only its own client timeouts. Under the 5xx answers and cut-off watches
an apiserver gives when it, etcd or a proxy in front of it is briefly unwell:

- a 5xx on a pod, PVC or Service create fails the spawn, and the user reads the Kubernetes
  client's dump (``(503)\\nReason: error\\nHTTP response headers: <CIMultiDictProxy(…)>…``);
- a 5xx on the pod delete fails the stop; JupyterHub then forgets the server anyway, so the pod
  is left running (and holding its GPU) with no server on the hub;
- a 5xx on the pod reflector's first list leaves a reflector that never started registered for
  the whole process: every later spawn gets it, never sees its pod ("does not have a uid!") and
  fails, until the hub restarts;
- a pod create the apiserver committed after the client gave up can land after the stop's
  delete: the stop waits ``start_timeout`` for the pod to go and fails;
- a spawn JupyterHub's ``start_timeout`` ends (a pod no node has room for) ends with an empty
  message.

The decisions (what is transient, the words) are :mod:`jhplatform.policy.api_errors`; this mixin
applies them at KubeSpawner's request methods, its reflector start, and around ``_start`` and
``stop``. A spawn still unfinished a second before ``start_timeout`` is ended here, with a
message saying what it waited for.
"""

from __future__ import annotations

import asyncio
import json
import time

from kubernetes_asyncio.client.rest import ApiException
from tornado import web
from traitlets.config import LoggingConfigurable

from ..policy.api_errors import (
    api_failure_message,
    api_timeout_message,
    is_transient,
    start_timeout_message,
    start_waiting_for,
    status_text,
)


class SpawnFailure(Exception):
    """A spawn that failed. ``jupyterhub_message`` is what the user reads (JupyterHub shows it in
    the progress stream); the exception's text is for the log."""

    def __init__(self, user_message: str, log_message: str):
        super().__init__(log_message)
        self.jupyterhub_message = user_message


class KubernetesApiFailure(SpawnFailure):
    """A spawn the Kubernetes API failed, after retries."""


class StartTimedOut(SpawnFailure):
    """A spawn stopped at ``start_timeout``."""


#: PlatformSpawner stops a spawn this long before JupyterHub's own ``start_timeout`` would (which
#: starts a moment earlier, and ends the spawn with an empty message).
START_TIMEOUT_MARGIN = 1.0


def _api_detail(error: ApiException) -> str:
    try:
        return json.loads(error.body).get("message") or ""
    except (TypeError, ValueError, AttributeError):
        return ""


def _broken(reflector) -> bool:
    """A reflector whose first list failed (stock KubeSpawner keeps handing it out), or whose
    watch loop gave up after repeated failures."""
    first = reflector.first_load_future
    if first.done() and not first.cancelled() and first.exception() is not None:
        return True
    task = reflector.watch_task
    return task is not None and task.done() and not reflector._stopping


class ApiResilienceMixin(LoggingConfigurable):
    """Retries 429/5xx answers within KubeSpawner's ``k8s_api_request_retry_timeout``, restarts
    broken reflectors, and turns the Kubernetes errors that still end a spawn into a message."""

    _reflector_restarts: dict = {}  # reflector key -> asyncio.Lock, so one spawn restarts it

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._api_action = "preparing your server"
        self._api_transient: ApiException | None = None

    # -- retry what the apiserver asks to be retried --

    async def _retry_transient(self, action: str, call, *args):
        self._api_action = action
        try:
            return await call(*args)
        except ApiException as e:
            if not is_transient(e.status):
                raise
            self._api_transient = e
            self.log.warning("%s for %s: the Kubernetes API answered %s (%s); retrying", action, self._log_name,
                             status_text(e.status, e.reason), _api_detail(e))
            return False  # KubeSpawner's exponential_backoff tries again

    async def _make_create_pod_request(self, pod, request_timeout):
        return await self._retry_transient("creating your server's pod", super()._make_create_pod_request, pod, request_timeout)

    async def _make_create_pvc_request(self, pvc, request_timeout):
        return await self._retry_transient("creating your home volume", super()._make_create_pvc_request, pvc, request_timeout)

    async def _make_create_resource_request(self, kind, manifest):
        return await self._retry_transient(f"creating your server's {kind}", super()._make_create_resource_request, kind, manifest)

    async def _make_delete_pod_request(self, pod_name, delete_options, grace_seconds, request_timeout):
        return await self._retry_transient("deleting your server's pod", super()._make_delete_pod_request,
                                           pod_name, delete_options, grace_seconds, request_timeout)

    # -- a pod created again behind the stop's back --

    async def stop(self, now=False):
        # An apiserver can commit a create after its client gave up on it (KubeSpawner then
        # retried and got its pod); when that late create lands after the stop's delete, the pod
        # is back under the same name. KubeSpawner's stop then waits start_timeout for it to go,
        # fails, and JupyterHub forgets a server whose pod runs on. Delete such a pod too.
        guard = asyncio.ensure_future(self._delete_pods_created_again())
        try:
            return await super().stop(now=now)
        finally:
            guard.cancel()

    async def _delete_pods_created_again(self) -> None:
        from kubernetes_asyncio.client import V1DeleteOptions

        key = f"{self.namespace}/{self.pod_name}"
        reflector = self.pod_reflector
        original = ((reflector.pods.get(key) if reflector is not None else None) or {}).get("metadata", {}).get("uid")
        while True:
            await asyncio.sleep(0.5)
            reflector = self.pod_reflector
            pod = reflector.pods.get(key) if reflector is not None else None
            meta = (pod or {}).get("metadata") or {}
            if pod is None or meta.get("uid") == original or meta.get("deletionTimestamp"):
                continue
            self.log.warning("Pod %s was created again after the stop deleted it (a create the API committed late); deleting it too", key)
            original = meta.get("uid")
            try:
                await self._make_delete_pod_request(self.pod_name, V1DeleteOptions(grace_period_seconds=0), 0, self.k8s_api_request_timeout)
            except ApiException as e:
                self.log.warning("Could not delete the re-created pod %s: %s", key, status_text(e.status, e.reason))

    # -- reflectors --

    async def _start_reflector(self, kind, reflector_class, replace=False, **kwargs):
        delay, deadline = 0.2, time.monotonic() + self.k8s_api_request_retry_timeout
        while True:
            try:
                return await self._start_reflector_once(kind, reflector_class, replace, **kwargs)
            except ApiException as e:
                if not is_transient(e.status) or time.monotonic() + delay > deadline:
                    self._api_action = f"reading the cluster's {kind}"
                    self._api_transient = e if is_transient(e.status) else None
                    raise
                self.log.warning("Listing %s for the hub's watch failed (%s); trying again in %.1f s",
                                 kind, status_text(e.status, e.reason), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _start_reflector_once(self, kind, reflector_class, replace, **kwargs):
        key = self._get_reflector_key(kind)
        previous = self.__class__.reflectors.get(key)
        if replace or previous is None or not _broken(previous):
            return await super()._start_reflector(kind, reflector_class, replace=replace, **kwargs)
        lock = ApiResilienceMixin._reflector_restarts.setdefault(key, asyncio.Lock())
        async with lock:
            if self.__class__.reflectors.get(key) is previous:
                self.log.warning("The hub's %s watch is broken (its list or watch kept failing); starting it again", kind)
                return await super()._start_reflector(kind, reflector_class, replace=True, **kwargs)
        return await super()._start_reflector(kind, reflector_class, replace=False, **kwargs)

    # -- what the user reads --

    async def _start(self):
        self._api_action = "preparing your server"
        self._api_transient = None
        limit = self.start_timeout - START_TIMEOUT_MARGIN
        deadline = None
        try:
            async with asyncio.timeout(limit if limit > 0 else None) as deadline:
                return await super()._start()
        except ApiException as e:
            if hasattr(e, "jupyterhub_message"):
                raise
            raise KubernetesApiFailure(
                api_failure_message(self._api_action, e.status, e.reason),
                f"Spawn of {self._log_name} failed while {self._api_action}: Kubernetes API {status_text(e.status, e.reason)}: {_api_detail(e)}",
            ) from e
        except asyncio.TimeoutError as e:
            if deadline is not None and deadline.expired():
                reflector = self.pod_reflector
                pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector is not None else None
                waiting_for = start_waiting_for(pod, self._api_action)
                raise StartTimedOut(start_timeout_message(self.start_timeout, waiting_for),
                                    f"Spawn of {self._log_name} stopped after {self.start_timeout} s: {waiting_for}") from e
            # KubeSpawner's own "did not start in N seconds" is about the pod, not the API.
            if hasattr(e, "jupyterhub_message") or isinstance(e, web.HTTPError) or "did not start" in str(e):
                raise
            last = self._api_transient
            user = (api_failure_message(self._api_action, last.status, last.reason) if last is not None
                    else api_timeout_message(self._api_action))
            answer = f"; the last answer was {status_text(last.status, last.reason)}: {_api_detail(last)}" if last is not None else ""
            raise KubernetesApiFailure(user, f"Spawn of {self._log_name} failed while {self._api_action}: {e}{answer}") from e

