"""Unit tests for jhplatform.policy.security.harden: ``harden``, ``explain`` and ``hints`` (pure, no I/O).

We test these aspects:
- ``harden`` of KubeSpawner 7.1's default pod body (as ``make_pod`` renders it, in API form)
  compared with the complete expected pod: pod securityContext, container securityContext,
  writable scratch emptyDirs with their mounts, the scratch environment, the service account
  token;
- a GPU profile pod (``nvidia.com/gpu`` limit, GPU toleration, node selector) keeps its
  scheduling fields and gets the same hardening;
- explicit compliant values are kept: another uid/gid/fsGroup, ``Localhost`` seccomp with its
  ``localhostProfile``, ``capabilities.add: [NET_BIND_SERVICE]``, ``readOnlyRootFilesystem:
  false`` (then no scratch mounts and no scratch environment for that container), an
  ``automountServiceAccountToken: true`` and environment variables the pod already sets;
- partial ``capabilities.drop`` lists are widened with ``ALL`` (table);
- explicit weakening values (privileged, runAsUser 0, allowPrivilegeEscalation true,
  runAsNonRoot false, Unconfined seccomp) are kept, so the checker refuses them by name;
- an existing mount at ``/tmp`` (also spelled ``/tmp/``) is not duplicated;
- the input is never mutated, and the result shares no mutable object with it;
- every container kind: init, regular and ephemeral containers all get the container
  hardening; only regular containers get the read-only root and its scratch mounts;
- a non-default ``HardeningPolicy`` (uid, seccomp, home, writable paths, size limit, token,
  read-only root off) is applied exactly;
- ``restricted_violations(harden(p)) == []`` for a table of pods, including odd shapes
  (None securityContexts, non-dict capabilities, no spec);
- ``explain()`` and ``hints()`` for representative violations (table with ids): which
  settings are named, in which order, and how changed settings move to the front.
"""

from __future__ import annotations

import copy

import pytest

from jhplatform.policy.security import HardeningPolicy, explain, harden, restricted_violations
from jhplatform.policy.security.harden import Z2JH_METADATA_BLOCKER, hints

IMAGE = "quay.io/jupyterhub/singleuser:latest"

# A shortened but representative env of KubeSpawner 7.1's default pod (get_env's output).
KUBESPAWNER_ENV = [
    {"name": "JPY_API_TOKEN", "value": "contract-test-token"},
    {"name": "JUPYTERHUB_API_TOKEN", "value": "contract-test-token"},
    {"name": "JUPYTERHUB_API_URL", "value": "http://127.0.0.1:8081/hub/api"},
    {"name": "JUPYTERHUB_CLIENT_ID", "value": "jupyterhub-user-start"},
    {"name": "JUPYTERHUB_SERVICE_URL", "value": "http://0.0.0.0:8888/"},
    {"name": "JUPYTERHUB_USER", "value": "start"},
    {"name": "JUPYTER_IMAGE", "value": IMAGE},
    {"name": "JUPYTER_IMAGE_SPEC", "value": IMAGE},
]

LABELS = {
    "hub.jupyter.org/username": "start",
    "app.kubernetes.io/name": "jupyterhub",
    "app.kubernetes.io/managed-by": "kubespawner",
    "app": "jupyterhub",
    "heritage": "jupyterhub",
    "app.kubernetes.io/component": "singleuser-server",
    "component": "singleuser-server",
    "hub.jupyter.org/servername": "",
}
ANNOTATIONS = {
    "hub.jupyter.org/username": "start",
    "hub.jupyter.org/kubespawner-version": "7.1.0",
    "hub.jupyter.org/jupyterhub-version": "5.5.0",
}

