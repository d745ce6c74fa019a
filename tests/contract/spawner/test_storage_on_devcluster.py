"""PlatformSpawner's storage against the emulator: real spawns, real claims, real admission.

We test these aspects:
- the emulator serves StorageClasses (``storage.k8s.io/v1``) with ``standard`` (default,
  expandable) and ``fixed`` (not expandable) at bootstrap, applies DefaultStorageClass to new
  claims, and refuses claim changes like an apiserver: growing a ``fixed`` claim (403 from
  PersistentVolumeClaimResize), shrinking below capacity and resizing an unbound claim (422);
- a spawn creates the home claim with the chosen profile's size, class, labels and
  annotations, mounts it, and the pod (fsGroup 100) runs;
- an existing claim is reused instead of a new empty one: under KubeSpawner's older "escape"
  name, under a name only its annotations tie to the user, and a name remembered in the hub's
  state; the user is told, and no claim is created;
- a larger profile requests an expansion: with an expandable class the claim grows and the
  user is told so (also through ``progress()``); with ``fixed`` the size stays and the user is
  told; a smaller profile never shrinks the claim;
- a failing claim lookup stops the spawn before anything is created;
- another user's claim is never used: under the user's older "escape" name (user ``a.b``,
  claim ``claim-a-2eb`` annotated for user ``a-2eb``) it is skipped and a claim of the user's
  own is created; under the user's current name the spawn stops with a message, nothing created;
- shared datasets (a ReadOnlyMany claim and a CSI volume) are mounted read-only and admitted;
- every storage configuration an admin can write is admitted by an ``enforce=restricted``
  namespace and reaches Running; every inline volume type PSS restricted forbids is refused at
  config load with the exact message (and would have been refused by the namespace);
- ``delete_forever`` keeps the claim by default and deletes it when the admin opts in;
- ``jhplatform orphaned-claims`` lists claims whose user the hub no longer has, following the
  hub's pagination, and explains a token without ``list:users``.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
from pathlib import Path

import pytest
from aiohttp import web
from kubernetes_asyncio import client, config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException
from traitlets import TraitError
from traitlets.config import Config

from doubles import make_spawner
from helpers import wait_for
from jhplatform.cli import orphaned_claims
from jhplatform.devcluster.errors import ApiError
from jhplatform.devcluster.faults import Fault
from jhplatform.policy.security import restricted_violations
from jhplatform.spawner import PlatformSpawner
from jhplatform.spawner.checks import fail_on_load_time_problems
from jhplatform.spawner.storage import StorageError

NS = "jhub"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}
IMAGE = "quay.io/jupyter/pytorch-notebook:2025-01-06"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "kubespawner_override": {"cpu_limit": 2}},
    {
        "display_name": "Large",
        "slug": "large",
        "kubespawner_override": {
            "storage_capacity": "50Gi",
            "storage_extra_labels": {"backup.example.org/policy": "daily"},
            "storage_extra_annotations": {"snapshot.example.org/schedule": "hourly"},
        },
    },
    {"display_name": "Small", "slug": "small", "kubespawner_override": {"storage_capacity": "5Gi"}},
    {"display_name": "Fixed", "slug": "fixed", "kubespawner_override": {"storage_class": "fixed", "storage_capacity": "20Gi"}},
    {"display_name": "Fixed, large", "slug": "fixed-large", "kubespawner_override": {"storage_class": "fixed", "storage_capacity": "80Gi"}},
    {
        "display_name": "GPU",
        "slug": "gpu",
        "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}, "tolerations": [GPU_TOLERATION]},
    },
]

HOME = {
    "namespace": NS,
    "start_timeout": 20,
    "image": IMAGE,
    "storage_pvc_ensure": True,
    "storage_capacity": "10Gi",
    "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}],
    "volume_mounts": [{"name": "home", "mountPath": "/home/jovyan"}],
    "profile_list": PROFILES,
}


def settings(**extra) -> dict:
    values = copy.deepcopy(HOME)
    values.update(extra)
    return {"PlatformSpawner": values}


@pytest.fixture
def jhub(cluster):
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS, "labels": RESTRICTED}})
    return cluster


def claims(cluster, ns: str = NS) -> dict[str, dict]:
    return {c["metadata"]["name"]: c for c in cluster.cluster.list("persistentvolumeclaims", ns)}


def claim_creates(cluster, since: int) -> list[str]:
    return [r["path_qs"] for r in list(cluster.requests)[since:] if r.get("resource") == "persistentvolumeclaims" and r.get("verb") == "create"]


def make_claim(cluster, name: str, size: str = "10Gi", storage_class: str | None = "standard", labels=None, annotations=None, modes=("ReadWriteOnce",)):
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    body = {"metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}}, "spec": spec}
    return cluster.cluster.create("persistentvolumeclaims", NS, body)


async def bound(cluster, name: str, ns: str = NS) -> dict:
    def check():
        c = cluster.cluster.store.find("persistentvolumeclaims", ns, name)
        return c if c and c.get("status", {}).get("phase") == "Bound" else None

    return await wait_for(check, 5, message=f"claim {name} bound")


async def spawn(cluster, cfg: dict, *, user: str = "ada", profile: str | None = None, server: str = "", groups=(), state: dict | None = None):
    """Start a server like JupyterHub does (state loaded first) and return (spawner, pod)."""
    spawner = make_spawner(PlatformSpawner, user=user, server_name=server, config=cfg, groups=groups)
    if state is not None:
        spawner.load_state(state)
    spawner.user_options = {"profile": profile} if profile else {}
    await spawner.start()
    pod = cluster.cluster.get("pods", NS, spawner.pod_name)
    assert pod["status"]["phase"] == "Running"
    assert restricted_violations(pod) == []
    return spawner, pod


async def stop(spawner) -> dict:
    """Stop like JupyterHub does; returns the state the hub would save."""
    await spawner.stop()
    state = spawner.get_state()
    spawner.clear_state()
    return state


def home_claim_of(pod: dict) -> str:
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "home"]
    return volume["persistentVolumeClaim"]["claimName"]


# -- the emulator's StorageClasses and claim admission ----------------------------------------


async def test_storage_classes_served(jhub):
    cfg = client.Configuration()
    await k8s_config.load_kube_config(config_file=str(jhub.write_kubeconfig(jhub.state_dir / "sc.kubeconfig")), client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as api:
        storage_api = client.StorageV1Api(api)
        classes = {c.metadata.name: c for c in (await storage_api.list_storage_class()).items}
        assert set(classes) == {"standard", "fixed"}
        assert classes["standard"].allow_volume_expansion is True
        assert classes["standard"].metadata.annotations == {"storageclass.kubernetes.io/is-default-class": "true"}
        assert classes["fixed"].allow_volume_expansion is False
        assert (classes["fixed"].reclaim_policy, classes["fixed"].volume_binding_mode) == ("Delete", "Immediate")
        created = await storage_api.create_storage_class(
            client.V1StorageClass(metadata=client.V1ObjectMeta(name="fast"), provisioner="example.com/ssd", allow_volume_expansion=True)
        )
        assert created.api_version == "storage.k8s.io/v1"
        with pytest.raises(ApiException) as info:
            await storage_api.create_storage_class(client.V1StorageClass(metadata=client.V1ObjectMeta(name="broken"), provisioner=""))
        assert info.value.status == 422
        assert json.loads(info.value.body)["message"] == 'StorageClass "broken" is invalid: provisioner: Required value'
        groups = await client.ApisApi(api).get_api_versions()
        assert [g.name for g in groups.groups] == [
            "authorization.k8s.io", "networking.k8s.io", "rbac.authorization.k8s.io", "storage.k8s.io"]
        resources = await storage_api.get_api_resources()
        assert [r.name for r in resources.resources] == ["storageclasses"]
        # StorageClasses are not in the core group.
        core = await client.CoreV1Api(api).get_api_resources()
        assert "storageclasses" not in {r.name for r in core.resources}


async def test_claim_admission(jhub):
    c = jhub.cluster
    defaulted = make_claim(jhub, "defaulted", storage_class=None)
    assert defaulted["spec"]["storageClassName"] == "standard"
    make_claim(jhub, "fixed", storage_class="fixed")
    unbound = make_claim(jhub, "unbound", storage_class="standard")
    assert unbound["status"]["phase"] == "Pending"

    def grow(name, size):
        return c.patch("persistentvolumeclaims", NS, name, {"spec": {"resources": {"requests": {"storage": size}}}}, "application/merge-patch+json")

    # Bypass the binder for "unbound": its resize must be refused while Pending.
    with pytest.raises(ApiError) as info:
        grow("unbound", "20Gi")
    assert (info.value.code, info.value.message) == (
        422,
        'PersistentVolumeClaim "unbound" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests '
        "and volumeAttributesClassName for bound claims",
    )
    await bound(jhub, "defaulted")
    await bound(jhub, "fixed")
    with pytest.raises(ApiError) as info:
        grow("fixed", "20Gi")
    assert (info.value.code, info.value.message) == (
        403,
        'persistentvolumeclaims "fixed" is forbidden: only dynamically provisioned pvc can be resized and the storageclass '
        "that provisions the pvc must support resize",
    )
    grown = grow("defaulted", "20Gi")
    assert grown["spec"]["resources"]["requests"]["storage"] == "20Gi"
    await wait_for(lambda: c.get("persistentvolumeclaims", NS, "defaulted")["status"]["capacity"]["storage"] == "20Gi", 5)
    with pytest.raises(ApiError) as info:
        grow("defaulted", "5Gi")
    assert (info.value.code, info.value.message) == (
        422,
        'PersistentVolumeClaim "defaulted" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than status.capacity',
    )
    with pytest.raises(ApiError) as info:
        c.patch("persistentvolumeclaims", NS, "defaulted", {"spec": {"storageClassName": "fixed"}}, "application/merge-patch+json")
    assert info.value.code == 422
    # Labels and annotations stay editable (backup tools label claims after the fact).
    c.patch("persistentvolumeclaims", NS, "fixed", {"metadata": {"labels": {"backup": "weekly"}}}, "application/merge-patch+json")


# -- claim creation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "profile, size, storage_class, extra_labels, extra_annotations",
    [
        pytest.param("cpu", "10Gi", "standard", {}, {}, id="default-profile-default-class"),
        pytest.param(
            "large", "50Gi", "standard", {"backup.example.org/policy": "daily"}, {"snapshot.example.org/schedule": "hourly"}, id="large"
        ),
        pytest.param("fixed", "20Gi", "fixed", {}, {"volume.beta.kubernetes.io/storage-class": "fixed"}, id="fixed-class"),
    ],
)
async def test_claim_created_with_profile_settings(jhub, profile, size, storage_class, extra_labels, extra_annotations):
    spawner, pod = await spawn(jhub, settings(), profile=profile)
    claim = claims(jhub)["claim-ada"]
    assert home_claim_of(pod) == "claim-ada"
    assert claim["spec"]["resources"]["requests"]["storage"] == size
    assert claim["spec"]["storageClassName"] == storage_class
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    labels = claim["metadata"]["labels"]
    assert {k: labels[k] for k in ("component", "hub.jupyter.org/username")} == {"component": "singleuser-storage", "hub.jupyter.org/username": "ada"}
    assert {k: labels[k] for k in extra_labels} == extra_labels
    annotations = claim["metadata"]["annotations"]
    assert annotations["hub.jupyter.org/username"] == "ada"
    assert {k: annotations[k] for k in extra_annotations} == extra_annotations
    assert pod["spec"]["securityContext"]["fsGroup"] == 100
    assert spawner.storage_messages == []
    state = await stop(spawner)
    assert state["pvc_name"] == "claim-ada"
    assert state["jhplatform_pvc_names"] == {"claim-{user_server}": "claim-ada"}
    assert "claim-ada" in claims(jhub), "stopping keeps the claim"


async def test_named_server_gets_its_own_claim(jhub):
    default, _ = await spawn(jhub, settings())
    named, pod = await spawn(jhub, settings(), server="gpu-box", profile="large")
    assert home_claim_of(pod) == "claim-ada--gpu-box"
    assert set(claims(jhub)) == {"claim-ada", "claim-ada--gpu-box"}
    assert claims(jhub)["claim-ada--gpu-box"]["metadata"]["annotations"]["hub.jupyter.org/servername"] == "gpu-box"
    await stop(default)
    await stop(named)


# -- reuse of existing claims -------------------------------------------------------------------

MARKER = {"jhplatform-test/marker": "existing"}


@pytest.mark.parametrize(
    "user, existing, state, told",
    [
        pytest.param("ada.lovelace", "claim-ada-2elovelace", None, True, id="kubespawner-6-escape-name"),
        pytest.param("ada", "home-ada-2023", None, True, id="annotated-claim-under-other-template"),
        pytest.param("ada", "old-home-of-ada", {"pvc_name": "old-home-of-ada", "kubespawner_version": "7.1.0"}, False, id="remembered-in-state"),
    ],
)
async def test_existing_claim_reused(jhub, user, existing, state, told):
    labels = {**MARKER, "component": "singleuser-storage", "hub.jupyter.org/username": user}
    make_claim(jhub, existing, "3Gi", labels=labels, annotations={"hub.jupyter.org/username": user})
    await bound(jhub, existing)
    before = len(jhub.requests)
    spawner, pod = await spawn(jhub, settings(), user=user, state=state)
    assert home_claim_of(pod) == existing
    assert claim_creates(jhub, before) == [], "no claim may be created next to the user's existing one"
    assert list(claims(jhub)) == [existing]
    assert claims(jhub)[existing]["metadata"]["labels"]["jhplatform-test/marker"] == "existing"
    # The profile asks for 10Gi and the existing claim has 3Gi: it grows (standard class).
    assert claims(jhub)[existing]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    reuse = f"Using your existing home volume {existing} (named under an earlier hub configuration); your files are there."
    assert (reuse in spawner.storage_messages) is told
    state = await stop(spawner)
    assert state["pvc_name"] == existing
    # The next start goes straight to the remembered claim, without telling the user again.
    again, pod = await spawn(jhub, settings(), user=user, state=state)
    assert home_claim_of(pod) == existing and again.storage_messages == []
    await stop(again)


async def test_remembered_claim_gone_is_reported(jhub):
    spawner, _ = await spawn(jhub, settings(), state={"pvc_name": "deleted-by-admin", "kubespawner_version": "7.1.0"})
    assert spawner.storage_messages == [
        "Your previous home volume deleted-by-admin no longer exists, so a new, empty home volume claim-ada is being created. "
        "Contact your hub admin if you expected your files."
    ]
    assert list(claims(jhub)) == ["claim-ada"]
    await stop(spawner)


async def test_lookup_failure_stops_the_spawn(jhub):
    jhub.faults.add(Fault(verb="get", resource="persistentvolumeclaims", status=500, count=None))
    before = len(jhub.requests)
    spawner = make_spawner(PlatformSpawner, user="ada", config=settings())
    with pytest.raises(StorageError) as info:
        await spawner.start()
    assert "your home volume could not be looked up" in info.value.jupyterhub_message
    assert "Nothing was created" in info.value.jupyterhub_message
    assert "Could not look up home claim jhub/claim-ada for ada: 500" in str(info.value)
    assert claim_creates(jhub, before) == []
    assert jhub.cluster.store.find("pods", NS, "jupyter-ada") is None


async def test_another_users_claim_under_the_older_name_is_skipped(jhub):
    # KubeSpawner 7 named user a-2eb's claim claim-a-2eb: KubeSpawner 6's name for user a.b.
    make_claim(jhub, "claim-a-2eb", labels={"component": "singleuser-storage", "hub.jupyter.org/username": "a-2eb"},
               annotations={"hub.jupyter.org/username": "a-2eb"})
    spawner, pod = await spawn(jhub, settings(), user="a.b")
    assert home_claim_of(pod) == spawner.pvc_name != "claim-a-2eb"
    assert claims(jhub)[spawner.pvc_name]["metadata"]["annotations"]["hub.jupyter.org/username"] == "a.b"
    assert spawner.storage_messages == []
    await stop(spawner)


async def test_another_users_claim_under_the_current_name_stops_the_spawn(jhub):
    make_claim(jhub, "claim-ada", labels={"component": "singleuser-storage"}, annotations={"hub.jupyter.org/username": "someone-else"})
    before = len(jhub.requests)
    spawner = make_spawner(PlatformSpawner, user="ada", config=settings())
    with pytest.raises(StorageError) as info:
        await spawner.start()
    assert info.value.jupyterhub_message == (
        "Your server could not start because the name of your home volume is taken by another user's volume. "
        "Nothing was created or mounted. Please contact your hub admin.")
    assert "Home claim jhub/claim-ada of ada is annotated for 'someone-else'" in str(info.value)
    assert claim_creates(jhub, before) == []
    assert jhub.cluster.store.find("pods", NS, "jupyter-ada") is None


# -- expansion -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first, second, requested, capacity, message",
    [
        pytest.param(
            "cpu", "large", "50Gi", "50Gi",
            "Your home volume claim-ada is being expanded from 10Gi to 50Gi. The extra space appears once the storage system "
            "has resized it; your files stay where they are.",
            id="expandable-class-grows",
        ),
        pytest.param(
            "fixed", "fixed-large", "20Gi", "20Gi",
            "Your home volume claim-ada stays at 20Gi: this server asks for 80Gi, but its storage cannot be resized. "
            "Your files are unchanged; ask your hub admin if you need more space.",
            id="fixed-class-stays",
        ),
        pytest.param("large", "small", "50Gi", "50Gi", None, id="smaller-profile-never-shrinks"),
    ],
)
async def test_expansion(jhub, caplog, first, second, requested, capacity, message):
    caplog.set_level("INFO")
    spawner, _ = await spawn(jhub, settings(), profile=first)
    await bound(jhub, "claim-ada")
    state = await stop(spawner)
    uid = claims(jhub)["claim-ada"]["metadata"]["uid"]
    # Start the way JupyterHub does: progress() is read while the start is pending.
    again = make_spawner(PlatformSpawner, user="ada", config=settings())
    again.load_state(state)
    again.user_options = {"profile": second}
    starting = again.start()
    events = [e async for e in again.progress()]
    await starting
    pod = jhub.cluster.get("pods", NS, again.pod_name)
    assert home_claim_of(pod) == "claim-ada"
    assert again.storage_messages == ([message] if message else [])
    # The user sees it on the spawn page once, and before any event of the new pod (KubeSpawner
    # may replay the previous pod's events first).
    new_pod = [i for i, e in enumerate(events) if (e.get("raw_event") or {}).get("involvedObject", {}).get("uid") == pod["metadata"]["uid"]]
    if message:
        [shown] = [i for i, e in enumerate(events) if e == {"message": message}]
        assert not new_pod or shown < new_pod[0]
    else:
        assert "claim-ada keeps its 50Gi (profile 'Small' asks for 5Gi; claims are never shrunk)" in caplog.text
    assert any("raw_event" in e for e in events)
    claim = claims(jhub)["claim-ada"]
    assert claim["metadata"]["uid"] == uid, "the claim is never re-created"
    assert claim["spec"]["resources"]["requests"]["storage"] == requested
    await wait_for(lambda: claims(jhub)["claim-ada"]["status"]["capacity"]["storage"] == capacity, 5, message="capacity")
    await stop(again)


async def test_resize_refusal_is_logged_for_the_admin(jhub, caplog):
    spawner, _ = await spawn(jhub, settings(), profile="fixed")
    await bound(jhub, "claim-ada")
    state = await stop(spawner)
    caplog.set_level("WARNING")
    again, _ = await spawn(jhub, settings(), profile="fixed-large", state=state)
    [line] = [r.getMessage() for r in caplog.records if "stays at" in r.getMessage()]
    assert line == (
        "ada: home claim jhub/claim-ada stays at 20Gi: resize to 80Gi for profile 'Fixed, large' refused because its "
        "StorageClass does not allow volume expansion (allowVolumeExpansion is not true), or it was not dynamically "
        'provisioned (403: persistentvolumeclaims "claim-ada" is forbidden: only dynamically provisioned pvc can be resized '
        "and the storageclass that provisions the pvc must support resize)"
    )
    await stop(again)


# -- shared datasets and every storage configuration ---------------------------------------------

DATASETS = [
    {"name": "imagenet", "mount_path": "/data/imagenet", "claim": "imagenet-ro"},
    {
        "name": "refdata",
        "mount_path": "/data/ref",
        "csi": {"driver": "nfs.csi.k8s.io", "volumeAttributes": {"server": "nfs.example.org", "share": "/ref"}},
        "groups": ["genomics"],
    },
    {"name": "weights", "mount_path": "/data/weights", "claim": "imagenet-ro", "sub_path": "weights", "profiles": ["gpu"]},
]


async def test_read_only_datasets_mounted(jhub):
    make_claim(jhub, "imagenet-ro", "500Gi", modes=("ReadOnlyMany",))
    spawner, pod = await spawn(jhub, settings(shared_datasets=DATASETS), groups=("genomics",))
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["jhplatform-data-imagenet"] == {
        "name": "jhplatform-data-imagenet",
        "persistentVolumeClaim": {"claimName": "imagenet-ro", "readOnly": True},
    }
    assert volumes["jhplatform-data-refdata"] == {
        "name": "jhplatform-data-refdata",
        "csi": {"driver": "nfs.csi.k8s.io", "readOnly": True, "volumeAttributes": {"server": "nfs.example.org", "share": "/ref"}},
    }
    assert "jhplatform-data-weights" not in volumes, "the CPU profile does not get the GPU-only dataset"
    mounts = [m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"].startswith("jhplatform-data-")]
    assert mounts == [
        {"mountPath": "/data/imagenet", "name": "jhplatform-data-imagenet", "readOnly": True},
        {"mountPath": "/data/ref", "name": "jhplatform-data-refdata", "readOnly": True},
    ]
    await stop(spawner)


CONFIGURATIONS = [
    pytest.param({}, {}, id="home-only"),
    pytest.param({"shared_datasets": DATASETS}, {"groups": ("genomics",)}, id="datasets-pvc-and-csi"),
    pytest.param({"shared_datasets": DATASETS}, {"profile": "gpu"}, id="datasets-gpu-sub-path-and-default-shm"),
    pytest.param({"scratch_size_limit": "20Gi"}, {}, id="scratch"),
    pytest.param({"scratch_size_limit": "20Gi", "scratch_path": "/home/jovyan/scratch"}, {}, id="scratch-inside-home"),
    pytest.param({"shm_size_limit": "2Gi"}, {}, id="explicit-shm-cpu"),
    pytest.param({"shm_size_limit": ""}, {"profile": "gpu"}, id="shm-off-on-gpu"),
    pytest.param({}, {"profile": "fixed"}, id="fixed-class"),
    pytest.param({}, {"profile": "large", "server": "big"}, id="named-server-large"),
    pytest.param({"storage_access_modes": ["ReadWriteOncePod"]}, {}, id="rwop-home"),
    pytest.param({"read_only_root_filesystem": False, "scratch_size_limit": "1Gi"}, {}, id="writable-root"),
    pytest.param(
        {
            "shared_datasets": DATASETS,
            "scratch_size_limit": "100Gi",
            "shm_size_limit": "8Gi",
            "volumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}},
                {"name": "projects", "persistentVolumeClaim": {"claimName": "team-projects"}},
            ],
            "volume_mounts": [{"name": "home", "mountPath": "/home/jovyan"}, {"name": "projects", "mountPath": "/projects"}],
        },
        {"profile": "gpu", "groups": ("genomics",), "server": "train"},
        id="everything",
    ),
]


@pytest.mark.parametrize("extra, how", CONFIGURATIONS)
async def test_restricted_namespace_admits_every_storage_configuration(jhub, extra, how):
    make_claim(jhub, "imagenet-ro", "500Gi", modes=("ReadOnlyMany",))
    make_claim(jhub, "team-projects", "1Ti", modes=("ReadWriteMany",))
    spawner, pod = await spawn(jhub, settings(**extra), profile=how.get("profile"), server=how.get("server", ""), groups=how.get("groups", ()))
    notebook = pod["spec"]["containers"][0]
    paths = {m["mountPath"]: m for m in notebook["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert "/home/jovyan" in paths
    gpu = how.get("profile") == "gpu"
    shm = extra.get("shm_size_limit", "1Gi" if gpu else None)
    if shm:
        assert volumes[paths["/dev/shm"]["name"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": shm}
    else:
        assert "/dev/shm" not in paths
    if extra.get("scratch_size_limit"):
        path = extra.get("scratch_path", "/scratch")
        assert volumes[paths[path]["name"]]["emptyDir"] == {"sizeLimit": extra["scratch_size_limit"]}
    for m in notebook["volumeMounts"]:
        if m["name"].startswith("jhplatform-data-"):
            assert m["readOnly"] is True
    await stop(spawner)


FORBIDDEN = {
    "nfs": {"server": "nfs.example.org", "path": "/exports/ref"},
    "hostPath": {"path": "/mnt/datasets/ref"},
    "iscsi": {"targetPortal": "10.0.0.1:3260", "iqn": "iqn.2001-04.com.example:storage", "lun": 0},
    "glusterfs": {"endpoints": "glusterfs-cluster", "path": "ref"},
    "rbd": {"monitors": ["10.0.0.1:6789"], "image": "ref"},
    "cephfs": {"monitors": ["10.0.0.1:6789"]},
    "azureFile": {"secretName": "azure", "shareName": "ref"},
    "gcePersistentDisk": {"pdName": "ref"},
    "awsElasticBlockStore": {"volumeID": "vol-0123"},
    "gitRepo": {"repository": "https://example.org/ref.git"},
}


def forbidden_message(kind: str) -> str:
    return (
        f'PlatformSpawner.shared_datasets: dataset \'ref\' uses an inline {kind} volume, which Pod Security Standards "restricted" '
        "forbids in user pods (the namespace would refuse every pod that mounts it). Use a PersistentVolumeClaim "
        '("claim": "<claim name>"; the claim can be bound to a PersistentVolume of any type, e.g. an NFS export) or a CSI '
        'volume ("csi": {"driver": "<driver>", "volumeAttributes": {...}}) instead.'
    )


@pytest.mark.parametrize("kind", list(FORBIDDEN))
async def test_forbidden_dataset_volume_refused_at_config_load(jhub, kind, capsys):
    dataset = {"name": "ref", "mount_path": "/data/ref", kind: FORBIDDEN[kind]}
    # The load-time check the hub runs at start (jupyterhub_config.d/90-jhplatform-checks.py; the
    # hub through z2jh's loader is in tests/contract/dropin/test_z2jh_loader.py) refuses to start ...
    c = Config()
    c.JupyterHub.spawner_class = "jhplatform"
    c.PlatformSpawner.namespace = NS
    c.PlatformSpawner.shared_datasets = [dataset]
    before = len(jhub.requests)
    with pytest.raises(SystemExit) as exit_info:
        fail_on_load_time_problems(c)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "FATAL: " + forbidden_message(kind)
    assert err[1].startswith("FATAL: jhplatform refuses to start with settings that cannot work")
    # ... and the setting itself is refused wherever a spawner is built from it.
    with pytest.raises(TraitError) as info:
        make_spawner(PlatformSpawner, config={"PlatformSpawner": {"shared_datasets": [dataset]}})
    assert str(info.value) == forbidden_message(kind)
    assert len(jhub.requests) == before, "nothing reached the cluster"
    # Why: the restricted namespace would refuse every pod mounting it.
    pod = {
        "metadata": {"name": f"direct-{kind.lower()}"},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "c",
                    "image": IMAGE,
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "ref", "mountPath": "/data/ref", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "ref", kind: FORBIDDEN[kind]}],
        },
    }
    with pytest.raises(ApiError) as refused:
        jhub.cluster.create("pods", NS, pod)
    assert refused.value.code == 403 and kind in refused.value.message


# -- retention -------------------------------------------------------------------------------------


@pytest.mark.parametrize("delete_pvc, kept", [pytest.param(None, True, id="default-keeps"), pytest.param(True, False, id="opt-in-deletes")])
async def test_delete_forever(jhub, caplog, delete_pvc, kept):
    extra = {} if delete_pvc is None else {"delete_pvc": delete_pvc}
    spawner, _ = await spawn(jhub, settings(**extra))
    state = await stop(spawner)
    caplog.set_level("INFO")
    # JupyterHub deletes users with a fresh spawner loaded from the database.
    deleting = make_spawner(PlatformSpawner, user="ada", config=settings(**extra))
    deleting.load_state(state)
    await deleting.delete_forever()
    if kept:
        assert "claim-ada" in claims(jhub)
        assert any(
            "Keeping home claim jhub/claim-ada of ada, which is being deleted: PlatformSpawner.delete_pvc is False" in r.getMessage()
            for r in caplog.records
        )
    else:
        await wait_for(lambda: "claim-ada" not in claims(jhub), 5, message="claim deleted")


class FakeHub:
    """Just ``GET /hub/api/users`` with JupyterHub 5's pagination (pages of ``page`` users)."""

    def __init__(self, users: list[str], page: int = 2, token: str = "secret"):
        self.users, self.page, self.token = users, page, token
        self.requests: list[dict] = []

    async def users_handler(self, request: web.Request) -> web.Response:
        self.requests.append({"query": dict(request.query), "accept": request.headers.get("Accept")})
        if request.headers.get("Authorization") != f"token {self.token}":
            return web.json_response({"status": 403, "message": "Action is not authorized with current scopes"}, status=403)
        offset = int(request.query.get("offset", 0))
        limit = min(int(request.query.get("limit", self.page)), self.page)
        items = [{"name": u, "kind": "user"} for u in self.users[offset : offset + limit]]
        following = None
        if offset + limit < len(self.users):
            following = {"offset": offset + limit, "limit": limit, "url": "ignored"}
        return web.json_response({"items": items, "_pagination": {"offset": offset, "limit": limit, "total": len(self.users), "next": following}})

    async def __aenter__(self):
        app = web.Application()
        app.router.add_get("/hub/api/users", self.users_handler)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


