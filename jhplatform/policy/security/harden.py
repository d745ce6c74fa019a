"""Restricted-by-default user pods: ``harden(pod)`` and ``explain(violations)``.

``harden`` fills in what the Pod Security Standards "restricted" profile requires, plus the
platform's own hardening (read-only root filesystem with writable scratch, no service account
token), on a pod in API form. It only *adds*: a value the configuration set explicitly is kept,
so a compliant choice (another uid, ``Localhost`` seccomp, an added ``NET_BIND_SERVICE``) stays,
and a weakening one (``privileged: true``, ``runAsUser: 0``) is left for the checker to refuse
with a message that names it. Silently "fixing" an explicit setting would hide a config error.
"""

from __future__ import annotations

import copy
import posixpath
from dataclasses import dataclass, field
from typing import Iterable

from .pss import Violation

# Volume names harden adds; prefixed so they never collide with an admin's volumes.
SCRATCH_PREFIX = "jhplatform-scratch-"


@dataclass(frozen=True)
class HardeningPolicy:
    """What :func:`harden` applies. The defaults match the docker-stacks images
    (user ``jovyan``, uid 1000, group ``users``, gid 100)."""

    run_as_user: int = 1000
    run_as_group: int = 100
    fs_group: int = 100
    seccomp_profile: str = "RuntimeDefault"
    read_only_root_filesystem: bool = True
    home: str = "/home/jovyan"
    # Writable emptyDirs; "~" is the home directory.
    writable_paths: tuple[str, ...] = ("/tmp", "~/.cache")
    writable_size_limit: str = "1Gi"
    automount_service_account_token: bool = False
    # Environment for a read-only root: where Jupyter, pip and friends write.
    env: tuple[tuple[str, str], ...] = field(
        default=(
            ("JUPYTER_RUNTIME_DIR", "/tmp/jupyter/runtime"),
            ("XDG_CACHE_HOME", "~/.cache"),
            ("PIP_CACHE_DIR", "~/.cache/pip"),
            ("MPLCONFIGDIR", "/tmp/matplotlib"),
            ("PYTHONPYCACHEPREFIX", "/tmp/pycache"),
        )
    )

    def expand(self, path: str) -> str:
        if path == "~" or path.startswith("~/"):
            return posixpath.normpath(self.home + path[1:])
        return posixpath.normpath(path)


def _containers(spec: dict) -> Iterable[tuple[str, dict]]:
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(kind) or []:
            if isinstance(c, dict):
                yield kind, c


def _harden_container(container: dict) -> None:
    sc = container.get("securityContext")
    if not isinstance(sc, dict):
        sc = container["securityContext"] = {}
    sc.setdefault("allowPrivilegeEscalation", False)
    caps = sc.get("capabilities")
    if not isinstance(caps, dict):
        caps = sc["capabilities"] = {}
    drop = caps.get("drop")
    if not isinstance(drop, list):
        caps["drop"] = ["ALL"]
    elif "ALL" not in drop:
        # Dropping ALL is strictly stronger than any partial drop list, so widening it keeps
        # the admin's intent.
        caps["drop"] = ["ALL", *drop]


def _writable_mounts(container: dict, policy: HardeningPolicy, volumes: dict[str, str]) -> None:
    mounts = container.get("volumeMounts")
    if not isinstance(mounts, list):
        mounts = container["volumeMounts"] = []
    taken = {posixpath.normpath(m.get("mountPath", "")) for m in mounts if isinstance(m, dict)}
    for path, volume in volumes.items():
        if path not in taken:
            mounts.append({"name": volume, "mountPath": path})


def harden(pod: dict, policy: HardeningPolicy | None = None) -> dict:
    """Return a hardened copy of ``pod`` (API form); the input is not modified.

    - pod ``securityContext``: ``runAsNonRoot: true``, ``runAsUser``/``runAsGroup``/``fsGroup``,
      ``seccompProfile`` (each only where unset);
    - every init, regular and ephemeral container: ``allowPrivilegeEscalation: false`` and
      ``capabilities.drop`` including ``ALL`` where unset;
    - regular containers: ``readOnlyRootFilesystem`` (where unset) with size-limited writable
      emptyDirs at the policy's paths, and the policy's environment where the pod sets none;
    - ``automountServiceAccountToken: false`` unless the pod or policy says otherwise.
    """
    policy = policy or HardeningPolicy()
    pod = copy.deepcopy(pod)
    spec = pod.setdefault("spec", {})
    if policy.automount_service_account_token is False:
        spec.setdefault("automountServiceAccountToken", False)

    psc = spec.get("securityContext")
    if not isinstance(psc, dict):
        psc = spec["securityContext"] = {}
    psc.setdefault("runAsNonRoot", True)
    psc.setdefault("runAsUser", policy.run_as_user)
    psc.setdefault("runAsGroup", policy.run_as_group)
    psc.setdefault("fsGroup", policy.fs_group)
    if not isinstance(psc.get("seccompProfile"), dict):
        psc["seccompProfile"] = {"type": policy.seccomp_profile}

    for _, container in _containers(spec):
        _harden_container(container)

    if policy.read_only_root_filesystem:
        volumes = spec.get("volumes")
        if not isinstance(volumes, list):
            volumes = spec["volumes"] = []
        existing = {v.get("name") for v in volumes if isinstance(v, dict)}
        scratch: dict[str, str] = {}
        for i, raw in enumerate(policy.writable_paths):
            path = policy.expand(raw)
            name = f"{SCRATCH_PREFIX}{i}"
            scratch[path] = name
            if name not in existing:
                volumes.append({"name": name, "emptyDir": {"sizeLimit": policy.writable_size_limit}})
        for container in spec.get("containers") or []:
            if not isinstance(container, dict):
                continue
            container["securityContext"].setdefault("readOnlyRootFilesystem", True)
            if container["securityContext"]["readOnlyRootFilesystem"]:
                _writable_mounts(container, policy, scratch)
                env = container.get("env")
                if not isinstance(env, list):
                    env = container["env"] = []
                names = {e.get("name") for e in env if isinstance(e, dict)}
                for name, value in policy.env:
                    if name not in names:
                        env.append({"name": name, "value": policy.expand(value) if value.startswith("~") else value})
    return pod


