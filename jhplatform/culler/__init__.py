"""The GPU-aware culler service (``python -m jhplatform.culler``); see docs/culling.md.

Decisions are :class:`jhplatform.policy.culling.CullPolicy`'s; this wing gathers the facts (hub API
through jupyterhub-idle-culler's loop, GPU utilisation from Prometheus), acts through the hub
API, and serves the admins' page.
"""

from .app import CullerService, main

__all__ = ["CullerService", "main"]
