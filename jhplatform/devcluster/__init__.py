"""A Kubernetes API emulator that the real kubernetes_asyncio client and KubeSpawner can use.

It speaks the Kubernetes REST API over HTTP on loopback, with apiserver admission (validation,
LimitRanger, PodSecurity, ResourceQuota), watches with resume and expiry, and controllers
(scheduler over a node pool with GPUs, a simulated or process-backed kubelet, garbage
collection, PVC binding and protection, namespace termination). See ``docs/devcluster.md``.
"""

from .cluster import Cluster
from .errors import ApiError
from .faults import Fault
from .server import DevClusterServer

__all__ = ["ApiError", "Cluster", "DevClusterServer", "Fault", "DevCluster"]


def __getattr__(name):
    # DevCluster pulls in the controllers; import it lazily so policy-only users stay light.
    if name == "DevCluster":
        from .runtime import DevCluster

        return DevCluster
    raise AttributeError(name)
