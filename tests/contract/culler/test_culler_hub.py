"""The culler against a real JupyterHub with PlatformSpawner on the emulator, time moved by a clock.

Limits (conftest.POLICY): GPU idle 10 min / max age 40 min, CPU idle 30 min / max age 55 min,
warnings 5 min ahead. No Prometheus here: GPU servers are judged by Jupyter activity.

We test these aspects:
- a GPU server idle past the GPU limit is stopped while a CPU server idle as long is not, and an
  active GPU server is never stopped; the class comes from the pod's GPUs recorded in the spawner
  state (the GPU profile's display name says nothing about GPUs);
- the owner sees the warning on the hub's home page during the lead time, another user does not;
- max age per class: an active GPU server is stopped at the GPU max age while an active CPU
  server runs on, until the CPU max age;
- servers are stopped through the hub API and the home claims are untouched;
- dry-run mode stops nothing and logs each decision;
- the hub API answering 503, then timing out, for a cycle each: the cycle logs, counts the
  error, stops nothing and raises nothing; the next cycle culls correctly;
- a stop request that fails (503): idle-culler's loop logs it and goes on; it is counted in
  ``jhplatform_culler_server_errors_total`` and kept for the admin JSON; the next cycle stops
  the server, and the cull is counted once.
"""

from __future__ import annotations

import logging
import re

import aiohttp
import pytest

from conftest import NS, make_cycle, running, sample, spawn, touch

pytestmark = pytest.mark.contract


def claims(cluster) -> set:
    return {(p["metadata"]["name"], p["metadata"]["uid"]) for p in cluster.cluster.list("persistentvolumeclaims", NS)}


