"""The storage policy as tables: jhplatform.policy.storage (pure) and the claims PlatformSpawner builds.

We test these aspects:
- home claim manifests as whole dicts, per profile (size, class, access modes, labels,
  annotations, a profile's own ``pvc_name_template``) and per server name (default and named
  servers, names that need slugging), through PlatformSpawner's ``load_user_options`` and
  KubeSpawner's ``get_pvc_manifest`` (no API call is made: the spawner is not starting);
- shared dataset volumes and read-only mounts per profile and group;
- scratch and ``/dev/shm`` volumes, GPU detection, and how they merge into a pod;
- dataset validation: every problem an admin can write, with the exact message;
- the load-time storage check over a whole hub config;
- claim lookup order, labelled-claim selection, expansion decisions and resize refusals;
- orphaned-claim detection and ages.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest
from traitlets import TraitError
from traitlets.config import Config

from doubles import make_spawner
from jhplatform.policy import storage
from jhplatform.spawner import PlatformSpawner
from jhplatform.spawner.storage import storage_config_problems

# -- claim manifests --------------------------------------------------------------------------

PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "kubespawner_override": {"cpu_limit": 2}},
    {
        "display_name": "Large",
        "slug": "large",
        "kubespawner_override": {
            "storage_capacity": "100Gi",
            "storage_class": "fast-ssd",
            "storage_access_modes": ["ReadWriteOncePod"],
            "storage_extra_labels": {"backup": "daily"},
            "storage_extra_annotations": {"snapshot.example.org/schedule": "hourly", "owner": "{username}"},
        },
    },
    {
        "display_name": "Project",
        "slug": "project",
        "kubespawner_override": {"pvc_name_template": "project-{user_server}", "storage_capacity": "50Gi"},
    },
]

BASE = {
    "namespace": "jhub",
    "storage_pvc_ensure": True,
    "storage_capacity": "10Gi",
    "storage_extra_labels": {"hub.jupyter.org/home": "true"},
    "profile_list": PROFILES,
}


def labels(user_label: str, **extra) -> dict:
    return {
        "hub.jupyter.org/username": user_label,
        "hub.jupyter.org/home": "true",
        **extra,
        # KubeSpawner's common_labels
        "app.kubernetes.io/name": "jupyterhub",
        "app.kubernetes.io/managed-by": "kubespawner",
        "app": "jupyterhub",
        "heritage": "jupyterhub",
        "app.kubernetes.io/component": "singleuser-server",
        "component": "singleuser-storage",
    }


def annotations(user: str, server: str | None = None, **extra) -> dict:
    out = {"hub.jupyter.org/username": user}
    if server:
        out["hub.jupyter.org/servername"] = server
    out.update({"hub.jupyter.org/kubespawner-version": "7.1.0", "hub.jupyter.org/jupyterhub-version": "5.5.0"})
    out.update(extra)
    return out


def claim(name: str, size: str, labels: dict, annotations: dict, modes=("ReadWriteOnce",), storage_class=None) -> dict:
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
        annotations = {**annotations, "volume.beta.kubernetes.io/storage-class": storage_class}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"annotations": annotations, "labels": labels, "name": name},
        "spec": spec,
    }


CLAIM_CASES = [
    pytest.param("ada", "", None, claim("claim-ada", "10Gi", labels("ada"), annotations("ada")), id="default-server-default-profile"),
    pytest.param("ada", "", "cpu", claim("claim-ada", "10Gi", labels("ada"), annotations("ada")), id="cpu-profile-keeps-base"),
    pytest.param(
        "ada",
        "",
        "large",
        claim(
            "claim-ada",
            "100Gi",
            labels("ada", backup="daily"),
            annotations("ada", **{"snapshot.example.org/schedule": "hourly", "owner": "ada"}),
            modes=("ReadWriteOncePod",),
            storage_class="fast-ssd",
        ),
        id="large-profile-size-class-modes-labels-annotations",
    ),
    pytest.param("ada", "", "project", claim("project-ada", "50Gi", labels("ada"), annotations("ada")), id="profile-pvc-name-template"),
    pytest.param(
        "ada", "gpu-box", None, claim("claim-ada--gpu-box", "10Gi", labels("ada"), annotations("ada", "gpu-box")), id="named-server"
    ),
    pytest.param(
        "ada",
        "gpu-box",
        "large",
        claim(
            "claim-ada--gpu-box",
            "100Gi",
            labels("ada", backup="daily"),
            annotations("ada", "gpu-box", **{"snapshot.example.org/schedule": "hourly", "owner": "ada"}),
            modes=("ReadWriteOncePod",),
            storage_class="fast-ssd",
        ),
        id="named-server-large-profile",
    ),
    pytest.param(
        "ada", "gpu-box", "project", claim("project-ada--gpu-box", "50Gi", labels("ada"), annotations("ada", "gpu-box")), id="named-server-project"
    ),
    # "Ada.Lovelace@lab" is not a valid object name: KubeSpawner's safe scheme slugs and hashes it.
    pytest.param(
        "Ada.Lovelace@lab",
        "",
        None,
        claim("claim-ada-lovelace-lab---de0a6ed5", "10Gi", labels("ada-lovelace-lab---de0a6ed5"), annotations("Ada.Lovelace@lab")),
        id="user-name-needs-slugging",
    ),
    pytest.param(
        "Ada.Lovelace@lab",
        "My Server",
        None,
        claim(
            # Too long for "{user}--{server}" with two hashes: one hash over both.
            "claim-ada-lovelace-lab--my-server---401fea2a",
            "10Gi",
            labels("ada-lovelace-lab---de0a6ed5"),
            annotations("Ada.Lovelace@lab", "My Server"),
        ),
        id="server-name-needs-slugging",
    ),
]


@pytest.mark.parametrize("user, server, profile, expected", CLAIM_CASES)
async def test_claim_manifest(devcluster, user, server, profile, expected):
    spawner = make_spawner(PlatformSpawner, user=user, server_name=server, config={"PlatformSpawner": copy.deepcopy(BASE)})
    spawner.user_options = {"profile": profile} if profile else {}
    await spawner.load_user_options()
    manifest = spawner.api.api_client.sanitize_for_serialization(spawner.get_pvc_manifest())
    versions = manifest["metadata"]["annotations"]
    expected = copy.deepcopy(expected)
    # Versions come from the installed packages; the rest is exact.
    for key in ("hub.jupyter.org/kubespawner-version", "hub.jupyter.org/jupyterhub-version"):
        expected["metadata"]["annotations"][key] = versions[key]
    assert manifest == expected
    assert spawner.pvc_name == expected["metadata"]["name"]


async def test_claim_name_follows_profile_then_returns(devcluster):
    """A profile's pvc_name_template names the claim for that spawn only."""
    spawner = make_spawner(PlatformSpawner, user="ada", config={"PlatformSpawner": copy.deepcopy(BASE)})
    names = []
    for profile in ("cpu", "project", "large"):
        spawner.user_options = {"profile": profile}
        await spawner.load_user_options()
        names.append(spawner.pvc_name)
    assert names == ["claim-ada", "project-ada", "claim-ada"]