# KubeSpawner 7.1's default pod, as make_pod() renders it (sanitize_for_serialization of the
# V1Pod; stock KubeSpawner sets no uid/gid/fs_gid, so there is no pod securityContext).
KUBESPAWNER_DEFAULT_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "jupyter-start", "labels": LABELS, "annotations": ANNOTATIONS},
    "spec": {
        "automountServiceAccountToken": False,
        "containers": [
            {
                "env": KUBESPAWNER_ENV,
                "image": IMAGE,
                "lifecycle": {},
                "name": "notebook",
                "ports": [{"containerPort": 8888, "name": "notebook-port"}],
                "resources": {"limits": {}, "requests": {}},
                "securityContext": {"allowPrivilegeEscalation": False},
                "volumeMounts": [],
            }
        ],
        "imagePullSecrets": [],
        "restartPolicy": "OnFailure",
        "volumes": [],
    },
}

SCRATCH_ENV = [
    {"name": "JUPYTER_RUNTIME_DIR", "value": "/tmp/jupyter/runtime"},
    {"name": "XDG_CACHE_HOME", "value": "/home/jovyan/.cache"},
    {"name": "PIP_CACHE_DIR", "value": "/home/jovyan/.cache/pip"},
    {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
    {"name": "PYTHONPYCACHEPREFIX", "value": "/tmp/pycache"},
]
SCRATCH_VOLUMES = [
    {"name": "jhplatform-scratch-0", "emptyDir": {"sizeLimit": "1Gi"}},
    {"name": "jhplatform-scratch-1", "emptyDir": {"sizeLimit": "1Gi"}},
]
SCRATCH_MOUNTS = [
    {"name": "jhplatform-scratch-0", "mountPath": "/tmp"},
    {"name": "jhplatform-scratch-1", "mountPath": "/home/jovyan/.cache"},
]
DEFAULT_POD_SC = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 100,
    "fsGroup": 100,
    "seccompProfile": {"type": "RuntimeDefault"},
}

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def pod(spec: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def nb(**sc) -> dict:
    """A bare notebook container with the given securityContext."""
    return {"name": "notebook", "image": IMAGE, "securityContext": sc}


# -- the default and GPU pods -------------------------------------------------------------------


def test_kubespawner_default_pod():
    assert harden(KUBESPAWNER_DEFAULT_POD) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-start", "labels": LABELS, "annotations": ANNOTATIONS},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "env": [
                        {"name": "JPY_API_TOKEN", "value": "contract-test-token"},
                        {"name": "JUPYTERHUB_API_TOKEN", "value": "contract-test-token"},
                        {"name": "JUPYTERHUB_API_URL", "value": "http://127.0.0.1:8081/hub/api"},
                        {"name": "JUPYTERHUB_CLIENT_ID", "value": "jupyterhub-user-start"},
                        {"name": "JUPYTERHUB_SERVICE_URL", "value": "http://0.0.0.0:8888/"},
                        {"name": "JUPYTERHUB_USER", "value": "start"},
                        {"name": "JUPYTER_IMAGE", "value": IMAGE},
                        {"name": "JUPYTER_IMAGE_SPEC", "value": IMAGE},
                        {"name": "JUPYTER_RUNTIME_DIR", "value": "/tmp/jupyter/runtime"},
                        {"name": "XDG_CACHE_HOME", "value": "/home/jovyan/.cache"},
                        {"name": "PIP_CACHE_DIR", "value": "/home/jovyan/.cache/pip"},
                        {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
                        {"name": "PYTHONPYCACHEPREFIX", "value": "/tmp/pycache"},
                    ],
                    "image": IMAGE,
                    "lifecycle": {},
                    "name": "notebook",
                    "ports": [{"containerPort": 8888, "name": "notebook-port"}],
                    "resources": {"limits": {}, "requests": {}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True,
                    },
                    "volumeMounts": [
                        {"name": "jhplatform-scratch-0", "mountPath": "/tmp"},
                        {"name": "jhplatform-scratch-1", "mountPath": "/home/jovyan/.cache"},
                    ],
                }
            ],
            "imagePullSecrets": [],
            "restartPolicy": "OnFailure",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 100,
                "fsGroup": 100,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumes": [
                {"name": "jhplatform-scratch-0", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "jhplatform-scratch-1", "emptyDir": {"sizeLimit": "1Gi"}},
            ],
        },
    }
    # The stock pod fails restricted; the hardened one passes.
    assert [v.check for v in restricted_violations(KUBESPAWNER_DEFAULT_POD)] == [
        "capabilities_restricted",
        "runAsNonRoot",
        "seccompProfile_restricted",
    ]
    assert restricted_violations(harden(KUBESPAWNER_DEFAULT_POD)) == []


