"""PlatformSpawner on a misbehaving Kubernetes API (jhplatform.spawner.resilience), in-process on
the emulator with its fault injection.

We test these aspects:
- 503s on the pod, home-volume (PVC) and Service creates are retried and the spawn succeeds;
- a 500 on the pod delete is retried and the stop deletes the pod (KubeSpawner alone raises and
  JupyterHub then forgets a server whose pod keeps running);
- a 503 on the pod watch's first list is retried and the spawn succeeds;
- an API that keeps failing a create past ``k8s_api_request_retry_timeout`` ends the spawn with
  the "kept failing" message, and nothing is left;
- a refusal that is not worth retrying (422) ends the spawn at once with the "refused" message;
- an API that does not answer in time ends the spawn with the "did not answer" message;
- a pod watch whose first list kept failing ends that spawn with a message naming the pods, and
  the next spawn starts a new watch (KubeSpawner alone keeps handing out the dead one, and every
  later spawn waits for a pod it never sees); a watch whose loop ended is restarted the same way;
- a pod created again under the same name after the stop deleted it (a create the API committed
  after its client gave up) is deleted too, and the stop ends;
- a spawn still unfinished at ``start_timeout`` ends a moment before JupyterHub's own timeout
  (whose message is empty) with a message saying what it was waiting for: a node, its pod
  starting, or the API; nothing is left running.
"""

from __future__ import annotations

import asyncio
import copy

import pytest
from kubespawner import KubeSpawner

from doubles import make_spawner
from helpers import wait_for
from jhplatform.spawner import PlatformSpawner
from jhplatform.devcluster.kubelet import Behaviour
from jhplatform.spawner.resilience import KubernetesApiFailure, StartTimedOut

pytestmark = pytest.mark.contract

AFTER = ("Nothing of this attempt is left running and your files are safe. "
         "Please try again in a minute; if it keeps happening, tell your hub admin.")


def config(**extra) -> dict:
    base = {"namespace": "default", "image": "quay.io/jupyterhub/singleuser:5.5", "start_timeout": 20,
            "k8s_api_request_timeout": 1, "k8s_api_request_retry_timeout": 3}
    base.update(extra)
    return {"PlatformSpawner": base}


def creates(cluster, resource: str) -> list[int]:
    return [e.get("status") for e in cluster.requests if e.get("verb") == "create" and e.get("resource") == resource]


async def started(cluster, user: str = "ada", **extra):
    spawner = make_spawner(PlatformSpawner, user=user, config=config(**extra))
    await spawner.start()
    assert cluster.cluster.get("pods", "default", spawner.pod_name)["status"]["phase"] == "Running"
    return spawner


RETRIED = [
    ("pod-create", "pods", {}),
    ("pvc-create", "persistentvolumeclaims", {"storage_pvc_ensure": True, "storage_capacity": "1Gi"}),
    ("service-create", "services", {"services_enabled": True}),
]


@pytest.mark.parametrize("resource, extra", [r[1:] for r in RETRIED], ids=[r[0] for r in RETRIED])
async def test_transient_create_failures_are_retried(cluster, resource, extra):
    cluster.faults.add(verb="create", resource=resource, namespace="default", status=503, count=2)
    await started(cluster, **extra)
    assert creates(cluster, resource) == [503, 503, 201]


async def test_transient_delete_failure_is_retried(cluster):
    spawner = await started(cluster)
    cluster.faults.add(verb="delete", resource="pods", namespace="default", status=500, count=1)
    await spawner.stop()
    assert cluster.cluster.store.find("pods", "default", spawner.pod_name) is None
    assert [e["status"] for e in cluster.requests if e.get("verb") == "delete" and e.get("resource") == "pods"] == [500, 200]


async def test_first_pod_list_failure_is_retried(cluster):
    cluster.faults.add(verb="list", resource="pods", namespace="default", status=503, count=1)
    await started(cluster)


async def test_create_that_keeps_failing_ends_with_a_message(cluster):
    cluster.faults.add(verb="create", resource="pods", namespace="default", status=503, count=None)
    spawner = make_spawner(PlatformSpawner, user="ada", config=config())
    with pytest.raises(KubernetesApiFailure) as info:
        await spawner.start()
    assert info.value.jupyterhub_message == (
        "Your server could not start because the cluster's Kubernetes API kept failing (503 Service Unavailable) "
        f"while creating your server's pod. {AFTER}")
    assert "injected fault: 503 ServiceUnavailable for pods" in str(info.value), "the log gets the apiserver's words"
    assert len(creates(cluster, "pods")) > 1
    cluster.faults.clear()
    assert cluster.cluster.store.find("pods", "default", spawner.pod_name) is None


