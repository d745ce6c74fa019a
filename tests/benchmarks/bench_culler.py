"""One cull cycle: jhplatform's culler vs upstream jupyterhub-idle-culler's default arbiter.

Both run jupyterhub-idle-culler 2.0's ``cull_idle`` loop against the same fake hub API: a small
aiohttp app in a child process serving ``GET /hub/api/`` and the paginated
``GET /hub/api/users?state=ready`` (JupyterHub's pagination format, 200 per page like the hub's
default) for 10,000 users of which 2,000 have a ready server, and ``DELETE`` for stops. A real
hub with 10,000 users is too heavy for this machine; the loop's requests are the same.

- 2,000 running servers: 500 GPU servers (spawner state with ``jhplatform_gpus``), all active;
  1,500 CPU servers, of which 500 have been inactive for two hours (past both cullers' 1 h limit).
- Ours: :class:`jhplatform.culler.cycle.Cycle` (the policy, one Prometheus query answered by the
  same fake server with a series per GPU pod, the warnings file written); upstream:
  ``cull_idle(..., cull_arbiter=default_cull_arbiter)`` with ``timeout`` 3600.
- Rounds alternate the two; the figure is the median. Request counts are hub requests (the
  Prometheus query is counted apart).

Prints times, the ratio (goal <= 1.05x) and request counts (goal: the same).
Run: ``.venv/bin/python tests/benchmarks/bench_culler.py [--rounds 5] [--users 10000 --running 2000]``
Writes the figures to ``tests/benchmarks/out/culler.json`` (``--out`` to change it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

PAGE = 200
TOKEN = "bench-token"


def make_users(n_running: int, now: datetime) -> list[dict]:
    users = []
    for i in range(n_running):
        gpu = i % 4 == 0
        idle = (not gpu) and i % 4 == 1
        started = now - timedelta(hours=3)
        last = now - (timedelta(hours=2) if idle else timedelta(minutes=5))
        state = {"pod_name": f"jupyter-user{i}", "namespace": "jhub"}
        if gpu:
            state.update({"jhplatform_gpus": {"nvidia.com/gpu": 1}, "jhplatform_profile": "a100"})
        users.append({
            "kind": "user", "name": f"user{i}", "admin": False, "last_activity": last.isoformat(),
            "servers": {"": {
                "name": "", "full_name": f"user{i}/", "ready": True, "pending": None, "stopped": False,
                "url": f"/user/user{i}/", "started": started.isoformat(), "last_activity": last.isoformat(),
                "user_options": {"profile": "a100" if gpu else "cpu"}, "state": state,
            }},
        })
    return users


def serve(port_queue, n_users: int, n_running: int):
    from aiohttp import web

    now = datetime.now(timezone.utc)
    users = make_users(n_running, now)
    counts = Counter()

    async def root(request):
        counts["GET /"] += 1
        return web.json_response({"version": "5.5.0"})

    async def list_users(request):
        counts["GET /users"] += 1
        # state=ready: the hub filters in the database; the others never leave it.
        assert request.query.get("state") == "ready"
        offset = int(request.query.get("offset", 0))
        limit = min(int(request.query.get("limit", PAGE)), PAGE)
        items = users[offset:offset + limit]
        nxt = None
        if offset + limit < len(users):
            nxt = {"offset": offset + limit, "limit": limit,
                   "url": f"http://127.0.0.1:{request.url.port}/hub/api/users?state=ready&offset={offset + limit}&limit={limit}"}
        return web.json_response({"items": items, "_pagination": {"offset": offset, "limit": limit, "total": len(users), "next": nxt}})

    async def stop(request):
        counts["DELETE /users/{name}/server"] += 1
        return web.Response(status=204)

    async def prometheus(request):
        counts["prometheus query"] += 1
        result = [{"metric": {"namespace": "jhub", "pod": f"jupyter-user{i}"}, "value": [time.time(), "87.5"]}
                  for i in range(0, n_running, 4)]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

    async def stats(request):
        return web.json_response(dict(counts))

    async def reset(request):
        counts.clear()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/hub/api/", root)
    app.router.add_get("/hub/api/users", list_users)
    app.router.add_delete("/hub/api/users/{name}/server", stop)
    app.router.add_get("/api/v1/query", prometheus)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)

    async def main():
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(site._server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def http(method: str, url: str) -> dict:
    from tornado.httpclient import AsyncHTTPClient

    resp = await AsyncHTTPClient().fetch(url, method=method, body=b"" if method == "POST" else None)
    return json.loads(resp.body)


async def run(args):
    import jupyterhub_idle_culler as idle_culler

    from jhplatform.culler.cycle import Cycle, Metrics, Settings
    from jhplatform.policy.culling import CullPolicy, Limits

    queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=serve, args=(queue, args.users, args.running), daemon=True)
    proc.start()
    port = queue.get(timeout=60)
    base = f"http://127.0.0.1:{port}"
    api = f"{base}/hub/api"
    load_start = os.getloadavg()
    quiet = logging.getLogger("bench.culler")
    quiet.setLevel(logging.WARNING)
    logging.getLogger("jhplatform.culler").setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="jhplatform-bench-culler-"))
    settings = Settings(
        hub_api_url=api, api_token=TOKEN, namespace="jhub", prometheus_url=base,
        prometheus_query="avg by (namespace, pod) (avg_over_time(DCGM_FI_DEV_GPU_UTIL[10m]))",
        warnings_file=str(workdir / "warnings.json"),
        policy=CullPolicy(gpu=Limits(3600, 0), cpu=Limits(3600, 0), warn_before=900),
    )

    async def ours():
        # A fresh service state each round, as on the first cycle after a start.
        ok = await Cycle(settings, Metrics()).run()
        assert ok

    async def upstream():
        await idle_culler.cull_idle(url=api, api_token=TOKEN, inactive_limit=3600, logger=quiet, max_age=0,
                                    concurrency=10, cull_arbiter=idle_culler.default_cull_arbiter)

    times = {"ours": [], "upstream": []}
    requests = {}
    for r in range(args.rounds):
        order = [("ours", ours), ("upstream", upstream)]
        if r % 2:
            order.reverse()
        for name, fn in order:
            await http("POST", f"{base}/reset")
            t0 = time.perf_counter()
            await fn()
            times[name].append(time.perf_counter() - t0)
            requests[name] = await http("GET", f"{base}/stats")
    proc.terminate()

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"One cull cycle, {args.users} users ({args.running} with a ready server, served by a fake hub API), "
          f"{args.rounds} alternating rounds, median:")
    for name in ("ours", "upstream"):
        print(f"  {name:9s} {med[name] * 1000:8.1f} ms   (rounds: {', '.join(f'{t * 1000:.0f}' for t in times[name])})")
    print(f"  ratio ours/upstream: {med['ours'] / med['upstream']:.3f}x (goal <= 1.05x)")
    for name in ("ours", "upstream"):
        hub = {k: v for k, v in requests[name].items() if k != "prometheus query"}
        print(f"  {name:9s} hub requests: {sum(hub.values())} {dict(sorted(hub.items()))}; "
              f"Prometheus queries: {requests[name].get('prometheus query', 0)}")
    same = {k: v for k, v in requests["ours"].items() if k != "prometheus query"} == requests["upstream"]
    print(f"  same hub requests: {'yes' if same else 'NO'}")
    expected_pages = math.ceil(args.running / PAGE)
    print(f"  (expected: 1 version request, {expected_pages} pages, {len(range(1, args.running, 4))} stops)")
    hub_requests = {name: {k: v for k, v in requests[name].items() if k != "prometheus query"} for name in requests}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "users": args.users, "running": args.running, "rounds": args.rounds,
        "machine": {"cores": os.cpu_count(), "loadavg": [load_start[0], os.getloadavg()[0]]},
        "times_ms": {k: [t * 1000 for t in v] for k, v in times.items()},
        "median_ms": {k: v * 1000 for k, v in med.items()},
        "ratio_median": med["ours"] / med["upstream"],
        "hub_requests": hub_requests,
        "hub_requests_total": {k: sum(v.values()) for k, v in hub_requests.items()},
        "prometheus_queries": {k: requests[k].get("prometheus query", 0) for k in requests},
        "same_hub_requests": same,
        "expected": {"version": 1, "pages": expected_pages, "stops": len(range(1, args.running, 4))},
        "goal": {"ratio_max": 1.05, "same_hub_requests": True},
    }, indent=2))
    print(f"wrote {args.out}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--running", type=int, default=2_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=HERE / "out" / "culler.json", help="where the JSON figures go")
    args = p.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
