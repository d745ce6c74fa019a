"""The emulator's fault injection, and what unmodified KubeSpawner 7.1 does under each fault.

We test these aspects:
- ``status``: the next N matching requests get that status and a Kubernetes Status body. On pod
  create KubeSpawner re-raises anything but 409, so ``start()`` fails with ApiException 500 and no
  pod exists; once ``count`` is used up the next start succeeds;
- ``status`` 403 on PVC create while the PVC exists: KubeSpawner reads the PVC and carries on
  (spec R8/R9); without the PVC the 403 fails the spawn;
- ``latency``: served late but normally; the spawn succeeds and the request log shows the delay;
- ``hang`` past KubeSpawner's 3 s ``k8s_api_request_timeout``: pod creation is retried (two
  POSTs) and the spawn succeeds; namespace creation (user namespaces) is not retried, so the
  start fails with a timeout;
- ``drop``: a watch stream ends abruptly after N events (no terminating chunk); the admin
  ``POST /_devcluster/drop-watches`` drops every open watch; KubeSpawner's reflectors relist and
  later spawns still become ready;
- ``rate``: faults fire on a seeded random fraction of matching requests, so two runs with the same
  seed hit the same requests; a 30% error rate on pod watches only slows KubeSpawner's reflector,
  which retries, and the spawn succeeds;
- matching by verb, resource, namespace and name; custom ``message``/``reason``;
- the admin HTTP API ``/_devcluster/faults``: POST (201 with an id), GET, DELETE, 400 with a
  clear message for an invalid fault, and ``{"seed": N}``.
"""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from kubespawner import KubeSpawner

from doubles import make_spawner
from helpers import wait_for


def fast(config: dict | None = None) -> dict:
    """KubeSpawner settings that keep contract tests quick without changing behaviour."""
    base = {"start_timeout": 30, "http_timeout": 10, "image": "quay.io/jupyterhub/singleuser:5.5"}
    base.update(config or {})
    return {"KubeSpawner": base}


@pytest.fixture
async def http(cluster):
    async with aiohttp.ClientSession(base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.tokens.admin_token}"}) as session:
        yield session


def calls(cluster, method: str, path: str, since: int = 0) -> list[dict]:
    """Request-log entries with this method and exact path (query ignored)."""
    return [r for r in list(cluster.requests)[since:] if r["method"] == method and r["path_qs"].split("?")[0] == path]


def watches(cluster, resource: str, since: int = 0) -> list[dict]:
    return [r for r in list(cluster.requests)[since:] if r.get("verb") == "watch" and r.get("resource") == resource]


PODS = "/api/v1/namespaces/default/pods"
PVCS = "/api/v1/namespaces/default/persistentvolumeclaims"


# -- status ------------------------------------------------------------------------------------


async def test_status_fault_on_pod_create_fails_start_until_count_is_used(cluster):
    fault = cluster.faults.add(verb="create", resource="pods", status=500, count=2)
    for attempt in (1, 2):
        spawner = make_spawner(KubeSpawner, config=fast())
        with pytest.raises(ApiException) as info:
            await spawner.start()
        assert info.value.status == 500
        body = json.loads(info.value.body)
        assert body == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "injected fault: 500 InternalError for pods",
            "reason": "InternalError",
            "details": {"name": "", "kind": "pods"},
            "code": 500,
        }
        assert cluster.cluster.store.find("pods", "default", "jupyter-start") is None, "a faulted create stores nothing"
        assert fault.hits == attempt
    assert cluster.faults.list() == [], "the fault is gone once count is used up"

    spawner = make_spawner(KubeSpawner, config=fast())
    url = await spawner.start()
    assert url.endswith(":8888")
    assert await spawner.poll() is None
    posts = calls(cluster, "POST", PODS)
    assert [(p["status"], p.get("fault")) for p in posts] == [(500, fault.id), (500, fault.id), (201, None)]


