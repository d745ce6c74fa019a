"""PlatformSpawner's security guarantee against the emulator's PSA-enforcing namespace.

We test these aspects:
- with the same profile list, stock KubeSpawner is refused with 403 in an
  ``enforce=restricted`` namespace while PlatformSpawner's pod is admitted and reaches Running;
- with z2jh's ``block-cloud-metadata`` init container configured, PlatformSpawner refuses before
  any request reaches the emulator, with a message pointing at the NetworkPolicy alternative;
- ``security_mode = "warn"`` starts the same pod anyway (and the namespace still refuses it);
- ``c.JupyterHub.spawner_class = "jhplatform"`` resolves to PlatformSpawner (entry point).
"""

from __future__ import annotations

import json
import logging

import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from kubespawner import KubeSpawner

from doubles import make_spawner
from jhplatform.spawner import PlatformSpawner, SecurityPolicyRefusal
from jhplatform.policy.security import restricted_violations
from jhplatform.spawner.resilience import KubernetesApiFailure

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}

PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "kubespawner_override": {"cpu_limit": 2, "mem_limit": "4G"}},
    {
        "display_name": "GPU",
        "slug": "gpu",
        "kubespawner_override": {
            "extra_resource_limits": {"nvidia.com/gpu": "1"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    },
]

# What z2jh 4.4 renders when singleuser.cloudMetadata.blockWithIptables is true.
BLOCK_CLOUD_METADATA = {
    "name": "block-cloud-metadata",
    "image": "quay.io/jupyterhub/k8s-network-tools:4.4.0",
    "command": ["iptables", "--append", "OUTPUT", "--protocol", "tcp", "--destination", "169.254.169.254",
                "--destination-port", "80", "--jump", "DROP"],
    "securityContext": {"runAsUser": 0, "privileged": True, "capabilities": {"add": ["NET_ADMIN"]}},
}


def config(cls_name: str, **extra) -> dict:
    base = {"namespace": "secure", "start_timeout": 20, "image": "quay.io/jupyter/scipy-notebook:2025-01-06", "profile_list": PROFILES}
    base.update(extra)
    return {cls_name: base}


@pytest.fixture
def secure_ns(cluster):
    cluster.cluster.create("namespaces", None, {"metadata": {"name": "secure", "labels": RESTRICTED}})
    return cluster


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
async def test_stock_refused_platform_admitted(secure_ns, profile):
    stock = make_spawner(KubeSpawner, user="stock", config=config("KubeSpawner"))
    stock.user_options = {"profile": profile}
    with pytest.raises(ApiException) as info:
        await stock.start()
    assert info.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in json.loads(info.value.body)["message"]

    ours = make_spawner(PlatformSpawner, user="ours", config=config("PlatformSpawner"))
    ours.user_options = {"profile": profile}
    url = await ours.start()
    assert url.startswith("http://")
    pod = secure_ns.cluster.get("pods", "secure", "jupyter-ours")
    assert pod["status"]["phase"] == "Running"
    assert restricted_violations(pod) == []
    gpu = pod["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")
    assert gpu == ("1" if profile == "gpu" else None)
    await ours.stop()


async def test_block_cloud_metadata_refused_before_any_request(secure_ns, caplog):
    spawner = make_spawner(PlatformSpawner, user="meta", config=config("PlatformSpawner", init_containers=[BLOCK_CLOUD_METADATA]))
    before = len(secure_ns.requests)
    caplog.set_level(logging.ERROR)
    with pytest.raises(SecurityPolicyRefusal) as info:
        await spawner.start()
    assert len(secure_ns.requests) == before, [r["path_qs"] for r in list(secure_ns.requests)[before:]]
    refusal = info.value
    assert "security policy" in refusal.jupyterhub_message
    assert "block-cloud-metadata" not in refusal.jupyterhub_message, "the user is not shown config internals"
    log = refusal.log_message
    assert 'privileged (container "block-cloud-metadata" must not set securityContext.privileged=true)' in log
    assert "KubeSpawner.init_containers" in log
    assert "singleuser.cloudMetadata.blockWithIptables: false" in log
    assert "NetworkPolicy" in log
    assert any("Spawn refused" in r.getMessage() for r in caplog.records)
    assert secure_ns.cluster.store.find("pods", "secure", "jupyter-meta") is None


async def test_warn_mode_starts_anyway(secure_ns, caplog):
    caplog.set_level(logging.ERROR)
    spawner = make_spawner(
        PlatformSpawner,
        user="warned",
        config=config("PlatformSpawner", security_mode="warn", init_containers=[BLOCK_CLOUD_METADATA]),
    )
    with pytest.raises(KubernetesApiFailure) as info:
        await spawner.start()
    # Warn mode sends the pod; the namespace's own enforcement is the backstop (and the user
    # reads that the API refused the pod, the log the apiserver's reason).
    assert info.value.__cause__.status == 403
    assert "violates PodSecurity" in str(info.value)
    assert any("security_mode=warn" in r.getMessage() for r in caplog.records)


def test_entry_point_name():
    from jupyterhub.app import JupyterHub

    hub = JupyterHub()
    hub.spawner_class = "jhplatform"
    assert hub.spawner_class is PlatformSpawner


async def test_profile_cannot_switch_enforcement_off(secure_ns, caplog):
    caplog.set_level(logging.ERROR)
    sneaky = [
        {
            "display_name": "Sneaky",
            "slug": "sneaky",
            "kubespawner_override": {"security_mode": "warn", "init_containers": [BLOCK_CLOUD_METADATA]},
        }
    ]
    spawner = make_spawner(PlatformSpawner, user="sneaky", config=config("PlatformSpawner", profile_list=sneaky))
    spawner.user_options = {"profile": "sneaky"}
    before = len(secure_ns.requests)
    with pytest.raises(SecurityPolicyRefusal):
        await spawner.load_user_options()
    assert len(secure_ns.requests) == before
    assert any("Ignoring security_mode='warn' set by an override" in r.getMessage() for r in caplog.records)
