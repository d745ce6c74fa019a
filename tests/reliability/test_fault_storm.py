"""Fault injection at 10% during a spawn/stop storm, through a real hub (docs/reliability.md).

The storm hub of conftest.py (PlatformSpawner, CPU and GPU profiles, an 8-GPU quota, home
volumes, a Service per server, the restricted namespace, z2jh's ``slow_spawn_timeout: 0``) runs
while the emulator fails a seeded 10% of the hub's Kubernetes requests in the namespace (pods,
PVCs, services, events, ResourceQuotas): 5xx answers (500, 503), hangs longer than KubeSpawner's
3 s ``k8s_api_request_timeout`` (reads, deletes and updates served after the client gave up, as a
slow apiserver does; creates answered 504 after the hang, uncommitted, as its request timeout does), and
watch streams cut off without a clean end. Users run spawn→stop cycles concurrently with a seeded
mix of profiles (CPU, one A100, two A100s); each cycle's spawns are settled and checked before the
stops.

A spawn's error is *clear* when the message the user reads (the progress stream's failed event;
a REST 400's ``message``) says what happened in words: not empty, not only "Spawn failed", no
traceback, no raw Kubernetes client dump (``(500)`` / ``Reason:`` / ``HTTP response headers``).

We test these aspects:
- every spawn ends running (progress stream ``ready``) or with a clear error;
- mid-run, after each cycle's spawns settle: every user pod belongs to a server the hub reports
  ready, and the hub's GPU ledger (``jhplatform_gpus_in_use`` / ``_free``) equals the GPUs asked
  for by the GPU pods actually there;
- after everyone stopped and the faults are off: no pods, services or secrets of user servers
  left; GPUs 0 in use, 8 free;
- no PVC was ever deleted (no DELETE of ``persistentvolumeclaims`` in the request log, no
  deletion seen by the store), and every claim created exists at the end;
- the faults did fire (of each kind), so the run tested something.
"""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import time
from collections import Counter

import pytest

from stormhub import QUOTA_GPUS, gpus_in_pods, hub_servers, last_event, ledger, owner, user_pods
from helpers import REPO, reliability_size, wait_for
from hubstack import spawn
from jhplatform.devcluster.faults import Fault

pytestmark = [pytest.mark.reliability, pytest.mark.contract]

USERS, CYCLES = reliability_size((20, 2), (200, 3))
SEED = 15
SETTLE = reliability_size(60, 600)  # seconds for the hub to settle after a cycle's spawns or stops
HANG = 4.0  # seconds: past KubeSpawner's default k8s_api_request_timeout (3 s)
NON_WATCH_VERBS = ("get", "list", "create", "update", "patch", "delete")
# A hung create ends as the apiserver's own timeout does: 504 after the hang, nothing committed.
# (A create committed after its client gave up and landing during the stop is covered by
# tests/contract/spawner/test_api_resilience.py; one landing after the stop ended is not handled.)
HANG_STATUS = {"create": 504}

# Each request meets at most one fault, the first that fires: 500 (2.5%), then 503 (2.5% of the
# rest), then a hang at 5.3% of the rest: 10% of requests in all. Watches are few (three
# reflectors, each reconnecting every 10 s) and long, so a watch stream is cut off (after its
# first event or its third) at a higher rate, half of them, or a CI-size run would see none.
FAULTS = (
    [{"verb": "*", "status": 500, "rate": 0.025}, {"verb": "*", "status": 503, "rate": 0.025}]
    + [{"verb": v, "hang": HANG, "rate": 0.053, **({"status": HANG_STATUS[v]} if v in HANG_STATUS else {})}
       for v in NON_WATCH_VERBS]
    + [{"verb": "watch", "drop": True, "after_events": 1, "rate": 0.25},
       {"verb": "watch", "drop": True, "after_events": 3, "rate": 0.33}]
)

PROFILE_MIX = [({"profile": "cpu"}, 0.5), ({"profile": "a100"}, 0.35), ({"profile": "a100-multi", "gpus": "2"}, 0.15)]

UNCLEAR = re.compile(r"Traceback|HTTP response headers|^\(\d{3}\)|\bReason: |CIMultiDict")


def unclear(message: str | None) -> str | None:
    """Why a failure message is not clear, or None when it is."""
    text = (message or "").strip()
    detail = text[len("Spawn failed:"):].strip() if text.startswith("Spawn failed:") else text
    if not detail or detail == "Spawn failed":
        return "no message"
    if UNCLEAR.search(detail):
        return "a raw error dump"
    if not re.search(r"[A-Za-z]{3,}.*\s.*[A-Za-z]{3,}", detail):
        return "no words"
    return None


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()


