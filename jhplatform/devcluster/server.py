"""The emulator's HTTP face: the Kubernetes REST API over aiohttp, plus an admin API.

Only parsing, routing and streaming live here; every decision is made by :class:`Cluster`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import time
from collections import deque
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import apply as server_side_apply, discovery, errors, openapi, printers, protobuf, rbac
from .cluster import Cluster
from .faults import Fault, Faults
from .selectors import FieldSelector, LabelSelector, parse_bool
from .store import GROUP_VERSIONS, RESOURCES, api_version, dumps
from .tokens import TokenAuthenticator

log = logging.getLogger("jhplatform.devcluster")

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-jhplatform",
    # The rest are required fields of the client's VersionInfo model (client-side validation).
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_KUBELET_LOG_MARK = re.compile(r"^--- \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2} starting \[.*\n", re.MULTILINE)

# The authenticated user of a request, for handlers that answer about "me" (access reviews).
USER = web.RequestKey("jhplatform_devcluster_user", rbac.UserInfo)

PATCH_TYPES = (
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
)


def _json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type="application/json")


def _error_response(err: errors.ApiError) -> web.Response:
    return web.Response(body=err.body().encode(), status=err.code, content_type="application/json")


class DevClusterServer:
    """A :class:`Cluster` served over HTTP on loopback.

    Parameters
    ----------
    cluster:
        The control plane to serve (with its controllers already attached).
    seed:
        Seed for fault injection's random choices.
    request_log_size:
        How many requests to remember for ``/_devcluster/requests`` and :attr:`requests`.
    """

    def __init__(self, cluster: Cluster, seed: int | None = 0, request_log_size: int = 20000):
        self.cluster = cluster
        self.faults = Faults(seed)
        self.tokens = TokenAuthenticator()
        self.authorizer = rbac.Authorizer(cluster.store)
        self.requests: deque[dict[str, Any]] = deque(maxlen=request_log_size)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._tls_site: web.TCPSite | None = None
        self.tls_port = 0
        self.certificate = None
        self._watch_responses: set[web.StreamResponse] = set()
        self.host = "127.0.0.1"
        self.port = 0
        self.app = self._make_app()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        """The HTTPS endpoint (kubectl sends bearer tokens only over TLS)."""
        return f"https://{self.host}:{self.tls_port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0, tls_port: int | None = 0) -> None:
        """Listen on ``host:port`` (HTTP) and, unless ``tls_port`` is None, on ``host:tls_port``
        (HTTPS with a certificate made now; 0 picks a free port)."""
        await self.cluster.start()
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await self._site.start()
        self.host = host
        self.port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if tls_port is not None:
            from .tls import make_serving_certificate

            hosts = tuple(dict.fromkeys((host, "127.0.0.1", "localhost")))
            self.certificate = make_serving_certificate(hosts)
            self._tls_site = web.TCPSite(self._runner, host, tls_port, ssl_context=self.certificate.ssl_context(), reuse_address=True)
            await self._tls_site.start()
            self.tls_port = self._tls_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        await self.drop_watches(clean=True)
        await self.cluster.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def reset(self) -> None:
        """Back to an empty cluster with the default namespace, nodes kept; faults cleared."""
        self.faults.clear()
        self.requests.clear()
        await self.cluster.reset()

    def kubeconfig(self, namespace: str = "default", token: str | None = None, user: str = "devcluster", tls: bool = False) -> dict[str, Any]:
        """A kubeconfig for this server: the admin's (``system:masters``) unless ``token`` is given.

        ``tls`` points it at the HTTPS port with the CA inline: what kubectl needs to send the token.
        """
        cluster: dict[str, Any] = {"server": self.url}
        if tls:
            if self.certificate is None:
                raise RuntimeError("the emulator was started without its HTTPS port (tls_port=None)")
            cluster = {"server": self.tls_url, "certificate-authority-data": base64.b64encode(self.certificate.ca_pem).decode()}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "devcluster", "cluster": cluster}],
            "users": [{"name": user, "user": {"token": token or self.tokens.admin_token}}],
            "contexts": [
                {"name": "devcluster", "context": {"cluster": "devcluster", "user": user, "namespace": namespace}}
            ],
            "current-context": "devcluster",
        }

    def write_kubeconfig(self, path: str | Path, namespace: str = "default", token: str | None = None, user: str = "devcluster",
                         tls: bool = False) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(yaml.safe_dump(self.kubeconfig(namespace, token, user, tls), sort_keys=False))
        tmp.replace(path)
        return path

    def write_serviceaccount_kubeconfig(self, path: str | Path, namespace: str, service_account: str, tls: bool = False) -> Path:
        """A kubeconfig that authenticates as ServiceAccount ``namespace/service_account``
        (``system:serviceaccount:<namespace>:<name>``), like the token projected into a pod.

        What it may do is whatever RBAC grants that ServiceAccount; its context's namespace is
        ``namespace``.
        """
        token = self.tokens.issue(namespace, service_account)
        return self.write_kubeconfig(path, namespace, token=token, user=f"{namespace}-{service_account}", tls=tls)

    async def drop_watches(self, clean: bool = False) -> int:
        """End every open watch stream; abruptly (no final chunk) unless ``clean``."""
        n = 0
        for resp in list(self._watch_responses):
            n += 1
            watcher = getattr(resp, "_jh_watcher", None)
            if clean and watcher is not None:
                watcher.close()
            else:
                resp._jh_dropped = True  # type: ignore[attr-defined]
                if watcher is not None:
                    watcher.close()
        return n

    # -- app -----------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        @web.middleware
        async def authenticate_and_authorize(request: web.Request, handler):
            return await self._authorize(request, handler)

        app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=[authenticate_and_authorize])
        app.router.add_get("/version", self._version)
        app.router.add_get("/healthz", self._ok)
        app.router.add_get("/readyz", self._ok)
        app.router.add_get("/livez", self._ok)
        app.router.add_get("/api", self._api_versions)
        app.router.add_get("/apis", self._api_groups)
        app.router.add_get("/api/v1", self._api_resources)
        # kubernetes_asyncio's discovery calls use a trailing slash (/version/, /api/, /api/v1/).
        for path, handler in (("/version/", self._version), ("/api/", self._api_versions), ("/apis/", self._api_groups), ("/api/v1/", self._api_resources)):
            app.router.add_get(path, handler)
        app.router.add_route("*", "/api/v1/{tail:.+}", self._resource)
        # Named API groups (storage.k8s.io/v1 for StorageClasses): discovery and resources.
        app.router.add_get("/apis/{group}/{version}", self._api_resources)
        app.router.add_get("/apis/{group}/{version}/", self._api_resources)
        app.router.add_route("*", "/apis/{group}/{version}/{tail:.+}", self._resource)
        app.router.add_get("/openapi/v3", self._openapi_index)
        app.router.add_get("/openapi/v3/{tail:.+}", self._openapi_document)
        app.router.add_get("/_devcluster/faults", self._faults_get)
        app.router.add_post("/_devcluster/faults", self._faults_post)
        app.router.add_delete("/_devcluster/faults", self._faults_delete)
        app.router.add_post("/_devcluster/drop-watches", self._drop_watches)
        app.router.add_post("/_devcluster/reset", self._reset)
        app.router.add_get("/_devcluster/requests", self._requests_get)
        app.router.add_delete("/_devcluster/requests", self._requests_delete)
        return app

    async def _authorize(self, request: web.Request, handler) -> web.StreamResponse:
        # Authentication, then RBAC, before anything else looks at the request (as the
        # apiserver's filter chain does). The /_devcluster admin API is not Kubernetes' and is
        # not authorised.
        if request.path.startswith("/_devcluster/"):
            return await handler(request)
        user = self.tokens.authenticate(request.headers.get("Authorization"))
        if user is None:
            return _error_response(rbac.unauthorized())
        attrs = rbac.request_attributes(request.method, request.path, request.query)
        decision = self.authorizer.authorize(user, attrs)
        if not decision.allowed:
            log.info("RBAC: %s %s refused for %s", request.method, request.path, user.name)
            self.requests.append({"method": request.method, "path_qs": request.path_qs, "verb": attrs.verb,
                                  "resource": attrs.resource or None, "namespace": attrs.namespace or None,
                                  "name": attrs.name or None, "subresource": attrs.subresource or None, "status": 403,
                                  "user": user.name})
            return _error_response(rbac.forbidden(user, attrs, decision.reason))
        request[USER] = user
        return await handler(request)

    async def _openapi_index(self, request: web.Request) -> web.Response:
        return _json_response(openapi.index())

    async def _openapi_document(self, request: web.Request) -> web.Response:
        doc = openapi.document_for_path(request.match_info["tail"])
        if doc is None:
            return _error_response(errors.ApiError(404, "NotFound", "the server could not find the requested resource", {}))
        return web.Response(body=doc, content_type="application/json")

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _version(self, request: web.Request) -> web.Response:
        return _json_response(KUBERNETES_VERSION)

    async def _api_versions(self, request: web.Request) -> web.Response:
        return _json_response(
            {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}]}
        )

    async def _api_groups(self, request: web.Request) -> web.Response:
        versions: dict[str, list[dict]] = {}
        for group_version in sorted(set(GROUP_VERSIONS.values())):
            group, version = group_version.split("/")
            versions.setdefault(group, []).append({"groupVersion": group_version, "version": version})
        groups = [{"name": g, "versions": v, "preferredVersion": v[0]} for g, v in versions.items()]
        return _json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    @staticmethod
    def _group_version(request: web.Request) -> str:
        """"v1" for /api/v1 paths, "<group>/<version>" for /apis/<group>/<version> paths."""
        group = request.match_info.get("group")
        return f"{group}/{request.match_info['version']}" if group else "v1"

    async def _api_resources(self, request: web.Request) -> web.Response:
        group_version = self._group_version(request)
        if group_version != "v1" and group_version not in GROUP_VERSIONS.values():
            return _error_response(errors.ApiError(404, "NotFound", "the server could not find the requested resource", {}))
        return _json_response(discovery.resource_list(group_version))

    # -- admin API -----------------------------------------------------------------------

    async def _faults_get(self, request: web.Request) -> web.Response:
        return _json_response({"faults": self.faults.list()})

    async def _faults_post(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if "seed" in body and len(body) == 1:
                self.faults.seed(body["seed"])
                return _json_response({"seed": body["seed"]})
            fault = self.faults.add(Fault(**body))
        except (ValueError, TypeError) as e:
            return _error_response(errors.bad_request(f"invalid fault: {e}"))
        return _json_response({"id": fault.id}, status=201)

    async def _faults_delete(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return _json_response({"faults": []})

    async def _drop_watches(self, request: web.Request) -> web.Response:
        return _json_response({"dropped": await self.drop_watches()})

    async def _reset(self, request: web.Request) -> web.Response:
        await self.reset()
        return _json_response({"resourceVersion": str(self.cluster.store.rv)})

    async def _requests_get(self, request: web.Request) -> web.Response:
        return _json_response({"requests": list(self.requests)})

    async def _requests_delete(self, request: web.Request) -> web.Response:
        self.requests.clear()
        return _json_response({"requests": []})

    # -- the Kubernetes API --------------------------------------------------------------

    @staticmethod
    def _route(tail: str) -> tuple[str, str | None, str | None, str | None]:
        """Split ``/api/v1/<tail>`` into (resource, namespace, name, subresource)."""
        parts = [p for p in tail.split("/") if p]
        if parts[0] == "namespaces" and len(parts) >= 3 and parts[2] not in ("status", "finalize"):
            ns, rest = parts[1], parts[2:]
            resource = rest[0]
            if resource not in RESOURCES or not RESOURCES[resource] or len(rest) > 3:
                raise errors.not_found(resource, rest[1] if len(rest) > 1 else "")
            return resource, ns, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None
        resource = parts[0]
        if resource not in RESOURCES or len(parts) > 3:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource", {})
        return resource, None, parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else None

    @staticmethod
    def _verb(method: str, name: str | None, watch: bool) -> str:
        if method == "GET":
            return "watch" if watch else ("get" if name else "list")
        return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        entry: dict[str, Any] = {"method": request.method, "path_qs": request.path_qs}
        self.requests.append(entry)
        try:
            resource, ns, name, sub = self._route(request.match_info["tail"])
            if api_version(resource) != self._group_version(request):
                raise errors.ApiError(404, "NotFound", "the server could not find the requested resource", {})
            watch = parse_bool(request.query.get("watch"))
            verb = self._verb(request.method, name, watch)
            entry.update(verb=verb, resource=resource, namespace=ns, name=name, subresource=sub)
            fault = self.faults.pick(verb, resource, ns, name)
            if fault is not None:
                if fault.latency or fault.hang:
                    # Buffer the body first: aiohttp drops an unread body when a client that
                    # gave up disconnects, and a delayed request must still be served after.
                    await request.read()
                if fault.latency:
                    await asyncio.sleep(fault.latency)
                if fault.hang:
                    await asyncio.sleep(fault.hang)
                if fault.status is not None:
                    entry["status"] = int(fault.status)
                    entry["fault"] = fault.id
                    return web.Response(body=dumps(fault.status_body(resource, name)), status=int(fault.status), content_type="application/json")
            if verb == "watch":
                entry["status"] = 200
                return await self._watch(request, resource, ns, fault if fault is not None and fault.drop else None)
            response = await self._serve(request, verb, resource, ns, name, sub)
            entry["status"] = response.status
            if fault is not None and fault.respond_after:
                await asyncio.sleep(fault.respond_after)
            return response
        except errors.ApiError as err:
            entry["status"] = err.code
            return _error_response(err)
        finally:
            entry["ms"] = round((time.monotonic() - started) * 1000, 3)

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {e}")

    async def _serve(self, request: web.Request, verb: str, resource: str, ns: str | None, name: str | None, sub: str | None) -> web.Response:
        c = self.cluster
        if resource == "namespaces" and sub is None and ns is None:
            pass
        if resource == "pods" and sub == "log" and verb == "get":
            return self._pod_log(request, ns or "", name or "")
        if sub is not None and sub != "status":
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if verb == "list":
            return await self._list(request, resource, ns)
        if verb == "get":
            obj = c.get(resource, ns or "", name)  # type: ignore[arg-type]
            if printers.wants_table(request.headers.get("Accept")):
                return _json_response(printers.table(resource, [obj], None, printers.include_object(request.query)))
            return _json_response(obj)
        if resource == "selfsubjectaccessreviews":
            return await self._access_review(request, verb, name)
        if verb == "create":
            if name is not None:
                raise errors.method_not_allowed()
            body = await self._body(request)
            if RESOURCES[resource] and ns is None:
                raise errors.method_not_allowed()
            return _json_response(c.create(resource, ns, body), status=201)
        if name is None:
            raise errors.method_not_allowed()
        if verb == "update":
            return _json_response(c.replace(resource, ns, name, await self._body(request), sub))
        if verb == "patch" and request.content_type == server_side_apply.APPLY_PATCH:
            return await self._apply(request, resource, ns, name, sub)
        if verb == "patch":
            ctype = request.content_type
            if ctype not in PATCH_TYPES:
                raise errors.unsupported_media_type(ctype)
            return _json_response(c.patch(resource, ns, name, await self._body(request), ctype, sub))
        if verb == "delete":
            body = await self._body(request) or {}
            grace = request.query.get("gracePeriodSeconds", body.get("gracePeriodSeconds") if isinstance(body, dict) else None)
            try:
                grace = int(grace) if grace is not None else None
            except ValueError:
                raise errors.bad_request(f"invalid gracePeriodSeconds: {grace!r}")
            return _json_response(c.delete(resource, ns, name, grace))
        raise errors.method_not_allowed()

    async def _apply(self, request: web.Request, resource: str, ns: str | None, name: str, sub: str | None) -> web.Response:
        """Server-side apply: create the object, or merge the configuration into it."""
        manager = request.query.get("fieldManager")
        if not manager:
            raise errors.bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: "
                                     "is required for apply patch")
        config = server_side_apply.parse(await request.read())
        entry = server_side_apply.managed_entry(manager, api_version(resource), config)
        c = self.cluster
        existing = c.store.find(resource, (ns or "") if RESOURCES[resource] else "", name)
        if existing is None:
            body = server_side_apply.with_managed_fields(config, entry)
            body.setdefault("metadata", {})["name"] = name
            return _json_response(c.create(resource, ns, body), status=201)
        new = server_side_apply.with_managed_fields(server_side_apply.merged(existing, config), entry)
        return _json_response(c.replace(resource, ns, name, new, sub))

    def _pod_log(self, request: web.Request, namespace: str, name: str) -> web.Response:
        """``kubectl logs``: the container's output as the kubelet kept it (text/plain)."""
        pod = self.cluster.get("pods", namespace, name)
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        inits = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
        container = request.query.get("container")
        if not container:
            if len(containers) != 1:
                raise errors.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                         f"[{' '.join(containers)}]" + (f" or one of the init containers: [{' '.join(inits)}]" if inits else ""))
            container = containers[0]
        elif container not in containers + inits:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        kubelet = getattr(self, "kubelet", None)
        text = kubelet.logs(namespace, name, container) if kubelet is not None and hasattr(kubelet, "logs") else ""
        # The process kubelet marks each (re)start in the log file; that line is not the container's output.
        text = _KUBELET_LOG_MARK.sub("", text)
        return web.Response(text=text, content_type="text/plain")

    async def _access_review(self, request: web.Request, verb: str, name: str | None) -> web.Response:
        """``kubectl auth can-i``: answer for the requesting user; nothing is stored."""
        if verb != "create" or name is not None:
            raise errors.method_not_allowed()
        if request.content_type == protobuf.MEDIA_TYPE:
            body = protobuf.access_review(await request.read())
        else:
            body = await self._body(request)
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        status = rbac.access_review_status(self.authorizer, request[USER], body)
        review = {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                  "metadata": {"creationTimestamp": None}, "spec": body.get("spec") or {}, "status": status}
        return _json_response(review, status=201)

    def _selectors(self, request: web.Request, resource: str):
        labels = LabelSelector.parse(request.query.get("labelSelector", ""))
        fields = FieldSelector.parse(request.query.get("fieldSelector", ""), resource)

        def matches(obj: dict) -> bool:
            return labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)

        return matches

    async def _wait_for_rv(self, rv: int) -> None:
        """A resourceVersion newer than the store's: wait ~3 s like the watch cache, then 504."""
        store = self.cluster.store
        deadline = time.monotonic() + 3
        while store.rv < rv and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if store.rv < rv:
            raise errors.too_large_rv(rv, store.rv)

    @staticmethod
    def _parse_rv(value: str | None) -> int | None:
        if value in (None, "", "0"):
            return None
        try:
            return int(value)  # type: ignore[arg-type]
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {value}")

    async def _list(self, request: web.Request, resource: str, ns: str | None) -> web.Response:
        matches = self._selectors(request, resource)
        rv = self._parse_rv(request.query.get("resourceVersion"))
        if rv is not None:
            await self._wait_for_rv(rv)
        store = self.cluster.store
        if printers.wants_table(request.headers.get("Accept")):
            # etcd returns a list in key order (namespace, then name); kubectl prints it as it comes.
            objs = sorted((o for o in store.list(resource, ns) if matches(o)),
                          key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            return _json_response(printers.table(resource, objs, str(store.rv), printers.include_object(request.query)))
        items = [store.raw(o) for o in store.list(resource, ns) if matches(o)]
        head = dumps({"kind": errors.KINDS[resource] + "List", "apiVersion": api_version(resource), "metadata": {"resourceVersion": str(store.rv)}})
        body = head[:-1] + b',"items":[' + b",".join(items) + b"]}"
        return web.Response(body=body, content_type="application/json")

    async def _watch(self, request: web.Request, resource: str, ns: str | None, drop: Fault | None) -> web.StreamResponse:
        matches = self._selectors(request, resource)
        since = self._parse_rv(request.query.get("resourceVersion"))
        if since is not None:
            await self._wait_for_rv(since)
        timeout_q = request.query.get("timeoutSeconds")
        try:
            timeout = float(timeout_q) if timeout_q else float(random.randint(1800, 3600))
        except ValueError:
            raise errors.bad_request(f"invalid timeoutSeconds: {timeout_q}")
        bookmarks = parse_bool(request.query.get("allowWatchBookmarks"))
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            watcher = self.cluster.store.watch(resource, ns, matches, since)
        except errors.ApiError as err:
            await resp.write(dumps({"type": "ERROR", "object": err.status()}) + b"\n")
            await resp.write_eof()
            return resp
        # WatchList (kubectl delete --wait, informers): after the initial ADDED events a bookmark
        # annotated k8s.io/initial-events-end tells the client it has the whole state.
        initial_end = None
        if since is None and bookmarks and parse_bool(request.query.get("sendInitialEvents")):
            initial_end = (watcher.queue.qsize(), str(self.cluster.store.rv))
        resp._jh_watcher = watcher  # type: ignore[attr-defined]
        self._watch_responses.add(resp)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        sent = 0
        kind = errors.KINDS[resource]
        as_table = printers.wants_table(request.headers.get("Accept"))
        include = printers.include_object(request.query)
        try:
            while True:
                if drop is not None and sent >= drop.after_events:
                    resp._jh_dropped = True  # type: ignore[attr-defined]
                    break
                if initial_end is not None and sent >= initial_end[0]:
                    end = {"kind": kind, "apiVersion": api_version(resource),
                           "metadata": {"resourceVersion": initial_end[1], "annotations": {"k8s.io/initial-events-end": "true"}}}
                    await resp.write(dumps({"type": "BOOKMARK", "object": end}) + b"\n")
                    initial_end = None
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), min(remaining, 1.0) if bookmarks else remaining)
                except asyncio.TimeoutError:
                    if bookmarks and deadline - loop.time() > 0:
                        bm = {"kind": kind, "apiVersion": api_version(resource), "metadata": {"resourceVersion": str(self.cluster.store.rv)}}
                        await resp.write(dumps({"type": "BOOKMARK", "object": bm}) + b"\n")
                    continue
                if item is None:
                    break
                etype, change = item
                if as_table:
                    # kubectl get -w: each object as a one-row Table, columns in the first event only.
                    row = printers.table(resource, [change.obj], change.obj["metadata"].get("resourceVersion"), include, columns=sent == 0)
                    await resp.write(dumps({"type": etype, "object": row}) + b"\n")
                else:
                    await resp.write(b'{"type":"' + etype.encode() + b'","object":' + change.raw + b"}\n")
                sent += 1
            if getattr(resp, "_jh_dropped", False):
                # An abrupt end: no terminating chunk, so the client sees a broken stream.
                if request.transport is not None:
                    request.transport.abort()
                return resp
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except Exception as e:  # client went away mid-write
            if "closing transport" not in str(e).lower() and "Cannot write" not in str(e):
                log.debug("watch stream ended: %s", e)
        finally:
            watcher.close()
            self._watch_responses.discard(resp)
        return resp