def home_labels(user: str) -> dict:
    return {"component": "singleuser-storage", "hub.jupyter.org/username": user}


async def test_orphaned_claims_command(jhub, tmp_path):
    for user in ("ada", "bob", "carol", "dave", "erin"):
        make_claim(jhub, f"claim-{user}", "10Gi", labels=home_labels(user), annotations={"hub.jupyter.org/username": user})
    make_claim(jhub, "claim-gone--gpu", "50Gi", labels=home_labels("gone"), annotations={"hub.jupyter.org/username": "gone", "hub.jupyter.org/servername": "gpu"})
    make_claim(jhub, "imagenet-ro", "500Gi", modes=("ReadOnlyMany",))  # not a home claim
    kubeconfig = jhub.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    async with FakeHub(["ada", "carol", "dave", "erin", "frank"], page=2) as hub:
        args = argparse.Namespace(hub_url=hub.url + "/hub/", token="secret", namespace=None, kubeconfig=kubeconfig, json=True)
        out, err = io.StringIO(), io.StringIO()
        assert await orphaned_claims.run(args, out, err) == 0, err.getvalue()
        listed = json.loads(out.getvalue())
        assert [(o["claim"], o["user"], o["server"], o["size"]) for o in listed] == [("claim-bob", "bob", "", "10Gi"), ("claim-gone--gpu", "gone", "gpu", "50Gi")]
        assert all(o["namespace"] == NS and o["age"].endswith("s") for o in listed)
        # Three pages of two users, asked for with JupyterHub's pagination media type.
        assert [r["query"].get("offset") for r in hub.requests] == ["0", "2", "4"]
        assert {r["accept"] for r in hub.requests} == {"application/jupyterhub-pagination+json"}

        args.json = False
        out = io.StringIO()
        assert await orphaned_claims.run(args, out, err) == 0
        lines = out.getvalue().splitlines()
        assert lines[0].split() == ["CLAIM", "USER", "SERVER", "SIZE", "AGE"]
        assert lines[1].split()[:4] == ["claim-bob", "bob", "-", "10Gi"]
        assert lines[2].split()[:4] == ["claim-gone--gpu", "gone", "gpu", "50Gi"]
        assert lines[-1].startswith("2 of 6 home claims in namespace 'jhub' belong to no hub user.")

        args.token = "wrong"
        err = io.StringIO()
        assert await orphaned_claims.run(args, io.StringIO(), err) == 2
        assert err.getvalue() == (
            f"jhplatform orphaned-claims: the hub refused the token (403) for GET {hub.url}/hub/api/users: it needs the "
            "list:users scope (give the service or user a role with scopes: [list:users])\n"
        )
    assert set(claims(jhub)) >= {"claim-bob", "claim-gone--gpu"}, "the command never deletes"