async def test_fault_storm(storm, cluster):
    hub = await storm.start()
    users = [f"storm{i:03d}" for i in range(USERS)]
    status, body = await hub.request("POST", "/users", {"usernames": users})
    assert status == 201, body
    rng = random.Random(SEED)
    plans = {(u, c): rng.choices([p for p, _ in PROFILE_MIX], [w for _, w in PROFILE_MIX])[0]
             for c in range(CYCLES) for u in users}

    cluster.faults.seed(SEED)
    faults = [cluster.faults.add(Fault(namespace="gpu", count=None, **f)) for f in FAULTS]
    started = time.monotonic()
    outcomes: list[tuple[str, int, str, str]] = []  # (user, cycle, outcome, message)

    async def spawn_one(user: str, cycle: int) -> None:
        status, body = await spawn(hub, user, plans[(user, cycle)])
        if status in (400, 429):  # 429: JupyterHub's concurrent_spawn_limit, with a "try again" message
            outcomes.append((user, cycle, "refused", body.get("message", "") if isinstance(body, dict) else str(body)))
            return
        assert status in (201, 202), (status, body)
        event = await last_event(hub, user)
        if event.get("ready"):
            outcomes.append((user, cycle, "running", ""))
        else:
            outcomes.append((user, cycle, "failed", event.get("message", "") if event.get("failed") else f"no end event: {event}"))

    async def stop_one(user: str) -> None:
        status, body = await hub.request("DELETE", f"/users/{user}/server")
        assert status in (202, 204), body

    checkpoints = []
    for cycle in range(CYCLES):
        await asyncio.gather(*(spawn_one(u, cycle) for u in users))

        # Mid-run, faults still on: the pods are the hub's ready servers, the ledger is the pods.
        async def consistent():
            servers = await hub_servers(hub)
            ready = {u for u, s in servers.items() if s.get("ready")}
            pods = [p for p in user_pods(cluster) if not p["metadata"].get("deletionTimestamp")]
            in_use, free = await ledger(hub)
            gpus = gpus_in_pods(cluster)
            state = (sorted(owner(p)[0] for p in pods), sorted(ready), in_use, free, gpus)
            last[:] = [state]
            ok = {owner(p) for p in pods} == {(u, "") for u in ready} and (in_use, free) == (gpus, QUOTA_GPUS - gpus)
            return state if ok else None

        last: list = []
        try:
            state = await wait_for(consistent, SETTLE, 0.5, message=f"cycle {cycle}: pods, ready servers and the GPU ledger agree")
        except AssertionError as e:
            raise AssertionError(f"{e}: (pod owners, ready servers, in use, free, GPUs in pods) = {last}; outcomes {outcomes}") from None
        checkpoints.append({"cycle": cycle, "running": len(state[1]), "gpus_in_use": state[2]})

        running = [u for u, s in (await hub_servers(hub)).items() if u in users]
        await asyncio.gather(*(stop_one(u) for u in running))

        async def all_stopped():
            return not [u for u in (await hub_servers(hub)) if u in users]

        await wait_for(all_stopped, SETTLE, 0.5, message=f"cycle {cycle}: every server stopped")

    fired = Counter()
    for f in faults:
        fired["hang" if f.hang else "5xx" if f.status else "watch cut"] += f.hits
    cluster.faults.clear()
    duration = time.monotonic() - started

    # Every spawn ended running or with a clear error.
    counts = Counter(o for _, _, o, _ in outcomes)
    messages = Counter(m for _, _, o, m in outcomes if o != "running")
    print(f"\nfault storm @ {commit()}: {USERS} users x {CYCLES} cycles = {len(outcomes)} spawns in {duration:.1f} s; "
          f"{dict(counts)}; faults fired {dict(fired)} (total {sum(fired.values())}); checkpoints {checkpoints}")
    for m, n in messages.most_common():
        print(f"  {n:4d} x {m}")
    assert len(outcomes) == USERS * CYCLES
    assert {o for _, _, o, _ in outcomes} <= {"running", "failed", "refused"}
    assert [(m, unclear(m)) for m in messages if unclear(m)] == []
    assert counts["running"] > 0
    assert all(fired[k] > 0 for k in ("5xx", "hang", "watch cut")), fired

    # Afterwards, faults off: nothing of a user server is left, the GPUs are free.
    def leftovers():
        return {kind: [o["metadata"]["name"] for o in cluster.cluster.store.list(kind, "gpu")
                       if (o["metadata"].get("labels") or {}).get("component") == "singleuser-server"
                       or "hub.jupyter.org/username" in (o["metadata"].get("annotations") or {})]
                for kind in ("pods", "services", "secrets")}

    try:
        await wait_for(lambda: not any(leftovers().values()), 30, message="no pods, services or secrets left")
    except AssertionError as e:
        raise AssertionError(f"{e}: {leftovers()}") from None

    async def freed():
        return await ledger(hub) == (0, QUOTA_GPUS)

    await wait_for(freed, 30, message="GPUs 0 in use, 8 free")

    # No claim was ever deleted, and every claim created is still there.
    pvc_deletes = [e for e in cluster.requests if e.get("resource") == "persistentvolumeclaims" and e.get("method") == "DELETE"]
    assert pvc_deletes == []
    assert storm.claims.deleted == []
    existing = {c["metadata"]["name"] for c in cluster.cluster.store.list("persistentvolumeclaims", "gpu")}
    assert storm.claims.created and storm.claims.created <= existing
    assert hub.proc.poll() is None, hub.log_tail()
