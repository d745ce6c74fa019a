"""Whole-manifest tests of PlatformSpawner: every way config reaches the pod ends restricted.

A real PlatformSpawner is built against the emulator (KubeSpawner's constructor loads the
kubeconfig); ``get_pod_manifest`` and ``load_user_options`` make no API call. The *final* pod
is what the wrapped ``modify_pod_hook`` returns for ``get_pod_manifest()``, converted with
``sanitize_for_serialization``.

We test these aspects:
- the default pod and a GPU profile pod: complete pod and container securityContexts, the
  full volumes list and mounts (the GPU pod's memory-backed ``/dev/shm`` included), resources,
  tolerations; restricted_violations(final) == [];
- the default GPU toleration (ExtendedResourceToleration's): a plain KubeSpawner GPU profile
  without tolerations gets one per GPU resource (the vendor's for MIG too), appended to the
  configured tolerations; none when one already tolerates the taint, when a profile or the hub
  turns it off, or for a CPU pod;
- one compliant spawn per override source, asserting whole sub-dicts of the final pod:
  profile ``kubespawner_override``, ``profile_options`` choices, an ``unlisted_choice``
  (``{value}`` rendered into the override), JupyterHub 5.3+ ``apply_user_options`` (user
  options set traits), JupyterHub 5 ``group_overrides``, ``modify_pod_hook`` (sync and async),
  ``extra_pod_config``, ``extra_container_config``, ``init_containers``, ``extra_containers``,
  ``volumes``/``volume_mounts``; each final pod is also admitted by the emulator's
  ``enforce=restricted`` namespace;
- one weakening variant per source: ``load_user_options`` raises ``SecurityPolicyRefusal``,
  the violated check's log line names the responsible setting, and no request reached the
  emulator (nothing created);
- regression "profiles are never mutated in place": GPU then CPU spawn on the SAME spawner
  object leaves no GPU request, toleration, environment or node selector behind; the
  configured ``profile_list`` is unchanged (deep compare); dict-valued overrides
  (``extra_resource_limits``, ``environment``, ``node_selector``) merge into private copies;
  two spawner objects sharing one ``Config`` do not see each other's overrides; group
  overrides keep applying on every spawn; a user option's trait value does not stick to the
  next spawn; an ``unlisted_choice`` template survives spawns;
- the pitfall exists upstream: stock KubeSpawner on one spawner object does leak the GPU
  request and toleration into the next (CPU) spawn.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from jupyterhub import orm
from jupyterhub.objects import Hub
from kubernetes_asyncio.client import V1Container
from kubespawner import KubeSpawner
from traitlets.config import Config

from doubles import FakeUser, make_spawner
from jhplatform.policy.security import restricted_violations
from jhplatform.spawner import PlatformSpawner, SecurityPolicyRefusal

NS = "secure"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}
IMAGE = "quay.io/jupyter/scipy-notebook:2025-01-06"
R_IMAGE = "quay.io/jupyter/r-notebook:2025-01-06"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "kubespawner_override": {"cpu_limit": 2, "mem_limit": "4G"}},
    {
        "display_name": "GPU",
        "slug": "gpu",
        "kubespawner_override": {
            "extra_resource_limits": {"nvidia.com/gpu": "1"},
            "tolerations": [GPU_TOLERATION],
        },
    },
]

# What the hardened notebook container and pod look like with PlatformSpawner's defaults.
NOTEBOOK_SC = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsGroup": 100,
    "runAsUser": 1000,
}
POD_SC = {"fsGroup": 100, "runAsGroup": 100, "runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
SCRATCH_VOLUMES = [
    {"emptyDir": {"sizeLimit": "1Gi"}, "name": "jhplatform-scratch-0"},
    {"emptyDir": {"sizeLimit": "1Gi"}, "name": "jhplatform-scratch-1"},
]
SCRATCH_MOUNTS = [
    {"mountPath": "/tmp", "name": "jhplatform-scratch-0"},
    {"mountPath": "/home/jovyan/.cache", "name": "jhplatform-scratch-1"},
]
SCRATCH_ENV = {
    "JUPYTER_RUNTIME_DIR": "/tmp/jupyter/runtime",
    "XDG_CACHE_HOME": "/home/jovyan/.cache",
    "PIP_CACHE_DIR": "/home/jovyan/.cache/pip",
    "MPLCONFIGDIR": "/tmp/matplotlib",
    "PYTHONPYCACHEPREFIX": "/tmp/pycache",
}
SHM_VOLUME = {"emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}, "name": "jhplatform-shm"}
SHM_MOUNT = {"mountPath": "/dev/shm", "name": "jhplatform-shm"}
INIT_SC = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
SIDECAR_SC = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}


def base_config(cls=PlatformSpawner, **extra) -> dict:
    values = {"namespace": NS, "image": IMAGE, "profile_list": copy.deepcopy(PROFILES)}
    values.update(extra)
    return {cls.__name__: values}


def to_dict(spawner, pod) -> dict:
    return spawner.api.api_client.sanitize_for_serialization(pod)


async def final_pod(spawner) -> dict:
    """What KubeSpawner sends: get_pod_manifest() through the (wrapped) modify_pod_hook."""
    pod = await spawner.get_pod_manifest()
    pod = await spawner.modify_pod_hook(spawner, pod)
    return to_dict(spawner, pod)


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def notebook(pod: dict) -> dict:
    [container] = [c for c in pod["spec"]["containers"] if c["name"] == "notebook"]
    return container


def set_by(log_message: str, check: str) -> list[str]:
    """The settings the refusal's log line for ``check`` names."""
    lines = re.findall(r"\[check (\S+); set by: ([^\]]*)\]", log_message)
    found = [settings.split(", ") for c, settings in lines if c == check]
    assert found, f"no line for check {check!r} in:\n{log_message}"
    return found[0]