async def test_remembered_names_per_template(devcluster):
    """State from plain KubeSpawner (a legacy name) and the platform's per-template names."""
    spawner = make_spawner(PlatformSpawner, user="ada", config={"PlatformSpawner": copy.deepcopy(BASE)})
    spawner.load_state({"pvc_name": "claim-ada-legacy", "kubespawner_version": "7.1.0"})
    spawner.user_options = {"profile": "cpu"}
    await spawner.load_user_options()
    assert spawner.pvc_name == "claim-ada-legacy"
    spawner.user_options = {"profile": "project"}
    await spawner.load_user_options()
    assert spawner.pvc_name == "project-ada"
    restored = make_spawner(PlatformSpawner, user="ada", config={"PlatformSpawner": copy.deepcopy(BASE)})
    restored.load_state({"pvc_name": "project-ada", "jhplatform_pvc_names": {"claim-{user_server}": "claim-ada-legacy", "project-{user_server}": "project-ada"}})
    restored.user_options = {"profile": "cpu"}
    await restored.load_user_options()
    assert restored.pvc_name == "claim-ada-legacy"


async def test_delete_pvc_defaults_to_false(devcluster):
    spawner = make_spawner(PlatformSpawner, config={})
    assert spawner.delete_pvc is False
    opted_in = make_spawner(PlatformSpawner, config={"PlatformSpawner": {"delete_pvc": True}})
    assert opted_in.delete_pvc is True


# -- datasets -----------------------------------------------------------------------------------

IMAGENET = {"name": "imagenet", "mount_path": "/data/imagenet", "claim": "imagenet-ro"}
REFDATA = {
    "name": "refdata",
    "mount_path": "/data/ref",
    "csi": {"driver": "nfs.csi.k8s.io", "volumeAttributes": {"server": "nfs.example.org", "share": "/ref"}},
    "groups": ["genomics"],
}
WEIGHTS = {"name": "weights", "mount_path": "/data/weights", "claim": "model-weights", "sub_path": "v2", "profiles": ["gpu"]}
BOTH = {"name": "secret-sauce", "mount_path": "/data/sauce", "claim": "sauce", "profiles": ["gpu"], "groups": ["chefs"]}
DATASETS = [IMAGENET, REFDATA, WEIGHTS, BOTH]