def gpu_pod() -> dict:
    p = copy.deepcopy(KUBESPAWNER_DEFAULT_POD)
    spec = p["spec"]
    spec["containers"][0]["resources"] = {"limits": {"cpu": "8", "memory": "32G", "nvidia.com/gpu": "1"}, "requests": {}}
    spec["containers"][0]["securityContext"] = {"allowPrivilegeEscalation": False, "runAsUser": 1000, "runAsGroup": 100}
    spec["securityContext"] = {"fsGroup": 100}
    spec["tolerations"] = [GPU_TOLERATION]
    spec["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}
    return p


def test_gpu_profile_pod():
    assert harden(gpu_pod()) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-start", "labels": LABELS, "annotations": ANNOTATIONS},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "env": KUBESPAWNER_ENV + SCRATCH_ENV,
                    "image": IMAGE,
                    "lifecycle": {},
                    "name": "notebook",
                    "ports": [{"containerPort": 8888, "name": "notebook-port"}],
                    "resources": {"limits": {"cpu": "8", "memory": "32G", "nvidia.com/gpu": "1"}, "requests": {}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "runAsUser": 1000,
                        "runAsGroup": 100,
                        "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True,
                    },
                    "volumeMounts": SCRATCH_MOUNTS,
                }
            ],
            "imagePullSecrets": [],
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"},
            "restartPolicy": "OnFailure",
            "securityContext": {
                "fsGroup": 100,
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 100,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "volumes": SCRATCH_VOLUMES,
        },
    }
    assert restricted_violations(harden(gpu_pod())) == []


# -- explicit values ----------------------------------------------------------------------------


def test_explicit_compliant_values_kept():
    source = pod(
        {
            "automountServiceAccountToken": True,
            "securityContext": {
                "runAsUser": 1234,
                "runAsGroup": 2345,
                "fsGroup": 3456,
                "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/notebook.json"},
            },
            "containers": [
                {
                    "name": "notebook",
                    "image": IMAGE,
                    "env": [{"name": "MPLCONFIGDIR", "value": "/scratch/mpl"}],
                    "securityContext": {
                        "runAsUser": 1234,
                        "capabilities": {"add": ["NET_BIND_SERVICE"]},
                        "readOnlyRootFilesystem": False,
                    },
                },
                {
                    "name": "sidecar",
                    "image": "busybox",
                    "env": [{"name": "MPLCONFIGDIR", "value": "/scratch/mpl"}],
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                },
            ],
        }
    )
    assert harden(source) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "automountServiceAccountToken": True,
            "securityContext": {
                "runAsUser": 1234,
                "runAsGroup": 2345,
                "fsGroup": 3456,
                "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/notebook.json"},
                "runAsNonRoot": True,
            },
            "containers": [
                {
                    # readOnlyRootFilesystem: false -> no scratch mounts, no scratch env.
                    "name": "notebook",
                    "image": IMAGE,
                    "env": [{"name": "MPLCONFIGDIR", "value": "/scratch/mpl"}],
                    "securityContext": {
                        "runAsUser": 1234,
                        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                        "readOnlyRootFilesystem": False,
                        "allowPrivilegeEscalation": False,
                    },
                },
                {
                    # Read-only root: scratch mounts and env, but MPLCONFIGDIR stays the pod's.
                    "name": "sidecar",
                    "image": "busybox",
                    "env": [
                        {"name": "MPLCONFIGDIR", "value": "/scratch/mpl"},
                        {"name": "JUPYTER_RUNTIME_DIR", "value": "/tmp/jupyter/runtime"},
                        {"name": "XDG_CACHE_HOME", "value": "/home/jovyan/.cache"},
                        {"name": "PIP_CACHE_DIR", "value": "/home/jovyan/.cache/pip"},
                        {"name": "PYTHONPYCACHEPREFIX", "value": "/tmp/pycache"},
                    ],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True,
                    },
                    "volumeMounts": SCRATCH_MOUNTS,
                },
            ],
            "volumes": SCRATCH_VOLUMES,
        },
    }
    assert restricted_violations(harden(source)) == []


