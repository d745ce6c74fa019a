"""Storage policy for user servers (pure: no I/O, no traitlets).

What a user's pod mounts besides the image, and what happens to the home claim, decided from
plain data so every rule can be tested as a table. :mod:`jhplatform.spawner.storage` applies
these decisions to KubeSpawner (traits, API calls, progress messages); the ``jhplatform
orphaned-claims`` command uses :func:`orphaned_claims`.

- **Shared datasets** (:func:`validate_datasets`, :func:`dataset_volumes`): existing claims or
  CSI volumes mounted read-only, for everyone or only some profiles and groups. Volume types
  that Pod Security Standards "restricted" forbids are refused when the config is loaded.
- **Scratch and /dev/shm** (:func:`scratch_volumes`, :func:`shm_size`, :func:`is_gpu_pod`):
  size-limited emptyDirs; GPU pods get a memory-backed ``/dev/shm`` unless configured off.
- **Home claims** (:func:`claim_candidates`, :func:`claim_owner_conflict`, :func:`labelled_claims`,
  :func:`needs_expansion`, :func:`resize_refusal`): find the claim a user already has (under
  any name KubeSpawner ever gave it) before creating one, and grow, never shrink, it.
- **Retention** (:func:`orphaned_claims`): home claims whose hub user no longer exists.

Everything here works on Kubernetes objects in API form (camelCase dicts) and never modifies
its arguments.
"""

from __future__ import annotations

import copy
import posixpath
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

from .gpu_ledger import is_gpu_resource  # the platform's one notion of a GPU resource
from .quantity import Quantity

# -- names ----------------------------------------------------------------------------------

#: Volume names the platform adds; prefixed so they never collide with an admin's volumes.
DATASET_VOLUME_PREFIX = "jhplatform-data-"
SCRATCH_VOLUME = "jhplatform-scratch"
SHM_VOLUME = "jhplatform-shm"
SHM_PATH = "/dev/shm"

#: The /dev/shm size GPU pods get when ``shm_size_limit`` is left unset. PyTorch's DataLoader
#: workers pass batches through shared memory; the container runtime's default 64 MiB
#: /dev/shm makes them die with "bus error" on the first real batch.
DEFAULT_GPU_SHM_SIZE = "1Gi"

#: How KubeSpawner marks home claims: the ``component`` label, and the user and server name
#: (raw, unescaped) in annotations; the username label holds a lossy slug of the name.
HOME_COMPONENT = "singleuser-storage"
USERNAME_KEY = "hub.jupyter.org/username"
SERVERNAME_KEY = "hub.jupyter.org/servername"

# A DNS-1123 label: what a volume name must be, and so what a dataset name may be after the
# prefix (63 characters in all).
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_MAX_DATASET_NAME = 63 - len(DATASET_VOLUME_PREFIX)

# -- shared datasets ------------------------------------------------------------------------

#: Keys a ``shared_datasets`` entry may have.
DATASET_KEYS = ("name", "mount_path", "claim", "csi", "sub_path", "profiles", "groups", "read_only")

#: Inline volume sources that Pod Security Standards "restricted" forbids (the
#: ``restrictedVolumes`` and ``hostPathVolumes`` checks): they reach node or network storage
#: outside the cluster's control, so a namespace enforcing "restricted" refuses the pod.
FORBIDDEN_VOLUME_TYPES = (
    "hostPath", "nfs", "iscsi", "glusterfs", "rbd", "cephfs", "cinder", "fc", "flocker",
    "flexVolume", "azureFile", "azureDisk", "vsphereVolume", "quobyte", "photonPersistentDisk",
    "portworxVolume", "scaleIO", "storageos", "gcePersistentDisk", "awsElasticBlockStore",
    "gitRepo",
)

#: Volume sources that are allowed in a restricted pod but are not datasets: spelling one of
#: them in a dataset is almost certainly a mix-up with KubeSpawner's ``volumes`` format.
_NOT_DATASET_SOURCES = ("persistentVolumeClaim", "emptyDir", "configMap", "secret", "projected", "downwardAPI", "ephemeral", "image")

