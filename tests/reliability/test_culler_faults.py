"""The culler under hub API faults and Prometheus loss, over many cycles.

The culler's cycle (``jhplatform.culler.cycle.Cycle``, what the service runs every ``cull_every``
seconds) runs in the test process against a real JupyterHub (PlatformSpawner on the emulator,
tests/cullerstack.py) through a loopback proxy that injects faults into 10% of the hub API
requests: a 503, a hang past the culler's 1 s request timeout, or a 502 after the hub acted.
Prometheus (Debian's) scrapes a DCGM-format exporter and is stopped and started again between
cycles. Time is the movable clock, one minute per cycle. Limits: GPU idle 5 min, CPU idle 8 min,
no max age, so the clock stays within the hub's one-hour limit on activity. Cycles: CI 6 with
faults then 8 clean; full 50 with faults then 8 clean.

The servers: ``busy`` (GPU busy at 95%, browser active), ``typing`` (CPU, browser active),
``idle-gpu`` (GPU at 0%, no activity) and ``idle-cpu`` (no activity) from the start, and
``late-gpu`` (no utilisation series: judged by Jupyter activity) and ``late-cpu``, both idle,
started two cycles before the faults stop.

We test these aspects:
- no cycle raises, whatever the faults; a failed cycle returns False, and each is counted in
  ``jhplatform_culler_cycle_errors_total`` with the error kept for the admin JSON
  (``last_error``), cleared by the next good cycle; a failed stop request (which idle-culler's
  loop only logs) is counted in ``jhplatform_culler_server_errors_total`` and listed in
  ``server_errors``;
- ``busy`` and ``typing`` are running after every cycle (with Prometheus up ``busy`` is kept by
  its GPU; with it gone the documented fallback judges it by Jupyter activity, which is recent);
- Prometheus' absence is reported (``prometheus_error``) and counted per GPU server in
  ``jhplatform_culler_gpu_activity_fallbacks_total{reason="prometheus-unavailable"}``;
- the late servers run until the faults stop; once faults stop, every idle server is stopped
  within the clean cycles, and each cull is counted once (a stop request that failed is repeated by a later cycle, not counted again).
"""

from __future__ import annotations

import pytest

from cullerstack import (WINDOW, clock, culler_hub, exporter, faulty_proxy, make_cycle,  # noqa: F401 (fixtures)
                         prometheus_process, running, sample, spawn, touch, until_prometheus_shows)
from helpers import reliability_size
from jhplatform.culler.prometheus import DEFAULT_QUERY
from jhplatform.policy.culling import CullPolicy, Limits

pytestmark = [pytest.mark.contract, pytest.mark.reliability]

FAULT_CYCLES = reliability_size(ci=6, full=50)
#: Enough clean cycles for the servers started late (below) to pass the CPU idle limit.
CLEAN_CYCLES = 8
#: Prometheus is stopped after these cycles (counted from 1) and started again three cycles later.
PROMETHEUS_DOWN_EVERY = reliability_size(ci=3, full=8)
POLICY = CullPolicy(gpu=Limits(idle_timeout=5 * 60, max_age=0), cpu=Limits(idle_timeout=8 * 60, max_age=0),
                    gpu_util_threshold=5.0, warn_before=2 * 60)
ACTIVE = ("busy", "typing")
IDLE = ("idle-gpu", "idle-cpu")
#: Started two cycles before the faults stop, so they pass their idle limits only in clean cycles.
LATE = (("late-gpu", "fast"), ("late-cpu", "cpu"))


async def pod_of(hub, user: str) -> str:
    _, model = await hub.request("GET", f"/users/{user}")
    return model["servers"][""]["state"]["pod_name"]