def test_read_only_root_false_only_container_gets_no_scratch():
    source = pod({"containers": [nb(readOnlyRootFilesystem=False)]})
    assert harden(source)["spec"]["containers"] == [
        {
            "name": "notebook",
            "image": IMAGE,
            "securityContext": {
                "readOnlyRootFilesystem": False,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
    ]
    # The scratch emptyDirs are still declared on the pod (unused, harmless).
    assert harden(source)["spec"]["volumes"] == SCRATCH_VOLUMES


@pytest.mark.parametrize(
    "drop, expected",
    [
        pytest.param(["NET_RAW"], ["ALL", "NET_RAW"], id="one-cap"),
        pytest.param(["NET_RAW", "MKNOD"], ["ALL", "NET_RAW", "MKNOD"], id="two-caps"),
        pytest.param([], ["ALL"], id="empty-list"),
        pytest.param(["ALL"], ["ALL"], id="already-all"),
        pytest.param(["NET_RAW", "ALL"], ["NET_RAW", "ALL"], id="all-not-first-kept"),
        pytest.param(None, ["ALL"], id="none"),
        pytest.param("ALL", ["ALL"], id="string-not-list"),
    ],
)
def test_partial_drop_lists_widened(drop, expected):
    source = pod({"containers": [nb(capabilities={"drop": drop, "add": ["NET_BIND_SERVICE"]})]})
    hardened = harden(source)
    assert hardened["spec"]["containers"][0]["securityContext"] == {
        "capabilities": {"drop": expected, "add": ["NET_BIND_SERVICE"]},
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
    }
    assert restricted_violations(hardened) == []


def test_explicit_weakening_kept_for_the_checker():
    source = pod(
        {
            "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "seccompProfile": {"type": "Unconfined"}},
            "containers": [
                nb(
                    privileged=True,
                    runAsUser=0,
                    allowPrivilegeEscalation=True,
                    capabilities={"add": ["SYS_ADMIN"], "drop": []},
                    readOnlyRootFilesystem=False,
                )
            ],
        }
    )
    hardened = harden(source)
    assert hardened["spec"]["securityContext"] == {
        "runAsUser": 0,
        "runAsNonRoot": False,
        "seccompProfile": {"type": "Unconfined"},
        "runAsGroup": 100,
        "fsGroup": 100,
    }
    assert hardened["spec"]["containers"][0]["securityContext"] == {
        "privileged": True,
        "runAsUser": 0,
        "allowPrivilegeEscalation": True,
        "capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]},
        "readOnlyRootFilesystem": False,
    }
    assert [str(v) for v in restricted_violations(hardened)] == [
        'privileged (container "notebook" must not set securityContext.privileged=true)',
        'allowPrivilegeEscalation != false (container "notebook" must set securityContext.allowPrivilegeEscalation=false)',
        'unrestricted capabilities (container "notebook" must not include "SYS_ADMIN" in securityContext.capabilities.add)',
        "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)",
        "runAsUser=0 (pod and container \"notebook\" must not set runAsUser=0)",
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")',
    ]


@pytest.mark.parametrize("path", ["/tmp", "/tmp/", "/tmp/."])
def test_existing_tmp_mount_not_duplicated(path):
    source = pod(
        {
            "containers": [
                {
                    "name": "notebook",
                    "image": IMAGE,
                    "volumeMounts": [{"name": "big-tmp", "mountPath": path}],
                }
            ],
            "volumes": [{"name": "big-tmp", "emptyDir": {"sizeLimit": "20Gi"}}],
        }
    )
    hardened = harden(source)
    assert hardened["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "big-tmp", "mountPath": path},
        {"name": "jhplatform-scratch-1", "mountPath": "/home/jovyan/.cache"},
    ]
    assert hardened["spec"]["volumes"] == [{"name": "big-tmp", "emptyDir": {"sizeLimit": "20Gi"}}] + SCRATCH_VOLUMES


def test_scratch_volume_names_already_present_not_duplicated():
    source = pod({"containers": [nb()], "volumes": [{"name": "jhplatform-scratch-0", "emptyDir": {}}]})
    assert harden(source)["spec"]["volumes"] == [
        {"name": "jhplatform-scratch-0", "emptyDir": {}},
        {"name": "jhplatform-scratch-1", "emptyDir": {"sizeLimit": "1Gi"}},
    ]


# -- purity -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(KUBESPAWNER_DEFAULT_POD, id="default"),
        pytest.param(gpu_pod(), id="gpu"),
        pytest.param(pod({"containers": [nb(capabilities={"drop": ["NET_RAW"]})]}), id="partial-drop"),
        pytest.param(pod({"securityContext": None, "containers": [{"name": "c", "image": "x", "securityContext": None}]}), id="nones"),
        pytest.param({"metadata": {"name": "no-spec"}}, id="no-spec"),
    ],
)
def test_input_never_mutated_and_nothing_shared(source):
    before = copy.deepcopy(source)
    hardened = harden(source)
    assert source == before
    # Mutating every dict/list of the result leaves the input untouched.

    def scribble(obj):
        if isinstance(obj, dict):
            for value in list(obj.values()):
                scribble(value)
            obj["scribbled"] = True
        elif isinstance(obj, list):
            for value in list(obj):
                scribble(value)
            obj.append("scribbled")

    scribble(hardened)
    assert source == before
    # And harden is idempotent.
    assert harden(harden(before)) == harden(before)