V_IMAGENET = {"name": "jhplatform-data-imagenet", "persistentVolumeClaim": {"claimName": "imagenet-ro", "readOnly": True}}
M_IMAGENET = {"name": "jhplatform-data-imagenet", "mountPath": "/data/imagenet", "readOnly": True}
V_REFDATA = {
    "name": "jhplatform-data-refdata",
    "csi": {"driver": "nfs.csi.k8s.io", "volumeAttributes": {"server": "nfs.example.org", "share": "/ref"}, "readOnly": True},
}
M_REFDATA = {"name": "jhplatform-data-refdata", "mountPath": "/data/ref", "readOnly": True}
V_WEIGHTS = {"name": "jhplatform-data-weights", "persistentVolumeClaim": {"claimName": "model-weights", "readOnly": True}}
M_WEIGHTS = {"name": "jhplatform-data-weights", "mountPath": "/data/weights", "readOnly": True, "subPath": "v2"}
V_BOTH = {"name": "jhplatform-data-secret-sauce", "persistentVolumeClaim": {"claimName": "sauce", "readOnly": True}}
M_BOTH = {"name": "jhplatform-data-secret-sauce", "mountPath": "/data/sauce", "readOnly": True}


@pytest.mark.parametrize(
    "profile, groups, volumes, mounts",
    [
        pytest.param("cpu", [], [V_IMAGENET], [M_IMAGENET], id="everyone-gets-unrestricted"),
        pytest.param("", [], [V_IMAGENET], [M_IMAGENET], id="no-profiles-configured"),
        pytest.param("cpu", ["genomics"], [V_IMAGENET, V_REFDATA], [M_IMAGENET, M_REFDATA], id="group-member"),
        pytest.param("gpu", [], [V_IMAGENET, V_WEIGHTS], [M_IMAGENET, M_WEIGHTS], id="profile-with-sub-path"),
        pytest.param("gpu", ["chefs"], [V_IMAGENET, V_WEIGHTS, V_BOTH], [M_IMAGENET, M_WEIGHTS, M_BOTH], id="profile-and-group-both-match"),
        pytest.param("cpu", ["chefs"], [V_IMAGENET], [M_IMAGENET], id="group-without-profile"),
        pytest.param(
            "gpu", ["chefs", "genomics"], [V_IMAGENET, V_REFDATA, V_WEIGHTS, V_BOTH], [M_IMAGENET, M_REFDATA, M_WEIGHTS, M_BOTH], id="everything"
        ),
    ],
)
def test_dataset_volumes(profile, groups, volumes, mounts):
    before = copy.deepcopy(DATASETS)
    assert storage.dataset_volumes(DATASETS, profile, groups) == (volumes, mounts)
    assert DATASETS == before


def test_dataset_csi_read_only_cannot_be_unset():
    ds = {**REFDATA, "csi": {**REFDATA["csi"], "readOnly": True}}
    [volume], [mount] = storage.dataset_volumes([ds], "cpu", ["genomics"])
    assert volume["csi"]["readOnly"] is True and mount["readOnly"] is True


# -- scratch, /dev/shm, GPU detection ----------------------------------------------------------

SCRATCH_V = {"name": "jhplatform-scratch", "emptyDir": {"sizeLimit": "20Gi"}}
SCRATCH_M = {"name": "jhplatform-scratch", "mountPath": "/scratch"}


def shm_v(size):
    return {"name": "jhplatform-shm", "emptyDir": {"medium": "Memory", "sizeLimit": size}}


SHM_M = {"name": "jhplatform-shm", "mountPath": "/dev/shm"}


@pytest.mark.parametrize(
    "scratch, path, shm_setting, gpu, expected",
    [
        pytest.param(None, "/scratch", None, False, ([], []), id="cpu-defaults-nothing"),
        pytest.param(None, "/scratch", None, True, ([shm_v("1Gi")], [SHM_M]), id="gpu-default-shm-1Gi"),
        pytest.param(None, "/scratch", "", True, ([], []), id="gpu-shm-explicitly-off"),
        pytest.param(None, "/scratch", "4Gi", False, ([shm_v("4Gi")], [SHM_M]), id="cpu-explicit-shm"),
        pytest.param(None, "/scratch", "8Gi", True, ([shm_v("8Gi")], [SHM_M]), id="gpu-explicit-shm"),
        pytest.param("20Gi", "/scratch", None, False, ([SCRATCH_V], [SCRATCH_M]), id="scratch"),
        pytest.param(
            "20Gi", "/mnt/work", None, True,
            ([SCRATCH_V, shm_v("1Gi")], [{"name": "jhplatform-scratch", "mountPath": "/mnt/work"}, SHM_M]),
            id="scratch-elsewhere-and-gpu-shm",
        ),
        pytest.param("", "/scratch", "", False, ([], []), id="empty-strings-mean-off"),
    ],
)
def test_scratch_and_shm(scratch, path, shm_setting, gpu, expected):
    assert storage.scratch_volumes(scratch, path, storage.shm_size(shm_setting, gpu)) == expected