_CSI_KEYS = ("driver", "readOnly", "fsType", "volumeAttributes", "nodePublishSecretRef")

_USE_INSTEAD = (
    'Use a PersistentVolumeClaim ("claim": "<claim name>"; the claim can be bound to a '
    "PersistentVolume of any type, e.g. an NFS export) or a CSI volume "
    '("csi": {"driver": "<driver>", "volumeAttributes": {...}}) instead.'
)


def _label(dataset: Any, index: int) -> str:
    name = dataset.get("name") if isinstance(dataset, dict) else None
    return f"dataset {name!r}" if isinstance(name, str) and name else f"dataset #{index + 1}"


def _string_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value)


def validate_datasets(datasets: Any) -> list[str]:
    """Everything wrong with a ``shared_datasets`` list, one message per problem ([] if fine).

    Each entry is a dict with ``name`` (a DNS label), an absolute ``mount_path``, and exactly
    one source: ``claim`` (an existing PersistentVolumeClaim in the user namespace, ideally
    ReadOnlyMany) or ``csi`` (a CSI volume source with a ``driver``). Optional: ``sub_path``
    (relative), ``profiles`` and ``groups`` (lists of profile slugs / group names that get the
    dataset; both given means both must match), ``read_only`` (only ``True``: datasets are
    always mounted read-only). Inline volume types that Pod Security Standards "restricted"
    forbids are refused with a message saying to use a claim or CSI volume instead.
    """
    if not isinstance(datasets, (list, tuple)):
        return [f"must be a list of dicts, not {type(datasets).__name__}"]
    problems: list[str] = []
    names: dict[str, int] = {}
    paths: dict[str, str] = {}
    for i, ds in enumerate(datasets):
        what = _label(ds, i)
        if not isinstance(ds, dict):
            problems.append(f"{what}: must be a dict like {{'name': 'imagenet', 'mount_path': '/data/imagenet', 'claim': 'imagenet-ro'}}, not {type(ds).__name__}")
            continue
        forbidden = [k for k in FORBIDDEN_VOLUME_TYPES if k in ds]
        for kind in forbidden:
            problems.append(
                f'{what} uses an inline {kind} volume, which Pod Security Standards "restricted" '
                f"forbids in user pods (the namespace would refuse every pod that mounts it). {_USE_INSTEAD}"
            )
        for kind in (k for k in _NOT_DATASET_SOURCES if k in ds):
            hint = ' (write "claim": "<claim name>")' if kind == "persistentVolumeClaim" else ""
            problems.append(f"{what}: {kind!r} is not a dataset source{hint}. {_USE_INSTEAD}")
        unknown = [k for k in ds if k not in DATASET_KEYS and k not in FORBIDDEN_VOLUME_TYPES and k not in _NOT_DATASET_SOURCES]
        if unknown:
            problems.append(f"{what}: unknown {'key' if len(unknown) == 1 else 'keys'} {', '.join(map(repr, unknown))}; allowed keys are {', '.join(DATASET_KEYS)}")

        name = ds.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{what}: 'name' is required (a lower-case DNS label such as 'imagenet')")
        elif not _DNS_LABEL.fullmatch(name) or len(name) > _MAX_DATASET_NAME:
            problems.append(
                f"{what}: 'name' must be lower-case letters, digits and '-', start and end with a "
                f"letter or digit, and be at most {_MAX_DATASET_NAME} characters (it names the pod's volume)"
            )
        elif name in names:
            problems.append(f"{what}: the name is used by dataset #{names[name] + 1} too; names must be unique")
        else:
            names[name] = i

        path = ds.get("mount_path")
        if not isinstance(path, str) or not path:
            problems.append(f"{what}: 'mount_path' is required (an absolute path such as '/data/imagenet')")
        elif not path.startswith("/") or posixpath.normpath(path) == "/":
            problems.append(f"{what}: 'mount_path' must be an absolute path below '/', not {path!r}")
        else:
            norm = posixpath.normpath(path)
            if norm in paths:
                problems.append(f"{what}: mount_path {norm!r} is used by {paths[norm]} too")
            else:
                paths[norm] = what

        sources = [k for k in ("claim", "csi") if ds.get(k) is not None]
        if not forbidden and not sources:
            problems.append(f"{what}: needs a source: 'claim' (the name of an existing PersistentVolumeClaim) or 'csi' (a CSI volume source)")
        elif len(sources) > 1:
            problems.append(f"{what}: has both 'claim' and 'csi'; give exactly one source")
        if "claim" in ds and ds["claim"] is not None and not (isinstance(ds["claim"], str) and _DNS_SUBDOMAIN.fullmatch(ds["claim"])):
            problems.append(f"{what}: 'claim' must be the name of a PersistentVolumeClaim, not {ds['claim']!r}")
        csi = ds.get("csi")
        if csi is not None:
            if not isinstance(csi, dict):
                problems.append(f"{what}: 'csi' must be a CSI volume source dict like {{'driver': 'file.csi.example.com', 'volumeAttributes': {{...}}}}")
            else:
                if not isinstance(csi.get("driver"), str) or not csi.get("driver"):
                    problems.append(f"{what}: 'csi' needs a 'driver' (the CSI driver's name)")
                bad = [k for k in csi if k not in _CSI_KEYS]
                if bad:
                    problems.append(f"{what}: unknown 'csi' {'key' if len(bad) == 1 else 'keys'} {', '.join(map(repr, bad))}; allowed keys are {', '.join(_CSI_KEYS)}")
                if csi.get("readOnly") is False:
                    problems.append(f"{what}: 'csi' sets readOnly: false, but shared datasets are always mounted read-only; remove it")

        if ds.get("read_only", True) is not True:
            problems.append(f"{what}: 'read_only' can only be True: shared datasets are always mounted read-only")
        sub_path = ds.get("sub_path")
        if sub_path is not None and (
            not isinstance(sub_path, str) or not sub_path or sub_path.startswith("/") or ".." in sub_path.split("/")
        ):
            problems.append(f"{what}: 'sub_path' must be a relative path inside the volume (no leading '/', no '..'), not {sub_path!r}")
        for key, what_items in (("profiles", "profile slugs"), ("groups", "group names")):
            if ds.get(key) is not None and not _string_list(ds[key]):
                problems.append(f"{what}: {key!r} must be a list of {what_items}, not {ds[key]!r}")
    return problems


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def dataset_applies(dataset: dict, profile: str | None, groups: Iterable[str]) -> bool:
    """Whether a user with these groups, spawning this profile (slug; "" or None without
    profiles), gets ``dataset``. No ``profiles``/``groups`` key means everyone; with both,
    both must match (a group's dataset on a GPU profile only)."""
    profiles = dataset.get("profiles")
    if profiles is not None and (profile or "") not in profiles:
        return False
    wanted = dataset.get("groups")
    if wanted is not None and not set(wanted) & set(groups):
        return False
    return True


