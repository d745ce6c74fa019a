"""The hub killed (SIGKILL, as a crashed hub pod) in the middle of a spawn storm, and started again
on the same database (docs/reliability.md).

The storm hub of stormhub.py runs with z2jh's hub settings where they matter here
(z2jh-hub-loader.md step 3: ``cleanup_servers = False``, so servers outlive the hub, and
``slow_spawn_timeout: 0``). Each round: some users' servers are running (GPU and CPU); then more
users spawn at once (GPU and CPU), their pods held Pending by the simulated kubelet (a step delay)
and the home-volume creates held by the emulator, so that when the hub is killed some spawns
have a Pending pod and some have only a GPU reservation. The same hub (same database, ports and proxy pid
file) is then started again.

We test these aspects:
- before the kill, spawns are in flight in both states: a pod Pending (users whose home volume
  exists), or only a GPU reservation (their home-volume create held by the API): the ledger's
  in-use count is exactly the pods' GPUs plus those reservations;
- after the restart, once the hub has settled: every server that was running is still running:
  the same pod (same uid) is there, the hub says ready, and a request through the proxy reaches
  it; it is counted in the GPU ledger;
- no orphan pods: every user pod belongs to a server the hub reports (spawns that had a pod are
  adopted by JupyterHub's start-up check; the others are stopped);
- the reservations of spawns that died with the hub are released: GPUs in use equal the GPUs of
  the GPU pods that exist, free = quota − those; new spawns take exactly the free GPUs (a freed
  one among them) and the next is refused with the quota message;
- the hub keeps doing this over several restarts (full size).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp
import pytest

from helpers import reliability_size, wait_for
from gpuhub import spawn_page
from hubstack import spawn
from jhplatform.devcluster.faults import Fault
from jhplatform.devcluster.kubelet import Behaviour
from stormhub import NS, QUOTA_GPUS, gpus_in_pods, gpus_of, hub_servers, last_event, ledger, owner, user_pods

pytestmark = [pytest.mark.reliability, pytest.mark.contract]

# Per round: (running GPU, running CPU, in-flight GPU, in-flight 2-GPU, in-flight CPU); rounds.
ROUND, ROUNDS = reliability_size(((2, 2, 3, 1, 2), 1), ((2, 10, 3, 1, 17), 3))
Z2JH = "c.JupyterHub.cleanup_servers = False\n"  # z2jh-hub-loader.md step 3
A100 = {"profile": "a100"}
A100_2 = {"profile": "a100-multi", "gpus": "2"}
CPU = {"profile": "cpu"}
QUOTA_FULL = "All 8 A100 GPUs are in use (yours: 0). Pick the CPU profile or try again later."


def home_claim(user: str) -> dict:
    """A home volume the user already has, under the name the spawn looks for first."""
    return {"metadata": {"name": f"claim-{user}", "labels": {"component": "singleuser-storage", "hub.jupyter.org/username": user},
                         "annotations": {"hub.jupyter.org/username": user}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard", "resources": {"requests": {"storage": "10Gi"}}}}


def gpus_of_plan(options: dict) -> int:
    return 0 if options["profile"] == "cpu" else int(options.get("gpus", 1))


async def start_and_wait(hub, plans: dict[str, dict]) -> None:
    results = await asyncio.gather(*(spawn(hub, u, o) for u, o in plans.items()))
    assert {s for s, _ in results} == {202}, results
    events = await asyncio.gather(*(last_event(hub, u) for u in plans))
    assert all(e.get("ready") for e in events), events


async def settled(hub) -> dict[str, dict]:
    servers = await hub_servers(hub)
    return servers if not any(s.get("pending") for s in servers.values()) else None


async def through_proxy(hub, user: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{hub.url}/user/{user}/api/status", allow_redirects=False) as r:
            return r.status, await r.text()


def kill(hub) -> None:
    """SIGKILL the hub process alone, as a crashed pod: no shutdown, no cleanup. Its proxy keeps
    running until the next hub finds its pid file and replaces it."""
    os.kill(hub.proc.pid, signal.SIGKILL)
    hub.proc.wait()
    hub._log.close()
    hub.proc = None


async def test_hub_restart_mid_storm(storm, cluster):
    gpu_run, cpu_run, gpu_fly, gpu2_fly, cpu_fly = ROUND
    hub = await storm.start(Z2JH)
    old_groups = []
    slow = cluster.kubelet.add_behaviour(Behaviour(name="jupyter-fly*", step_delay=1.0))
    started = time.monotonic()
    report = []
    try:
        for rnd in range(ROUNDS):
            running = {**{f"run{rnd}-g{i}": A100 for i in range(gpu_run)}, **{f"run{rnd}-c{i}": CPU for i in range(cpu_run)}}
            flying = {**{f"fly{rnd}-g{i}": A100 for i in range(gpu_fly)}, **{f"fly{rnd}-m{i}": A100_2 for i in range(gpu2_fly)},
                      **{f"fly{rnd}-c{i}": CPU for i in range(cpu_fly)}}
            status, body = await hub.request("POST", "/users", {"usernames": [*running, *flying]})
            assert status == 201, body
            await start_and_wait(hub, running)
            before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in user_pods(cluster)}

            # The storm. Users with a home volume already (every other one) get their pod at once,
            # held Pending by the kubelet; the others' home-volume creates are held by the API, so
            # those spawns die holding only their GPU reservation.
            with_claim = list(flying)[::2]
            for user in with_claim:
                cluster.cluster.create("persistentvolumeclaims", NS, home_claim(user))
            cluster.faults.add(Fault(verb="create", resource="persistentvolumeclaims", namespace=NS, latency=2.5, count=None))
            results = await asyncio.gather(*(spawn(hub, u, o) for u, o in flying.items()))
            assert {s for s, _ in results} == {202}, results

            async def mid_storm():
                in_use, _ = await ledger(hub)
                have_pods = {owner(p)[0] for p in user_pods(cluster)} >= set(with_claim)
                reserved = sum(gpus_of_plan(flying[u]) for u in flying if u not in with_claim)
                return (in_use, gpus_in_pods(cluster)) if have_pods and in_use == gpus_in_pods(cluster) + reserved else None

            in_use, in_pods = await wait_for(mid_storm, 20, 0.05, message="spawns in flight: pods Pending, and reservations with no pod")
            old_groups.append(hub.proc.pid)
            kill(hub)
            cluster.faults.clear()
            await hub.start()

            servers = await wait_for(lambda: settled(hub), 60, 0.5, message="the restarted hub settled")
            pods = user_pods(cluster)
            # Servers that were running still are: the same pods, ready, reachable through the proxy.
            for user in running:
                name = f"jupyter-{user}"
                assert servers.get(user, {}).get("ready"), (user, servers.get(user))
                assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}.get(name) == before[name]
                assert await through_proxy(hub, user) == (200, "ok")
            # No orphans: every user pod is a server the hub reports.
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            assert {owner(p) for p in live} <= {(u, "") for u in servers}, ([owner(p) for p in live], sorted(servers))

            # The ledger is the pods: reservations of dead spawns released. (The free count needs the
            # quota watch, which a hub starts with its first GPU form or spawn, as on a live hub.)
            takers = [f"take{rnd}-{i}" for i in range(QUOTA_GPUS + 1)]
            status, body = await hub.request("POST", "/users", {"usernames": takers})
            assert status == 201, body
            await spawn_page(hub, takers[0])
            async def ledger_is_pods():
                gpus = gpus_in_pods(cluster)
                return (gpus, await ledger(hub)) if await ledger(hub) == (gpus, QUOTA_GPUS - gpus) else None

            try:
                gpus, _ = await wait_for(ledger_is_pods, 20, 0.5, message="GPUs in use = GPUs of the pods there")
            except AssertionError as e:
                raise AssertionError(f"{e}: ledger {await ledger(hub)}, pods {[(owner(p), gpus_of(p), p['status'].get('phase')) for p in user_pods(cluster)]}") from None
            assert sum(gpus_of(p) for p in live if owner(p)[0] in running) == gpu_run
            free = QUOTA_GPUS - gpus

            # New spawns take exactly the free GPUs, then the quota refuses.
            takers = takers[:free + 1]
            for user in takers[:-1]:
                await start_and_wait(hub, {user: A100})
            assert (await spawn(hub, takers[-1], A100))[0] == 202
            assert (await last_event(hub, takers[-1])).get("message") == f"Spawn failed: {QUOTA_FULL}"
            assert await ledger(hub) == (QUOTA_GPUS, 0)

            report.append({"round": rnd, "killed with in use": in_use, "GPUs in pods at kill": in_pods,
                           "adopted": sorted(u for u in flying if u in servers), "in use after": gpus, "taken": free})

            # Everyone stops before the next round.
            users = [u for u in await hub_servers(hub)]
            await asyncio.gather(*(hub.request("DELETE", f"/users/{u}/server") for u in users))
            await wait_for(lambda: not user_pods(cluster), 60, 0.5, message="every pod gone")
            assert await ledger(hub) == (0, QUOTA_GPUS)
    finally:
        cluster.kubelet.remove_behaviour(slow)
        for pgid in old_groups:  # a killed hub's proxy, if the next hub did not replace it
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    print(f"\nhub restart: {ROUNDS} restart(s), {ROUNDS * sum(ROUND)} spawns before the kills, "
          f"{time.monotonic() - started:.1f} s; {report}")
