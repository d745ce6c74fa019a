"""What the culler needs to know about a server, recorded by the spawner.

The culler must know how many GPUs a running server holds, from what the spawner actually
resolved for it, not from a profile's name. When a spawn has started, the pod as the cluster
has it (KubeSpawner's pod reflector: after profiles, user options, overrides and
``modify_pod_hook``) is read and its GPU extended resources in the container limits are counted
with the same notion of a GPU resource as the GPU quota (:func:`jhplatform.policy.gpu_ledger.pod_usage`).

The count goes into the spawner's state under ``jhplatform_gpus`` (``{resource: count}``), and the
profile slug used (also the default one, which ``user_options`` does not name) under
``jhplatform_profile``. The
hub API shows a server's ``state`` to holders of the ``admin:server_state`` scope, which is the
one scope beyond the stock culler's that ``jhplatform.culler`` needs (docs/culling.md).
"""

from __future__ import annotations

from ..policy.culling import GPU_STATE_KEY as STATE_KEY
from ..policy.culling import PROFILE_STATE_KEY as PROFILE_KEY
from ..policy.gpu_ledger import GPU_ANNOTATION, pod_usage


def chosen_profile(user_options, profile_list) -> str:
    """The slug of the profile a spawn used: the user's choice, else the list's default."""
    slug = (user_options or {}).get("profile") if isinstance(user_options, dict) else None
    if slug:
        return str(slug)
    if isinstance(profile_list, list) and profile_list:
        default = next((p for p in profile_list if isinstance(p, dict) and p.get("default")), profile_list[0])
        if isinstance(default, dict):
            return str(default.get("slug") or "")
    return ""


class CullingFactsMixin:
    """Records the server's GPUs (from the pod the cluster accepted) in the spawner state."""

    _culling_gpus: dict | None = None
    _culling_profile: str = ""

    def start(self):
        # KubeSpawner's start() returns its running future at once (progress() reads it while the
        # start is pending), so record from a callback on that same future instead of wrapping it.
        # The callback was added before anyone awaits the future, so it runs before JupyterHub
        # resumes and saves the state.
        future = super().start()
        future.add_done_callback(self._record_culling_facts)
        return future

    def _record_culling_facts(self, future) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
        # A GPU profile may name a resource outside the vendors' usual names; the GPU mixin
        # writes it into the pod's annotation ("example.com/accel=2").
        ann = ((pod or {}).get("metadata") or {}).get("annotations") or {}
        known = [item.split("=", 1)[0] for item in (ann.get(GPU_ANNOTATION) or "").split(",") if item]
        usage = pod_usage(pod, known) if pod else None
        self._culling_gpus = dict(usage.counts) if usage else {}
        # A callable profile_list has no default to name here; the user's choice still counts.
        self._culling_profile = chosen_profile(self.user_options, self.profile_list)

    def get_state(self):
        state = super().get_state()
        if self._culling_gpus is not None:
            state[STATE_KEY] = dict(self._culling_gpus)
            state[PROFILE_KEY] = self._culling_profile
        return state

    def load_state(self, state):
        super().load_state(state)
        gpus = state.get(STATE_KEY) if state else None
        if isinstance(gpus, dict):
            self._culling_gpus = dict(gpus)
            self._culling_profile = str(state.get(PROFILE_KEY) or "")

    def clear_state(self):
        super().clear_state()
        self._culling_gpus = None
        self._culling_profile = ""