def dataset_volumes(datasets: Sequence[dict], profile: str | None, groups: Iterable[str]) -> tuple[list[dict], list[dict]]:
    """The pod volumes and notebook-container mounts for the datasets this spawn gets.

    Every mount is ``readOnly``, and so is the volume source (a claim's ``readOnly`` and a CSI
    volume's ``readOnly``), so the dataset cannot be written even by a second mount of it.
    ``datasets`` must already have passed :func:`validate_datasets`.
    """
    groups = list(groups)
    volumes: list[dict] = []
    mounts: list[dict] = []
    for ds in datasets:
        if not dataset_applies(ds, profile, groups):
            continue
        name = DATASET_VOLUME_PREFIX + ds["name"]
        if ds.get("claim") is not None:
            volume = {"name": name, "persistentVolumeClaim": {"claimName": ds["claim"], "readOnly": True}}
        else:
            volume = {"name": name, "csi": {**copy.deepcopy(ds["csi"]), "readOnly": True}}
        mount = {"name": name, "mountPath": ds["mount_path"], "readOnly": True}
        if ds.get("sub_path"):
            mount["subPath"] = ds["sub_path"]
        volumes.append(volume)
        mounts.append(mount)
    return volumes, mounts


# -- scratch and /dev/shm -------------------------------------------------------------------