# -- container kinds ----------------------------------------------------------------------------


def test_every_container_kind():
    source = pod(
        {
            "initContainers": [{"name": "fetch", "image": "busybox"}],
            "containers": [{"name": "notebook", "image": IMAGE}, {"name": "sidecar", "image": "busybox", "securityContext": {}}],
            "ephemeralContainers": [{"name": "debug", "image": "busybox", "securityContext": {"capabilities": {}}}],
        }
    )
    hardened_container = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert harden(source) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": DEFAULT_POD_SC,
            "initContainers": [{"name": "fetch", "image": "busybox", "securityContext": hardened_container}],
            "containers": [
                {
                    "name": "notebook",
                    "image": IMAGE,
                    "securityContext": {**hardened_container, "readOnlyRootFilesystem": True},
                    "volumeMounts": SCRATCH_MOUNTS,
                    "env": SCRATCH_ENV,
                },
                {
                    "name": "sidecar",
                    "image": "busybox",
                    "securityContext": {**hardened_container, "readOnlyRootFilesystem": True},
                    "volumeMounts": SCRATCH_MOUNTS,
                    "env": SCRATCH_ENV,
                },
            ],
            "ephemeralContainers": [{"name": "debug", "image": "busybox", "securityContext": hardened_container}],
            "volumes": SCRATCH_VOLUMES,
        },
    }
    assert restricted_violations(harden(source)) == []


# -- policy -------------------------------------------------------------------------------------