@pytest.fixture
def secure(cluster):
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS, "labels": RESTRICTED}})
    return cluster


async def spawn(cluster, config: dict, *, user_options=None, groups=(), user="alice") -> tuple[PlatformSpawner, dict]:
    """One spawn up to the final pod, the way JupyterHub 5.5 drives it (group overrides, user
    options, then KubeSpawner's load_user_options); asserts that no request was made and that
    the emulator's restricted namespace admits the pod."""
    before = len(cluster.requests)
    spawner = make_spawner(PlatformSpawner, user=user, config=config, groups=groups)
    spawner.user_options = dict(user_options or {})
    await spawner.apply_group_overrides()
    await spawner._run_apply_user_options(spawner.user_options)
    await spawner.load_user_options()
    pod = await final_pod(spawner)
    assert [r["path_qs"] for r in list(cluster.requests)[before:]] == []
    assert restricted_violations(pod) == []
    created = cluster.cluster.create("pods", NS, pod)
    assert created["metadata"]["name"] == spawner.pod_name
    cluster.cluster.delete("pods", NS, spawner.pod_name, grace_period=0)
    return spawner, pod


# -- default and GPU pods -------------------------------------------------------------------


async def test_default_pod(secure):
    spawner, pod = await spawn(secure, base_config())
    spec = copy.deepcopy(pod["spec"])
    env = env_of(spec["containers"][0])
    del spec["containers"][0]["env"]
    assert spec == {
        "automountServiceAccountToken": False,
        "containers": [
            {
                "image": IMAGE,
                "lifecycle": {},
                "name": "notebook",
                "ports": [{"containerPort": 8888, "name": "notebook-port"}],
                # The CPU profile is the default one.
                "resources": {"limits": {"cpu": "2.0", "memory": "4294967296"}, "requests": {}},
                "securityContext": NOTEBOOK_SC,
                "volumeMounts": SCRATCH_MOUNTS,
            }
        ],
        "imagePullSecrets": [],
        "restartPolicy": "OnFailure",
        "securityContext": POD_SC,
        "volumes": SCRATCH_VOLUMES,
    }
    assert {k: env[k] for k in SCRATCH_ENV} == SCRATCH_ENV
    assert env["JUPYTERHUB_USER"] == "alice"
    assert env["JUPYTER_IMAGE"] == IMAGE
    assert pod["metadata"]["name"] == "jupyter-alice"


async def test_gpu_profile_pod(secure):
    # KubeSpawner renders quantities itself: cpu_limit 2 -> "2.0", mem_limit "4G" -> bytes.
    _, pod = await spawn(secure, base_config(), user_options={"profile": "gpu"})
    assert notebook(pod)["resources"] == {"limits": {"nvidia.com/gpu": "1"}, "requests": {}}
    assert notebook(pod)["securityContext"] == NOTEBOOK_SC
    assert pod["spec"]["tolerations"] == [GPU_TOLERATION]
    assert pod["spec"]["securityContext"] == POD_SC
    # GPU pods also get a memory-backed /dev/shm (StorageMixin), added before hardening.
    assert pod["spec"]["volumes"] == [SHM_VOLUME] + SCRATCH_VOLUMES
    assert notebook(pod)["volumeMounts"] == [SHM_MOUNT] + SCRATCH_MOUNTS