def pod_with(limits=None, requests=None, key="containers") -> dict:
    resources = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    return {"spec": {key: [{"name": "notebook", "resources": resources}]}}


@pytest.mark.parametrize(
    "pod, gpu",
    [
        pytest.param(pod_with(limits={"cpu": "2", "memory": "4Gi"}), False, id="cpu-only"),
        pytest.param(pod_with(limits={"nvidia.com/gpu": "1"}), True, id="nvidia-limit"),
        pytest.param(pod_with(requests={"amd.com/gpu": "1"}), True, id="amd-request"),
        pytest.param(pod_with(limits={"nvidia.com/mig-1g.5gb": "1"}), True, id="mig-slice"),
        pytest.param(pod_with(limits={"example.com/gpu-memory": "1"}), False, id="gpu-in-name-but-not-a-gpu"),
        pytest.param(pod_with(limits={"nvidia.com/gpu": "1"}, key="initContainers"), True, id="init-container"),
        pytest.param({"spec": {}}, False, id="empty-pod"),
    ],
)
def test_is_gpu_pod(pod, gpu):
    assert storage.is_gpu_pod(pod) is gpu


def test_add_volumes_keeps_the_configuration():
    pod = {
        "spec": {
            "containers": [
                {"name": "sidecar", "volumeMounts": []},
                {"name": "notebook", "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm/"}]},
            ],
            "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
        }
    }
    before = copy.deepcopy(pod)
    volumes, mounts = storage.scratch_volumes("20Gi", "/scratch", "1Gi")
    new, skipped = storage.add_volumes(pod, volumes, mounts)
    assert pod == before
    assert skipped == ["/dev/shm"]
    assert new == {
        "spec": {
            "containers": [
                {"name": "sidecar", "volumeMounts": []},
                {"name": "notebook", "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm/"}, SCRATCH_M]},
            ],
            "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}, {"name": "jhplatform-scratch", "emptyDir": {"sizeLimit": "20Gi"}}],
        }
    }


# -- validation -----------------------------------------------------------------------------------

USE_INSTEAD = (
    'Use a PersistentVolumeClaim ("claim": "<claim name>"; the claim can be bound to a PersistentVolume of any type, '
    'e.g. an NFS export) or a CSI volume ("csi": {"driver": "<driver>", "volumeAttributes": {...}}) instead.'
)


def forbidden(name: str, kind: str) -> str:
    return (
        f'dataset {name!r} uses an inline {kind} volume, which Pod Security Standards "restricted" forbids in user pods '
        f"(the namespace would refuse every pod that mounts it). {USE_INSTEAD}"
    )