async def home_page(hub, user: str) -> str:
    """The hub's home page as ``user`` sees it, after logging in through the login form."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        async with s.get(f"{hub.url}/hub/login") as r:
            page = await r.text()
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
        async with s.post(f"{hub.url}/hub/login", data={"username": user, "password": "x", "_xsrf": xsrf}) as r:
            assert r.status == 200, await r.text()
        async with s.get(f"{hub.url}/hub/home") as r:
            assert r.status == 200
            return await r.text()


async def test_gpu_limit_is_tighter_warnings_reach_only_the_owner(culler_hub, cluster, clock, tmp_path):
    hub = await culler_hub()
    await spawn(hub, "ada", "fast")  # GPU, idle
    await spawn(hub, "bob", "cpu")  # CPU, idle as long
    await spawn(hub, "carol", "fast")  # GPU, active
    before = claims(cluster)
    assert len(before) == 3
    cycle = make_cycle(hub, tmp_path)

    clock.advance(6)
    await touch(hub, "carol", clock())
    assert await cycle.run()
    rows = {r["user"]: r for r in (row.as_json() for row in cycle.state.rows.values())}
    assert (rows["ada"]["class"], rows["ada"]["gpus"], rows["ada"]["profile"]) == ("gpu", 1, "fast")
    assert (rows["bob"]["class"], rows["bob"]["gpus"], rows["bob"]["profile"]) == ("cpu", 0, "cpu")
    assert rows["ada"]["warned"] and not rows["bob"]["warned"] and not rows["carol"]["warned"]

    ada_home = await home_page(hub, "ada")
    assert "Your server (holding 1 GPU) will be stopped at" in ada_home
    assert "because it has been inactive for 10m" in ada_home
    bob_home = await home_page(hub, "bob")
    assert "will be stopped" not in bob_home and "jhplatform-cull-warning" not in bob_home
    assert sample(cycle.metrics, "jhplatform_culler_warnings_total", rule="idle", cls="gpu") == 1

    clock.advance(5)  # 11 minutes: past the GPU idle limit, far from the CPU one
    await touch(hub, "carol", clock())
    assert await cycle.run()
    assert not await running(hub, "ada")
    assert await running(hub, "bob")
    assert await running(hub, "carol")
    assert sample(cycle.metrics, "jhplatform_culler_culls_total", rule="idle", cls="gpu") == 1
    assert sample(cycle.metrics, "jhplatform_culler_culls_total", rule="idle", cls="cpu") == 0
    assert "will be stopped" not in await home_page(hub, "ada")  # stopped: no warning left
    assert claims(cluster) == before

    clock.advance(20)  # 31 minutes: the CPU server's limit too; carol stays active
    await touch(hub, "carol", clock())
    assert await cycle.run()
    assert not await running(hub, "bob")
    assert await running(hub, "carol")
    assert claims(cluster) == before


async def test_max_age_per_class(culler_hub, cluster, clock, tmp_path):
    hub = await culler_hub()
    await spawn(hub, "ada", "fast")
    await spawn(hub, "bob", "cpu")
    cycle = make_cycle(hub, tmp_path)

    clock.advance(41)  # past the GPU max age; both active
    for user in ("ada", "bob"):
        await touch(hub, user, clock())
    assert await cycle.run()
    assert not await running(hub, "ada")
    assert await running(hub, "bob")
    assert sample(cycle.metrics, "jhplatform_culler_culls_total", rule="max-age", cls="gpu") == 1

    clock.advance(10)  # 51: inside the CPU warning window
    await touch(hub, "bob", clock())
    assert await cycle.run()
    assert "maximum run time of 55m" in await home_page(hub, "bob")

    clock.advance(5)  # 56: past the CPU max age although active
    await touch(hub, "bob", clock())
    assert await cycle.run()
    assert not await running(hub, "bob")
    assert sample(cycle.metrics, "jhplatform_culler_culls_total", rule="max-age", cls="cpu") == 1


async def test_dry_run_stops_nothing(culler_hub, clock, tmp_path, caplog):
    hub = await culler_hub()
    await spawn(hub, "ada", "fast")
    cycle = make_cycle(hub, tmp_path, dry_run=True)
    clock.advance(45)
    with caplog.at_level(logging.INFO, logger="jhplatform.culler"):
        assert await cycle.run()
    assert await running(hub, "ada")
    assert "Dry run: would stop ada: no GPU utilisation reading, Jupyter activity decides; rule idle culls now" in caplog.text
    assert sample(cycle.metrics, "jhplatform_culler_dry_run_culls_total", rule="idle", cls="gpu") == 1
    assert sample(cycle.metrics, "jhplatform_culler_culls_total", rule="idle", cls="gpu") == 0


async def test_hub_api_errors_and_timeouts_for_a_cycle(culler_hub, faulty_proxy, clock, tmp_path, caplog, monkeypatch):
    # idle-culler's loop takes its request timeout from the environment (CullerService sets it).
    monkeypatch.setenv("JUPYTERHUB_REQUEST_TIMEOUT", "1")
    hub = await culler_hub()
    faulty_proxy["hub"] = hub
    await spawn(hub, "ada", "fast")
    cycle = make_cycle(hub, tmp_path, hub_api_url=faulty_proxy["url"])
    clock.advance(11)

    with caplog.at_level(logging.INFO, logger="jhplatform.culler"):
        faulty_proxy["fault"] = "503"
        assert await cycle.run() is False
        assert "Cull cycle failed, nothing was stopped; retrying at the next cycle." in caplog.text
        assert "HTTP 503" in caplog.text
        faulty_proxy["fault"] = "hang"
        assert await cycle.run() is False
        assert "Timeout" in caplog.text
    assert await running(hub, "ada")
    assert sample(cycle.metrics, "jhplatform_culler_cycle_errors_total") == 2
    assert cycle.state.last_error

    faulty_proxy["fault"] = None
    assert await cycle.run() is True
    assert not await running(hub, "ada")
    assert cycle.state.last_error is None
    assert sample(cycle.metrics, "jhplatform_culler_culls_total", rule="idle", cls="gpu") == 1


async def test_failed_stop_request_is_counted_once(culler_hub, faulty_proxy, clock, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_REQUEST_TIMEOUT", "1")
    hub = await culler_hub()
    faulty_proxy["hub"] = hub
    await spawn(hub, "ada", "fast")
    cycle = make_cycle(hub, tmp_path, hub_api_url=faulty_proxy["url"])
    clock.advance(11)

    faulty_proxy.update(fault="503", only="DELETE")
    # idle-culler's loop goes on after one user's failure and only logs it: the cycle ran.
    assert await cycle.run() is True
    assert await running(hub, "ada")
    assert sample(cycle.metrics, "jhplatform_culler_server_errors_total") == 1
    assert cycle.state.server_errors == ["Error processing ada: HTTPClientError: HTTP 503: Service Unavailable"]
    faulty_proxy.update(fault=None, only=None)
    assert await cycle.run() is True
    assert not await running(hub, "ada")
    assert cycle.state.server_errors == []
    assert sample(cycle.metrics, "jhplatform_culler_culls_total", rule="idle", cls="gpu") == 1
    assert sample(cycle.metrics, "jhplatform_culler_server_errors_total") == 1
    assert sample(cycle.metrics, "jhplatform_culler_cycle_errors_total") == 0