def test_custom_policy():
    policy = HardeningPolicy(
        run_as_user=2000,
        run_as_group=3000,
        fs_group=4000,
        seccomp_profile="Localhost",
        home="/home/alice/",
        writable_paths=("/tmp", "~/.local", "/opt/conda/pkgs/"),
        writable_size_limit="5Gi",
        automount_service_account_token=True,
        env=(("XDG_CACHE_HOME", "~/.local/cache"), ("TMPDIR", "/tmp")),
    )
    assert harden(pod({"containers": [{"name": "notebook", "image": IMAGE}]}), policy) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 2000,
                "runAsGroup": 3000,
                "fsGroup": 4000,
                "seccompProfile": {"type": "Localhost"},
            },
            "containers": [
                {
                    "name": "notebook",
                    "image": IMAGE,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True,
                    },
                    "volumeMounts": [
                        {"name": "jhplatform-scratch-0", "mountPath": "/tmp"},
                        {"name": "jhplatform-scratch-1", "mountPath": "/home/alice/.local"},
                        {"name": "jhplatform-scratch-2", "mountPath": "/opt/conda/pkgs"},
                    ],
                    "env": [
                        {"name": "XDG_CACHE_HOME", "value": "/home/alice/.local/cache"},
                        {"name": "TMPDIR", "value": "/tmp"},
                    ],
                }
            ],
            "volumes": [
                {"name": "jhplatform-scratch-0", "emptyDir": {"sizeLimit": "5Gi"}},
                {"name": "jhplatform-scratch-1", "emptyDir": {"sizeLimit": "5Gi"}},
                {"name": "jhplatform-scratch-2", "emptyDir": {"sizeLimit": "5Gi"}},
            ],
        },
    }


def test_policy_without_read_only_root():
    policy = HardeningPolicy(read_only_root_filesystem=False)
    assert harden(pod({"containers": [{"name": "notebook", "image": IMAGE}]}), policy) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": DEFAULT_POD_SC,
            "containers": [
                {
                    "name": "notebook",
                    "image": IMAGE,
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }


# -- compliance table ---------------------------------------------------------------------------

COMPLIANT_AFTER_HARDEN = [
    pytest.param(KUBESPAWNER_DEFAULT_POD, id="kubespawner-default"),
    pytest.param(gpu_pod(), id="gpu"),
    pytest.param(pod({"containers": [{"name": "c", "image": "x"}]}), id="minimal"),
    pytest.param(pod({"securityContext": None, "containers": [{"name": "c", "image": "x", "securityContext": None}]}), id="none-contexts"),
    pytest.param(pod({"containers": [nb(capabilities=None)]}), id="capabilities-none"),
    pytest.param(pod({"containers": [nb(capabilities=["NET_RAW"])]}), id="capabilities-list"),
    pytest.param(pod({"containers": [nb(capabilities={"drop": ["NET_RAW"]})]}), id="partial-drop"),
    pytest.param(pod({"containers": [nb(capabilities={"add": ["NET_BIND_SERVICE"]})]}), id="net-bind-service"),
    pytest.param(pod({"securityContext": {"seccompProfile": None}, "containers": [nb()]}), id="seccomp-none"),
    pytest.param(
        pod({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}, "containers": [nb()]}),
        id="localhost-seccomp",
    ),
    pytest.param(pod({"containers": [nb(runAsUser=1234, runAsGroup=1234)]}), id="other-uid"),
    pytest.param(
        pod(
            {
                "initContainers": [{"name": "init", "image": "x"}, {"name": "proxy", "image": "x", "restartPolicy": "Always"}],
                "containers": [nb(), {"name": "sidecar", "image": "x"}],
                "ephemeralContainers": [{"name": "debug", "image": "x"}],
            }
        ),
        id="all-kinds",
    ),
    pytest.param(pod({"containers": [nb()], "volumes": [{"name": "cfg", "configMap": {"name": "c"}}]}), id="configmap-volume"),
    pytest.param({"metadata": {"name": "no-spec"}}, id="no-spec"),
    pytest.param(pod({"containers": [nb(readOnlyRootFilesystem=False)]}), id="writable-root"),
]