async def test_culler_survives_faults_and_prometheus_loss(culler_hub, faulty_proxy, exporter, prometheus_process, clock,
                                                          tmp_path, monkeypatch):
    # idle-culler's loop takes its request timeout from the environment (CullerService sets it).
    monkeypatch.setenv("JUPYTERHUB_REQUEST_TIMEOUT", "1")
    values, _ = exporter
    prom = prometheus_process
    hub = await culler_hub()
    faulty_proxy["hub"] = hub
    for user, profile in (("busy", "fast"), ("typing", "cpu"), ("idle-gpu", "fast"), ("idle-cpu", "cpu")):
        await spawn(hub, user, profile)
    values.update({await pod_of(hub, "busy"): 95.0, await pod_of(hub, "idle-gpu"): 0.0})
    await until_prometheus_shows(prom.url, {await pod_of(hub, "busy"): 95.0})
    cycle = make_cycle(hub, tmp_path, POLICY, hub_api_url=faulty_proxy["url"], prometheus_url=prom.url,
                       prometheus_query=DEFAULT_QUERY.replace("{window}", WINDOW), prometheus_timeout=2)

    faulty_proxy["fault"] = "random"
    failed = down_cycles = judged_without_prometheus = server_errors = 0
    prometheus_up = True
    for n in range(1, FAULT_CYCLES + CLEAN_CYCLES + 1):
        if n == FAULT_CYCLES - 1:
            for user, profile in LATE:
                await spawn(hub, user, profile)
                # The hub stamps the start in real time, behind the moved clock: one activity at
                # the clock's time, so their idle time starts now.
                await touch(hub, user, clock())
        if n == FAULT_CYCLES + 1:
            faulty_proxy["fault"] = None
        if n <= FAULT_CYCLES and n % PROMETHEUS_DOWN_EVERY == 0:
            if prometheus_up:
                prom.stop()
            else:
                await prom.start()
                await until_prometheus_shows(prom.url, {await pod_of(hub, "busy"): 95.0})
            prometheus_up = not prometheus_up
        if n == FAULT_CYCLES + 1 and not prometheus_up:
            await prom.start()
            await until_prometheus_shows(prom.url, {await pod_of(hub, "busy"): 95.0})
            prometheus_up = True
        clock.advance(1)
        for user in ACTIVE:
            await touch(hub, user, clock())

        ok = await cycle.run()  # never raises: a raise fails the test here
        failed += not ok
        server_errors += len(cycle.state.server_errors)
        down_cycles += not prometheus_up
        judged_without_prometheus += ok and not prometheus_up
        assert (cycle.state.last_error is None) is ok, cycle.state.last_error
        if ok:
            assert (cycle.state.prometheus_error is None) is prometheus_up, cycle.state.prometheus_error
        for user in ACTIVE:
            assert await running(hub, user), f"cycle {n}: the active server {user} was stopped"
        if FAULT_CYCLES - 1 <= n <= FAULT_CYCLES:
            for user, _ in LATE:
                assert await running(hub, user), f"cycle {n}: {user} was stopped before its idle limit"

    print(f"{FAULT_CYCLES} cycles with faults + {CLEAN_CYCLES} clean: {failed} failed cycles, {server_errors} failed stops, "
          f"{faulty_proxy['requests']} hub API requests, faults injected {faulty_proxy['injected']}, "
          f"Prometheus down for {down_cycles} cycles")
    assert sample(cycle.metrics, "jhplatform_culler_cycle_errors_total") == failed
    assert sample(cycle.metrics, "jhplatform_culler_server_errors_total") == server_errors
    assert sum(faulty_proxy["injected"].values()) > 0, "faults were injected"
    assert down_cycles > 0
    # Each good cycle without Prometheus judged "busy" (and "idle-gpu", "late-gpu" while they ran) by
    # Jupyter activity.
    fallbacks = sample(cycle.metrics, "jhplatform_culler_gpu_activity_fallbacks_total", reason="prometheus-unavailable")
    assert judged_without_prometheus <= fallbacks <= 3 * judged_without_prometheus
    for user in IDLE + tuple(u for u, _ in LATE):
        assert not await running(hub, user), f"{user} is still running after the clean cycles"
    # Each idle server counted once, though a failed stop request makes a later cycle stop it again.
    assert sample(cycle.metrics, "jhplatform_culler_culls_total", rule="gpu-idle", cls="gpu") + \
        sample(cycle.metrics, "jhplatform_culler_culls_total", rule="idle", cls="gpu") == 2
    assert sample(cycle.metrics, "jhplatform_culler_culls_total", rule="idle", cls="cpu") == 2
    assert cycle.state.last_error is None and cycle.state.prometheus_error is None
    rows = {row.facts.user for row in cycle.state.rows.values()}
    assert rows == set(ACTIVE), "the admin rows list only what still runs"
