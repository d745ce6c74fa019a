"""GPU-utilisation culling with a real Prometheus (Debian's package) scraping DCGM-format series.

The test starts ``/usr/bin/prometheus`` itself on loopback with a temporary config and storage
(scraping every second), and a small exporter that serves ``DCGM_FI_DEV_GPU_UTIL`` with the
labels the DCGM exporter sets in Kubernetes mode (``gpu``, ``UUID``, ``modelName``,
``namespace``, ``pod``, ``container``) for the test pods. The culler uses its default query
with a 5 s window. The hub is real (PlatformSpawner on the emulator); time is moved by the clock.

We test these aspects:
- a GPU server whose GPUs stay idle is stopped after the GPU idle limit although its browser
  keeps Jupyter active (rule ``gpu-idle``);
- a GPU server whose GPUs are busy is not stopped for Jupyter idleness;
- the GPU-hours held idle are counted, and the admin rows show the utilisation;
- Prometheus stopped mid-run: GPU servers are judged by Jupyter activity (a Jupyter-idle one is
  stopped by rule ``idle``), a server whose GPUs had been idle but whose browser is active is not
  stopped on missing data, the fallback is logged and counted per server;
- a GPU pod without a series falls back as well (counted as ``no-series``).
"""

from __future__ import annotations

import logging

import pytest

from conftest import NS, WINDOW, make_cycle, running, sample, spawn, touch, until_prometheus_shows
from jhplatform.culler.prometheus import DEFAULT_QUERY

pytestmark = pytest.mark.contract


async def pod_name(hub, user: str) -> str:
    status, model = await hub.request("GET", f"/users/{user}")
    return model["servers"][""]["state"]["pod_name"]


async def test_gpu_utilisation_decides_and_missing_data_falls_back(culler_hub, exporter, prometheus, clock, tmp_path, caplog):
    values, _ = exporter
    url, stop_prometheus = prometheus
    hub = await culler_hub()
    for user in ("ada", "dan", "erin", "finn"):
        await spawn(hub, user, "fast")
    pods = {user: await pod_name(hub, user) for user in ("ada", "dan", "erin", "finn")}
    # finn's pod has no series at all.
    values.update({pods["ada"]: 0.0, pods["dan"]: 95.0, pods["erin"]: 95.0})
    await until_prometheus_shows(url, {pods["ada"]: 0.0, pods["dan"]: 95.0, pods["erin"]: 95.0})
    cycle = make_cycle(hub, tmp_path, prometheus_url=url, prometheus_query=DEFAULT_QUERY.replace("{window}", WINDOW))

    async def cycle_at(minutes_later: float, active=("ada", "erin", "finn")):
        clock.advance(minutes_later)
        for user in active:
            if await running(hub, user):
                await touch(hub, user, clock())
        assert await cycle.run()

    await cycle_at(1)  # A: ada's GPUs idle (browser active), dan busy (Jupyter idle), erin busy
    assert cycle.state.rows["ada"].facts.gpu_util == 0.0
    assert cycle.state.rows["dan"].facts.gpu_util == 95.0
    assert sample(cycle.metrics, "jhplatform_culler_gpu_activity_fallbacks_total", reason="no-series") == 1  # finn

    await cycle_at(11)  # B (+12 min): ada idle on the GPU for 11 min
    assert not await running(hub, "ada")
    assert await running(hub, "dan")  # Jupyter idle for 12 min, GPUs busy
    assert await running(hub, "erin") and await running(hub, "finn")
    assert sample(cycle.metrics, "jhplatform_culler_culls_total", rule="gpu-idle", cls="gpu") == 1
    assert sample(cycle.metrics, "jhplatform_culler_culls_total", rule="idle", cls="gpu") == 0
    assert sample(cycle.metrics, "jhplatform_culler_idle_gpu_hours_total") == pytest.approx(11 / 60, rel=0.01)

    values[pods["erin"]] = 0.0
    await until_prometheus_shows(url, {pods["erin"]: 0.0})
    await cycle_at(1)  # C (+13): erin's GPUs idle from now
    assert cycle.state.rows["erin"].facts.gpu_idle_since is not None

    stop_prometheus()
    with caplog.at_level(logging.INFO, logger="jhplatform.culler"):
        await cycle_at(11)  # D (+24): erin would be gpu-idle culled with data; dan is Jupyter-idle
    assert "GPU servers are judged by Jupyter activity this cycle; none is culled for GPU idleness" in caplog.text
    assert await running(hub, "erin")  # no cull on missing data
    assert not await running(hub, "dan")  # the fallback: Jupyter idle for 24 min
    assert sample(cycle.metrics, "jhplatform_culler_culls_total", rule="idle", cls="gpu") == 1
    # erin, dan and finn were judged without a reading this cycle.
    assert sample(cycle.metrics, "jhplatform_culler_gpu_activity_fallbacks_total", reason="prometheus-unavailable") == 3
    assert cycle.state.rows["erin"].as_json()["gpu_utilisation"] is None
    assert cycle.state.rows["erin"].facts.gpu_idle_since is None
    assert cycle.state.prometheus_error.startswith(f"Prometheus at {url} is unreachable")