@pytest.mark.parametrize(
    "datasets, problems",
    [
        pytest.param([IMAGENET, REFDATA, WEIGHTS, BOTH], [], id="valid"),
        pytest.param([], [], id="empty"),
        pytest.param({"name": "x"}, ["must be a list of dicts, not dict"], id="not-a-list"),
        pytest.param(["imagenet"], ["dataset #1: must be a dict like {'name': 'imagenet', 'mount_path': '/data/imagenet', 'claim': 'imagenet-ro'}, not str"], id="not-a-dict"),
        pytest.param([{"name": "ref", "mount_path": "/data/ref", "nfs": {"server": "nfs", "path": "/ref"}}], [forbidden("ref", "nfs")], id="nfs"),
        pytest.param([{"name": "ref", "mount_path": "/data/ref", "hostPath": {"path": "/mnt/ref"}}], [forbidden("ref", "hostPath")], id="hostPath"),
        pytest.param([{"name": "ref", "mount_path": "/data/ref", "iscsi": {}}], [forbidden("ref", "iscsi")], id="iscsi"),
        pytest.param([{"name": "ref", "mount_path": "/data/ref", "cephfs": {}}], [forbidden("ref", "cephfs")], id="cephfs"),
        pytest.param([{"name": "ref", "mount_path": "/data/ref", "gitRepo": {}}], [forbidden("ref", "gitRepo")], id="gitRepo"),
        pytest.param(
            [{"name": "ref", "mount_path": "/data/ref", "claim": "ref", "nfs": {}}],
            [forbidden("ref", "nfs")],
            id="forbidden-next-to-a-claim",
        ),
        pytest.param(
            [{"name": "ref", "mount_path": "/data/ref", "persistentVolumeClaim": {"claimName": "ref"}}],
            [
                f"dataset 'ref': 'persistentVolumeClaim' is not a dataset source (write \"claim\": \"<claim name>\"). {USE_INSTEAD}",
                "dataset 'ref': needs a source: 'claim' (the name of an existing PersistentVolumeClaim) or 'csi' (a CSI volume source)",
            ],
            id="kubernetes-volume-syntax",
        ),
        pytest.param(
            [{"name": "ref", "mountPath": "/data/ref", "claim": "ref"}],
            [
                "dataset 'ref': unknown key 'mountPath'; allowed keys are name, mount_path, claim, csi, sub_path, profiles, groups, read_only",
                "dataset 'ref': 'mount_path' is required (an absolute path such as '/data/imagenet')",
            ],
            id="misspelled-key",
        ),
        pytest.param(
            [{"mount_path": "/data/ref", "claim": "ref"}],
            ["dataset #1: 'name' is required (a lower-case DNS label such as 'imagenet')"],
            id="no-name",
        ),
        pytest.param(
            [{"name": "Ref_Data", "mount_path": "/data/ref", "claim": "ref"}],
            [
                "dataset 'Ref_Data': 'name' must be lower-case letters, digits and '-', start and end with a letter or digit, "
                "and be at most 47 characters (it names the pod's volume)"
            ],
            id="bad-name",
        ),
        pytest.param(
            [IMAGENET, {**IMAGENET, "mount_path": "/data/other"}],
            ["dataset 'imagenet': the name is used by dataset #1 too; names must be unique"],
            id="duplicate-name",
        ),
        pytest.param(
            [IMAGENET, {**IMAGENET, "name": "other", "mount_path": "/data/imagenet/"}],
            ["dataset 'other': mount_path '/data/imagenet' is used by dataset 'imagenet' too"],
            id="duplicate-path",
        ),
        pytest.param(
            [{"name": "ref", "mount_path": "data/ref", "claim": "ref"}],
            ["dataset 'ref': 'mount_path' must be an absolute path below '/', not 'data/ref'"],
            id="relative-path",
        ),
        pytest.param(
            [{"name": "ref", "mount_path": "/", "claim": "ref"}],
            ["dataset 'ref': 'mount_path' must be an absolute path below '/', not '/'"],
            id="root-path",
        ),
        pytest.param(
            [{"name": "ref", "mount_path": "/data/ref"}],
            ["dataset 'ref': needs a source: 'claim' (the name of an existing PersistentVolumeClaim) or 'csi' (a CSI volume source)"],
            id="no-source",
        ),
        pytest.param(
            [{"name": "ref", "mount_path": "/data/ref", "claim": "ref", "csi": {"driver": "d"}}],
            ["dataset 'ref': has both 'claim' and 'csi'; give exactly one source"],
            id="two-sources",
        ),
        pytest.param(
            [{"name": "ref", "mount_path": "/data/ref", "claim": "Ref Data"}],
            ["dataset 'ref': 'claim' must be the name of a PersistentVolumeClaim, not 'Ref Data'"],
            id="bad-claim-name",
        ),
        pytest.param(
            [{"name": "ref", "mount_path": "/data/ref", "csi": {"volumeAttributes": {}, "readonly": True}}],
            [
                "dataset 'ref': 'csi' needs a 'driver' (the CSI driver's name)",
                "dataset 'ref': unknown 'csi' key 'readonly'; allowed keys are driver, readOnly, fsType, volumeAttributes, nodePublishSecretRef",
            ],
            id="csi-without-driver",
        ),
        pytest.param(
            [{"name": "ref", "mount_path": "/data/ref", "csi": {"driver": "d", "readOnly": False}}],
            ["dataset 'ref': 'csi' sets readOnly: false, but shared datasets are always mounted read-only; remove it"],
            id="csi-writable",
        ),
        pytest.param(
            [{**IMAGENET, "read_only": False}],
            ["dataset 'imagenet': 'read_only' can only be True: shared datasets are always mounted read-only"],
            id="read-write-requested",
        ),
        pytest.param([{**IMAGENET, "read_only": True}], [], id="read-only-spelled-out"),
        pytest.param(
            [{**IMAGENET, "sub_path": "../other"}],
            ["dataset 'imagenet': 'sub_path' must be a relative path inside the volume (no leading '/', no '..'), not '../other'"],
            id="sub-path-escape",
        ),
        pytest.param(
            [{**IMAGENET, "profiles": "gpu", "groups": [""]}],
            [
                "dataset 'imagenet': 'profiles' must be a list of profile slugs, not 'gpu'",
                "dataset 'imagenet': 'groups' must be a list of group names, not ['']",
            ],
            id="filters-not-lists",
        ),
    ],
)
def test_validate_datasets(datasets, problems):
    assert storage.validate_datasets(datasets) == problems