async def test_403_on_existing_pvc_is_tolerated(cluster):
    cluster.cluster.create(
        "persistentvolumeclaims",
        "default",
        {"metadata": {"name": "claim-start"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    )
    fault = cluster.faults.add(verb="create", resource="persistentvolumeclaims", status=403, count=1)
    spawner = make_spawner(KubeSpawner, config=fast({"storage_pvc_ensure": True}))
    await spawner.start()
    assert fault.hits == 1
    assert await spawner.poll() is None
    sequence = [
        (r["method"], r["path_qs"], r["status"])
        for r in cluster.requests
        if r.get("resource") in ("persistentvolumeclaims", "pods") and r.get("verb") in ("create", "get")
    ]
    assert sequence == [
        ("POST", PVCS, 403),
        ("GET", f"{PVCS}/claim-start", 200),
        ("POST", PODS, 201),
    ]


async def test_403_without_the_pvc_fails_the_spawn(cluster):
    cluster.faults.add(verb="create", resource="persistentvolumeclaims", status=403, count=1)
    spawner = make_spawner(KubeSpawner, config=fast({"storage_pvc_ensure": True}))
    with pytest.raises(ApiException) as info:
        await spawner.start()
    assert info.value.status == 403, "the original 403 is re-raised, not the read's 404"
    assert [r["status"] for r in calls(cluster, "GET", f"{PVCS}/claim-start")] == [404]
    assert calls(cluster, "POST", PODS) == []
    assert cluster.cluster.store.find("persistentvolumeclaims", "default", "claim-start") is None


# -- latency and hang --------------------------------------------------------------------------


async def test_latency_on_pod_create(cluster):
    fault = cluster.faults.add(verb="create", resource="pods", latency=0.5)
    spawner = make_spawner(KubeSpawner, config=fast())
    await spawner.start()
    assert await spawner.poll() is None
    (post,) = calls(cluster, "POST", PODS)
    assert post["status"] == 201
    assert post["ms"] >= 500
    assert fault.hits == 1 and cluster.faults.list() == []
    others = [r["ms"] for r in cluster.requests if r.get("verb") in ("list", "get", "create") and r is not post]
    assert others and max(others) < 500, "only the faulted request is slow"


async def test_hang_on_pod_create_is_retried(cluster):
    cluster.faults.add(verb="create", resource="pods", hang=4, count=1)
    spawner = make_spawner(KubeSpawner, config=fast())
    await spawner.start()
    assert await spawner.poll() is None
    posts = calls(cluster, "POST", PODS)
    assert len(posts) == 2, "KubeSpawner gave up on the first POST after 3 s and retried"
    assert posts[1]["status"] == 201
    # The hung request is served after the retry succeeded: the pod exists by then.
    first = await wait_for(lambda: posts[0] if "ms" in posts[0] else None, 5, message="hung request finishes")
    assert first["ms"] >= 4000
    assert first["status"] == 409


async def test_hang_on_namespace_create_fails_start(cluster):
    cluster.hub_rbac.grant_user_namespaces()
    cluster.faults.add(verb="create", resource="namespaces", hang=4, count=1)
    spawner = make_spawner(KubeSpawner, config=fast({"enable_user_namespaces": True}))
    assert spawner.namespace == "user-start"
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(asyncio.TimeoutError):
        await spawner.start()
    assert 2.9 <= loop.time() - started < 4, "it is KubeSpawner's 3 s request timeout that fired"
    (post,) = calls(cluster, "POST", "/api/v1/namespaces")
    assert [r for r in cluster.requests if r.get("verb") == "create" and r.get("resource") == "pods"] == []
    # Let the hung request finish so it cannot leak into the next test.
    await wait_for(lambda: "ms" in post, 5, message="hung request finishes")
    assert post["status"] == 201
    assert len(calls(cluster, "POST", "/api/v1/namespaces")) == 1, "namespace creation is not retried"


# -- drop --------------------------------------------------------------------------------------


async def test_drop_ends_a_watch_abruptly_after_n_events(cluster, http):
    for name in ("a", "b", "c"):
        cluster.cluster.create("configmaps", "default", {"metadata": {"name": name}})
    fault = cluster.faults.add(verb="watch", resource="configmaps", drop=True, after_events=2)
    lines = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get("/api/v1/namespaces/default/configmaps", params={"watch": "True", "timeoutSeconds": "5"}) as resp:
            assert resp.status == 200
            while True:
                line = await resp.content.readline()
                if not line:
                    break
                lines.append(json.loads(line))
    assert [e["type"] for e in lines] == ["ADDED", "ADDED"]
    assert fault.hits == 1 and cluster.faults.list() == []
    # Without the fault the same watch ends cleanly after timeoutSeconds with every object.
    async with http.get("/api/v1/namespaces/default/configmaps", params={"watch": "True", "timeoutSeconds": "1"}) as resp:
        assert len((await resp.read()).splitlines()) == 3


async def test_dropped_pod_watch_kubespawner_relists(cluster):
    fault = cluster.faults.add(verb="watch", resource="pods", drop=True, after_events=1, count=1)
    spawner = make_spawner(KubeSpawner, config=fast())
    await spawner.start()
    assert await spawner.poll() is None
    assert fault.hits == 1
    pod_watches = watches(cluster, "pods")
    assert len(pod_watches) >= 2, "the reflector opened a new watch after the drop"
    # After an error the reflector restarts from resourceVersion=0: an initial relist plus one
    # per recovery (a clean watch timeout would relist from the last rv instead).
    relists = [r for r in cluster.requests if r.get("verb") == "list" and r.get("resource") == "pods" and "resourceVersion=0&" in r["path_qs"]]
    assert len(relists) >= 2
    second = make_spawner(KubeSpawner, user="bob", config=fast())
    await second.start()
    assert await second.poll() is None


async def test_admin_drop_watches_kubespawner_recovers(cluster, http):
    first = make_spawner(KubeSpawner, config=fast())
    await first.start()
    await wait_for(lambda: len(watches(cluster, "events")) >= 1, 5, message="event watch open")
    before = len(cluster.requests)
    async with http.post("/_devcluster/drop-watches") as resp:
        assert resp.status == 200
        dropped = (await resp.json())["dropped"]
    assert dropped >= 2, "the pod and the event watch"
    await wait_for(lambda: watches(cluster, "pods", before) and watches(cluster, "events", before), 5, message="reflectors watch again")
    second = make_spawner(KubeSpawner, user="bob", config=fast())
    await second.start()
    assert await second.poll() is None
    assert await first.poll() is None, "the relist kept the first server's pod"


# -- rate --------------------------------------------------------------------------------------


async def _statuses(http, n: int) -> list[int]:
    out = []
    for _ in range(n):
        async with http.get("/api/v1/namespaces/default/configmaps/target") as resp:
            out.append(resp.status)
    return out


async def _run_with_seed(http, seed: int, n: int = 24) -> list[int]:
    async with http.delete("/_devcluster/faults") as resp:
        assert resp.status == 200
    async with http.post("/_devcluster/faults", json={"seed": seed}) as resp:
        assert resp.status == 200 and await resp.json() == {"seed": seed}
    fault = {"verb": "get", "resource": "configmaps", "status": 500, "rate": 0.5, "count": None}
    async with http.post("/_devcluster/faults", json=fault) as resp:
        assert resp.status == 201
    return await _statuses(http, n)


async def test_rate_is_reproducible_with_a_seed(cluster, http):
    cluster.cluster.create("configmaps", "default", {"metadata": {"name": "target"}})
    first = await _run_with_seed(http, 7)
    again = await _run_with_seed(http, 7)
    other = await _run_with_seed(http, 8)
    assert first == again
    assert set(first) == {200, 500}
    assert first != other
    draws = random.Random(7)
    assert first == [500 if draws.random() < 0.5 else 200 for _ in first], "one draw per matching request"
    # Non-matching requests do not consume draws.
    await _run_with_seed(http, 7, 0)
    async with http.get("/api/v1/namespaces/default/secrets") as resp:
        assert resp.status == 200
    assert await _statuses(http, len(first)) == first


async def test_rate_on_pod_watches_kubespawner_retries(cluster):
    # A seed whose first draw fires, so the reflector's very first pod watch fails.
    seed = next(s for s in range(1000) if random.Random(s).random() < 0.3)
    cluster.faults.seed(seed)
    fault = cluster.faults.add(verb="watch", resource="pods", status=500, rate=0.3, count=None)
    spawner = make_spawner(KubeSpawner, config=fast())
    await spawner.start()
    assert await spawner.poll() is None
    failed = [r for r in watches(cluster, "pods") if r["status"] == 500]
    assert len(failed) == fault.hits >= 1
    assert len(watches(cluster, "pods")) > len(failed), "the reflector got a watch through"
    assert cluster.cluster.get("pods", "default", "jupyter-start")["status"]["phase"] == "Running"


# -- matching and the admin API ------------------------------------------------------------------


async def test_fault_matching_and_custom_status(cluster, http):
    for ns in ("default", "kube-system"):
        for name in ("target", "other"):
            cluster.cluster.create("secrets", ns, {"metadata": {"name": name}})
    fault = {"verb": "get", "resource": "secrets", "namespace": "default", "name": "target", "status": 503, "message": "etcd is sad", "reason": "ServiceUnavailable", "count": 2}
    async with http.post("/_devcluster/faults", json=fault) as resp:
        assert resp.status == 201
        fault_id = (await resp.json())["id"]

    async def get(path):
        async with http.get(path) as resp:
            return resp.status, resp.headers["Content-Type"], await resp.text()

    assert (await get("/api/v1/namespaces/default/secrets/other"))[0] == 200
    assert (await get("/api/v1/namespaces/kube-system/secrets/target"))[0] == 200
    assert (await get("/api/v1/namespaces/default/secrets"))[0] == 200, "a list is not a get"
    async with http.delete("/api/v1/namespaces/kube-system/secrets/other") as resp:
        assert resp.status == 200
    code, ctype, text = await get("/api/v1/namespaces/default/secrets/target")
    assert (code, ctype) == (503, "application/json")
    assert text == json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "etcd is sad",
            "reason": "ServiceUnavailable",
            "details": {"name": "target", "kind": "secrets"},
            "code": 503,
        },
        separators=(",", ":"),
    )
    async with http.get("/_devcluster/faults") as resp:
        (listed,) = (await resp.json())["faults"]
    assert (listed["id"], listed["hits"], listed["count"]) == (fault_id, 1, 2)
    assert (await get("/api/v1/namespaces/default/secrets/target"))[0] == 503
    assert (await get("/api/v1/namespaces/default/secrets/target"))[0] == 200, "count=2 is used up"