DEDICATED = {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}
MIG = "nvidia.com/mig-1g.10gb"
PLAIN = {"display_name": "Plain GPU", "slug": "plain", "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}}}
PLAIN_OFF = {"display_name": "No toleration", "slug": "off",
             "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}, "gpu_default_toleration": False}}
PLAIN_MIG = {"display_name": "MIG", "slug": "mig", "kubespawner_override": {"extra_resource_limits": {MIG: "1"}}}
DEFAULT_TOLERATIONS = [
    ("plain-profile", "plain", {}, [DEDICATED, GPU_TOLERATION]),
    ("mig", "mig", {}, [DEDICATED, {"key": MIG, "operator": "Exists", "effect": "NoSchedule"}, GPU_TOLERATION]),
    ("already-tolerated", "gpu", {}, [GPU_TOLERATION]),  # the profile's list replaces the configured one
    ("profile-turns-it-off", "off", {}, [DEDICATED]),
    ("hub-turns-it-off", "plain", {"gpu_default_toleration": False}, [DEDICATED]),
    ("cpu-pod", "cpu", {}, [DEDICATED]),
]


@pytest.mark.parametrize("profile, extra, tolerations", [t[1:] for t in DEFAULT_TOLERATIONS], ids=[t[0] for t in DEFAULT_TOLERATIONS])
async def test_default_gpu_toleration(secure, profile, extra, tolerations):
    config = base_config(tolerations=[DEDICATED], **extra)
    config["PlatformSpawner"]["profile_list"] += [PLAIN, PLAIN_OFF, PLAIN_MIG]
    _, pod = await spawn(secure, config, user_options={"profile": profile})
    assert pod["spec"]["tolerations"] == tolerations


# -- one compliant spawn per override source -------------------------------------------------


async def test_profile_kubespawner_override(secure):
    profiles = copy.deepcopy(PROFILES) + [
        {
            "display_name": "Custom uid",
            "slug": "uid",
            "kubespawner_override": {
                "uid": 1234,
                "gid": 1234,
                "fs_gid": 2000,
                "cpu_limit": 1,
                "environment": {"PROFILE": "uid"},
                "container_security_context": {"capabilities": {"add": ["NET_BIND_SERVICE"]}},
            },
        }
    ]
    _, pod = await spawn(secure, base_config(profile_list=profiles), user_options={"profile": "uid"})
    assert notebook(pod)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsGroup": 1234,
        "runAsUser": 1234,
    }
    # The hardening policy follows the overridden uid/gid/fs_gid.
    assert pod["spec"]["securityContext"] == {
        "fsGroup": 2000,
        "runAsGroup": 1234,
        "runAsNonRoot": True,
        "runAsUser": 1234,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert notebook(pod)["resources"] == {"limits": {"cpu": "1.0"}, "requests": {}}
    assert env_of(notebook(pod))["PROFILE"] == "uid"


OPTION_PROFILE = {
    "display_name": "Choose",
    "slug": "choose",
    "profile_options": {
        "image": {
            "display_name": "Image",
            "choices": {
                "scipy": {"display_name": "SciPy", "default": True, "kubespawner_override": {"image": IMAGE}},
                "r": {"display_name": "R", "kubespawner_override": {"image": R_IMAGE, "environment": {"LANG_R": "1"}}},
            },
            "unlisted_choice": {
                "enabled": True,
                "display_name": "Other image",
                "validation_regex": r"^quay\.io/jupyter/",
                "kubespawner_override": {"image": "{value}", "environment": {"CUSTOM_IMAGE": "{value}"}},
            },
        },
        "size": {
            "display_name": "Size",
            "choices": {
                "small": {"display_name": "Small", "default": True, "kubespawner_override": {"mem_limit": "2G"}},
                "large": {"display_name": "Large", "kubespawner_override": {"mem_limit": "8G", "cpu_limit": 4}},
            },
        },
    },
}


async def test_profile_options_choices(secure):
    config = base_config(profile_list=copy.deepcopy(PROFILES) + [OPTION_PROFILE])
    _, pod = await spawn(secure, config, user_options={"profile": "choose", "image": "r", "size": "large"})
    assert notebook(pod)["image"] == R_IMAGE
    assert notebook(pod)["resources"] == {"limits": {"cpu": "4.0", "memory": "8589934592"}, "requests": {}}
    assert env_of(notebook(pod))["LANG_R"] == "1"
    assert notebook(pod)["securityContext"] == NOTEBOOK_SC
    assert pod["spec"]["securityContext"] == POD_SC
    assert pod["spec"]["volumes"] == SCRATCH_VOLUMES


async def test_profile_options_unlisted_choice(secure):
    config = base_config(profile_list=copy.deepcopy(PROFILES) + [OPTION_PROFILE])
    custom = "quay.io/jupyter/julia-notebook:2025-01-06"
    _, pod = await spawn(secure, config, user_options={"profile": "choose", "image--unlisted-choice": custom})
    assert notebook(pod)["image"] == custom
    assert env_of(notebook(pod))["CUSTOM_IMAGE"] == custom
    assert env_of(notebook(pod))["JUPYTER_IMAGE"] == custom
    assert notebook(pod)["resources"] == {"limits": {"memory": "2147483648"}, "requests": {}}
    assert notebook(pod)["securityContext"] == NOTEBOOK_SC
    assert pod["spec"]["securityContext"] == POD_SC


async def test_unlisted_choice_template_survives_spawns(secure):
    # KubeSpawner renders "{value}" into the override dict in place; the configured template
    # must survive, so a second spawn on the same object renders its own value.
    config = base_config(profile_list=copy.deepcopy(PROFILES) + [OPTION_PROFILE])
    spawner = make_spawner(PlatformSpawner, user="lena", config=config)
    for image in ("quay.io/jupyter/julia-notebook:2025-01-06", "quay.io/jupyter/datascience-notebook:2025-01-06"):
        spawner.user_options = {"profile": "choose", "image--unlisted-choice": image}
        await spawner.load_user_options()
        pod = await final_pod(spawner)
        assert notebook(pod)["image"] == image
        assert env_of(notebook(pod))["CUSTOM_IMAGE"] == image
    assert spawner.profile_list == copy.deepcopy(PROFILES) + [OPTION_PROFILE]
    assert spawner.profile_list[2]["profile_options"]["image"]["unlisted_choice"]["kubespawner_override"] == {
        "image": "{value}", "environment": {"CUSTOM_IMAGE": "{value}"}}


async def test_apply_user_options(secure):
    # No profile list: a default profile's overrides would replace what the options set.
    config = base_config(profile_list=[], apply_user_options={"image_input": "image", "cpu": "cpu_limit"})
    _, pod = await spawn(secure, config, user_options={"image_input": R_IMAGE, "cpu": "1.5"})
    assert notebook(pod)["image"] == R_IMAGE
    assert env_of(notebook(pod))["JUPYTER_IMAGE"] == R_IMAGE
    assert notebook(pod)["resources"] == {"limits": {"cpu": "1.5"}, "requests": {}}
    assert notebook(pod)["securityContext"] == NOTEBOOK_SC
    assert pod["spec"]["securityContext"] == POD_SC


GROUP_GPU = {
    "gpu-team": {
        "groups": ["gpu-team"],
        "spawner_override": {
            "extra_resource_limits": {"nvidia.com/gpu": "1"},
            "tolerations": [GPU_TOLERATION],
            "environment": {"TEAM": "gpu"},
        },
    }
}


async def test_group_overrides(secure):
    config = base_config(group_overrides=copy.deepcopy(GROUP_GPU))
    _, pod = await spawn(secure, config, groups=("gpu-team",))
    assert notebook(pod)["resources"] == {"limits": {"cpu": "2.0", "memory": "4294967296", "nvidia.com/gpu": "1"}, "requests": {}}
    assert pod["spec"]["tolerations"] == [GPU_TOLERATION]
    assert env_of(notebook(pod))["TEAM"] == "gpu"
    assert notebook(pod)["securityContext"] == NOTEBOOK_SC
    assert pod["spec"]["securityContext"] == POD_SC
    # Not a member: no GPU.
    _, other = await spawn(secure, config, groups=("others",), user="bob")
    assert notebook(other)["resources"] == {"limits": {"cpu": "2.0", "memory": "4294967296"}, "requests": {}}
    assert "tolerations" not in other["spec"]


def label_hook(spawner, pod):
    pod.metadata.labels["example.org/team"] = "data-science"
    pod.metadata.annotations["example.org/cost-center"] = "42"
    return pod


async def async_toleration_hook(spawner, pod):
    pod.spec.tolerations = (pod.spec.tolerations or []) + [{"key": "example.org/spot", "operator": "Exists", "effect": "NoSchedule"}]
    pod.spec.containers[0].env.append({"name": "FROM_HOOK", "value": "yes"})
    return pod


@pytest.mark.parametrize("hook", [label_hook, async_toleration_hook], ids=["sync", "async"])
async def test_modify_pod_hook(secure, hook):
    spawner, pod = await spawn(secure, base_config(modify_pod_hook=hook))
    assert spawner.modify_pod_hook.admin_hook is hook
    if hook is label_hook:
        assert pod["metadata"]["labels"]["example.org/team"] == "data-science"
        assert pod["metadata"]["annotations"]["example.org/cost-center"] == "42"
        assert "tolerations" not in pod["spec"]
    else:
        assert pod["spec"]["tolerations"] == [{"key": "example.org/spot", "operator": "Exists", "effect": "NoSchedule"}]
        assert env_of(notebook(pod))["FROM_HOOK"] == "yes"
    assert notebook(pod)["securityContext"] == NOTEBOOK_SC
    assert pod["spec"]["securityContext"] == POD_SC
    assert pod["spec"]["volumes"] == SCRATCH_VOLUMES


async def test_extra_pod_config(secure):
    extra = {"enableServiceLinks": False, "terminationGracePeriodSeconds": 5, "hostname": "notebook"}
    _, pod = await spawn(secure, base_config(extra_pod_config=extra))
    assert {k: pod["spec"][k] for k in extra} == extra
    assert pod["spec"]["securityContext"] == POD_SC
    assert notebook(pod)["securityContext"] == NOTEBOOK_SC
    assert pod["spec"]["volumes"] == SCRATCH_VOLUMES


async def test_extra_container_config(secure):
    # extra_container_config's securityContext *replaces* the one KubeSpawner built.
    extra = {"workingDir": "/home/jovyan/work", "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": True}}
    _, pod = await spawn(secure, base_config(extra_container_config=extra))
    assert notebook(pod)["workingDir"] == "/home/jovyan/work"
    assert notebook(pod)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["spec"]["securityContext"] == POD_SC


async def test_init_containers(secure):
    init = [
        {"name": "fetch-data", "image": "busybox:1.36", "command": ["sh", "-c", "true"]},
        {"name": "fix-perms", "image": "busybox:1.36", "securityContext": {"runAsUser": 1000, "capabilities": {"drop": ["NET_RAW"]}}},
    ]
    _, pod = await spawn(secure, base_config(init_containers=init))
    assert pod["spec"]["initContainers"] == [
        {"name": "fetch-data", "image": "busybox:1.36", "command": ["sh", "-c", "true"], "securityContext": INIT_SC},
        {
            "name": "fix-perms",
            "image": "busybox:1.36",
            "securityContext": {"runAsUser": 1000, "capabilities": {"drop": ["ALL", "NET_RAW"]}, "allowPrivilegeEscalation": False},
        },
    ]
    assert notebook(pod)["securityContext"] == NOTEBOOK_SC
    assert pod["spec"]["securityContext"] == POD_SC


async def test_extra_containers(secure):
    sidecar = {"name": "sidecar", "image": "busybox:1.36", "command": ["sleep", "infinity"]}
    _, pod = await spawn(secure, base_config(extra_containers=[sidecar]))
    [container] = [c for c in pod["spec"]["containers"] if c["name"] == "sidecar"]
    assert container == {
        **sidecar,
        "securityContext": SIDECAR_SC,
        "volumeMounts": SCRATCH_MOUNTS,
        "env": [{"name": k, "value": v} for k, v in SCRATCH_ENV.items()],
    }
    assert [c["name"] for c in pod["spec"]["containers"]] == ["notebook", "sidecar"]
    assert notebook(pod)["securityContext"] == NOTEBOOK_SC


async def test_volumes_and_mounts(secure):
    volumes = [
        {"name": "home", "persistentVolumeClaim": {"claimName": "claim-{username}"}},
        {"name": "config", "configMap": {"name": "notebook-config"}},
    ]
    mounts = [{"name": "home", "mountPath": "/home/jovyan"}, {"name": "config", "mountPath": "/etc/jupyter"}]
    _, pod = await spawn(secure, base_config(volumes=volumes, volume_mounts=mounts))
    assert pod["spec"]["volumes"] == [
        {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
        {"name": "config", "configMap": {"name": "notebook-config"}},
    ] + SCRATCH_VOLUMES
    assert notebook(pod)["volumeMounts"] == [
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "config", "mountPath": "/etc/jupyter"},
    ] + SCRATCH_MOUNTS


# -- one weakening variant per source ----------------------------------------------------------


def strip_capabilities_hook(spawner, pod):
    pod.spec.containers[0].security_context.capabilities = None
    return pod


async def privileged_sidecar_hook(spawner, pod):
    pod.spec.containers.append(V1Container(name="debugger", image="busybox", security_context={"privileged": True}))
    return pod


HOST_PATH = {"name": "host-data", "hostPath": {"path": "/srv/data"}}
PRIVILEGED_INIT = {"name": "sysctl-tuner", "image": "busybox", "securityContext": {"privileged": True}}
WEAK_OPTION_PROFILE = {
    "display_name": "Debug",
    "slug": "debug",
    "profile_options": {
        "mode": {
            "display_name": "Mode",
            "choices": {
                "normal": {"display_name": "Normal", "default": True, "kubespawner_override": {}},
                "root": {"display_name": "Root", "kubespawner_override": {"container_security_context": {"runAsUser": 0}}},
            },
        },
        "host_dir": {
            "display_name": "Host directory",
            "choices": {"none": {"display_name": "None", "default": True}},
            "unlisted_choice": {
                "enabled": True,
                "kubespawner_override": {"extra_pod_config": {"volumes": [{"name": "host-dir", "hostPath": {"path": "{value}"}}]}},
            },
        },
    },
}

# (config, user_options, groups, violated check, setting the log line must name)
WEAKENINGS = [
    pytest.param(
        {"profile_list": PROFILES + [{"display_name": "P", "slug": "p", "kubespawner_override": {"privileged": True}}]},
        {"profile": "p"}, (), "privileged", "KubeSpawner.privileged", id="profile-override-privileged",
    ),
    pytest.param(
        {"profile_list": PROFILES + [{"display_name": "R", "slug": "r", "kubespawner_override": {"uid": 0}}]},
        {"profile": "r"}, (), "runAsUser", "KubeSpawner.uid", id="profile-override-uid-0",
    ),
    pytest.param(
        {"profile_list": PROFILES + [WEAK_OPTION_PROFILE]},
        {"profile": "debug", "mode": "root"}, (), "runAsUser", "KubeSpawner.container_security_context",
        id="profile-option-choice-root",
    ),
    pytest.param(
        {"profile_list": PROFILES + [WEAK_OPTION_PROFILE]},
        {"profile": "debug", "host_dir--unlisted-choice": "/var/lib"}, (), "restrictedVolumes", "KubeSpawner.extra_pod_config",
        id="unlisted-choice-host-path",
    ),
    pytest.param(
        {"apply_user_options": {"run_as": "uid"}}, {"run_as": "0"}, (), "runAsUser", "KubeSpawner.uid",
        id="user-option-uid-0",
    ),
    pytest.param(
        {"apply_user_options": {"debug": "privileged"}}, {"debug": "true"}, (), "privileged", "KubeSpawner.privileged",
        id="user-option-privileged",
    ),
    pytest.param(
        {"group_overrides": {"dev": {"groups": ["dev"], "spawner_override": {"allow_privilege_escalation": True}}}},
        {}, ("dev",), "allowPrivilegeEscalation", "KubeSpawner.allow_privilege_escalation", id="group-override-escalation",
    ),
    pytest.param(
        {"modify_pod_hook": strip_capabilities_hook}, {}, (), "capabilities_restricted", "KubeSpawner.modify_pod_hook",
        id="sync-hook-strips-capabilities",
    ),
    pytest.param(
        {"modify_pod_hook": privileged_sidecar_hook}, {}, (), "privileged", "KubeSpawner.modify_pod_hook",
        id="async-hook-privileged-sidecar",
    ),
    pytest.param(
        {"extra_pod_config": {"volumes": [HOST_PATH]}}, {}, (), "restrictedVolumes", "KubeSpawner.extra_pod_config",
        id="extra-pod-config-host-path",
    ),
    pytest.param(
        {"extra_pod_config": {"hostNetwork": True}}, {}, (), "hostNamespaces", "KubeSpawner.extra_pod_config",
        id="extra-pod-config-host-network",
    ),
    pytest.param(
        {"extra_container_config": {"ports": [{"name": "notebook-port", "containerPort": 8888, "hostPort": 8888}]}},
        {}, (), "hostPorts", "KubeSpawner.extra_container_config", id="extra-container-config-host-port",
    ),
    pytest.param(
        {"init_containers": [PRIVILEGED_INIT]}, {}, (), "privileged", "KubeSpawner.init_containers",
        id="init-container-privileged",
    ),
    pytest.param(
        {"extra_containers": [{"name": "vpn", "image": "busybox", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]},
        {}, (), "capabilities_restricted", "KubeSpawner.extra_containers", id="extra-container-net-admin",
    ),
    pytest.param(
        {"volumes": [{"name": "shared", "nfs": {"server": "nfs.example.org", "path": "/"}}]},
        {}, (), "restrictedVolumes", "KubeSpawner.volumes", id="volumes-nfs",
    ),
    pytest.param(
        {"pod_security_context": {"seccompProfile": {"type": "Unconfined"}}},
        {}, (), "seccompProfile_restricted", "KubeSpawner.pod_security_context", id="pod-security-context-unconfined",
    ),
]


@pytest.mark.parametrize("extra, user_options, groups, check, setting", WEAKENINGS)
async def test_weakening_refused_before_any_request(secure, extra, user_options, groups, check, setting):
    before = len(secure.requests)
    spawner = make_spawner(PlatformSpawner, user="mallory", config=base_config(**copy.deepcopy(extra)), groups=groups)
    spawner.user_options = dict(user_options)
    await spawner.apply_group_overrides()
    await spawner._run_apply_user_options(spawner.user_options)
    with pytest.raises(SecurityPolicyRefusal) as info:
        await spawner.load_user_options()
    refusal = info.value
    assert check in [v.check for v in refusal.violations]
    assert setting in set_by(refusal.log_message, check), refusal.log_message
    assert "pre-spawn check" in refusal.log_message
    assert "Pod jupyter-mallory for mallory" in refusal.log_message
    assert [r["path_qs"] for r in list(secure.requests)[before:]] == []
    assert secure.cluster.store.find("pods", NS, "jupyter-mallory") is None
    # The final-pod check (what start() runs before sending) refuses the same pod too.
    with pytest.raises(SecurityPolicyRefusal) as final:
        await final_pod(spawner)
    assert check in [v.check for v in final.value.violations]
    assert "final pod" in final.value.log_message


# -- profiles are never mutated in place -------------------------------------------------------


def json_text(pod: dict) -> str:
    return json.dumps(pod, sort_keys=True)


async def test_profiles_never_mutated_same_spawner(secure):
    config = base_config()
    configured = copy.deepcopy(config["PlatformSpawner"]["profile_list"])
    spawner = make_spawner(PlatformSpawner, user="carol", config=config)

    spawner.user_options = {"profile": "gpu"}
    await spawner.load_user_options()
    gpu = await final_pod(spawner)
    assert notebook(gpu)["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert gpu["spec"]["tolerations"] == [GPU_TOLERATION]

    spawner.user_options = {"profile": "cpu"}
    await spawner.load_user_options()
    cpu = await final_pod(spawner)
    assert "nvidia.com/gpu" not in json_text(cpu)
    assert notebook(cpu)["resources"] == {"limits": {"cpu": "2.0", "memory": "4294967296"}, "requests": {}}
    assert "tolerations" not in cpu["spec"]
    assert spawner.extra_resource_limits == {}
    assert spawner.profile_list == configured
    assert config["PlatformSpawner"]["profile_list"] == configured
    assert restricted_violations(cpu) == []


DICT_PROFILES = [
    {
        "display_name": "CPU",
        "slug": "cpu",
        "default": True,
        "kubespawner_override": {"environment": {"PROFILE": "cpu"}, "node_selector": {"kubernetes.io/arch": "amd64"}},
    },
    {
        "display_name": "GPU",
        "slug": "gpu",
        "kubespawner_override": {
            "extra_resource_limits": {"nvidia.com/gpu": "2"},
            "environment": {"PROFILE": "gpu", "CUDA_VISIBLE": "all"},
            "node_selector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"},
            "tolerations": [GPU_TOLERATION],
        },
    },
]
DICT_BASE = {
    "environment": {"BASE": "1"},
    "node_selector": {"kubernetes.io/os": "linux"},
    "extra_resource_limits": {"example.org/licence": "1"},
}


async def test_dict_overrides_merge_into_private_copies(secure):
    config = base_config(profile_list=copy.deepcopy(DICT_PROFILES), **copy.deepcopy(DICT_BASE))
    configured = copy.deepcopy(config)
    spawner = make_spawner(PlatformSpawner, user="dora", config=config)

    for _ in range(2):  # GPU, CPU, GPU, CPU on one spawner object
        spawner.user_options = {"profile": "gpu"}
        await spawner.load_user_options()
        gpu = await final_pod(spawner)
        assert notebook(gpu)["resources"]["limits"] == {"example.org/licence": "1", "nvidia.com/gpu": "2"}
        assert gpu["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}
        assert {k: env_of(notebook(gpu)).get(k) for k in ("BASE", "PROFILE", "CUDA_VISIBLE")} == {
            "BASE": "1", "PROFILE": "gpu", "CUDA_VISIBLE": "all"}

        spawner.user_options = {"profile": "cpu"}
        await spawner.load_user_options()
        cpu = await final_pod(spawner)
        assert "nvidia" not in json_text(cpu).lower()
        assert "CUDA_VISIBLE" not in json_text(cpu)
        assert notebook(cpu)["resources"]["limits"] == {"example.org/licence": "1"}
        assert cpu["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        assert {k: env_of(notebook(cpu)).get(k) for k in ("BASE", "PROFILE")} == {"BASE": "1", "PROFILE": "cpu"}
        assert spawner.environment == {"BASE": "1", "PROFILE": "cpu"}
        assert spawner.node_selector == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        assert restricted_violations(cpu) == []
    assert config == configured
    assert spawner.profile_list == DICT_PROFILES


def spawner_with(cls, cfg: Config, user: str):
    """Like doubles.make_spawner, but sharing an existing Config object."""
    return cls(
        config=cfg,
        hub=Hub(ip="127.0.0.1", port=8081, base_url="/hub/"),
        user=FakeUser(user),
        orm_spawner=orm.Spawner(name=""),
        api_token="contract-test-token",
        oauth_client_id=f"jupyterhub-user-{user}",
    )


def shared_config(cls) -> Config:
    cfg = Config()
    section = cfg[cls.__name__]
    section.namespace = NS
    section.profile_list = copy.deepcopy(DICT_PROFILES)
    for key, value in copy.deepcopy(DICT_BASE).items():
        setattr(section, key, value)
    return cfg


async def test_two_spawners_sharing_one_config(secure):
    cfg = shared_config(PlatformSpawner)
    configured = copy.deepcopy(cfg)
    first = spawner_with(PlatformSpawner, cfg, "erin")
    first.user_options = {"profile": "gpu"}
    await first.load_user_options()
    assert "nvidia.com/gpu" in json_text(await final_pod(first))

    second = spawner_with(PlatformSpawner, cfg, "frank")
    second.user_options = {"profile": "cpu"}
    await second.load_user_options()
    cpu = await final_pod(second)
    assert "nvidia" not in json_text(cpu).lower()
    assert second.environment == {"BASE": "1", "PROFILE": "cpu"}
    assert cfg == configured
    # And the first spawner, spawning again with the CPU profile, is clean as well.
    first.user_options = {"profile": "cpu"}
    await first.load_user_options()
    assert "nvidia" not in json_text(await final_pod(first)).lower()


async def test_group_overrides_and_profiles_across_spawns(secure):
    config = base_config(group_overrides={"team": {"groups": ["team"], "spawner_override": {"environment": {"TEAM": "yes"}}}},
                         environment={"BASE": "1"})
    spawner = make_spawner(PlatformSpawner, user="gina", config=config, groups=("team",))
    for profile, gpu in (("gpu", True), ("cpu", False), ("gpu", True), ("cpu", False)):
        spawner.user_options = {"profile": profile}
        await spawner.apply_group_overrides()
        await spawner.load_user_options()
        pod = await final_pod(spawner)
        assert {k: env_of(notebook(pod)).get(k) for k in ("BASE", "TEAM")} == {"BASE": "1", "TEAM": "yes"}
        assert ("nvidia.com/gpu" in json_text(pod)) is gpu
        assert spawner.environment == {"BASE": "1", "TEAM": "yes"}


async def test_user_option_values_do_not_stick(secure):
    config = base_config(apply_user_options={"debug": "privileged", "image_input": "image"})
    spawner = make_spawner(PlatformSpawner, user="hank", config=config)
    spawner.user_options = {"debug": "true", "image_input": R_IMAGE}
    await spawner.apply_group_overrides()
    await spawner._run_apply_user_options(spawner.user_options)
    with pytest.raises(SecurityPolicyRefusal):
        await spawner.load_user_options()
    # Next spawn without those options: configured values again, and it is admitted.
    spawner.user_options = {}
    await spawner.apply_group_overrides()
    await spawner._run_apply_user_options(spawner.user_options)
    await spawner.load_user_options()
    pod = await final_pod(spawner)
    assert spawner.privileged is False
    assert notebook(pod)["image"] == IMAGE
    assert notebook(pod)["securityContext"] == NOTEBOOK_SC


# -- the upstream pitfall --------------------------------------------------------------------


async def test_stock_kubespawner_leaks_gpu_into_next_spawn(secure):
    config = base_config(KubeSpawner)
    configured = copy.deepcopy(config["KubeSpawner"]["profile_list"])
    spawner = make_spawner(KubeSpawner, user="ivan", config=config)
    spawner.user_options = {"profile": "gpu"}
    await spawner.load_user_options()
    assert "nvidia.com/gpu" in json_text(to_dict(spawner, await spawner.get_pod_manifest()))

    spawner.user_options = {"profile": "cpu"}
    await spawner.load_user_options()
    cpu = to_dict(spawner, await spawner.get_pod_manifest())
    # The CPU pod still asks for a GPU and tolerates the GPU taint: KubeSpawner merges dict
    # overrides into the spawner's value and never resets traits between spawns.
    # (Stock KubeSpawner's V1Pod keeps the raw numbers: PlatformSpawner's round trip through the
    # API model renders them as strings.)
    assert notebook(cpu)["resources"]["limits"] == {"cpu": 2.0, "memory": 4294967296, "nvidia.com/gpu": "1"}
    assert cpu["spec"]["tolerations"] == [GPU_TOLERATION]
    # The configured profile list itself is not edited (KubeSpawner deep-copies it per load).
    assert spawner.profile_list == configured


async def test_stock_kubespawner_dict_merge_leaks_but_not_across_spawners(secure):
    cfg = shared_config(KubeSpawner)
    configured = copy.deepcopy(cfg)
    first = spawner_with(KubeSpawner, cfg, "judy")
    first.user_options = {"profile": "gpu"}
    await first.load_user_options()
    first.user_options = {"profile": "cpu"}
    await first.load_user_options()
    # Same object: the GPU profile's dict entries stay merged in.
    assert first.environment == {"BASE": "1", "PROFILE": "cpu", "CUDA_VISIBLE": "all"}
    assert first.extra_resource_limits == {"example.org/licence": "1", "nvidia.com/gpu": "2"}
    assert first.node_selector == {
        "kubernetes.io/os": "linux", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB", "kubernetes.io/arch": "amd64"}
    # A second object sharing the Config is clean: traitlets copies config values per instance.
    second = spawner_with(KubeSpawner, cfg, "karl")
    second.user_options = {"profile": "cpu"}
    await second.load_user_options()
    assert second.environment == {"BASE": "1", "PROFILE": "cpu"}
    assert second.extra_resource_limits == {"example.org/licence": "1"}
    assert cfg == configured
