"""The simulated kubelet of the emulator (``jhplatform.devcluster.kubelet``), in-process.

We test these aspects:
- the state walk S1 -> S2 -> S3 a scheduled pod goes through, one write per state, with every
  field KubeSpawner reads (``is_pod_running`` from KubeSpawner itself, ``poll``'s view) and the
  fields spec §2.3 requires (hostIP/hostIPs, startTime, the five conditions and their order,
  container status keys, imageID/containerID formats, unique pod IPs);
- the kubelet's legacy events: order Pulling/Pulled/Created/Started, their fields (source,
  fieldPath, timestamps, count) and the "already present" pull for a cached image;
- init containers run to completion before the main container, with their own statuses; a
  failing init container fails the pod (Never) or crash-loops with the pod Pending (OnFailure);
- graceful deletion: MODIFIED (deletionTimestamp) -> Killing event -> one MODIFIED with a
  terminal phase and terminated containers (143, or 0 for a container that had already
  exited) -> DELETED; SIGKILL (137) when a container outlives the grace period; grace 0 deletes
  at once;
- exit codes under each restartPolicy (Always/OnFailure/Never, E = 0 and E != 0), including
  CrashLoopBackOff with restartCount, lastState and the back-off message doubling;
- faults: image pull errors (ErrImagePull -> ImagePullBackOff, then recovery when the fault is
  removed), CreateContainerConfigError, never-ready, a missing secret/configMap volume
  (FailedMount, then Running once the object exists);
- eviction and activeDeadlineSeconds -> phase Failed;
- Behaviour matching and annotation parsing; reset forgets pods.
"""

from __future__ import annotations

import asyncio
import base64
import re

import pytest
from kubespawner import KubeSpawner

from helpers import wait_for
from jhplatform.devcluster.cluster import Cluster
from jhplatform.devcluster.kubelet import ANNOTATION_PREFIX, Behaviour, Kubelet, go_duration, image_id

NODE = "node-1"
IMAGE = "quay.io/jupyterhub/singleuser:5.5"
SHA = re.compile(r"[0-9a-f]{64}")


class Env:
    def __init__(self, cluster: Cluster, kubelet: Kubelet):
        self.cluster = cluster
        self.kubelet = kubelet
        self.feed = cluster.store.subscribe(["pods"])
        self.history: list = []

    def pod(self, name: str, namespace: str = "ns") -> dict | None:
        return self.cluster.store.find("pods", namespace, name)

    def changes(self, name: str) -> list:
        while not self.feed.empty():
            self.history.append(self.feed.get_nowait())
        return [c for c in self.history if c.obj["metadata"]["name"] == name]

    def events(self, name: str) -> list[dict]:
        return [e for e in self.cluster.store.list("events", "ns") if e["involvedObject"]["name"] == name]

    def create(self, name: str, *, containers=None, annotations=None, restart_policy="OnFailure", **spec) -> dict:
        body = {
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {
                "nodeName": NODE,
                "restartPolicy": restart_policy,
                "containers": containers
                or [{"name": "notebook", "image": IMAGE, "ports": [{"containerPort": 8888, "name": "notebook-port"}]}],
                **spec,
            },
        }
        return self.cluster.create("pods", "ns", body)

    def notebook(self, name: str) -> dict:
        """The notebook container's status ({} before the kubelet wrote one)."""
        pod = self.pod(name)
        for cs in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
            if cs["name"] == "notebook":
                return cs
        return {}

    def waiting_reason(self, name: str) -> str | None:
        return ((self.notebook(name).get("state") or {}).get("waiting") or {}).get("reason")

    async def running(self, name: str) -> dict:
        return await wait_for(lambda: (p := self.pod(name)) is not None and is_pod_running(p) and p, message=f"{name} running")

    async def phase(self, name: str, phase: str) -> dict:
        return await wait_for(
            lambda: (p := self.pod(name)) is not None and p["status"].get("phase") == phase and p, message=f"{name} {phase}"
        )

    async def gone(self, name: str) -> None:
        await wait_for(lambda: self.pod(name) is None, message=f"{name} deleted")


def is_pod_running(pod: dict) -> bool:
    """KubeSpawner 7.1's own check (it does not use ``self``)."""
    return KubeSpawner.is_pod_running(None, pod)


