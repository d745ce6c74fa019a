"""StorageMixin: home claims that are never lost, shared read-only datasets, scratch and /dev/shm.

The policy lives in :mod:`jhplatform.policy.storage` (pure); this mixin applies it to
:class:`~jhplatform.spawner.PlatformSpawner` through KubeSpawner's own extension points:

- ``add_storage_volumes`` (called by PlatformSpawner.get_pod_manifest): the datasets this user and profile get, scratch space and ``/dev/shm``
  are added to the notebook container *before* PlatformSpawner hardens and checks the pod, so
  they are part of the same security check as everything else;
- ``prepare_storage`` (called by PlatformSpawner at the end of ``load_user_options``, after the
  security check and before KubeSpawner's first API call): find the claim the user already has
  under any name KubeSpawner ever gave it, so an upgrade never hands them a new, empty one, and
  request an expansion when the profile asks for more than the claim has (never a shrink, never
  a re-create);
- ``progress``: what happened to the home volume is shown to the user on the spawn page;
- ``delete_forever``: the claim is kept by default when a user or named server is deleted
  (``delete_pvc`` defaults to False here, unlike KubeSpawner).

Per-profile claim settings are KubeSpawner's own traits in a profile's ``kubespawner_override``
(``storage_capacity``, ``storage_class``, ``storage_access_modes``, ``storage_extra_labels``,
``storage_extra_annotations``, ``pvc_name_template``, ``storage_pvc_ensure``): KubeSpawner's
``get_pvc_manifest`` builds the claim from them and its ``_start`` creates it. Like KubeSpawner,
they apply when a claim is *created*; only the size of an existing claim is ever changed.

The mixin needs PlatformSpawner (it uses its pod conversion and its record of configured
trait values); it comes before KubeSpawner in the bases: ``PlatformSpawner(StorageMixin, KubeSpawner)``.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import sys
from typing import Any

from jupyterhub.utils import exponential_backoff
from kubernetes_asyncio.client.rest import ApiException
from slugify import slugify
from traitlets import Dict, List, TraitError, Unicode, default, validate
from traitlets.config import Config, LoggingConfigurable

from ..policy import storage
from ..policy.quantity import Quantity

#: Where the claim names this spawner resolved are kept in the hub's database, per template.
STATE_KEY = "jhplatform_pvc_names"


class StorageError(Exception):
    """The home volume could not be looked up; the spawn stops rather than risk creating a new,
    empty home next to the user's real one. ``jupyterhub_message`` is what the user sees."""

    def __init__(self, user_message: str, log_message: str):
        super().__init__(log_message)
        self.jupyterhub_message = user_message


def _quantity_problem(value: str, allow_empty: bool = False) -> str | None:
    if value == "" and allow_empty:
        return None
    try:
        q = Quantity.parse(value)
    except ValueError as e:
        return f"{value!r} is not a Kubernetes quantity such as '1Gi' or '500Mi' ({e})"
    if q <= Quantity.parse("0"):
        return f"{value!r} must be larger than zero"
    return None


