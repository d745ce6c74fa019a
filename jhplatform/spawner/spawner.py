"""PlatformSpawner: KubeSpawner whose every pod meets Pod Security Standards "restricted".

Glue only: the hardening and the checks live in :mod:`jhplatform.policy.security`. This class hooks
them into KubeSpawner's own extension points:

- ``get_pod_manifest``: the pod KubeSpawner built (after profile overrides, user options,
  ``extra_pod_config``, ``extra_container_config``, init and extra containers) is hardened;
- ``modify_pod_hook``: whatever hook the admin configured runs, then the *final* pod is
  checked; a violation refuses the spawn;
- ``load_user_options``: the same render-and-check happens first, before KubeSpawner makes any
  Kubernetes API call, so a refused spawn leaves nothing behind;
- ``apply_group_overrides`` / ``load_user_options``: trait values are restored from the
  configuration before overrides apply, so a profile chosen for one spawn never leaks into the
  next (KubeSpawner merges dict overrides in place).

Under API faults (:class:`~jhplatform.spawner.resilience.ApiResilienceMixin`) 429/5xx answers
are retried, broken watches restarted, and a spawn the API still fails ends with a message.

Storage (home claims that are never lost, shared datasets, scratch, ``/dev/shm``) comes from
:class:`~jhplatform.spawner.storage.StorageMixin`: its volumes are added inside
``get_pod_manifest`` before hardening, and its ``prepare_storage`` runs at the end of
``load_user_options``, after the security check.
"""

from __future__ import annotations

import copy
import json
import logging
from types import SimpleNamespace
from typing import Any

from kubespawner import KubeSpawner
from traitlets import Bool, Callable, Enum, List, TraitError, Unicode, default, validate

from ..policy.security import HardeningPolicy, explain, harden, restricted_violations
from ..policy.security.harden import hints
from .culling import CullingFactsMixin
from .entitlements import EntitlementsMixin
from .gpu import GpuQuotaMixin
from .resilience import ApiResilienceMixin
from .storage import StorageMixin

log = logging.getLogger("jhplatform.spawner")


class SecurityPolicyRefusal(Exception):
    """A spawn refused because its pod would not meet the platform's security policy.

    ``jupyterhub_message`` is what the user sees; ``log_message`` is for the admin.
    """

    def __init__(self, user_message: str, log_message: str, violations: list, settings: list | None = None):
        super().__init__(log_message)
        self.jupyterhub_message = user_message
        self.log_message = log_message
        self.violations = violations
        #: For each violation, the settings (``Class.trait``) that can have caused it, most likely first.
        self.settings = settings or [[] for _ in violations]


def _hook_chain(admin_hook):
    """The effective ``modify_pod_hook``: the admin's hook, then the final-manifest check."""

    async def platform_modify_pod_hook(spawner, pod):
        before = None
        if admin_hook is not None:
            before = copy.deepcopy(spawner._to_dict(pod))
            pod = admin_hook(spawner, pod)
            if hasattr(pod, "__await__"):
                pod = await pod
        spawner._enforce(spawner._to_dict(pod), stage="final pod", before_hook=before)
        return pod

    platform_modify_pod_hook.admin_hook = admin_hook
    return platform_modify_pod_hook