def kubespawner_poll(pod: dict | None):
    """The pod-dependent part of ``KubeSpawner.poll`` (spawner.py:2653-2720)."""
    if pod is None:
        return 1
    if pod["status"]["phase"] == "Pending":
        return None
    statuses = pod["status"].get("containerStatuses")
    if statuses is None:
        return 1
    for c in statuses:
        if c["name"] == "notebook":
            if "terminated" in c["state"]:
                return c["state"]["terminated"]["exitCode"]
            break
    return None


def notebook(pod: dict) -> dict:
    return next(cs for cs in pod["status"]["containerStatuses"] if cs["name"] == "notebook")


def conditions(pod: dict) -> dict[str, dict]:
    return {c["type"]: c for c in pod["status"].get("conditions") or []}


@pytest.fixture
async def env():
    cluster = Cluster()
    kubelet = Kubelet(cluster, step_delay=0.01, restart_backoff=0.2, retry_interval=0.05)
    cluster.controllers.append(kubelet)
    cluster.create("namespaces", None, {"metadata": {"name": "ns"}})
    e = Env(cluster, kubelet)
    await cluster.start()
    try:
        yield e
    finally:
        await cluster.stop()


# -- the state walk -------------------------------------------------------------------------


async def test_state_walk_writes_s2_then_s3_with_the_fields_kubespawner_reads(env):
    created = env.create("walk")
    assert kubespawner_poll(created) is None, "a Pending pod polls as None"
    pod = await env.running("walk")
    await asyncio.sleep(0.05)
    changes = env.changes("walk")
    assert [c.type for c in changes] == ["ADDED", "MODIFIED", "MODIFIED"], "one write for S2 and one for S3"
    s2 = changes[1].obj
    status = s2["status"]
    assert status["phase"] == "Pending"
    assert "podIP" not in status and "podIPs" not in status
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", status["hostIP"]) and status["hostIPs"] == [{"ip": status["hostIP"]}]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", status["startTime"])
    assert status["qosClass"] == "BestEffort", "the API server's qosClass is kept"
    conds = status["conditions"]
    assert [c["type"] for c in conds] == ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert [c["status"] for c in conds] == ["False", "True", "False", "False", "True"]
    for c in conds:
        assert c["lastProbeTime"] is None and c["lastTransitionTime"]
    assert conditions(s2)["Ready"]["reason"] == "ContainersNotReady"
    assert conditions(s2)["Ready"]["message"] == "containers with unready status: [notebook]"
    assert conditions(s2)["ContainersReady"]["message"] == "containers with unready status: [notebook]"
    assert status["containerStatuses"] == [
        {
            "name": "notebook",
            "state": {"waiting": {"reason": "ContainerCreating"}},
            "lastState": {},
            "ready": False,
            "restartCount": 0,
            "image": IMAGE,
            "imageID": "",
            "started": False,
        }
    ]
    assert not is_pod_running(s2)
    assert kubespawner_poll(s2) is None

    status = pod["status"]
    assert changes[2].obj["status"] == status
    assert status["phase"] == "Running"
    assert status["podIP"].startswith("10.244.") and status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == s2["status"]["hostIP"] and status["startTime"] == s2["status"]["startTime"]
    assert all(c["status"] == "True" for c in status["conditions"]), status["conditions"]
    assert "reason" not in conditions(pod)["Ready"]
    cs = notebook(pod)
    assert set(cs) >= {"name", "image", "imageID", "ready", "restartCount", "started", "lastState", "state", "containerID"}
    assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0 and cs["lastState"] == {}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", cs["state"]["running"]["startedAt"])
    assert cs["imageID"].startswith("quay.io/jupyterhub/singleuser@sha256:")
    assert SHA.fullmatch(cs["imageID"].rsplit(":", 1)[1])
    assert cs["containerID"].startswith("containerd://") and SHA.fullmatch(cs["containerID"][len("containerd://") :])
    assert is_pod_running(pod)
    assert kubespawner_poll(pod) is None