@pytest.mark.parametrize("source", COMPLIANT_AFTER_HARDEN)
def test_hardened_pods_pass_restricted(source):
    assert restricted_violations(harden(source)) == []


# -- explain and hints --------------------------------------------------------------------------

NOTEBOOK_SOURCES = [
    "KubeSpawner.container_security_context",
    "KubeSpawner.extra_container_config",
    "KubeSpawner.uid",
    "KubeSpawner.gid",
    "KubeSpawner.privileged",
    "KubeSpawner.allow_privilege_escalation",
    "KubeSpawner.lifecycle_hooks",
]
POD_SOURCES = [
    "KubeSpawner.pod_security_context",
    "KubeSpawner.extra_pod_config",
    "KubeSpawner.fs_gid",
    "KubeSpawner.supplemental_gids",
]
HOOK = "KubeSpawner.modify_pod_hook"
ROOT_HINT = "Containers may not run as root (uid 0): set KubeSpawner.uid to a non-zero uid, or leave it unset for 1000."
VOLUME_HINT = "Mount data through a PersistentVolumeClaim or a CSI volume instead of hostPath/nfs volumes."
BLOCK = {
    "name": Z2JH_METADATA_BLOCKER,
    "image": "quay.io/jupyterhub/k8s-network-tools:4.4.0",
    "securityContext": {"runAsUser": 0, "privileged": True, "capabilities": {"add": ["NET_ADMIN"]}},
}