class PlatformSpawner(ApiResilienceMixin, CullingFactsMixin, EntitlementsMixin, GpuQuotaMixin, StorageMixin, KubeSpawner):
    """KubeSpawner with PSS "restricted" hardening that no profile, override, option or hook
    can weaken."""

    security_mode = Enum(
        ["enforce", "warn"],
        default_value="enforce",
        config=True,
        help="""
        What happens when a user pod would violate Pod Security Standards "restricted".

        - ``enforce`` (default): the spawn is refused before any Kubernetes API call; the user
          is told the server could not start because of the platform's security policy, and
          the hub log names each violation and the setting behind it.
        - ``warn``: for migrations only. The pod is created anyway and each violation is
          logged at ERROR level on every spawn. A namespace that enforces "restricted" will
          still refuse the pod.

        Example::

            c.PlatformSpawner.security_mode = "warn"
        """,
    )

    read_only_root_filesystem = Bool(
        True,
        config=True,
        help="""
        Run notebook containers with a read-only root filesystem (default True).

        Writable, size-limited emptyDir volumes are mounted at ``writable_paths``, and
        Jupyter's and pip's environment variables point there. Your home volume stays
        writable. Set False only for images that must write elsewhere.

        Example::

            c.PlatformSpawner.read_only_root_filesystem = False
        """,
    )

    writable_paths = List(
        Unicode(),
        default_value=["/tmp", "~/.cache"],
        config=True,
        help="""
        Paths that stay writable when ``read_only_root_filesystem`` is on, each an emptyDir
        limited to ``writable_paths_size_limit``. ``~`` is ``home_dir``.

        Example::

            c.PlatformSpawner.writable_paths = ["/tmp", "~/.cache", "/opt/conda/pkgs"]
        """,
    )

    writable_paths_size_limit = Unicode(
        "1Gi",
        config=True,
        help="""
        Size limit of each writable emptyDir (a Kubernetes quantity, default ``1Gi``).

        Example::

            c.PlatformSpawner.writable_paths_size_limit = "5Gi"
        """,
    )

    home_dir = Unicode(
        "/home/jovyan",
        config=True,
        help="""
        The notebook user's home directory inside the image (default ``/home/jovyan``, the
        docker-stacks layout); ``~`` in ``writable_paths`` expands to it.
        """,
    )

    seccomp_profile = Enum(
        ["RuntimeDefault", "Localhost"],
        default_value="RuntimeDefault",
        config=True,
        help="""
        Pod seccomp profile type (default ``RuntimeDefault``). ``Localhost`` also needs
        ``pod_security_context = {"seccompProfile": {"type": "Localhost", "localhostProfile": ...}}``.
        """,
    )

    # KubeSpawner's hook, wrapped so the final pod is always checked after the admin's hook.
    modify_pod_hook = Callable(
        None,
        allow_none=True,
        config=True,
        help=KubeSpawner.modify_pod_hook.help
        + "\n\nPlatformSpawner checks the pod this hook returns; it runs once for the pre-spawn "
        "check and once for the pod that is sent, so it must only transform the pod.",
    )

    @default("modify_pod_hook")
    def _default_modify_pod_hook(self):
        return _hook_chain(None)

    @validate("modify_pod_hook")
    def _wrap_modify_pod_hook(self, proposal):
        hook = proposal["value"]
        if getattr(hook, "admin_hook", "missing") != "missing":
            return hook
        return _hook_chain(hook)

    # docker-stacks images run as jovyan (1000) in group users (100).
    @default("uid")
    def _default_uid(self):
        return 1000

    @default("gid")
    def _default_gid(self):
        return 100

    @default("fs_gid")
    def _default_fs_gid(self):
        return 100

    @default("automount_service_account_token")
    def _default_automount(self):
        return False

    # -- lifecycle hooks -------------------------------------------------------------------

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Trait values as configured, for every trait an override has touched; restored
        # before the next spawn applies its own overrides.
        self._configured: dict[str, Any] = {}
        self._restored_this_spawn = False
        self.unknown_override_keys: list[str] = []

    def _apply_overrides(self, spawner_override: dict):
        # JupyterHub's and KubeSpawner's _apply_overrides merge dict values *in place*, which
        # would edit the configured dict itself (shared by every spawner) and leave a GPU
        # request behind for the next profile. Give each overridden trait a private copy first.
        for key in spawner_override:
            if not self.has_trait(key):
                # KubeSpawner would set a plain attribute and ignore it: a typo goes unnoticed.
                self.log.warning(
                    "Override sets %r, which is not a %s setting (misspelled?); it has no effect.",
                    key,
                    type(self).__name__,
                )
                self.unknown_override_keys.append(key)
                continue
            if key not in self._configured:
                self._configured[key] = copy.deepcopy(getattr(self, key))
            setattr(self, key, copy.deepcopy(getattr(self, key)))
        for key, value in spawner_override.items():
            try:
                super()._apply_overrides({key: value})
            except TraitError as e:
                raise TraitError(f"override of {type(self).__name__}.{key}: {e}") from e

    def _restore_configured(self) -> None:
        self.unknown_override_keys = []
        for key, value in self._configured.items():
            setattr(self, key, copy.deepcopy(value))
        self._configured.clear()

    async def apply_group_overrides(self):
        self._restore_configured()
        self._restored_this_spawn = True
        await super().apply_group_overrides()

    async def load_user_options(self):
        if not self._restored_this_spawn:
            self._restore_configured()
        self._restored_this_spawn = False
        await super().load_user_options()
        # The check before KubeSpawner's first API call (namespace, PVC, reflectors).
        pod = await self._hardened_pod()
        hook = getattr(self.modify_pod_hook, "admin_hook", None)
        before = None
        if hook is not None:
            # Hooks are written for KubeSpawner and receive a V1Pod.
            before = pod
            pod = hook(self, self._to_model(pod))
            if hasattr(pod, "__await__"):
                pod = await pod
        self._enforce(self._to_dict(pod), stage="pre-spawn check", before_hook=before)
        # API calls are allowed from here on: find (and maybe grow) the user's home claim.
        await self.prepare_storage()

    async def _run_apply_user_options(self, user_options):
        # JupyterHub >= 5.3 applies user options by setting traits directly, not through
        # _apply_overrides: record their configured values as well, so a refusal names them and
        # the next spawn starts from the configuration again.
        present = set(self._trait_values)

        def record(change):
            if change.name not in self._configured:
                old = change.old if change.name in present else self.trait_defaults(change.name)
                self._configured[change.name] = copy.deepcopy(old)

        self.observe(record)
        try:
            await super()._run_apply_user_options(user_options)
        finally:
            self.unobserve(record)

    def _changed_settings(self) -> list[str]:
        return [f"KubeSpawner.{key}" if KubeSpawner.class_traits().get(key) else f"{type(self).__name__}.{key}" for key in self._configured]

    # -- manifest --------------------------------------------------------------------------

    def hardening_policy(self) -> HardeningPolicy:
        return HardeningPolicy(
            run_as_user=self.uid if isinstance(self.uid, int) else 1000,
            run_as_group=self.gid if isinstance(self.gid, int) else 100,
            fs_group=self.fs_gid if isinstance(self.fs_gid, int) else 100,
            seccomp_profile=self.seccomp_profile,
            read_only_root_filesystem=self.read_only_root_filesystem,
            home=self.home_dir,
            writable_paths=tuple(self.writable_paths),
            writable_size_limit=self.writable_paths_size_limit,
            automount_service_account_token=bool(self.automount_service_account_token),
        )

    async def _hardened_pod(self) -> dict:
        """KubeSpawner's pod with the platform's volumes, hardened, as an API-form dict."""
        pod = await super().get_pod_manifest()
        with_storage = self.add_storage_volumes(self._to_dict(pod))
        return harden(with_storage, self.hardening_policy())

    async def get_pod_manifest(self):
        return self._to_model(await self._hardened_pod())

    def _to_dict(self, pod: Any) -> dict:
        if isinstance(pod, dict):
            return pod
        return self.api.api_client.sanitize_for_serialization(pod)

    def _to_model(self, pod: dict):
        # kubernetes_asyncio's public deserialize() reads a response's .data.
        return self.api.api_client.deserialize(SimpleNamespace(data=json.dumps(pod)), "V1Pod")

    # -- enforcement -----------------------------------------------------------------------

    def _enforce(self, pod: dict, stage: str, before_hook: dict | None = None) -> None:
        violations = restricted_violations(pod)
        if not violations:
            return
        # Violations the admin's modify_pod_hook introduced name the hook first.
        from_hook = set() if before_hook is None else set(violations) - set(restricted_violations(before_hook))
        lines = []
        explained = []
        for v in violations:
            hook = ["KubeSpawner.modify_pod_hook"] if v in from_hook else []
            settings = explain(v, pod, hook + self._changed_settings())
            explained.append(settings)
            lines.append(f"  - {v} [check {v.check}; set by: {', '.join(settings[:3])}]")
        profile = self.user_options.get("profile") if isinstance(self.user_options, dict) else None
        who = f"{self.user.name}/{self.name}" if self.name else self.user.name
        log_message = (
            f"Pod {self.pod_name} for {who}"
            + (f" (profile {profile!r})" if profile else "")
            + f" violates Pod Security Standards \"restricted\" at {stage}:\n"
            + "\n".join(lines)
        )
        for hint in hints(violations, pod):
            log_message += f"\n  Fix: {hint}"
        # The enforcement switch is the admin's alone: a profile, group override or user option
        # that changed it for this spawn does not count.
        mode = self._configured.get("security_mode", self.security_mode)
        if mode != self.security_mode:
            self.log.error(
                "Ignoring security_mode=%r set by an override for %s: only the configured "
                "c.PlatformSpawner.security_mode applies.",
                self.security_mode,
                who,
            )
        if mode == "warn":
            self.log.error("security_mode=warn: starting anyway. %s", log_message)
            return
        self.log.error("Spawn refused. %s", log_message)
        user_message = (
            "Your server could not start because its configuration does not meet the platform's "
            "security policy (Pod Security Standards \"restricted\"). Nothing was created. "
            "Please pick another profile or contact your hub admin, who can see the details in "
            "the hub log."
        )
        raise SecurityPolicyRefusal(user_message, log_message, violations, explained)