async def test_admin_fault_endpoint(cluster, http):
    cluster.cluster.create("configmaps", "default", {"metadata": {"name": "target"}})
    async with http.post("/_devcluster/faults", json={"verb": "get", "resource": "configmaps", "status": 500, "count": None}) as resp:
        assert resp.status == 201
        created = await resp.json()
    assert set(created) == {"id"} and isinstance(created["id"], int)
    async with http.post("/_devcluster/faults", json={"verb": "watch", "resource": "pods", "drop": True, "after_events": 3}) as resp:
        assert resp.status == 201
        second = (await resp.json())["id"]
    assert second > created["id"]
    async with http.get("/_devcluster/faults") as resp:
        assert resp.status == 200
        faults = (await resp.json())["faults"]
    assert [(f["id"], f["verb"], f["resource"], f["status"], f["count"], f["drop"], f["after_events"]) for f in faults] == [
        (created["id"], "get", "configmaps", 500, None, False, 0),
        (second, "watch", "pods", None, 1, True, 3),
    ]
    assert cluster.faults.list() == faults, "the HTTP API and the Python API see the same faults"
    assert (await _statuses(http, 3)) == [500, 500, 500]

    async with http.delete("/_devcluster/faults") as resp:
        assert resp.status == 200 and await resp.json() == {"faults": []}
    async with http.get("/_devcluster/faults") as resp:
        assert (await resp.json())["faults"] == []
    assert (await _statuses(http, 1)) == [200]

    async with http.post("/_devcluster/faults", json={"seed": 42}) as resp:
        assert resp.status == 200 and await resp.json() == {"seed": 42}
    async with http.get("/_devcluster/faults") as resp:
        assert (await resp.json())["faults"] == [], "seeding adds no fault"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"verb": "frobnicate", "status": 500}, "invalid fault: fault verb must be one of get, list, watch, create, update, patch, delete, *, not 'frobnicate'"),
        ({"status": 200}, "invalid fault: fault status must be an HTTP error status (400-599), not 200"),
        ({"status": 500, "rate": 1.5}, "invalid fault: fault rate must be between 0 and 1, not 1.5"),
        ({"resource": "pods"}, "invalid fault: a fault needs one of status, latency, hang, respond_after or drop"),
        ({"verb": "get", "drop": True}, "invalid fault: drop applies to watches: use verb 'watch'"),
        ({"status": 500, "bogus": 1}, "invalid fault: Fault.__init__() got an unexpected keyword argument 'bogus'"),
    ],
)
async def test_admin_rejects_invalid_faults(cluster, http, body, message):
    async with http.post("/_devcluster/faults", json=body) as resp:
        assert resp.status == 400
        assert resp.headers["Content-Type"] == "application/json"
        status = await resp.json()
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "BadRequest", 400)
    assert status["message"] == message
    assert cluster.faults.list() == []


async def test_admin_rejects_non_json(cluster, http):
    async with http.post("/_devcluster/faults", data=b"{not json", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        status = await resp.json()
    assert status["reason"] == "BadRequest" and status["message"].startswith("invalid fault: ")
    assert cluster.faults.list() == []