def test_trait_refuses_forbidden_volume_type(devcluster):
    config = {"PlatformSpawner": {"shared_datasets": [{"name": "ref", "mount_path": "/data/ref", "nfs": {"server": "nfs", "path": "/"}}]}}
    with pytest.raises(TraitError) as info:
        make_spawner(PlatformSpawner, config=config)
    assert str(info.value) == "PlatformSpawner.shared_datasets: " + forbidden("ref", "nfs")


@pytest.mark.parametrize(
    "trait, value, message",
    [
        ("scratch_size_limit", "20Gx", "PlatformSpawner.scratch_size_limit: '20Gx' is not a Kubernetes quantity such as '1Gi' or '500Mi'"),
        ("scratch_size_limit", "0", "PlatformSpawner.scratch_size_limit: '0' must be larger than zero"),
        ("shm_size_limit", "lots", "PlatformSpawner.shm_size_limit: 'lots' is not a Kubernetes quantity such as '1Gi' or '500Mi'"),
        ("scratch_path", "scratch", "PlatformSpawner.scratch_path must be an absolute path below '/', not 'scratch'"),
    ],
)
def test_trait_refuses_bad_sizes_and_paths(devcluster, trait, value, message):
    with pytest.raises(TraitError) as info:
        make_spawner(PlatformSpawner, config={"PlatformSpawner": {trait: value}})
    assert str(info.value).startswith(message)


def hub_config(spawner: dict | None = None, kubespawner: dict | None = None) -> Config:
    c = Config()
    for key, value in (spawner or {}).items():
        setattr(c.PlatformSpawner, key, value)
    for key, value in (kubespawner or {}).items():
        setattr(c.KubeSpawner, key, value)
    return c


GPU_PROFILE = {"display_name": "GPU", "slug": "gpu", "kubespawner_override": {"shm_size_limit": "4Gi"}}


@pytest.mark.parametrize(
    "config, problems",
    [
        pytest.param(hub_config(), [], id="nothing-configured"),
        pytest.param(hub_config({"shared_datasets": DATASETS}, {"profile_list": [GPU_PROFILE]}), [], id="valid"),
        pytest.param(
            hub_config({"shared_datasets": [{"name": "ref", "mount_path": "/data/ref", "hostPath": {"path": "/ref"}}]}),
            ["PlatformSpawner.shared_datasets: " + forbidden("ref", "hostPath")],
            id="forbidden-type",
        ),
        pytest.param(
            hub_config(kubespawner={"shared_datasets": [{"name": "ref", "mount_path": "/data/ref", "hostPath": {"path": "/ref"}}]}),
            ["KubeSpawner.shared_datasets: " + forbidden("ref", "hostPath")],
            id="z2jh-hub-config-section",
        ),
        pytest.param(
            hub_config({"shared_datasets": [{**WEIGHTS, "profiles": ["gpu-large"]}]}, {"profile_list": [{"display_name": "GPU Large"}]}),
            [],
            id="slug-made-from-display-name",
        ),
        pytest.param(
            hub_config({"shared_datasets": [{**WEIGHTS, "profiles": ["gpu", "gpu-large"]}]}, {"profile_list": [GPU_PROFILE]}),
            [
                "PlatformSpawner.shared_datasets: dataset 'weights' lists profile 'gpu-large', which is not in profile_list "
                "(slugs: gpu); the dataset would never be mounted there"
            ],
            id="unknown-profile-slug",
        ),
        pytest.param(
            hub_config(
                kubespawner={
                    "profile_list": [
                        {
                            "display_name": "Bad",
                            "slug": "bad",
                            "kubespawner_override": {
                                "shared_datasets": [{"name": "x", "mount_path": "/x", "nfs": {}}],
                                "shm_size_limit": "big",
                                "scratch_size_limit": "-1Gi",
                            },
                        }
                    ]
                }
            ),
            [
                "PlatformSpawner.profile_list profile 'bad' kubespawner_override shared_datasets: " + forbidden("x", "nfs"),
                "PlatformSpawner.profile_list profile 'bad' kubespawner_override scratch_size_limit: '-1Gi' must be larger than zero",
                "PlatformSpawner.profile_list profile 'bad' kubespawner_override shm_size_limit: 'big' is not a Kubernetes quantity "
                "such as '1Gi' or '500Mi' (quantities must match the regular expression "
                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': 'big')",
            ],
            id="profile-overrides",
        ),
        pytest.param(
            hub_config({"shared_datasets": [IMAGENET, {"name": "b", "mount_path": "/b"}, {"name": "c", "mount_path": "/c", "nfs": {}}]}),
            [
                "PlatformSpawner.shared_datasets has 2 problems:\n"
                "  - dataset 'b': needs a source: 'claim' (the name of an existing PersistentVolumeClaim) or 'csi' (a CSI volume source)\n"
                "  - " + forbidden("c", "nfs")
            ],
            id="several-problems",
        ),
    ],
)
def test_storage_config_problems(config, problems):
    assert storage_config_problems(config) == problems