def _extended_resource_names(container: dict) -> set[str]:
    resources = container.get("resources") or {}
    names: set[str] = set()
    for kind in ("limits", "requests"):
        names.update((resources.get(kind) or {}).keys())
    return names


def is_gpu_pod(pod: dict) -> bool:
    """Whether any container of the pod (API form) requests or limits a GPU resource."""
    spec = pod.get("spec") or {}
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict) and any(is_gpu_resource(n) for n in _extended_resource_names(container)):
                return True
    return False


def shm_size(configured: str | None, gpu: bool) -> str | None:
    """The ``/dev/shm`` size limit for a pod, or None for no ``/dev/shm`` volume.

    ``configured`` is ``shm_size_limit``: ``None`` means automatic (GPU pods get
    :data:`DEFAULT_GPU_SHM_SIZE`, others none), ``""`` means off, anything else is the size.
    """
    if configured is None:
        return DEFAULT_GPU_SHM_SIZE if gpu else None
    return configured or None


def scratch_volumes(scratch_size_limit: str | None, scratch_path: str, shm_size_limit: str | None) -> tuple[list[dict], list[dict]]:
    """Volumes and notebook mounts for scratch space and ``/dev/shm``.

    ``scratch_size_limit`` (None/"" for none) gives a disk-backed emptyDir at ``scratch_path``;
    ``shm_size_limit`` (already resolved by :func:`shm_size`) a memory-backed one at
    ``/dev/shm``. Both go with the pod: nothing written there survives a stop.
    """
    volumes: list[dict] = []
    mounts: list[dict] = []
    if scratch_size_limit:
        volumes.append({"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": scratch_size_limit}})
        mounts.append({"name": SCRATCH_VOLUME, "mountPath": scratch_path})
    if shm_size_limit:
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm_size_limit}})
        mounts.append({"name": SHM_VOLUME, "mountPath": SHM_PATH})
    return volumes, mounts


def add_volumes(pod: dict, volumes: Sequence[dict], mounts: Sequence[dict], container: str = "notebook") -> tuple[dict, list[str]]:
    """A copy of ``pod`` with ``volumes`` added and ``mounts`` added to ``container`` (the
    first container if none has that name).

    A mount whose path the container already mounts is skipped with its volume, so a
    ``/dev/shm`` or dataset the admin configured through ``KubeSpawner.volumes`` wins.
    Returns the new pod and the skipped mount paths.
    """
    pod = copy.deepcopy(pod)
    spec = pod.setdefault("spec", {})
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    if not containers:
        return pod, [m["mountPath"] for m in mounts]
    target = next((c for c in containers if c.get("name") == container), containers[0])
    existing_mounts = target.get("volumeMounts")
    if not isinstance(existing_mounts, list):
        existing_mounts = target["volumeMounts"] = []
    existing_volumes = spec.get("volumes")
    if not isinstance(existing_volumes, list):
        existing_volumes = spec["volumes"] = []
    taken = {posixpath.normpath(m.get("mountPath") or "") for m in existing_mounts if isinstance(m, dict)}
    names = {v.get("name") for v in existing_volumes if isinstance(v, dict)}
    by_name = {v["name"]: v for v in volumes}
    skipped = []
    for mount in mounts:
        path = posixpath.normpath(mount["mountPath"])
        if path in taken or mount["name"] in names:
            skipped.append(mount["mountPath"])
            continue
        existing_volumes.append(copy.deepcopy(by_name[mount["name"]]))
        existing_mounts.append(copy.deepcopy(mount))
        taken.add(path)
        names.add(mount["name"])
    return pod, skipped


# -- home claims ----------------------------------------------------------------------------


def claim_candidates(current: str, legacy: str | None = None) -> list[str]:
    """Names to look for, in order, before creating a home claim: the name the current
    template gives, then the name KubeSpawner < 7 ("escape" slug scheme) gave it."""
    out = [current]
    if legacy and legacy not in out:
        out.append(legacy)
    return out