# (pod before hardening, changed settings, expected [(check, explain output)], expected hints)
EXPLAIN_CASES = [
    pytest.param(
        pod({"containers": [nb(privileged=True)]}),
        [],
        [("privileged", NOTEBOOK_SOURCES + [HOOK])],
        [],
        id="privileged-notebook",
    ),
    pytest.param(
        pod({"containers": [nb(privileged=True)]}),
        ["KubeSpawner.privileged", "KubeSpawner.cpu_limit"],
        [("privileged", ["KubeSpawner.privileged"] + [s for s in NOTEBOOK_SOURCES if s != "KubeSpawner.privileged"] + [HOOK])],
        [],
        id="privileged-notebook-changed-by-profile",
    ),
    pytest.param(
        pod({"containers": [nb(runAsUser=0)]}),
        ["KubeSpawner.uid"],
        [("runAsUser", ["KubeSpawner.uid"] + [s for s in NOTEBOOK_SOURCES if s != "KubeSpawner.uid"] + [HOOK])],
        [ROOT_HINT],
        id="root-notebook",
    ),
    pytest.param(
        pod({"securityContext": {"runAsUser": 0}, "containers": [nb()]}),
        [],
        [("runAsUser", POD_SOURCES + [HOOK])],
        [ROOT_HINT],
        id="root-pod",
    ),
    pytest.param(
        pod({"hostNetwork": True, "containers": [nb()]}),
        ["KubeSpawner.extra_pod_config"],
        [("hostNamespaces", ["KubeSpawner.extra_pod_config"] + [s for s in POD_SOURCES if s != "KubeSpawner.extra_pod_config"] + [HOOK])],
        [],
        id="host-network",
    ),
    pytest.param(
        pod({"containers": [nb()], "volumes": [{"name": "data", "hostPath": {"path": "/data"}}]}),
        [],
        [("restrictedVolumes", ["KubeSpawner.volumes", "KubeSpawner.storage_extra_volumes", "KubeSpawner.extra_pod_config", HOOK])],
        [VOLUME_HINT],
        id="host-path-volume",
    ),
    pytest.param(
        pod({"containers": [nb()], "volumes": [{"name": "shared", "nfs": {"server": "nfs", "path": "/"}}]}),
        ["KubeSpawner.extra_pod_config"],
        [("restrictedVolumes", ["KubeSpawner.extra_pod_config", "KubeSpawner.volumes", "KubeSpawner.storage_extra_volumes", HOOK])],
        [VOLUME_HINT],
        id="nfs-volume-from-override",
    ),
    pytest.param(
        pod({"initContainers": [BLOCK], "containers": [nb()]}),
        [],
        [
            ("privileged", ["KubeSpawner.init_containers", HOOK]),
            ("capabilities_restricted", ["KubeSpawner.init_containers", HOOK]),
            ("runAsUser", ["KubeSpawner.init_containers", HOOK]),
        ],
        [
            'The "block-cloud-metadata" init container comes from z2jh\'s singleuser.cloudMetadata.blockWithIptables, '
            "which needs a privileged root container. Set singleuser.cloudMetadata.blockWithIptables: false and block "
            "the metadata server with the chart's NetworkPolicy instead (singleuser.networkPolicy.enabled: true with "
            "singleuser.networkPolicy.egressAllowRules.cloudMetadataServer: false, the default); see docs/security.md.",
            ROOT_HINT,
        ],
        id="z2jh-block-cloud-metadata",
    ),
    pytest.param(
        pod({"initContainers": [{**BLOCK, "name": "other-init"}], "containers": [nb()]}),
        [],
        [
            ("privileged", ["KubeSpawner.init_containers", HOOK]),
            ("capabilities_restricted", ["KubeSpawner.init_containers", HOOK]),
            ("runAsUser", ["KubeSpawner.init_containers", HOOK]),
        ],
        [ROOT_HINT],
        id="other-privileged-init-no-z2jh-hint",
    ),
    pytest.param(
        pod({"containers": [nb(), {"name": "sidecar", "image": "x", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]}),
        [],
        [("capabilities_restricted", ["KubeSpawner.extra_containers", HOOK])],
        [],
        id="sidecar-capability",
    ),
    pytest.param(
        pod({"containers": [nb()], "ephemeralContainers": [{"name": "debug", "image": "x", "securityContext": {"privileged": True}}]}),
        [],
        [("privileged", ["KubeSpawner.extra_pod_config", HOOK])],
        [],
        id="ephemeral-privileged",
    ),
    pytest.param(
        pod({"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": [nb()]}),
        ["KubeSpawner.pod_security_context"],
        [("seccompProfile_restricted", POD_SOURCES + [HOOK])],
        [],
        id="unconfined-seccomp-pod",
    ),
    pytest.param(
        pod({"containers": [nb(), {"name": "sidecar", "image": "x", "securityContext": {"privileged": True}}]}),
        [HOOK],
        [("privileged", [HOOK, "KubeSpawner.extra_containers"])],
        [],
        id="hook-named-first-when-changed",
    ),
]


@pytest.mark.parametrize("source, changed, expected, expected_hints", EXPLAIN_CASES)
def test_explain_and_hints(source, changed, expected, expected_hints):
    hardened = harden(source)
    violations = restricted_violations(hardened)
    assert [(v.check, explain(v, hardened, changed)) for v in violations] == expected
    assert hints(violations, hardened) == expected_hints


def test_explain_stripped_notebook_names_pod_and_container_sources():
    # A hook that drops the notebook's securityContext after hardening.
    stripped = harden(pod({"containers": [nb()]}))
    del stripped["spec"]["containers"][0]["securityContext"]
    violations = restricted_violations(stripped)
    assert [v.check for v in violations] == ["allowPrivilegeEscalation", "capabilities_restricted"]
    assert explain(violations[0], stripped) == NOTEBOOK_SOURCES + [HOOK]
    assert explain(violations[0], stripped, [HOOK, "KubeSpawner.cpu_limit"]) == [HOOK] + NOTEBOOK_SOURCES
    assert hints(violations, stripped) == []