async def test_refusal_is_not_retried(cluster):
    cluster.faults.add(verb="create", resource="pods", namespace="default", status=422, count=None)
    spawner = make_spawner(PlatformSpawner, user="ada", config=config())
    with pytest.raises(KubernetesApiFailure) as info:
        await spawner.start()
    assert info.value.jupyterhub_message == (
        "Your server could not start because the cluster's Kubernetes API refused creating your server's pod "
        "(422 Unprocessable Entity). Nothing of this attempt is left running and your files are safe. "
        "Trying again will not help: tell your hub admin, who can read the reason in the hub log.")
    assert creates(cluster, "pods") == [422]


async def test_no_answer_ends_with_a_message(cluster):
    cluster.faults.add(verb="create", resource="pods", namespace="default", hang=2, count=None)
    spawner = make_spawner(PlatformSpawner, user="ada", config=config())
    with pytest.raises(KubernetesApiFailure) as info:
        await spawner.start()
    assert info.value.jupyterhub_message == (
        "Your server could not start because the cluster's Kubernetes API did not answer in time "
        f"while creating your server's pod. {AFTER}")
    cluster.faults.clear()


async def test_broken_pod_watch_is_restarted(cluster):
    cluster.faults.add(verb="list", resource="pods", namespace="default", status=503, count=None)
    first = make_spawner(PlatformSpawner, user="ada", config=config())
    with pytest.raises(KubernetesApiFailure) as info:
        await first.start()
    assert info.value.jupyterhub_message == (
        "Your server could not start because the cluster's Kubernetes API kept failing (503 Service Unavailable) "
        f"while reading the cluster's pods. {AFTER}")
    key = first._get_reflector_key("pods")
    dead = KubeSpawner.reflectors[key]
    assert dead.first_load_future.exception() is not None, "KubeSpawner keeps the reflector whose first list failed"

    cluster.faults.clear()
    await started(cluster, user="bob")
    assert KubeSpawner.reflectors[key] is not dead


async def test_ended_pod_watch_is_restarted(cluster):
    spawner = await started(cluster)
    key = spawner._get_reflector_key("pods")
    reflector = KubeSpawner.reflectors[key]
    # What KubeSpawner's watch loop does after repeated failures: it returns, and the store goes stale.
    reflector.watch_task.cancel()
    with pytest.raises(BaseException):
        await reflector.watch_task
    await started(cluster, user="bob")
    assert KubeSpawner.reflectors[key] is not reflector


TIMEOUTS = [
    ("no-room", {"cpu_guarantee": 100.0}, None, "no node in the cluster had room for it"),
    ("pod-starting", {}, "slow", "its pod was still starting"),
    ("api-silent", {"k8s_api_request_retry_timeout": 30}, "hang", "it was still creating your server's pod"),
]


@pytest.mark.parametrize("extra, trouble, waiting_for", [t[1:] for t in TIMEOUTS], ids=[t[0] for t in TIMEOUTS])
async def test_start_timeout_says_what_it_waited_for(cluster, extra, trouble, waiting_for):
    slow = cluster.kubelet.add_behaviour(Behaviour(name="jupyter-ada", step_delay=30)) if trouble == "slow" else None
    if trouble == "hang":  # longer than the start timeout: the pod is not created in time
        cluster.faults.add(verb="create", resource="pods", namespace="default", hang=8, count=None)
    spawner = make_spawner(PlatformSpawner, user="ada", config=config(start_timeout=4, **extra))
    try:
        with pytest.raises(StartTimedOut) as info:
            await spawner.start()
        assert info.value.jupyterhub_message == (
            f"Your server did not start within 4 seconds ({waiting_for}), so it was stopped. "
            "Please try again in a few minutes; if it keeps happening, tell your hub admin.")
        cluster.faults.clear()
        await spawner.stop(now=True)  # what JupyterHub does after a failed start
        assert cluster.cluster.store.find("pods", "default", spawner.pod_name) is None or \
            cluster.cluster.get("pods", "default", spawner.pod_name)["metadata"].get("deletionTimestamp")
    finally:
        if slow is not None:
            cluster.kubelet.remove_behaviour(slow)


async def test_pod_created_again_after_the_delete_is_deleted(cluster):
    spawner = await started(cluster)
    pod = cluster.cluster.get("pods", "default", spawner.pod_name)
    late = {"metadata": {k: v for k, v in pod["metadata"].items() if k in ("name", "labels", "annotations")}, "spec": pod["spec"]}
    loop = asyncio.get_running_loop()
    recreated = []

    def on_change(change):
        # The late create lands right after the delete removed the pod.
        if change.resource == "pods" and change.type == "DELETED" and not recreated:
            recreated.append(True)
            loop.call_soon(cluster.cluster.create, "pods", "default", copy.deepcopy(late))

    cluster.cluster.store.hooks.append(on_change)
    try:
        await asyncio.wait_for(spawner.stop(now=True), 15)
    finally:
        cluster.cluster.store.hooks.remove(on_change)
    assert recreated
    await wait_for(lambda: cluster.cluster.store.find("pods", "default", spawner.pod_name) is None, 10, message="the re-created pod deleted")

