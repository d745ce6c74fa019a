"""PlatformSpawner: KubeSpawner with restricted pods, quota-aware GPU profiles and durable storage.

Configured as ``c.JupyterHub.spawner_class = "jhplatform"`` (the entry point) or
``"jhplatform.spawner.PlatformSpawner"``. The spawner is glue: every decision it acts on lives in
:mod:`jhplatform.policy`.

- :mod:`.spawner`: :class:`PlatformSpawner` itself and the security check of the final manifest;
- :mod:`.gpu`: the GPU quota mixin (ledger wiring, quota watch, refusals, metrics);
- :mod:`.storage`: the storage mixin (home and profile claims, datasets, growth);
- :mod:`.form`: the spawn form template with GPU availability;
- :mod:`.checks`: the load-time checks the ``jupyterhub_config.d`` snippets run.
"""

from .spawner import PlatformSpawner, SecurityPolicyRefusal

__all__ = ["PlatformSpawner", "SecurityPolicyRefusal"]