async def test_pod_ips_are_unique_and_pods_without_node_are_left_alone(env):
    for i in range(5):
        env.create(f"ip-{i}")
    env.cluster.create("pods", "ns", {"metadata": {"name": "unscheduled"}, "spec": {"containers": [{"name": "c", "image": IMAGE}]}})
    pods = [await env.running(f"ip-{i}") for i in range(5)]
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ips) == 5
    await asyncio.sleep(0.1)
    assert env.pod("unscheduled")["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


async def test_events_order_and_fields(env):
    pod = env.create("events")
    await env.running("events")
    events = env.events("events")
    assert [e["reason"] for e in events] == ["Pulling", "Pulled", "Created", "Started"]
    assert events[0]["message"] == f'Pulling image "{IMAGE}"'
    assert events[1]["message"].startswith(f'Successfully pulled image "{IMAGE}" in ')
    assert events[2]["message"] == "Created container: notebook"
    assert events[3]["message"] == "Started container notebook"
    for e in events:
        assert e["type"] == "Normal"
        assert e["source"] == {"component": "kubelet", "host": NODE}
        assert e["reportingComponent"] == "kubelet" and e["reportingInstance"] == NODE
        assert e["involvedObject"]["fieldPath"] == "spec.containers{notebook}"
        assert e["involvedObject"]["name"] == "events" and e["involvedObject"]["uid"] == pod["metadata"]["uid"]
        assert e["involvedObject"]["kind"] == "Pod"
        assert e["firstTimestamp"] and e["lastTimestamp"] and e["eventTime"] is None and e["count"] == 1
        assert e["metadata"]["name"].startswith("events.") and e["metadata"]["uid"]
    # Same node, IfNotPresent image already pulled: no Pulling event.
    env.create("events-2")
    await env.running("events-2")
    events = env.events("events-2")
    assert [e["reason"] for e in events] == ["Pulled", "Created", "Started"]
    assert events[0]["message"] == f'Container image "{IMAGE}" already present on machine'


async def test_init_containers_complete_before_the_main_container(env):
    env.kubelet.add_behaviour(name="init-pod", container="setup", exit_code=0, exit_after=0.2)
    env.create(
        "init-pod",
        initContainers=[{"name": "setup", "image": "busybox:1.36"}],
    )
    pod = await wait_for(
        lambda: (p := env.pod("init-pod"))["status"].get("initContainerStatuses")
        and "running" in p["status"]["initContainerStatuses"][0]["state"]
        and p
    )
    assert pod["status"]["phase"] == "Pending"
    init = conditions(pod)["Initialized"]
    assert init["status"] == "False" and init["reason"] == "ContainersNotInitialized"
    assert init["message"] == "containers with incomplete status: [setup]"
    assert notebook(pod)["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert pod["status"]["podIP"], "the sandbox (and its IP) exists while init containers run"
    pod = await env.running("init-pod")
    setup = pod["status"]["initContainerStatuses"][0]
    assert setup["state"]["terminated"]["exitCode"] == 0 and setup["state"]["terminated"]["reason"] == "Completed"
    assert setup["ready"] is False
    events = env.events("init-pod")
    paths = [(e["reason"], e["involvedObject"]["fieldPath"]) for e in events]
    assert paths[:4] == [(r, "spec.initContainers{setup}") for r in ("Pulling", "Pulled", "Created", "Started")]
    assert [r for r, _ in paths[4:]] == ["Pulling", "Pulled", "Created", "Started"]
    assert all(p == "spec.containers{notebook}" for _, p in paths[4:])


@pytest.mark.parametrize("policy", ["Never", "OnFailure"])
async def test_failing_init_container(env, policy):
    env.kubelet.add_behaviour(name="bad-init", container="setup", exit_code=1, exit_after=0.05)
    env.create("bad-init", restart_policy=policy, initContainers=[{"name": "setup", "image": "busybox:1.36"}])

    def setup_status():
        statuses = (env.pod("bad-init")["status"].get("initContainerStatuses")) or [{}]
        return statuses[0]

    if policy == "Never":
        pod = await env.phase("bad-init", "Failed")
        assert setup_status()["state"]["terminated"]["exitCode"] == 1
    else:
        await wait_for(lambda: setup_status().get("restartCount") == 1, message="init restart")
        pod = env.pod("bad-init")
        assert setup_status()["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert pod["status"]["phase"] == "Pending"
    assert env.notebook("bad-init")["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert conditions(pod)["Initialized"]["status"] == "False"
    assert not [e for e in env.events("bad-init") if e["involvedObject"]["fieldPath"] == "spec.containers{notebook}"]


# -- deletion -------------------------------------------------------------------------------


async def test_graceful_delete_is_modified_then_terminal_modified_then_deleted(env):
    env.create("del")
    await env.running("del")
    env.changes("del")
    env.history.clear()
    loop = asyncio.get_running_loop()
    began = loop.time()
    returned = env.cluster.delete("pods", "ns", "del", grace_period=30)
    assert returned["metadata"]["deletionGracePeriodSeconds"] == 30
    assert not is_pod_running(returned), "is_pod_running turns False with deletionTimestamp"
    await env.gone("del")
    assert loop.time() - began < 5, "the simulated container stops long before the grace period"
    changes = env.changes("del")
    assert [c.type for c in changes] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert changes[0].obj["status"]["phase"] == "Running" and changes[0].obj["metadata"]["deletionTimestamp"]
    final = changes[1].obj
    assert final["status"]["phase"] == "Failed"
    cs = notebook(final)
    assert cs["state"]["terminated"]["exitCode"] == 143 and cs["state"]["terminated"]["reason"] == "Error"
    assert cs["state"]["terminated"]["containerID"] == cs["containerID"]
    assert cs["ready"] is False
    assert conditions(final)["Ready"]["status"] == "False" and conditions(final)["ContainersReady"]["status"] == "False"
    assert changes[2].obj["metadata"]["uid"] == final["metadata"]["uid"]
    killing = [e for e in env.events("del") if e["reason"] == "Killing"]
    assert len(killing) == 1 and killing[0]["message"] == "Stopping container notebook"
    assert killing[0]["type"] == "Normal" and killing[0]["involvedObject"]["fieldPath"] == "spec.containers{notebook}"
    assert env.kubelet.runtime("ns", "del") is None


async def test_graceful_delete_keeps_exit_code_zero_of_an_exited_container(env):
    env.kubelet.add_behaviour(name="two", container="side", exit_code=0)
    env.create(
        "two",
        containers=[{"name": "notebook", "image": IMAGE}, {"name": "side", "image": "busybox:1.36"}],
    )
    await wait_for(
        lambda: (p := env.pod("two"))
        and any("terminated" in cs["state"] for cs in p["status"].get("containerStatuses") or [])
        and p
    )
    pod = env.pod("two")
    assert pod["status"]["phase"] == "Running", "OnFailure + exit 0 of one container: the pod keeps running"
    env.cluster.delete("pods", "ns", "two", grace_period=10)
    await env.gone("two")
    final = [c for c in env.changes("two") if c.type == "MODIFIED"][-1].obj
    codes = {cs["name"]: cs["state"]["terminated"]["exitCode"] for cs in final["status"]["containerStatuses"]}
    assert codes == {"notebook": 143, "side": 0}
    assert [e["message"] for e in env.events("two") if e["reason"] == "Killing"] == ["Stopping container notebook"]


async def test_container_outliving_the_grace_period_is_killed_with_137(env):
    env.create("stubborn", annotations={ANNOTATION_PREFIX + "stop-after": "30"})
    await env.running("stubborn")
    loop = asyncio.get_running_loop()
    began = loop.time()
    env.cluster.delete("pods", "ns", "stubborn", grace_period=1)
    await env.gone("stubborn")
    assert 0.9 <= loop.time() - began < 5
    final = [c for c in env.changes("stubborn") if c.type == "MODIFIED"][-1].obj
    assert notebook(final)["state"]["terminated"]["exitCode"] == 137
    assert final["status"]["phase"] == "Failed"


async def test_shorter_second_delete_shortens_the_grace_period(env):
    env.create("shorten", annotations={ANNOTATION_PREFIX + "stop-after": "30"})
    await env.running("shorten")
    loop = asyncio.get_running_loop()
    began = loop.time()
    env.cluster.delete("pods", "ns", "shorten", grace_period=20)
    await asyncio.sleep(0.1)
    assert env.pod("shorten") is not None
    env.cluster.delete("pods", "ns", "shorten", grace_period=1)
    await env.gone("shorten")
    assert loop.time() - began < 5


async def test_grace_zero_removes_the_pod_at_once(env):
    env.create("now")
    await env.running("now")
    env.changes("now")
    env.history.clear()
    env.cluster.delete("pods", "ns", "now", grace_period=0)
    assert env.pod("now") is None
    await wait_for(lambda: env.kubelet.runtime("ns", "now") is None, message="kubelet forgot the pod")
    assert [c.type for c in env.changes("now")] == ["MODIFIED", "DELETED"]


# -- exit codes and restart policies ------------------------------------------------------


@pytest.mark.parametrize(
    "policy, code, phase",
    [("OnFailure", 0, "Succeeded"), ("Never", 0, "Succeeded"), ("Never", 2, "Failed")],
)
async def test_container_exit_without_restart(env, policy, code, phase):
    env.create("exit", restart_policy=policy, annotations={ANNOTATION_PREFIX + "exit-code": str(code), ANNOTATION_PREFIX + "exit-after": "0.1"})
    pod = await env.phase("exit", phase)
    cs = notebook(pod)
    term = cs["state"]["terminated"]
    assert term["exitCode"] == code
    assert term["reason"] == ("Completed" if code == 0 else "Error")
    assert term["startedAt"] and term["finishedAt"] and term["containerID"] == cs["containerID"]
    assert cs["restartCount"] == 0 and cs["ready"] is False
    assert kubespawner_poll(pod) == code
    ready = conditions(pod)["Ready"]
    assert ready["status"] == "False"
    assert ready["reason"] == ("PodCompleted" if phase == "Succeeded" else "ContainersNotReady")
    assert conditions(pod)["PodReadyToStartContainers"]["status"] == "False"
    # The API server removes terminal pods at once.
    env.cluster.delete("pods", "ns", "exit", grace_period=30)
    assert env.pod("exit") is None


@pytest.mark.parametrize("policy, code", [("OnFailure", 3), ("Always", 0), ("Always", 1)])
async def test_container_exit_with_restart_goes_to_crashloopbackoff(env, policy, code):
    pod = env.create("crash", restart_policy=policy, annotations={ANNOTATION_PREFIX + "exit-code": str(code), ANNOTATION_PREFIX + "exit-after": "0.1"})
    ref = f"crash_ns({pod['metadata']['uid']})"
    await wait_for(lambda: env.notebook("crash").get("restartCount") == 1, message="first restart")
    pod = env.pod("crash")
    cs = notebook(pod)
    assert cs["state"] == {
        "waiting": {"reason": "CrashLoopBackOff", "message": f"back-off 10s restarting failed container=notebook pod={ref}"}
    }
    assert cs["lastState"]["terminated"]["exitCode"] == code
    assert cs["lastState"]["terminated"]["reason"] == ("Completed" if code == 0 else "Error")
    assert cs["ready"] is False and cs["started"] is False
    assert pod["status"]["phase"] == "Running"
    assert kubespawner_poll(pod) is None, "CrashLoopBackOff is waiting: poll keeps waiting"
    assert not is_pod_running(pod)
    backoff = [e for e in env.events("crash") if e["reason"] == "BackOff"]
    assert backoff and backoff[0]["type"] == "Warning"
    assert backoff[0]["message"] == f"Back-off restarting failed container notebook in pod {ref}"
    # After the (scaled) back-off it runs again, then crashes again with a doubled back-off.
    await wait_for(lambda: "running" in (env.notebook("crash").get("state") or {}), message="restarted")
    await wait_for(lambda: env.notebook("crash").get("restartCount") == 2, message="second restart")
    pod = env.pod("crash")
    assert notebook(pod)["state"]["waiting"]["message"].startswith("back-off 20s restarting failed container=notebook")
    started = [e for e in env.events("crash") if e["reason"] == "Started"]
    assert len(started) >= 2


# -- faults ---------------------------------------------------------------------------------


async def test_image_pull_error_then_recovery(env):
    image = "registry.example/broken:1"
    fault = env.kubelet.add_behaviour(Behaviour(image="broken", pull_error="manifest unknown"))
    env.create("pull", containers=[{"name": "notebook", "image": image}])
    await wait_for(lambda: env.waiting_reason("pull") == "ErrImagePull", message="ErrImagePull")
    pod = env.pod("pull")
    assert notebook(pod)["state"]["waiting"]["message"] == "manifest unknown"
    assert pod["status"]["phase"] == "Pending"
    await wait_for(lambda: env.waiting_reason("pull") == "ImagePullBackOff", message="ImagePullBackOff")
    pod = env.pod("pull")
    assert notebook(pod)["state"]["waiting"]["message"] == f'Back-off pulling image "{image}"'
    assert pod["status"]["phase"] == "Pending"
    assert kubespawner_poll(pod) is None
    events = [(e["type"], e["reason"], e["message"]) for e in env.events("pull")]
    assert ("Warning", "Failed", f'Failed to pull image "{image}": manifest unknown') in events
    assert ("Warning", "Failed", "Error: ErrImagePull") in events
    assert ("Normal", "BackOff", f'Back-off pulling image "{image}"') in events
    assert ("Warning", "Failed", "Error: ImagePullBackOff") in events
    # A pod with another image is not affected.
    env.create("fine")
    await env.running("fine")
    env.kubelet.remove_behaviour(fault)
    await env.running("pull")


async def test_pull_error_annotation_uses_a_default_message(env):
    env.create("pull-ann", annotations={ANNOTATION_PREFIX + "pull-error": "true"})
    await wait_for(lambda: env.waiting_reason("pull-ann") == "ErrImagePull", message="ErrImagePull")
    pod = env.pod("pull-ann")
    assert f'failed to pull and unpack image "{IMAGE}"' in notebook(pod)["state"]["waiting"]["message"]


async def test_config_error_and_never_ready(env):
    env.create("config", annotations={ANNOTATION_PREFIX + "config-error": "secret \"x\" not found"})
    await wait_for(lambda: env.waiting_reason("config") == "CreateContainerConfigError", message="config error")
    pod = env.pod("config")
    assert notebook(pod)["state"]["waiting"]["message"] == 'secret "x" not found'
    assert pod["status"]["phase"] == "Pending"
    assert ("Warning", "Failed", 'Error: secret "x" not found') in [(e["type"], e["reason"], e["message"]) for e in env.events("config")]

    env.create("lazy", annotations={ANNOTATION_PREFIX + "never-ready": "true"})
    pod = await env.phase("lazy", "Running")
    await asyncio.sleep(0.1)
    pod = env.pod("lazy")
    assert "running" in notebook(pod)["state"] and notebook(pod)["ready"] is False
    assert conditions(pod)["Ready"]["status"] == "False"
    assert not is_pod_running(pod)


async def test_missing_env_secret_is_a_config_error_until_it_exists(env):
    env.create(
        "envsecret",
        containers=[{"name": "notebook", "image": IMAGE, "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}}}]}],
    )
    await wait_for(lambda: env.waiting_reason("envsecret") == "CreateContainerConfigError", message="config error")
    pod = env.pod("envsecret")
    assert notebook(pod)["state"]["waiting"]["message"] == 'secret "tok" not found'
    env.cluster.create("secrets", "ns", {"metadata": {"name": "tok"}, "data": {"t": base64.b64encode(b"x").decode()}})
    await env.running("envsecret")


@pytest.mark.parametrize(
    "volume, resource, body, text",
    [
        ({"secret": {"secretName": "certs", "defaultMode": 511}}, "secrets", {"data": {"a": "eA=="}}, 'secret "certs" not found'),
        ({"configMap": {"name": "certs"}}, "configmaps", {"data": {"a": "x"}}, 'configmap "certs" not found'),
    ],
)
async def test_missing_volume_source_keeps_the_pod_in_container_creating(env, volume, resource, body, text):
    env.create("mount", volumes=[{"name": "jupyterhub-internal-certs", **volume}])
    event = await wait_for(lambda: [e for e in env.events("mount") if e["reason"] == "FailedMount"], message="FailedMount")
    assert event[0]["type"] == "Warning"
    assert event[0]["message"] == f'MountVolume.SetUp failed for volume "jupyterhub-internal-certs" : {text}'
    await asyncio.sleep(0.2)
    pod = env.pod("mount")
    assert pod["status"]["phase"] == "Pending"
    assert notebook(pod)["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert "podIP" not in pod["status"]
    env.cluster.create(resource, "ns", {"metadata": {"name": "certs"}, **body})
    await env.running("mount")


# -- eviction and deadlines -----------------------------------------------------------------


async def test_eviction_fails_the_pod(env):
    env.create("evictee")
    await env.running("evictee")
    written = env.kubelet.evict(env.pod("evictee"), message="The node was low on resource: memory. ")
    assert written["status"]["phase"] == "Failed"
    pod = env.pod("evictee")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["reason"] == "Evicted" and pod["status"]["message"] == "The node was low on resource: memory. "
    assert notebook(pod)["state"]["terminated"]["exitCode"] == 137
    assert conditions(pod)["DisruptionTarget"]["status"] == "True"
    assert conditions(pod)["DisruptionTarget"]["reason"] == "TerminationByKubelet"
    assert kubespawner_poll(pod) == 137
    assert ("Warning", "Evicted") in [(e["type"], e["reason"]) for e in env.events("evictee")]
    await asyncio.sleep(0.1)
    assert env.pod("evictee")["status"]["phase"] == "Failed", "an evicted pod stays Failed"
    env.cluster.delete("pods", "ns", "evictee")
    assert env.pod("evictee") is None, "a Failed pod is deleted at once"


async def test_active_deadline_exceeded(env):
    env.create("deadline", activeDeadlineSeconds=1)
    await env.running("deadline")
    pod = await env.phase("deadline", "Failed")
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert pod["status"]["message"] == "Pod was active on the node longer than the specified deadline"


# -- behaviours, helpers, reset -------------------------------------------------------------


def test_behaviour_matching_and_annotations():
    pod = {
        "metadata": {"name": "jupyter-alice", "namespace": "ns", "annotations": {ANNOTATION_PREFIX + "exit-code": "7"}},
        "spec": {"containers": [{"name": "notebook", "image": "quay.io/x/broken:1"}], "initContainers": [{"name": "i", "image": "busybox"}]},
    }
    nb, init = pod["spec"]["containers"][0], pod["spec"]["initContainers"][0]
    assert Behaviour(image="broken").matches(pod, nb)
    assert not Behaviour(image="broken").matches(pod, init)
    assert Behaviour(name="jupyter-*").matches(pod, nb)
    assert not Behaviour(name="jupyter-bob").matches(pod, nb)
    assert not Behaviour(namespace="other").matches(pod, nb)
    assert Behaviour(image="broken").matches(pod), "pod-level match: any container"
    kubelet = Kubelet(Cluster())
    kubelet.add_behaviour(image="broken", exit_code=1, exit_after=2.5, never_ready=True)
    eff = kubelet.effective(pod, nb)
    assert (eff.exit_code, eff.exit_after, eff.never_ready) == (7, 2.5, True), "annotations win over behaviours"
    assert kubelet.effective(pod, init, init=True).exit_code is None, "annotations skip init containers"
    pod["metadata"]["annotations"][ANNOTATION_PREFIX + "container"] = "i"
    assert kubelet.effective(pod, init, init=True).exit_code == 7
    assert kubelet.effective(pod, nb).exit_code == 1


def test_formatting_helpers():
    assert [go_duration(s) for s in (10, 20, 40, 80, 160, 300, 0.02)] == ["10s", "20s", "40s", "1m20s", "2m40s", "5m0s", "20ms"]
    assert image_id("quay.io/jupyterhub/singleuser:5.5").startswith("quay.io/jupyterhub/singleuser@sha256:")
    assert image_id("localhost:5000/img").startswith("localhost:5000/img@sha256:")
    assert image_id("a:1") != image_id("a:2")


async def test_reset_forgets_pods(env):
    env.create("before-reset")
    await env.running("before-reset")
    await env.cluster.reset()
    assert env.kubelet.pods == {}
    env.cluster.create("namespaces", None, {"metadata": {"name": "ns"}})
    env.create("after-reset")
    pod = await env.running("after-reset")
    assert pod["status"]["podIP"]
