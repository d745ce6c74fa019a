"""Property test: no generated PlatformSpawner configuration gets a non-restricted pod through.

We test these aspects:
- for generated ``profile_list`` configurations (``kubespawner_override`` with resources, GPU
  limits, tolerations, node selectors, uid/gid/fs_gid incl. 0 and None, privileged,
  allow_privilege_escalation, container/pod securityContext pieces, ``extra_pod_config``
  (host namespaces, hostPath/nfs/emptyDir/configMap volumes), ``extra_container_config``,
  init and extra containers, lifecycle hooks, volumes and mounts), ``profile_options`` with
  choices, user options selecting among them, and optionally a ``modify_pod_hook`` from a
  fixed set (identity, add a label, strip securityContext, add a privileged sidecar), every
  spawn either
  * raises ``SecurityPolicyRefusal`` in ``load_user_options`` with no request having reached
    the emulator, or
  * yields a final pod (``get_pod_manifest`` through the wrapped hook) with
    ``restricted_violations == []`` that the emulator's ``enforce=restricted`` namespace
    admits, and that the simulated kubelet takes to ``Running``;
- the generator is not degenerate: refused and admitted are each more than 10% of examples.

Examples: ``JHPLATFORM_PROPERTY_EXAMPLES`` (default 2000), no deadline, not derandomized.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes_asyncio.client import V1Container

from doubles import make_spawner
from jhplatform.devcluster import errors
from jhplatform.policy.security import restricted_violations
from jhplatform.spawner import PlatformSpawner, SecurityPolicyRefusal

EXAMPLES = int(os.environ.get("JHPLATFORM_PROPERTY_EXAMPLES", "2000"))
NS = "secure"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
SPOT_TOLERATION = {"key": "example.org/spot", "operator": "Exists", "effect": "NoSchedule"}
LOCALHOST_SECCOMP = {"type": "Localhost", "localhostProfile": "profiles/notebook.json"}

# Every pod tolerates the GPU taint and every node selector below matches the GPU nodes, so any
# combination the overrides merge into is schedulable; the in-flight budget keeps capacity free.
MAX_IN_FLIGHT = 8
GPUS = 8
RUNNING_TIMEOUT = 30.0

# Volumes every generated volume list contains, so mounts always resolve.
BASE_VOLUMES = [{"name": "work", "emptyDir": {}}, {"name": "config", "configMap": {"name": "notebook-config"}}]
SAFE_EXTRA_VOLUMES = [
    {"name": "extra-scratch", "emptyDir": {"sizeLimit": "1Gi"}},
    {"name": "extra-config", "configMap": {"name": "extra-config"}},
]
WEAK_EXTRA_VOLUMES = [
    {"name": "host-data", "hostPath": {"path": "/srv/data"}},
    {"name": "nfs-data", "nfs": {"server": "nfs.example.org", "path": "/exports"}},
]
MOUNTS = [
    {"name": "work", "mountPath": "/home/jovyan/work"},
    {"name": "config", "mountPath": "/etc/jupyter"},
    {"name": "work", "mountPath": "/tmp"},
    {"name": "config", "mountPath": "/data/config"},
]

SAFE_INIT = [
    {"name": "fetch", "image": "busybox:1.36", "command": ["sh", "-c", "true"]},
    {"name": "perms", "image": "busybox:1.36", "securityContext": {"runAsUser": 1000, "capabilities": {"drop": ["NET_RAW"]}}},
]
WEAK_INIT = [
    {"name": "root-init", "image": "busybox:1.36", "securityContext": {"runAsUser": 0}},
    {"name": "priv-init", "image": "busybox:1.36", "securityContext": {"privileged": True}},
    {
        "name": "block-cloud-metadata",
        "image": "quay.io/jupyterhub/k8s-network-tools:4.4.0",
        "securityContext": {"runAsUser": 0, "privileged": True, "capabilities": {"add": ["NET_ADMIN"]}},
    },
]
SAFE_EXTRA_CONTAINERS = [
    {"name": "sidecar", "image": "busybox:1.36", "command": ["sleep", "infinity"]},
    {"name": "web", "image": "nginx:1.27", "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"]}}},
]
WEAK_EXTRA_CONTAINERS = [
    {"name": "vpn", "image": "busybox:1.36", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}},
    {"name": "priv-sidecar", "image": "busybox:1.36", "securityContext": {"privileged": True}},
]
SAFE_LIFECYCLE = [{"postStart": {"exec": {"command": ["sh", "-c", "true"]}}}, {"preStop": {"tcpSocket": {"port": 8888}}}]
WEAK_LIFECYCLE = [{"preStop": {"httpGet": {"path": "/", "port": 80, "host": "169.254.169.254"}}}]


# -- strategies ---------------------------------------------------------------------------------


def pick(safe: list, weak: list, safe_only: bool):
    return st.sampled_from(safe if safe_only else safe + weak)


def container_security_context(safe: bool):
    caps = st.fixed_dictionaries(
        {},
        optional={
            "add": st.lists(pick(["NET_BIND_SERVICE"], ["NET_ADMIN", "SYS_ADMIN", "CHOWN"], safe), unique=True, max_size=2),
            "drop": st.sampled_from([[], ["ALL"], ["NET_RAW"], ["ALL", "NET_RAW"]]),
        },
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "runAsNonRoot": pick([True], [False], safe),
            "runAsUser": pick([1000, None], [0], safe),
            "capabilities": caps,
            "seccompProfile": pick([{"type": "RuntimeDefault"}, LOCALHOST_SECCOMP], [{"type": "Unconfined"}], safe),
            "readOnlyRootFilesystem": st.booleans(),
        },
    )


def pod_security_context(safe: bool):
    return st.fixed_dictionaries(
        {},
        optional={
            "runAsNonRoot": pick([True], [False], safe),
            "runAsUser": pick([1000, 1234, None], [0], safe),
            "runAsGroup": st.sampled_from([100, 1000]),
            "fsGroup": st.sampled_from([100, 2000]),
            "supplementalGroups": st.sampled_from([[100], [100, 2000]]),
            "seccompProfile": pick([{"type": "RuntimeDefault"}, LOCALHOST_SECCOMP], [{"type": "Unconfined"}], safe),
        },
    )


def volume_list(safe: bool):
    extras = SAFE_EXTRA_VOLUMES if safe else SAFE_EXTRA_VOLUMES + WEAK_EXTRA_VOLUMES
    return st.lists(st.sampled_from(extras), unique_by=lambda v: v["name"], max_size=2).map(lambda extra: BASE_VOLUMES + extra)


def extra_pod_config(safe: bool):
    return st.fixed_dictionaries(
        {},
        optional={
            "hostNetwork": pick([False], [True], safe),
            "hostPID": pick([False], [True], safe),
            "volumes": volume_list(safe),
            "enableServiceLinks": st.booleans(),
            "terminationGracePeriodSeconds": st.sampled_from([0, 5, 30]),
        },
    )


def extra_container_config(safe: bool):
    return st.fixed_dictionaries(
        {},
        optional={
            "workingDir": st.sampled_from(["/home/jovyan", "/home/jovyan/work"]),
            "securityContext": container_security_context(safe),
            "ports": pick(
                [[{"name": "notebook-port", "containerPort": 8888}]],
                [[{"name": "notebook-port", "containerPort": 8888, "hostPort": 8888}]],
                safe,
            ),
        },
    )


def override(safe: bool):
    """One ``kubespawner_override``; a safe one draws only from compliant values (the
    property never uses this flag: it only keeps refused and admitted both frequent)."""
    return st.fixed_dictionaries(
        {},
        optional={
            "cpu_limit": st.sampled_from([0.1, 0.25, 0.5, 1.0]),
            "mem_limit": st.sampled_from(["256M", "512M", "1G", "2G"]),
            "extra_resource_limits": st.integers(0, 2).map(lambda n: {"nvidia.com/gpu": str(n)}),
            "tolerations": st.sampled_from([[GPU_TOLERATION], [GPU_TOLERATION, SPOT_TOLERATION], [SPOT_TOLERATION, GPU_TOLERATION]]),
            "node_selector": st.sampled_from(
                [
                    {},
                    {"kubernetes.io/os": "linux"},
                    {"hub.jupyter.org/node-purpose": "user"},
                    {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"},
                ]
            ),
            "uid": pick([1000, 1234, None], [0], safe),
            "gid": st.sampled_from([0, 100, 1000, None]),
            "fs_gid": st.sampled_from([100, 2000, None]),
            "privileged": pick([False], [True], safe),
            "allow_privilege_escalation": pick([False, None], [True], safe),
            "container_security_context": container_security_context(safe),
            "pod_security_context": pod_security_context(safe),
            "extra_pod_config": extra_pod_config(safe),
            "extra_container_config": extra_container_config(safe),
            "init_containers": st.lists(pick(SAFE_INIT, WEAK_INIT, safe), unique_by=lambda c: c["name"], max_size=2),
            "extra_containers": st.lists(pick(SAFE_EXTRA_CONTAINERS, WEAK_EXTRA_CONTAINERS, safe), unique_by=lambda c: c["name"], max_size=2),
            "lifecycle_hooks": pick(SAFE_LIFECYCLE, WEAK_LIFECYCLE, safe),
            "volumes": volume_list(safe),
            "volume_mounts": st.lists(st.sampled_from(MOUNTS), unique_by=lambda m: m["mountPath"], max_size=3),
        },
    )


# Two in three layers are safe: with a few layers and a hook per spawn, refused and admitted
# stay balanced (about 45% / 55%).
LAYER = st.sampled_from([True, True, False]).flatmap(override)


def identity_hook(spawner, pod):
    return pod


def label_hook(spawner, pod):
    pod.metadata.labels["example.org/hooked"] = "yes"
    return pod


async def strip_security_context_hook(spawner, pod):
    for container in pod.spec.containers:
        container.security_context = None
    return pod


def privileged_sidecar_hook(spawner, pod):
    pod.spec.containers.append(V1Container(name="hook-sidecar", image="busybox", security_context={"privileged": True}))
    return pod


HOOKS = [None, None, None, identity_hook, label_hook, strip_security_context_hook, privileged_sidecar_hook]


@st.composite
def spawn_cases(draw):
    profiles = []
    for i in range(draw(st.integers(1, 3))):
        profile = {"display_name": f"Profile {i}", "slug": f"p{i}", "kubespawner_override": draw(LAYER)}
        options = {}
        for j in range(draw(st.integers(0, 2))):
            choices = {f"c{k}": {"display_name": f"Choice {k}", "kubespawner_override": draw(LAYER)} for k in range(draw(st.integers(1, 3)))}
            options[f"o{j}"] = {"display_name": f"Option {j}", "choices": choices}
        if options:
            profile["profile_options"] = options
        profiles.append(profile)
    if draw(st.booleans()):
        profiles[draw(st.integers(0, len(profiles) - 1))]["default"] = True
    user_options = {}
    slug = draw(st.sampled_from([None] + [p["slug"] for p in profiles]))
    if slug is not None:
        user_options["profile"] = slug
        for name, option in next(p for p in profiles if p["slug"] == slug).get("profile_options", {}).items():
            choice = draw(st.sampled_from([None, *option["choices"]]))
            if choice is not None:
                user_options[name] = choice
    hook = draw(st.sampled_from(HOOKS))
    return {"profile_list": profiles, "user_options": user_options, "hook": hook}


# -- the emulator side --------------------------------------------------------------------------


def gpus_of(pod: dict) -> int:
    return sum(int((c.get("resources") or {}).get("limits", {}).get("nvidia.com/gpu", 0) or 0) for c in pod["spec"]["containers"])


class PodRunner:
    """Creates admitted pods in the restricted namespace within a small in-flight budget, and
    deletes each (grace 0) once the simulated kubelet has it Running."""

    def __init__(self, devcluster):
        self.dev = devcluster
        self.in_flight: dict[str, tuple[float, int]] = {}  # name -> (created at, gpus)
        self.running: set[str] = set()
        self.created: list[str] = []
        self.problems: list[str] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def create(self, pod: dict) -> None:
        gpus = gpus_of(pod)
        while len(self.in_flight) >= MAX_IN_FLIGHT or sum(g for _, g in self.in_flight.values()) + gpus > GPUS:
            await asyncio.sleep(0.005)
        name = pod["metadata"]["name"]
        self.dev.cluster.create("pods", NS, pod)
        self.in_flight[name] = (time.monotonic(), gpus)
        self.created.append(name)

    def _sweep(self) -> None:
        store = self.dev.cluster.store
        for name, (created_at, _) in list(self.in_flight.items()):
            pod = store.find("pods", NS, name)
            phase = ((pod or {}).get("status") or {}).get("phase")
            if phase == "Running":
                self.running.add(name)
                self.dev.cluster.delete("pods", NS, name, grace_period=0)
                del self.in_flight[name]
            elif pod is None or phase in ("Failed", "Succeeded") or time.monotonic() - created_at > RUNNING_TIMEOUT:
                status = (pod or {}).get("status")
                self.problems.append(f"{name}: never Running (status {status})")
                del self.in_flight[name]

    async def _sweep_forever(self) -> None:
        while True:
            self._sweep()
            await asyncio.sleep(0.01)

    async def drain(self) -> None:
        while self.in_flight:
            await asyncio.sleep(0.02)


_names = itertools.count()


async def one_spawn(devcluster, runner: PodRunner, case: dict) -> str:
    user = f"prop-{next(_names)}"
    config = {
        "namespace": NS,
        "image": "quay.io/jupyter/base-notebook:2025-01-06",
        "profile_list": case["profile_list"],
        "tolerations": [GPU_TOLERATION],
        "volumes": BASE_VOLUMES,
    }
    if case["hook"] is not None:
        config["modify_pod_hook"] = case["hook"]
    before = len(devcluster.requests)
    spawner = make_spawner(PlatformSpawner, user=user, config={"PlatformSpawner": config})
    spawner.user_options = dict(case["user_options"])
    try:
        await spawner.load_user_options()
    except SecurityPolicyRefusal as refusal:
        assert refusal.violations, refusal.log_message
        sent = [r["path_qs"] for r in list(devcluster.requests)[before:]]
        assert sent == [], f"refused spawn made requests: {sent}"
        return "refused"
    sent = [r["path_qs"] for r in list(devcluster.requests)[before:]]
    assert sent == [], f"load_user_options made requests: {sent}"
    pod = await spawner.get_pod_manifest()
    # The wrapped hook raises if the final pod violates; it must not after the pre-spawn check.
    pod = spawner.api.api_client.sanitize_for_serialization(await spawner.modify_pod_hook(spawner, pod))
    assert restricted_violations(pod) == [], restricted_violations(pod)
    try:
        await runner.create(pod)
    except errors.ApiError as e:
        raise AssertionError(f"the emulator did not admit the pod: {e}") from e
    return "admitted"


@pytest.mark.timeout(240 + EXAMPLES * 0.2)
async def test_every_spawn_is_refused_or_admitted_and_runs(cluster):
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS, "labels": RESTRICTED}})
    for name in ("notebook-config", "extra-config"):
        cluster.cluster.create("configmaps", NS, {"metadata": {"name": name}, "data": {"jupyter_server_config.json": "{}"}})
    loop = asyncio.get_running_loop()
    runner = PodRunner(cluster)
    runner.start()
    outcomes: Counter[str] = Counter()

    # Hypothesis drives a *sync* test function and cannot run inside this test's running event
    # loop (loop.run_until_complete would fail there). So the @given function runs in a worker
    # thread (asyncio.to_thread) and submits each spawn, as a coroutine, back to this loop with
    # run_coroutine_threadsafe(...).result(): the spawner, its API client and the emulator only
    # ever run on the loop they belong to, one example at a time.
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=spawn_cases())
    def spawn_is_refused_or_admitted(case):
        outcomes[asyncio.run_coroutine_threadsafe(one_spawn(cluster, runner, case), loop).result()] += 1

    started = time.monotonic()
    try:
        await asyncio.to_thread(spawn_is_refused_or_admitted)
        await asyncio.wait_for(runner.drain(), RUNNING_TIMEOUT + 5)
    finally:
        await runner.stop()
    total = sum(outcomes.values())
    print(
        f"\n{total} examples in {time.monotonic() - started:.1f}s: {outcomes['refused']} refused, "
        f"{outcomes['admitted']} admitted, {len(runner.running)} reached Running"
    )
    assert runner.problems == []
    # Every admitted pod was created and reached Running.
    assert len(runner.created) == outcomes["admitted"]
    assert runner.running == set(runner.created)
    assert outcomes["refused"] > 0.1 * total, outcomes
    assert outcomes["admitted"] > 0.1 * total, outcomes