def _md(obj: dict) -> dict:
    return obj.get("metadata") or {}


def is_home_claim(claim: dict) -> bool:
    return (_md(claim).get("labels") or {}).get("component") == HOME_COMPONENT


def labelled_claims(claims: Iterable[dict], username: str, servername: str = "") -> list[dict]:
    """Home claims annotated for exactly this user and server, oldest first.

    The last resort for finding a user's claim when neither name matches (a changed
    ``pvc_name_template``). Only the raw-name annotations count: the username *label* is a
    lossy slug that two users can share, and handing a user someone else's home is worse than
    creating an empty one. Claims being deleted are skipped.
    """
    found = []
    for claim in claims:
        md = _md(claim)
        annotations = md.get("annotations") or {}
        if not is_home_claim(claim) or md.get("deletionTimestamp"):
            continue
        if annotations.get(USERNAME_KEY) != username or annotations.get(SERVERNAME_KEY, "") != (servername or ""):
            continue
        found.append(claim)
    return sorted(found, key=lambda c: (_md(c).get("creationTimestamp") or "", _md(c).get("name") or ""))


def claim_owner_conflict(claim: dict, username: str, servername: str = "") -> str | None:
    """Whose a claim is, when its annotations say it is not this user's server's; else None.

    KubeSpawner (7 and later) annotates every claim it creates with the raw user and server
    name. A claim found under a name computed for this user can still be someone else's: the
    name KubeSpawner < 7 gave user ``a.b`` (``claim-a-2eb``, the "escape" slug scheme) is the
    name KubeSpawner 7 gives user ``a-2eb``. Mounting it would hand one user another's files,
    so such a claim is never used. A claim without the username annotation (made by an older
    KubeSpawner or by hand) cannot be told apart and is not ruled out.
    """
    annotations = _md(claim).get("annotations") or {}
    owner = annotations.get(USERNAME_KEY)
    if owner is None:
        return None
    owner_server = annotations.get(SERVERNAME_KEY, "")
    if owner == username and owner_server == (servername or ""):
        return None
    return f"{owner}/{owner_server}" if owner_server else owner