# -- home claims: lookup, expansion, refusals ---------------------------------------------------


def test_claim_candidates():
    assert storage.claim_candidates("claim-ada-2elovelace", "claim-ada-2elovelace") == ["claim-ada-2elovelace"]
    assert storage.claim_candidates("claim-ada-lovelace---4c0d3c1f", "claim-ada-2elovelace") == [
        "claim-ada-lovelace---4c0d3c1f",
        "claim-ada-2elovelace",
    ]
    assert storage.claim_candidates("claim-ada", None) == ["claim-ada"]


def home(name, user=None, server=None, created="2024-01-01T00:00:00Z", component="singleuser-storage", deleting=False, size="10Gi", label=None):
    md = {"name": name, "namespace": "jhub", "creationTimestamp": created, "labels": {"component": component}, "annotations": {}}
    if user is not None:
        md["annotations"]["hub.jupyter.org/username"] = user
    if label is not None:
        md["labels"]["hub.jupyter.org/username"] = label
    if server:
        md["annotations"]["hub.jupyter.org/servername"] = server
    if deleting:
        md["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": md, "spec": {"resources": {"requests": {"storage": size}}}, "status": {"capacity": {"storage": size}}}


@pytest.mark.parametrize(
    "claims, user, server, expected",
    [
        pytest.param([home("a", "ada")], "ada", "", ["a"], id="one"),
        pytest.param([home("new", "ada", created="2025-01-01T00:00:00Z"), home("old", "ada")], "ada", "", ["old", "new"], id="oldest-first"),
        pytest.param([home("a", "ada", server="gpu")], "ada", "", [], id="other-server"),
        pytest.param([home("a", "ada", server="gpu")], "ada", "gpu", ["a"], id="named-server"),
        pytest.param([home("a", "Ada")], "ada", "", [], id="names-are-exact"),
        pytest.param([home("a", label="ada")], "ada", "", [], id="label-alone-is-not-enough"),
        pytest.param([home("a", "ada", component="singleuser-server")], "ada", "", [], id="not-a-home-claim"),
        pytest.param([home("a", "ada", deleting=True)], "ada", "", [], id="being-deleted"),
    ],
)
def test_labelled_claims(claims, user, server, expected):
    assert [c["metadata"]["name"] for c in storage.labelled_claims(claims, user, server)] == expected


@pytest.mark.parametrize(
    "claim, user, server, expected",
    [
        pytest.param(home("claim-ada", "ada"), "ada", "", None, id="own"),
        pytest.param(home("claim-ada--gpu", "ada", server="gpu"), "ada", "gpu", None, id="own-named-server"),
        # KubeSpawner 7's name for user "a-2eb" is KubeSpawner 6's name for user "a.b".
        pytest.param(home("claim-a-2eb", "a-2eb"), "a.b", "", "a-2eb", id="another-users-claim"),
        pytest.param(home("claim-ada--gpu", "ada", server="gpu"), "ada", "", "ada/gpu", id="own-other-server"),
        pytest.param(home("claim-ada", "ada"), "ada", "gpu", "ada", id="own-default-server-for-a-named-one"),
        pytest.param(home("claim-a-2eb"), "a.b", "", None, id="unannotated-cannot-be-told-apart"),
    ],
)
def test_claim_owner_conflict(claim, user, server, expected):
    assert storage.claim_owner_conflict(claim, user, server) == expected


@pytest.mark.parametrize(
    "current, wanted, expand",
    [
        pytest.param("10Gi", "100Gi", True, id="grow"),
        pytest.param("10Gi", "10Gi", False, id="same"),
        pytest.param("10Gi", "10737418240", False, id="same-in-bytes"),
        pytest.param("10Gi", "10G", False, id="decimal-is-smaller"),
        pytest.param("10G", "10Gi", True, id="binary-is-larger"),
        pytest.param("100Gi", "10Gi", False, id="never-shrink"),
        pytest.param("10Gi", None, False, id="no-capacity-configured"),
        pytest.param(None, "10Gi", False, id="claim-without-request"),
        pytest.param("10Gi", "lots", False, id="unparseable"),
    ],
)
def test_needs_expansion(current, wanted, expand):
    assert storage.needs_expansion(current, wanted) is expand