class StorageMixin(LoggingConfigurable):
    """Storage for PlatformSpawner (see the module docstring)."""

    shared_datasets = List(
        Dict(),
        default_value=[],
        config=True,
        help="""
        Shared datasets mounted read-only into user pods.

        Each entry is a dict with:

        - ``name``: a short lower-case name (letters, digits, ``-``); the pod volume is
          ``jhplatform-data-<name>``;
        - ``mount_path``: where it appears in the notebook, e.g. ``/data/imagenet``;
        - exactly one source: ``claim``, the name of an existing PersistentVolumeClaim in the
          user namespace (create it ReadOnlyMany, bound to the dataset's PersistentVolume), or
          ``csi``, an inline CSI volume source (``{"driver": ..., "volumeAttributes": {...}}``);
        - optional ``sub_path`` (a directory inside the volume), ``profiles`` (profile slugs)
          and ``groups`` (hub group names): only those spawns get the dataset; with both, both
          must match.

        Mounts and sources are always read-only. Volume types that Pod Security Standards
        "restricted" forbids (inline ``nfs``, ``hostPath``, ``iscsi``, ...) are refused when the
        configuration is loaded: put such storage behind a PersistentVolume and claim, or use its
        CSI driver. Can be overridden per profile in ``kubespawner_override``.

        Example::

            c.PlatformSpawner.shared_datasets = [
                {"name": "imagenet", "mount_path": "/data/imagenet", "claim": "imagenet-ro"},
                {"name": "refdata", "mount_path": "/data/ref", "groups": ["genomics"],
                 "csi": {"driver": "nfs.csi.k8s.io",
                         "volumeAttributes": {"server": "nfs.example.org", "share": "/ref"}}},
                {"name": "weights", "mount_path": "/data/weights", "claim": "model-weights",
                 "profiles": ["gpu", "gpu-large"]},
            ]
        """,
    )

    scratch_size_limit = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""
        Size limit of a scratch emptyDir mounted at ``scratch_path`` (a Kubernetes quantity,
        e.g. ``"50Gi"``). Unset (the default): no scratch volume. Scratch space is on the
        node's disk and is emptied when the server stops; the home volume is for keeping.
        Usually set per profile in ``kubespawner_override``.

        Example::

            c.PlatformSpawner.scratch_size_limit = "20Gi"
        """,
    )

    scratch_path = Unicode(
        "/scratch",
        config=True,
        help="""
        Where the scratch volume (``scratch_size_limit``) is mounted (default ``/scratch``).

        Example::

            c.PlatformSpawner.scratch_path = "/home/jovyan/scratch"
        """,
    )

    shm_size_limit = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""
        Size of a memory-backed ``/dev/shm`` (PyTorch DataLoader workers and other
        multiprocessing code pass data through it; the container default is only 64 MiB).

        - unset (the default): pods that request a GPU (any resource ending in ``/gpu`` or a
          MIG slice ``/mig-...``) get ``1Gi``; other pods keep the default ``/dev/shm``;
        - a quantity such as ``"4Gi"``: every pod gets a ``/dev/shm`` of that size;
        - ``""``: no ``/dev/shm`` volume, even for GPU pods.

        What is stored there counts against the pod's memory limit. Usually set per profile
        in ``kubespawner_override``.

        Example::

            c.PlatformSpawner.shm_size_limit = "2Gi"
        """,
    )

    @default("delete_pvc")
    def _default_delete_pvc(self):
        # KubeSpawner deletes the claim when the user or named server is deleted; a mistaken
        # user deletion then destroys their work. Keep it unless the admin opts in.
        return False

    @validate("shared_datasets")
    def _validate_shared_datasets(self, proposal):
        problems = storage.validate_datasets(proposal["value"])
        if problems:
            raise TraitError(_problem_text(f"{type(self).__name__}.shared_datasets", problems))
        return proposal["value"]

    @validate("scratch_size_limit")
    def _validate_scratch_size_limit(self, proposal):
        value = proposal["value"]
        if value is not None and value != "":
            problem = _quantity_problem(value)
            if problem:
                raise TraitError(f"{type(self).__name__}.scratch_size_limit: {problem}")
        return value

    @validate("shm_size_limit")
    def _validate_shm_size_limit(self, proposal):
        value = proposal["value"]
        if value is not None:
            problem = _quantity_problem(value, allow_empty=True)
            if problem:
                raise TraitError(f"{type(self).__name__}.shm_size_limit: {problem} (or \"\" for no /dev/shm volume)")
        return value

    @validate("scratch_path")
    def _validate_scratch_path(self, proposal):
        value = proposal["value"]
        if not value.startswith("/") or posixpath.normpath(value) == "/":
            raise TraitError(f"{type(self).__name__}.scratch_path must be an absolute path below '/', not {value!r}")
        return value

    def __init__(self, *args, **kwargs):
        # Set before KubeSpawner's constructor runs, which may already read state.
        #: What happened to the home volume during the current spawn, in words for the user;
        #: shown on the spawn page by :meth:`progress`.
        self.storage_messages: list[str] = []
        # Claim name per pvc_name_template, persisted in the hub's state (see get_state).
        self._pvc_names: dict[str, str] = {}
        self._pvc_template: str | None = None
        self._storage_profile: dict | None = None
        super().__init__(*args, **kwargs)

    # -- JupyterHub / KubeSpawner hooks ------------------------------------------------------

    def start(self):
        self.storage_messages = []
        return super().start()

    async def load_user_options(self):
        self._storage_profile = None
        await super().load_user_options()
        # KubeSpawner computes pvc_name once, in its constructor, so a profile's
        # pvc_name_template would have no effect; name the claim for this spawn's template
        # (prepare_storage then looks for an existing claim before anything is created).
        self.pvc_name = self._remembered_claim(self.pvc_name_template) or self._expand_user_properties(self.pvc_name_template)

    def _load_profile(self, slug, profile_list):
        # KubeSpawner does not remember which profile it applied (the default one has no slug
        # in user_options); datasets limited to profiles need it.
        self._storage_profile = self._get_profile(slug, profile_list)
        return super()._load_profile(slug, profile_list)

    def load_state(self, state):
        super().load_state(state)
        names = state.get(STATE_KEY) if isinstance(state, dict) else None
        self._pvc_names = dict(names) if isinstance(names, dict) else {}
        if not self._pvc_names and isinstance(state, dict) and state.get("pvc_name"):
            # State saved by plain KubeSpawner, whose claim name always came from the configured
            # template (it ignores a profile's pvc_name_template): remember it for that template.
            self._pvc_names[self.pvc_name_template] = state["pvc_name"]

    def get_state(self):
        state = super().get_state()
        if self._pvc_exists and self._pvc_template is not None:
            self._pvc_names[self._pvc_template] = self.pvc_name
        if self._pvc_names:
            state[STATE_KEY] = dict(self._pvc_names)
        return state

    def add_storage_volumes(self, pod: dict) -> dict:
        """The pod (API-form dict) with datasets, scratch and ``/dev/shm`` added.

        PlatformSpawner calls this on the dict it hardens, so the pod is converted from and
        back to a model only once per render.
        """
        volumes, mounts = self.storage_volumes(pod)
        if not volumes:
            return pod
        with_storage, skipped = storage.add_volumes(pod, volumes, mounts)
        for path in skipped:
            self.log.debug("%s: %s is already mounted by the configuration; not adding the platform's volume there", self.pod_name, path)
        return with_storage

    async def progress(self):
        """KubeSpawner's progress events, with :attr:`storage_messages` shown as they appear.

        Messages are recorded before the pod exists, so any message not yet shown goes out
        before the next pod event: the spawn page tells the story in order.
        """
        sent = 0
        events = super().progress()
        pending: asyncio.Future | None = None
        try:
            while True:
                while sent < len(self.storage_messages):
                    yield {"message": self.storage_messages[sent]}
                    sent += 1
                if pending is None:
                    pending = asyncio.ensure_future(events.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=0.2)
                if not done:
                    continue
                finished, pending = pending, None
                try:
                    event = finished.result()
                except StopAsyncIteration:
                    break
                while sent < len(self.storage_messages):
                    yield {"message": self.storage_messages[sent]}
                    sent += 1
                yield event
            while sent < len(self.storage_messages):
                yield {"message": self.storage_messages[sent]}
                sent += 1
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                try:
                    await pending
                except (asyncio.CancelledError, StopAsyncIteration, Exception):
                    pass
            await events.aclose()

    async def delete_forever(self):
        if not self.delete_pvc:
            who = f"{self.user.name}/{self.name}" if self.name else self.user.name
            self.log.info(
                "Keeping home claim %s/%s of %s, which is being deleted: %s.delete_pvc is False "
                "(the platform's default). `jhplatform orphaned-claims` lists claims whose user is "
                "gone, for archiving or removal.",
                self.namespace,
                self.pvc_name,
                who,
                type(self).__name__,
            )
        await super().delete_forever()

    # -- pod volumes -------------------------------------------------------------------------

    def storage_profile_slug(self) -> str:
        """The slug of the profile applied for this spawn ("" without profiles)."""
        return (self._storage_profile or {}).get("slug") or ""

    def storage_volumes(self, pod: dict) -> tuple[list[dict], list[dict]]:
        """The platform's volumes and notebook mounts for this spawn: datasets for this user's
        groups and profile, then scratch and ``/dev/shm``. ``pod`` is KubeSpawner's pod (API
        form), used to see whether it requests a GPU."""
        groups = [getattr(g, "name", g) for g in (getattr(self.user, "groups", None) or [])]
        volumes, mounts = storage.dataset_volumes(self.shared_datasets, self.storage_profile_slug(), groups)
        shm = storage.shm_size(self.shm_size_limit, storage.is_gpu_pod(pod))
        more_volumes, more_mounts = storage.scratch_volumes(self.scratch_size_limit, self.scratch_path, shm)
        return volumes + more_volumes, mounts + more_mounts

    # -- the home claim ----------------------------------------------------------------------

    def _tell_user(self, message: str, level: str = "info", log_message: str | None = None) -> None:
        self.storage_messages.append(message)
        getattr(self.log, level)("%s: %s", self._who(), log_message or message)

    def _who(self) -> str:
        return f"{self.user.name}/{self.name}" if self.name else self.user.name

    async def _api(self, what: str, call, *args, **kwargs):
        """One Kubernetes API call, retried on client timeouts like KubeSpawner's own calls;
        ApiException propagates."""
        result: dict[str, Any] = {}

        async def attempt():
            try:
                result["value"] = await asyncio.wait_for(call(*args, **kwargs), self.k8s_api_request_timeout)
            except asyncio.TimeoutError:
                return False
            return True

        await exponential_backoff(attempt, f"Timed out {what}", timeout=self.k8s_api_request_retry_timeout)
        return result["value"]

    async def _read_claim(self, name: str) -> dict | None:
        try:
            claim = await self._api(
                f"reading PVC {self.namespace}/{name}",
                self.api.read_namespaced_persistent_volume_claim,
                name=name,
                namespace=self.namespace,
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise self._lookup_failed(name, e) from e
        return self.api.api_client.sanitize_for_serialization(claim)

    async def _labelled_claims(self) -> list[dict]:
        from kubespawner.slugs import escape_slug, is_valid_label, safe_slug

        values = {safe_slug(self.user.name, is_valid=is_valid_label), escape_slug(self.user.name)}
        values = sorted(v for v in values if is_valid_label(v))
        selector = f"component={storage.HOME_COMPONENT},{storage.USERNAME_KEY} in ({','.join(values)})"
        try:
            result = await self._api(
                f"listing PVCs in {self.namespace}",
                self.api.list_namespaced_persistent_volume_claim,
                namespace=self.namespace,
                label_selector=selector,
            )
        except ApiException as e:
            raise self._lookup_failed(f"labelled {selector}", e) from e
        items = self.api.api_client.sanitize_for_serialization(result).get("items") or []
        return storage.labelled_claims(items, self.user.name, self.name or "")

    def _lookup_failed(self, what: str, error: ApiException) -> StorageError:
        return StorageError(
            "Your server could not start because your home volume could not be looked up "
            "(the Kubernetes API did not answer as expected). Nothing was created, so your files "
            "are safe. Please try again in a minute; if it keeps happening, contact your hub admin.",
            f"Could not look up home claim {self.namespace}/{what} for {self._who()}: "
            f"{error.status} {error.reason}. Not creating a claim, which could hide the user's "
            "existing one; the spawn is stopped.",
        )

    async def prepare_storage(self) -> None:
        """Find the user's existing home claim and grow it if the profile asks for more.

        Runs at the end of ``load_user_options`` during a start, before KubeSpawner creates
        anything. Sets ``pvc_name`` (and marks it as existing, so KubeSpawner does not create
        another) when a claim is found under, in order: the name remembered for this template,
        the current template's name, the name KubeSpawner < 7 gave it (the "escape" slug
        scheme), or the oldest claim annotated for this user and server. A claim found by name
        whose annotations name another user or server is never used (``claim_owner_conflict``):
        under the older name it is skipped, under the current name the spawn stops. Outside a start (the
        load-time profile check renders pods with no cluster to ask) it does nothing.
        """
        if getattr(self, "_start_future", None) is None:
            self.log.debug("prepare_storage: not starting (render-only); no API calls")
            return
        if not self.storage_pvc_ensure:
            return
        claim = await self._resolve_home_claim()
        if claim is not None:
            await self._maybe_expand(claim)

    def _remembered_claim(self, template: str) -> str | None:
        """The claim name remembered for ``template`` in the hub's state, if any."""
        if not self.remember_pvc_name:
            return None
        return self._pvc_names.get(template)

    async def _resolve_home_claim(self) -> dict | None:
        template = self.pvc_name_template
        current = self._expand_user_properties(template)
        legacy = self._expand_user_properties(template, slug_scheme="escape") if self.handle_legacy_names else None
        remembered = self._remembered_claim(template)
        self._pvc_template = template

        names = [remembered] if remembered else []
        names += [n for n in storage.claim_candidates(current, legacy) if n not in names]
        found = None
        for name in names:
            found = await self._read_claim(name)
            if found is None:
                continue
            owner = storage.claim_owner_conflict(found, self.user.name, self.name or "") if name != remembered else None
            if owner is None:
                break
            found = None
            if name == current:
                # KubeSpawner would meet this claim with a 409 on create and mount it anyway.
                raise StorageError(
                    "Your server could not start because the name of your home volume is taken by another "
                    "user's volume. Nothing was created or mounted. Please contact your hub admin.",
                    f"Home claim {self.namespace}/{name} of {self._who()} is annotated for {owner!r}; "
                    "not mounting another user's claim. Rename or remove one of the claims, or change "
                    f"{type(self).__name__}.pvc_name_template; the spawn is stopped.",
                )
            self.log.warning(
                "%s: not using claim %s/%s under this user's older name: it is annotated for %r",
                self._who(), self.namespace, name, owner,
            )
        if found is None:
            labelled = await self._labelled_claims()
            if len(labelled) > 1:
                self.log.warning(
                    "%s: several home claims are annotated for this user and server: %s; using the oldest",
                    self._who(),
                    ", ".join(c["metadata"]["name"] for c in labelled),
                )
            found = labelled[0] if labelled else None

        if found is None:
            if remembered:
                self._tell_user(
                    f"Your previous home volume {remembered} no longer exists, so a new, empty home "
                    f"volume {current} is being created. Contact your hub admin if you expected your files.",
                    "warning",
                )
            self.pvc_name = current
            self._pvc_exists = False
            self._pvc_names.pop(template, None)
            return None

        name = found["metadata"]["name"]
        if name != current and name != remembered:
            self._tell_user(
                f"Using your existing home volume {name} (named under an earlier hub configuration); your files are there.",
                "warning",
                f"reusing existing home claim {self.namespace}/{name} instead of creating {current}",
            )
        self.pvc_name = name
        self._pvc_exists = True
        self._pvc_names[template] = name
        return found

    async def _maybe_expand(self, claim: dict) -> None:
        name = claim["metadata"]["name"]
        current = storage.requested_storage(claim)
        wanted = self.storage_capacity
        profile = (self._storage_profile or {}).get("display_name") or self.storage_profile_slug()
        for_profile = f" for profile {profile!r}" if profile else ""
        if not storage.needs_expansion(current, wanted):
            if current and wanted and storage.needs_expansion(wanted, current):
                # Not news for the user (their files and space are unchanged): log only.
                self.log.info(
                    "%s: home claim %s/%s keeps its %s (%s asks for %s; claims are never shrunk)",
                    self._who(), self.namespace, name, current, f"profile {profile!r}" if profile else "the configuration", wanted,
                )
            return
        try:
            await self._api(
                f"resizing PVC {self.namespace}/{name}",
                self.api.patch_namespaced_persistent_volume_claim,
                name=name,
                namespace=self.namespace,
                body={"spec": {"resources": {"requests": {"storage": wanted}}}},
                _content_type="application/merge-patch+json",
            )
        except ApiException as e:
            message = _api_message(e)
            reason = storage.resize_refusal(e.status, message)
            self._tell_user(
                f"Your home volume {name} stays at {current}: this server asks for {wanted}, but "
                + ("its storage cannot be resized" if reason == "not-expandable" else "it could not be resized")
                + ". Your files are unchanged; ask your hub admin if you need more space.",
                "warning",
                f"home claim {self.namespace}/{name} stays at {current}: resize to {wanted}{for_profile} "
                f"refused because {storage.RESIZE_REFUSALS[reason]} ({e.status}: {message})",
            )
            return
        except Exception as e:  # a resize is an improvement, never a reason to fail the spawn
            self._tell_user(
                f"Your home volume {name} stays at {current} for now: the resize to {wanted} could not be requested. "
                "Your files are unchanged.",
                "warning",
                f"home claim {self.namespace}/{name}: resize to {wanted}{for_profile} failed: {type(e).__name__}: {e}",
            )
            return
        self._tell_user(
            f"Your home volume {name} is being expanded from {current} to {wanted}. The extra space "
            "appears once the storage system has resized it; your files stay where they are.",
            "info",
            f"requested expansion of home claim {self.namespace}/{name} from {current} to {wanted}{for_profile}",
        )


def _api_message(error: ApiException) -> str:
    try:
        return json.loads(error.body).get("message") or str(error.reason)
    except (TypeError, ValueError, AttributeError):
        return str(error.body or error.reason)


def _problem_text(setting: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{setting}: {problems[0]}"
    return f"{setting} has {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


# -- load-time check ------------------------------------------------------------------------

_STORAGE_TRAITS = ("shared_datasets", "scratch_size_limit", "shm_size_limit", "scratch_path")


def storage_config_problems(config: Config, spawner_class: str = "PlatformSpawner") -> list[str]:
    """Problems with the storage settings in a hub config, each ready to print.

    Checks the storage settings wherever traitlets would take them from (``c.PlatformSpawner``,
    ``c.StorageMixin`` and, as z2jh's ``hub.config`` writes them, ``c.KubeSpawner``) and every
    profile's ``kubespawner_override``: dataset entries (forbidden volume types, missing
    fields), sizes, paths, and dataset ``profiles`` naming a profile slug that does not exist
    (such a dataset would silently never be mounted).
    """
    sections = [name for name in (spawner_class, "StorageMixin", "KubeSpawner") if name in config]
    problems: list[str] = []

    def check(values: dict, where: str) -> None:
        if "shared_datasets" in values:
            found = storage.validate_datasets(values["shared_datasets"])
            if found:
                problems.append(_problem_text(f"{where}shared_datasets", found))
        for key in ("scratch_size_limit", "shm_size_limit"):
            value = values.get(key)
            if isinstance(value, str) and value:
                problem = _quantity_problem(value)
                if problem:
                    problems.append(f"{where}{key}: {problem}")
        path = values.get("scratch_path")
        if isinstance(path, str) and (not path.startswith("/") or posixpath.normpath(path) == "/"):
            problems.append(f"{where}scratch_path must be an absolute path below '/', not {path!r}")

    def effective(key: str) -> Any:
        # The most specific section wins, as when traitlets loads the config.
        for name in sections:
            if key in config[name]:
                return config[name][key]
        return None

    for name in sections:
        check({k: config[name][k] for k in _STORAGE_TRAITS if k in config[name]}, f"{name}.")
    profile_list = effective("profile_list")
    if isinstance(profile_list, dict):  # KubeSpawner accepts a dict of profiles too
        profile_list = list(profile_list.values())
    slugs: set[str] | None = None
    if isinstance(profile_list, list):
        slugs = set()
        for i, profile in enumerate(profile_list):
            if not isinstance(profile, dict):
                continue
            # KubeSpawner makes a missing slug from the display name.
            slug = profile.get("slug") or slugify(str(profile.get("display_name", ""))) or f"#{i + 1}"
            slugs.add(slug)
            override = profile.get("kubespawner_override") or {}
            if isinstance(override, dict):
                check(override, f"{spawner_class}.profile_list profile {slug!r} kubespawner_override ")
    datasets = effective("shared_datasets") or []
    if slugs is not None and isinstance(datasets, list) and not storage.validate_datasets(datasets):
        for ds in datasets:
            missing = [p for p in ds.get("profiles") or [] if p not in slugs]
            if missing:
                problems.append(
                    f"{spawner_class}.shared_datasets: dataset {ds['name']!r} lists "
                    f"{'profile' if len(missing) == 1 else 'profiles'} {', '.join(map(repr, missing))}, "
                    f"which {'is' if len(missing) == 1 else 'are'} not in profile_list (slugs: "
                    f"{', '.join(sorted(s for s in slugs if s)) or 'none'}); the dataset would never be mounted there"
                )
    return problems


def fail_on_storage_problems(config: Config, stream=None) -> None:
    """Print each storage problem as ``FATAL: ...`` (to stderr by default) and exit 1 if there
    are any (what ``jupyterhub_config.d/`` runs when the hub loads its configuration)."""
    stream = stream or sys.stderr
    problems = storage_config_problems(config)
    if not problems:
        return
    for problem in problems:
        print(f"FATAL: {problem}", file=stream)
    print(
        "FATAL: jhplatform refuses to start with storage settings that cannot work. Fix the "
        "settings named above (see docs/storage.md).",
        file=stream,
    )
    sys.exit(1)


__all__ = ["STATE_KEY", "StorageError", "StorageMixin", "fail_on_storage_problems", "storage_config_problems"]