def requested_storage(claim: dict) -> str | None:
    """``spec.resources.requests.storage`` of a claim."""
    return (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")


def capacity(claim: dict) -> str | None:
    """``status.capacity.storage`` (what the volume has), else the request."""
    return ((claim.get("status") or {}).get("capacity") or {}).get("storage") or requested_storage(claim)


def needs_expansion(current: str | None, wanted: str | None) -> bool:
    """True when ``wanted`` (a profile's ``storage_capacity``) is larger than ``current`` (the
    claim's request). Unparseable or missing sizes never trigger a resize."""
    if not current or not wanted:
        return False
    try:
        return Quantity.parse(wanted) > Quantity.parse(current)
    except ValueError:
        return False


#: Why the apiserver refused to resize a claim: ``(reason, what it means for the admin)``.
RESIZE_REFUSALS = {
    "not-expandable": "its StorageClass does not allow volume expansion (allowVolumeExpansion is not true), or it was not dynamically provisioned",
    "forbidden": "the hub's service account may not patch PersistentVolumeClaims (grant 'patch' on persistentvolumeclaims: "
                 "kubectl apply -n <namespace> -f helm-values/storage-rbac.yaml; see docs/storage.md)",
    "quota": "the namespace's ResourceQuota for storage would be exceeded",
    "not-bound": "the claim is not bound to a volume yet",
    "invalid": "the apiserver rejected the new size",
    "error": "the apiserver returned an error",
}


def resize_refusal(status: int, message: str) -> str:
    """Classify an apiserver refusal of a PVC resize into a :data:`RESIZE_REFUSALS` key.

    The PersistentVolumeClaimResize admission plugin answers 403 "only dynamically provisioned
    pvc can be resized and the storageclass that provisions the pvc must support resize"; RBAC
    answers 403 "cannot patch resource"; quota 403 "exceeded quota"; an unbound claim 403
    "Only bound persistent volume claims can be expanded" or 422 "spec is immutable".
    """
    text = message or ""
    lowered = text.lower()
    if status == 403:
        if "must support resize" in lowered or "dynamically provisioned" in lowered:
            return "not-expandable"
        if "cannot patch" in lowered or "cannot update" in lowered:
            return "forbidden"
        if "exceeded quota" in lowered:
            return "quota"
        if "only bound" in lowered:
            return "not-bound"
        return "forbidden"
    if status == 422:
        if "immutable" in lowered or "bound claims" in lowered:
            return "not-bound"
        return "invalid"
    return "error"


# -- retention ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrphanedClaim:
    """A home claim whose hub user no longer exists."""

    name: str
    namespace: str
    user: str
    server: str
    size: str
    created: str

    def as_dict(self) -> dict[str, str]:
        return {
            "claim": self.name,
            "namespace": self.namespace,
            "user": self.user,
            "server": self.server,
            "size": self.size,
            "created": self.created,
        }


def claim_owner(claim: dict) -> tuple[str | None, bool]:
    """The hub user a home claim belongs to, and whether that is the raw name (annotation,
    exact) rather than the username label (a slug of the name)."""
    md = _md(claim)
    name = (md.get("annotations") or {}).get(USERNAME_KEY)
    if name:
        return name, True
    label = (md.get("labels") or {}).get(USERNAME_KEY)
    return (label or None), False


def orphaned_claims(
    claims: Iterable[dict],
    usernames: Iterable[str],
    slug: Callable[[str], str] | None = None,
) -> list[OrphanedClaim]:
    """Home claims (label ``component=singleuser-storage``) whose owner is not a hub user.

    The owner is the ``hub.jupyter.org/username`` annotation (the raw name); claims made
    before KubeSpawner annotated them only have the label, a slug of the name, which is
    compared with ``slug(user)`` of each hub user (``slug`` defaults to the identity).
    Claims with neither are not listed: nothing says whose they are. Sorted by namespace and
    name.
    """
    users = set(usernames)
    slugs = {slug(u) for u in users} if slug is not None else users
    out = []
    for claim in claims:
        if not is_home_claim(claim):
            continue
        owner, exact = claim_owner(claim)
        if owner is None or (owner in users if exact else owner in slugs):
            continue
        md = _md(claim)
        out.append(
            OrphanedClaim(
                name=md.get("name", ""),
                namespace=md.get("namespace", ""),
                user=owner,
                server=(md.get("annotations") or {}).get(SERVERNAME_KEY, ""),
                size=capacity(claim) or "",
                created=md.get("creationTimestamp") or "",
            )
        )
    return sorted(out, key=lambda o: (o.namespace, o.name))


def format_age(created: str, now: datetime | None = None) -> str:
    """``kubectl``-style age of an RFC 3339 timestamp: ``45s``, ``12m``, ``5h``, ``3d``."""
    if not created:
        return "?"
    try:
        then = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    now = now or datetime.now(timezone.utc)
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


__all__ = [
    "DATASET_KEYS",
    "DATASET_VOLUME_PREFIX",
    "DEFAULT_GPU_SHM_SIZE",
    "FORBIDDEN_VOLUME_TYPES",
    "HOME_COMPONENT",
    "OrphanedClaim",
    "RESIZE_REFUSALS",
    "SCRATCH_VOLUME",
    "SERVERNAME_KEY",
    "SHM_PATH",
    "SHM_VOLUME",
    "USERNAME_KEY",
    "add_volumes",
    "capacity",
    "claim_candidates",
    "claim_owner",
    "dataset_applies",
    "dataset_volumes",
    "format_age",
    "is_gpu_pod",
    "is_gpu_resource",
    "is_home_claim",
    "labelled_claims",
    "needs_expansion",
    "orphaned_claims",
    "requested_storage",
    "resize_refusal",
    "scratch_volumes",
    "shm_size",
    "validate_datasets",
]
