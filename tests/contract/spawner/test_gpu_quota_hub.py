"""Quota-aware GPU profiles through a real JupyterHub (PlatformSpawner) on the emulator.

The hub and its GPU profiles are tests/gpuhub.py's: unmodified KubeSpawner code against the
session emulator (simulated kubelet) in a namespace with a GPU ResourceQuota, 2 nodes with 4
A100s each tainted ``nvidia.com/gpu``, notebook servers a stub HTTP responder. The race of 100
REST spawns for 8 GPUs (default hub settings) is in tests/reliability/test_gpu_race.py, run a
number of rounds set by the reliability suite's size.

We test these aspects:
- the spawn form, fetched as the user: per GPU profile (the plain KubeSpawner one too) and
  choice what is free, ``disabled``
  with the reason for what the user cannot have, fresh on every request (a stop frees the GPU);
  a refused form submission shows the message on the form;
- REST refusals (400) with their exact messages for the quota, the per-user limit (across
  named servers) and a group limit, made with no request to the emulator;
- the apiserver's "exceeded quota" 403 (another workload took the GPU while the hub's quota
  watch lagged) becomes a clear 400, with nothing left behind;
- a GPU pod the scheduler reports ``FailedScheduling … Insufficient nvidia.com/gpu`` for is
  stopped within 10 s with a clear message;
- a profile whose node selector matches no node, and one whose default toleration is turned
  off, are each stopped within 10 s with the configuration message (never "no free GPU"),
  counted in the refusal metric by reason, with the profile, the scheduler's message and the
  fix in the hub log, and not counted toward ``consecutive_failure_limit``;
- 10 consecutive refusals with ``consecutive_failure_limit = 5`` leave the hub running;
- the race of 100 spawns for 8 GPUs (tests/reliability/test_gpu_race.py) under z2jh's hub
  settings (``slow_spawn_timeout: 0``, z2jh-hub-loader.md step 3): every REST spawn answers 202, 8 servers run, each of the 92 progress streams ends with
  the refusal's message, and the hub stays up;
- after a hub restart the ledger is rebuilt from the running pods.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter

import pytest

from gpuhub import (A100, FREE, GPU, NS, PRODUCT, QUOTA_FULL_8, Browser, create_users, decision_requests, metrics, pods,
                    requests_since, spawn_page, start_hub)  # noqa: F401 (start_hub is a fixture)
from helpers import wait_for
from hubstack import spawn, stop

pytestmark = pytest.mark.contract


async def test_form_shows_availability_and_disabled_reasons(start_hub, cluster):
    hub = await start_hub("c.PlatformSpawner.gpu_user_limit = 1\n", gpus=2)
    await create_users(hub, "ada", "bob", "cy")
    ada = await Browser(hub, "ada").login()

    page, _ = await ada.spawn_page()
    assert page["profile-a100"]["data-gpu-free"] == "2" and page["profile-a100"]["data-gpu-total"] == "2"
    assert page.text("gpu-availability-a100") == "2 of 2 A100 free · you use 0 of 1"
    assert "checked" in page["profile-item-cpu"]
    # The plain KubeSpawner GPU profile is a GPU profile on the form too.
    assert (page["profile-gpu"]["data-gpu-resource"], page["profile-gpu"]["data-gpu-available"]) == (GPU, "true")
    assert page.text("gpu-availability-gpu") == "2 of 2 GPUs free · you use 0 of 1"

    status, _ = await spawn(hub, "bob", {"profile": "a100"})
    assert status in (201, 202)
    await hub.wait_ready("bob")

    # Rendered per request: one GPU left, and more than one GPU is over ada's limit.
    page, html = await ada.spawn_page()
    label = page["profile-a100-multi"]
    assert (label["data-gpu-available"], label["data-gpu-free"], label["data-gpu-total"], label["data-gpu-user-cap"]) == ("true", "1", "2", "1")
    assert page.text("gpu-availability-a100-multi") == "1 of 2 A100 free · you use 0 of 1"
    assert re.search(r'<option value="1" data-gpu-count="1" data-gpu-available="true" selected>', html)
    assert re.search(r'<option value="2" data-gpu-count="2" data-gpu-available="false" disabled data-gpu-reason="user_cap">2 GPUs \(not available\)', html)
    assert page.text("gpu-reason-a100-multi--gpus--2") == (
        "2 GPUs: This choice needs 2 GPUs, but you may use only 1 more (you use 0 of 1). "
        "Pick fewer GPUs, stop a server that uses a GPU, or pick the CPU profile.")
    assert page["gpu-reason-a100-multi--gpus--4"]["data-gpu-reason"] == "user_cap"

    status, _ = await spawn(hub, "cy", {"profile": "a100"})
    assert status in (201, 202)
    await hub.wait_ready("cy")

    page, _ = await ada.spawn_page()
    assert page["profile-a100"]["data-gpu-available"] == "false" and page["profile-a100"]["data-gpu-reason"] == "quota"
    assert "disabled" in page["profile-item-a100"] and "disabled" in page["profile-item-a100-multi"]
    assert page.text("gpu-availability-a100") == "0 of 2 A100 free · you use 0 of 1"
    assert page.text("gpu-reason-a100") == "All 2 A100 GPUs are in use (yours: 0 of 1). Pick the CPU profile or try again later."
    assert "disabled" in page["profile-item-gpu"] and page["profile-gpu"]["data-gpu-reason"] == "quota"
    assert page.text("gpu-reason-gpu") == "All 2 GPUs are in use (yours: 0 of 1). Pick the CPU profile or try again later."
    assert "checked" in page["profile-item-cpu"]

    # Submitting the GPU profile anyway: the form comes back with the message, nothing starts.
    status, html = await ada.submit({"profile": "a100"})
    assert status == 400, html
    assert "All 2 A100 GPUs are in use (yours: 0 of 1). Pick the CPU profile or try again later." in html
    assert 'id="gpu-reason-a100"' in html, "the form is shown again, freshly rendered"
    assert cluster.cluster.store.find("pods", NS, "jupyter-ada") is None

    # A stop frees the GPU for the next form.
    await stop(hub, "bob")
    await wait_for(lambda: cluster.cluster.store.find("pods", NS, "jupyter-bob") is None, 15)
    page, _ = await ada.spawn_page()
    assert page["profile-a100"]["data-gpu-available"] == "true"
    assert page.text("gpu-availability-a100") == "1 of 2 A100 free · you use 0 of 1"

    # And the form path reserves and starts it.
    status, html = await ada.submit({"profile": "a100"})
    assert status == 302, html
    await ada.close()
    await hub.wait_ready("ada")
    pod = cluster.cluster.get("pods", NS, "jupyter-ada")
    assert pod["spec"]["containers"][0]["resources"]["limits"][GPU] == "1"
    assert pod["metadata"]["annotations"]["jhplatform.io/gpu"] == "nvidia.com/gpu=1"
    assert pod["metadata"]["annotations"]["jhplatform.io/gpu-type"] == "A100"


REFUSALS = [
    ("quota", "", 1, None,
     "The only A100 GPU is in use (yours: 0). Pick the CPU profile or try again later."),
    ("user-cap", "c.PlatformSpawner.gpu_user_limit = 1\n", 8, None,
     "You already use 1 of your 1 GPU (the per-user limit). Stop a server that uses a GPU, or pick the CPU profile."),
    ("group-cap", "c.PlatformSpawner.gpu_group_limits = {'students': 1}\n", 8, "students",
     "Your group students already uses 1 of its 1 GPU (yours: 0). Pick the CPU profile, or try again when a member of students stops a GPU server."),
]


@pytest.mark.parametrize("config, gpus, group, message", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
async def test_rest_refusal_messages(start_hub, cluster, config, gpus, group, message):
    hub = await start_hub(config, gpus=gpus)
    await create_users(hub, "ada", "bob")
    if group:
        assert (await hub.request("POST", f"/groups/{group}"))[0] == 201
        assert (await hub.request("POST", f"/groups/{group}/users", {"users": ["ada", "bob"]}))[0] == 200
    # Someone already holds the GPU: bob (quota, group) or ada's own other server (user cap).
    holder, server = ("ada", "first") if "user_limit" in config else ("bob", "")
    status, _ = await spawn(hub, holder, {"profile": "a100"}, server)
    assert status in (201, 202)
    await hub.wait_ready(holder, server)

    mark = len(cluster.requests)
    status, body = await spawn(hub, "ada", {"profile": "a100"}, "second" if server else "")
    assert (status, body["message"]) == (400, message)
    assert decision_requests(requests_since(cluster, mark)) == [], "a refusal makes no Kubernetes request"
    assert [p["metadata"]["name"] for p in pods(cluster)] == [f"jupyter-{holder}" + (f"--{server}" if server else "")]
    _, model = await hub.request("GET", "/users/ada")
    assert "second" not in model["servers"] and ("" not in model["servers"] or holder == "ada")


async def test_api_403_exceeded_quota_becomes_clear_message(start_hub, cluster):
    hub = await start_hub(gpus=1)
    await create_users(hub, "ada")
    await spawn_page(hub, "ada")  # the hub now watches pods and quotas

    # The hub's quota watch lags (as a watch can): it relists now, then its watch hangs.
    cluster.faults.add(verb="watch", resource="resourcequotas", hang=30, count=None)
    mark = len(cluster.requests)
    await cluster.drop_watches()
    await wait_for(lambda: any(e.get("verb") == "watch" and e.get("resource") == "resourcequotas" for e in requests_since(cluster, mark)),
                   10, message="the hub's quota watch reconnecting")
    # Meanwhile another workload takes the namespace's only GPU.
    cluster.cluster.create("pods", NS, {
        "metadata": {"name": "batch-job"},
        "spec": {"containers": [{"name": "train", "image": "trainer", "resources": {"limits": {GPU: "1"}}}],
                 "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]},
    })

    status, body = await spawn(hub, "ada", {"profile": "a100"})
    assert status == 400, body
    assert body["message"] == (
        "Another workload took the last free A100 GPU in this namespace's quota just before your server could start, "
        "so nothing was started. Pick the CPU profile or try again later.")
    creates = [e for e in requests_since(cluster, mark) if e.get("verb") == "create" and e.get("resource") == "pods"]
    assert [e["status"] for e in creates] == [403], "the apiserver refused the pod: the 403 path was taken"
    assert cluster.cluster.store.find("pods", NS, "jupyter-ada") is None
    assert "exceeded quota: gpu-quota" in hub.log_path.read_text(), "the admin sees the apiserver's words in the log"
    cluster.faults.clear()
    assert (await hub.request("GET", "/"))[0] == 200


async def test_failed_scheduling_is_stopped_within_10s(start_hub, cluster):
    # No quota; the hub believes in a pool of 8 A100s, but other workloads hold all of them.
    hub = await start_hub("c.PlatformSpawner.gpu_pools = {'A100': 8}\n", gpus=None)
    for i in range(2):
        cluster.cluster.create("pods", "default", {
            "metadata": {"name": f"training-{i}"},
            "spec": {"containers": [{"name": "train", "image": "trainer", "resources": {"limits": {GPU: "4"}}}],
                     "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}], "nodeSelector": {PRODUCT: A100}},
        })
    await wait_for(lambda: all((p.get("spec") or {}).get("nodeName") for p in pods(cluster, "default")), 10, message="training pods bound")
    await create_users(hub, "ada")

    started = time.monotonic()
    status, body = await spawn(hub, "ada", {"profile": "a100"})
    await wait_for(lambda: cluster.cluster.store.find("pods", NS, "jupyter-ada") is None, 10, message="the unschedulable pod deleted")
    elapsed = time.monotonic() - started
    print(f"unschedulable GPU pod stopped {elapsed:.2f} s after the spawn request")
    assert elapsed < 10
    assert status == 400, body
    assert body["message"] == "No node has a free A100 GPU right now, so your server was stopped instead of waiting. Pick the CPU profile or try again later."
    events = [e for e in cluster.cluster.store.list("events", NS) if e["involvedObject"]["name"] == "jupyter-ada"]
    assert any(e["reason"] == "FailedScheduling" and f"Insufficient {GPU}" in e["message"] for e in events)
    _, model = await hub.request("GET", "/users/ada")
    assert model["servers"] == {}


async def test_ten_refusals_do_not_stop_the_hub(start_hub, cluster):
    hub = await start_hub(gpus=0)
    users = [f"user{i}" for i in range(10)]
    await create_users(hub, *users)
    for user in users:
        status, body = await spawn(hub, user, {"profile": "a100"})
        assert (status, body["message"]) == (400, "No A100 GPUs are available on this hub right now. Pick the CPU profile or ask your hub admin.")
    # What a client that got 202 (slow_spawn_timeout 0, as z2jh sets) reads: the progress stream.
    status, stream = await hub.request("GET", f"/users/{users[-1]}/server/progress")
    assert status == 200
    assert '"failed": true' in stream and "Spawn failed: No A100 GPUs are available on this hub right now." in stream
    await asyncio.sleep(3)  # JupyterHub exits 2 s after reaching the limit
    assert hub.proc.poll() is None, hub.log_tail()
    status, info = await hub.request("GET", "/")
    assert status == 200 and "version" in info
    assert "Aborting due to" not in hub.log_path.read_text()
    # A real spawn still works afterwards.
    status, _ = await spawn(hub, "user0", {"profile": "cpu"})
    assert status in (201, 202)
    await hub.wait_ready("user0")


async def test_ledger_rebuilt_from_pods_after_hub_restart(start_hub, cluster):
    # A pool (not a quota): only the hub's own pods, read back after the restart, fill it.
    extra = "c.PlatformSpawner.gpu_pools = {'A100': 1}\nc.JupyterHub.cleanup_servers = False\n"
    hub = await start_hub(extra, gpus=None)
    await create_users(hub, "ada", "bob")
    status, _ = await spawn(hub, "bob", {"profile": "a100"})
    assert status in (201, 202)
    await hub.wait_ready("bob")

    await hub.stop()
    assert cluster.cluster.get("pods", NS, "jupyter-bob")["status"]["phase"] == "Running"
    await hub.start()

    status, body = await spawn(hub, "ada", {"profile": "a100"})
    assert (status, body["message"]) == (400, "The only A100 GPU is in use (yours: 0). Pick the CPU profile or try again later.")
    await stop(hub, "bob")
    await wait_for(lambda: cluster.cluster.store.find("pods", NS, "jupyter-bob") is None, 15)
    status, _ = await spawn(hub, "ada", {"profile": "a100"})
    assert status in (201, 202)
    await hub.wait_ready("ada")


async def test_race_under_z2jh_hub_settings(start_hub, cluster):
    # z2jh-hub-loader.md step 3: c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}, so a
    # REST spawn answers 202 at once and a refusal is the failed event of the progress stream.
    hub = await start_hub("c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}\n")
    users = [f"z2jh{i:03d}" for i in range(100)]
    await create_users(hub, *users)
    await spawn_page(hub, users[0])
    results = await asyncio.gather(*(spawn(hub, u, {"profile": "gpu"}) for u in users))
    assert Counter(status for status, _ in results) == {202: 100}

    async def settled():
        # One request for all users (100 pollers would compete with the spawns for the hub).
        status, models = await hub.request("GET", "/users?limit=200")
        assert status == 200, models
        mine = [m for m in models if m["name"] in users]
        return len(mine) == 100 and not any(m.get("pending") or any(s.get("pending") for s in (m.get("servers") or {}).values())
                                            for m in mine)

    await wait_for(settled, 120, 1, message="every spawn settled")
    running = pods(cluster)
    assert len(running) == 8 and [p["status"]["phase"] for p in running] == ["Running"] * 8, "no pod Pending"
    winners = {p["metadata"]["annotations"]["hub.jupyter.org/username"] for p in running}

    async def last_event(user):
        status, stream = await hub.request("GET", f"/users/{user}/server/progress")
        assert status == 200, stream
        events = [line[len("data: "):] for line in stream.splitlines() if line.startswith("data: ")]
        return json.loads(events[-1])

    finals = dict(zip(users, await asyncio.gather(*(last_event(u) for u in users))))
    refused = {u: e for u, e in finals.items() if u not in winners}
    assert len(refused) == 92
    assert {(e.get("failed"), e.get("message")) for e in refused.values()} == {(True, f"Spawn failed: {QUOTA_FULL_8}")}
    assert all(finals[u].get("ready") for u in winners)
    await asyncio.sleep(3)  # JupyterHub exits 2 s after reaching consecutive_failure_limit (5)
    assert hub.proc.poll() is None, hub.log_tail()
    assert (await hub.request("GET", "/"))[0] == 200


CONFIG_MESSAGE = ("The {name} profile cannot start because of how the cluster is set up, so your server was stopped. "
                  "Your hub admin can see the details in the hub log. Pick the CPU profile.")
MISCONFIGURED = [
    ("node-selector-matches-no-node", "h100", "H100", "node_affinity",
     "node(s) didn't match Pod's node affinity/selector", "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3"),
    ("toleration-turned-off", "untolerated", "GPU (untolerated)", "untolerated_taint",
     "node(s) had untolerated taint {nvidia.com/gpu: present}", "'key': 'nvidia.com/gpu', 'operator': 'Exists'"),
]


@pytest.mark.parametrize("slug, name, reason, scheduler_says, fix", [m[1:] for m in MISCONFIGURED], ids=[m[0] for m in MISCONFIGURED])
async def test_misconfigured_profile_is_refused_within_10s(start_hub, cluster, slug, name, reason, scheduler_says, fix):
    # With a limit of 1, one counted failure would make the hub exit 2 s later.
    hub = await start_hub("c.Spawner.consecutive_failure_limit = 1\n")
    await create_users(hub, "ada")
    before = await metrics(hub)
    started = time.monotonic()
    status, body = await spawn(hub, "ada", {"profile": slug})
    await wait_for(lambda: cluster.cluster.store.find("pods", NS, "jupyter-ada") is None, 10, message="the pod deleted")
    elapsed = time.monotonic() - started
    print(f"{slug}: refused {elapsed:.2f} s after the spawn request")
    assert elapsed < 10
    assert (status, body["message"]) == (400, CONFIG_MESSAGE.format(name=name))
    assert "free" not in body["message"]
    after = await metrics(hub)
    key = f'jhplatform_gpu_refusals_total{{reason="{reason}"}}'
    assert after[key] - before.get(key, 0) == 1
    log = hub.log_path.read_text()
    line = next(l for l in log.splitlines() if "GPU spawn refused" in l and reason in l)
    assert f"Profile {name!r}" in line and scheduler_says in line and fix in line, line
    _, model = await hub.request("GET", "/users/ada")
    assert model["servers"] == {}

    async def released():
        return (await metrics(hub))[FREE] == 8

    await wait_for(released, 10, message="the reservation released")
    await asyncio.sleep(3)  # JupyterHub exits 2 s after reaching consecutive_failure_limit
    assert hub.proc.poll() is None and "Aborting due to" not in hub.log_path.read_text(), hub.log_tail()
