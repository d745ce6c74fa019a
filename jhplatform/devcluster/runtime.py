"""A whole emulated cluster: control plane, controllers, node pool and HTTP server together."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from . import rbac
from .cluster import Cluster
from .controllers import NamespaceController, PersistentVolumeController
from .kubelet import Kubelet
from .nodes import DEFAULT_NODES, parse_nodes
from .scheduler import Scheduler
from .server import DevClusterServer
from .storageclasses import BOOTSTRAP_CLASSES

KUBELET_MODES = ("simulated", "process")


class DevCluster(DevClusterServer):
    """The emulator as ``jhplatform devcluster``, ``make demo`` and the test suite run it.

    Parameters
    ----------
    nodes:
        Node pool: a spec string or file path understood by :func:`parse_nodes`, or Node dicts.
    kubelet:
        ``"simulated"`` walks pods through their phases; ``"process"`` also runs each
        notebook container's command as a real local process on a per-pod loopback address.
    state_dir:
        Where the process kubelet keeps volumes and logs (a temporary directory by default).
    seed:
        Seed for fault injection.
    extended_resource_toleration:
        Run the ExtendedResourceToleration admission plugin, as GKE does (off by default): pods
        asking for an extended resource tolerate the taint of that name.
    """

    def __init__(
        self,
        nodes: str | list[dict] | None = None,
        kubelet: str = "simulated",
        state_dir: str | Path | None = None,
        seed: int | None = 0,
        scheduler_delay: float = 0.0,
        kubelet_step_delay: float = 0.02,
        namespaces: tuple[str, ...] = ("default", "kube-system"),
        extended_resource_toleration: bool = False,
    ):
        if kubelet not in KUBELET_MODES:
            raise ValueError(f"kubelet must be one of {', '.join(KUBELET_MODES)}, not {kubelet!r}")
        cluster = Cluster()
        # Claim resizes are admitted only for StorageClasses that allow expansion, as on a cluster.
        cluster.claim_update_admission = True
        cluster.extended_resource_toleration = extended_resource_toleration
        self.node_objects = nodes if isinstance(nodes, list) else parse_nodes(nodes or DEFAULT_NODES)
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="jhplatform-devcluster-"))
        self.namespaces = namespaces
        self.scheduler = Scheduler(cluster, delay=scheduler_delay)
        self.kubelet_step_delay = kubelet_step_delay
        self.kubelet_mode = kubelet
        self.kubelet: Kubelet = self._make_kubelet(kubelet, cluster)
        self.volumes = PersistentVolumeController(cluster)
        cluster.controllers.extend([self.scheduler, self.kubelet, self.volumes, NamespaceController(cluster)])
        super().__init__(cluster, seed=seed)
        self.bootstrap()

    def _make_kubelet(self, mode: str, cluster: Cluster) -> Kubelet:
        if mode == "process":
            from .process_kubelet import ProcessKubelet

            return ProcessKubelet(cluster, state_dir=self.state_dir, step_delay=self.kubelet_step_delay)
        return Kubelet(cluster, step_delay=self.kubelet_step_delay)

    async def set_kubelet(self, mode: str) -> None:
        """Switch between the simulated and the process kubelet on a running cluster.

        Pods already running stay with the kubelet that started them only until it stops;
        switch on an empty cluster (after :meth:`reset`).
        """
        if mode not in KUBELET_MODES:
            raise ValueError(f"kubelet must be one of {', '.join(KUBELET_MODES)}, not {mode!r}")
        if mode == self.kubelet_mode:
            return
        await self.cluster.remove_controller(self.kubelet)
        self.kubelet = self._make_kubelet(mode, self.cluster)
        self.kubelet_mode = mode
        await self.cluster.add_controller(self.kubelet)

    def bootstrap(self) -> None:
        """Create what a fresh cluster has: nodes, the built-in namespaces and StorageClasses."""
        for node in self.node_objects:
            if self.cluster.store.find("nodes", "", node["metadata"]["name"]) is None:
                self.cluster.create("nodes", None, copy.deepcopy(node))
        for ns in self.namespaces:
            if self.cluster.store.find("namespaces", "", ns) is None:
                self.cluster.create("namespaces", None, {"metadata": {"name": ns}})
        # The default RBAC policy: cluster-admin for system:masters, discovery and access
        # reviews for every authenticated user.
        for resource, obj in rbac.BOOTSTRAP_POLICY:
            if self.cluster.store.find(resource, "", obj["metadata"]["name"]) is None:
                self.cluster.create(resource, None, copy.deepcopy(obj))
        # "standard" (the default class, expandable) and "fixed" (not expandable).
        for storage_class in BOOTSTRAP_CLASSES:
            if self.cluster.store.find("storageclasses", "", storage_class["metadata"]["name"]) is None:
                self.cluster.create("storageclasses", None, copy.deepcopy(storage_class))

    async def reset(self) -> None:
        await super().reset()
        self.bootstrap()

    def service_account_kubeconfig(self, path: str | Path, namespace: str, name: str, tls: bool = False) -> Path:
        """Write a kubeconfig that acts as ServiceAccount ``namespace/name``, creating the
        ServiceAccount if the namespace has none by that name (the namespace must exist).

        The token works until the emulator stops; what it may do is what RBAC Roles and
        ClusterRoles bound to the ServiceAccount allow.
        """
        if self.cluster.store.find("serviceaccounts", namespace, name) is None:
            self.cluster.create("serviceaccounts", namespace, {"metadata": {"name": name}})
        return self.write_serviceaccount_kubeconfig(path, namespace, name, tls=tls)

    def apply(self, manifests: list[dict[str, Any]]) -> list[dict]:
        """Create each manifest (namespace first if listed), like ``kubectl create -f``."""
        from .errors import KINDS

        resources = {kind: res for res, kind in KINDS.items()}
        created = []
        for m in manifests:
            resource = resources[m["kind"]]
            created.append(self.cluster.create(resource, m.get("metadata", {}).get("namespace"), m))
        return created