@pytest.mark.parametrize(
    "status, message, reason",
    [
        pytest.param(
            403,
            'persistentvolumeclaims "claim-ada" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize',
            "not-expandable",
            id="resize-admission",
        ),
        pytest.param(
            403,
            'persistentvolumeclaims "claim-ada" is forbidden: User "system:serviceaccount:jhub:hub" cannot patch resource "persistentvolumeclaims" in API group "" in the namespace "jhub"',
            "forbidden",
            id="rbac",
        ),
        pytest.param(403, 'persistentvolumeclaims "claim-ada" is forbidden: exceeded quota: storage, requested: requests.storage=90Gi', "quota", id="quota"),
        pytest.param(403, 'persistentvolumeclaims "claim-ada" is forbidden: Only bound persistent volume claims can be expanded', "not-bound", id="unbound-403"),
        pytest.param(
            422,
            'PersistentVolumeClaim "claim-ada" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims',
            "not-bound",
            id="unbound-422",
        ),
        pytest.param(422, 'PersistentVolumeClaim "claim-ada" is invalid: spec.resources[storage]: Invalid value', "invalid", id="invalid"),
        pytest.param(500, "etcdserver: request timed out", "error", id="server-error"),
    ],
)
def test_resize_refusal(status, message, reason):
    assert storage.resize_refusal(status, message) == reason
    assert reason in storage.RESIZE_REFUSALS


# -- retention -----------------------------------------------------------------------------------


def slug(name: str) -> str:
    return name.lower().replace(".", "-")


@pytest.mark.parametrize(
    "claims, users, expected",
    [
        pytest.param([home("claim-ada", "ada")], ["ada"], [], id="user-exists"),
        pytest.param(
            [home("claim-bob", "bob", size="20Gi", created="2025-03-01T10:00:00Z")],
            ["ada"],
            [storage.OrphanedClaim("claim-bob", "jhub", "bob", "", "20Gi", "2025-03-01T10:00:00Z")],
            id="user-gone",
        ),
        pytest.param(
            [home("claim-bob--gpu", "bob", server="gpu")],
            [],
            [storage.OrphanedClaim("claim-bob--gpu", "jhub", "bob", "gpu", "10Gi", "2024-01-01T00:00:00Z")],
            id="named-server-claim",
        ),
        pytest.param([home("claim-old", label="bob-smith")], ["Bob.Smith"], [], id="label-only-matches-slug"),
        pytest.param(
            [home("claim-old", label="carol")],
            ["Bob.Smith"],
            [storage.OrphanedClaim("claim-old", "jhub", "carol", "", "10Gi", "2024-01-01T00:00:00Z")],
            id="label-only-no-user",
        ),
        pytest.param([home("claim-x")], [], [], id="no-owner-not-listed"),
        pytest.param([home("data", "bob", component="dataset")], [], [], id="not-a-home-claim"),
        pytest.param([home("claim-ADA", "ADA")], ["ada"], [storage.OrphanedClaim("claim-ADA", "jhub", "ADA", "", "10Gi", "2024-01-01T00:00:00Z")], id="raw-names-are-exact"),
        pytest.param(
            [home("z", "zed"), home("a", "al")],
            [],
            [
                storage.OrphanedClaim("a", "jhub", "al", "", "10Gi", "2024-01-01T00:00:00Z"),
                storage.OrphanedClaim("z", "jhub", "zed", "", "10Gi", "2024-01-01T00:00:00Z"),
            ],
            id="sorted-by-name",
        ),
    ],
)
def test_orphaned_claims(claims, users, expected):
    assert storage.orphaned_claims(claims, users, slug=slug) == expected


NOW = datetime(2025, 3, 10, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "created, age",
    [
        ("2025-03-10T11:59:15Z", "45s"),
        ("2025-03-10T11:48:00Z", "12m"),
        ("2025-03-10T07:00:00Z", "5h"),
        ("2025-03-07T12:00:00Z", "3d"),
        ("2025-03-10T12:00:30Z", "0s"),
        ("", "?"),
        ("yesterday", "?"),
    ],
)
def test_format_age(created, age):
    assert storage.format_age(created, NOW) == age


# -- the orphaned-claims command's helpers --------------------------------------------------------


@pytest.mark.parametrize(
    "hub_url",
    ["https://jupyter.example.org", "https://jupyter.example.org/", "https://jupyter.example.org/hub", "https://jupyter.example.org/hub/api/"],
)
def test_users_url(hub_url):
    from jhplatform.cli.orphaned_claims import users_url

    assert users_url(hub_url) == "https://jupyter.example.org/hub/api/users"


def test_render_table():
    from jhplatform.cli.orphaned_claims import render_table

    orphans = [
        storage.OrphanedClaim("claim-bob", "jhub", "bob", "", "10Gi", "2025-03-07T12:00:00Z"),
        storage.OrphanedClaim("claim-gone--gpu", "jhub", "gone", "gpu", "100Gi", "2025-03-10T07:00:00Z"),
    ]
    assert render_table(orphans, NOW).splitlines() == [
        "CLAIM            USER  SERVER  SIZE   AGE",
        "claim-bob        bob   -       10Gi   3d",
        "claim-gone--gpu  gone  gpu     100Gi  5h",
    ]