# -- attribution ------------------------------------------------------------------------


def _where(pod: dict) -> dict[str, str]:
    """Container name -> which list it came from in the pod."""
    spec = pod.get("spec") or {}
    return {c.get("name", ""): kind for kind, c in _containers(spec)}


# Which KubeSpawner settings can put something in each part of the pod.
_SOURCES = {
    "initContainers": ("KubeSpawner.init_containers",),
    "containers:notebook": (
        "KubeSpawner.container_security_context",
        "KubeSpawner.extra_container_config",
        "KubeSpawner.uid",
        "KubeSpawner.gid",
        "KubeSpawner.privileged",
        "KubeSpawner.allow_privilege_escalation",
        "KubeSpawner.lifecycle_hooks",
    ),
    "containers": ("KubeSpawner.extra_containers",),
    "ephemeralContainers": ("KubeSpawner.extra_pod_config",),
    "pod": (
        "KubeSpawner.pod_security_context",
        "KubeSpawner.extra_pod_config",
        "KubeSpawner.fs_gid",
        "KubeSpawner.supplemental_gids",
    ),
    "volumes": ("KubeSpawner.volumes", "KubeSpawner.storage_extra_volumes", "KubeSpawner.extra_pod_config"),
}

_POD_LEVEL_CHECKS = {"hostNamespaces", "sysctls", "appArmorProfile"}
_VOLUME_CHECKS = {"restrictedVolumes", "hostPathVolumes"}


def explain(violation: Violation, pod: dict, changed: Iterable[str] = (), notebook: str = "notebook") -> list[str]:
    """The settings that can have caused ``violation`` in ``pod``, most likely first.

    ``changed`` lists settings (``Class.trait``) that a profile, user option or group override
    changed for this spawn; those are named first, because a config that is fine for one
    profile and not another points at the override.
    """
    containers = _where(pod)
    named = [n for n in containers if f'"{n}"' in violation.detail]
    parts: list[str] = []
    if violation.check in _VOLUME_CHECKS:
        parts.append("volumes")
    elif violation.check in _POD_LEVEL_CHECKS or violation.detail.startswith("pod ") or "pod and" in violation.detail:
        parts.append("pod")
    for n in named:
        kind = containers[n]
        parts.append("containers:notebook" if kind == "containers" and n == notebook else kind)
    if not parts:
        parts.append("pod")
    candidates: list[str] = []
    for part in parts:
        for setting in _SOURCES[part]:
            if setting not in candidates:
                candidates.append(setting)
    changed = [c for c in changed if c]
    first = [c for c in changed if c in candidates or c.split(".")[-1] in ("modify_pod_hook",)]
    if "KubeSpawner.modify_pod_hook" not in candidates:
        candidates.append("KubeSpawner.modify_pod_hook")
    return first + [c for c in candidates if c not in first]


# z2jh adds this init container when singleuser.cloudMetadata.blockWithIptables is true.
Z2JH_METADATA_BLOCKER = "block-cloud-metadata"


def hints(violations: Iterable[Violation], pod: dict) -> list[str]:
    """Known fixes for well-known causes of violations, in words for a hub admin."""
    spec = pod.get("spec") or {}
    out = []
    names = {c.get("name") for c in spec.get("initContainers") or [] if isinstance(c, dict)}
    if Z2JH_METADATA_BLOCKER in names and any(f'"{Z2JH_METADATA_BLOCKER}"' in v.detail for v in violations):
        out.append(
            f'The "{Z2JH_METADATA_BLOCKER}" init container comes from z2jh\'s '
            "singleuser.cloudMetadata.blockWithIptables, which needs a privileged root container. "
            "Set singleuser.cloudMetadata.blockWithIptables: false and block the metadata server "
            "with the chart's NetworkPolicy instead (singleuser.networkPolicy.enabled: true with "
            "singleuser.networkPolicy.egressAllowRules.cloudMetadataServer: false, the default); "
            "see docs/security.md."
        )
    if any(v.check in ("restrictedVolumes", "hostPathVolumes") for v in violations):
        out.append("Mount data through a PersistentVolumeClaim or a CSI volume instead of hostPath/nfs volumes.")
    if any(v.check == "runAsUser" for v in violations):
        out.append("Containers may not run as root (uid 0): set KubeSpawner.uid to a non-zero uid, or leave it unset for 1000.")
    return out
