"""The ExtendedResourceToleration admission plugin (optional; off by default).

GKE and some other clusters enable the apiserver's ``ExtendedResourceToleration`` plugin: a pod
that asks for an extended resource (``nvidia.com/gpu``, ``amd.com/gpu``, ...) in any container
or init container gets ``{"key": <resource>, "operator": "Exists", "effect": "NoSchedule"}``, so
it can land on nodes tainted with the resource's name. It is a mutating plugin that runs on pod
create only.

The emulator leaves it off by default, as most clusters do, so tests prove that PlatformSpawner
tolerates the GPU taint by itself; turn it on with ``DevCluster(extended_resource_toleration=True)``
or ``jhplatform devcluster --extended-resource-toleration`` to emulate such a cluster.
"""

from __future__ import annotations

import copy

def is_extended_resource(name: str) -> bool:
    """``IsExtendedResourceName``: a domain-qualified name outside ``kubernetes.io``."""
    if "/" not in name or name.startswith("requests."):
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def admit(pod: dict) -> dict:
    """The pod with a toleration for each extended resource it asks for (a copy when changed)."""
    spec = pod.get("spec") or {}
    names: set[str] = set()
    for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        res = (c or {}).get("resources") or {}
        for part in ("requests", "limits"):
            names.update(n for n in (res.get(part) or {}) if is_extended_resource(n))
    if not names:
        return pod
    tolerations = list(spec.get("tolerations") or [])
    added = False
    for name in sorted(names):
        toleration = {"key": name, "operator": "Exists", "effect": "NoSchedule"}
        if toleration not in tolerations:
            tolerations.append(toleration)
            added = True
    if not added:
        return pod
    out = copy.copy(pod)
    out["spec"] = {**spec, "tolerations": tolerations}
    return out


__all__ = ["admit", "is_extended_resource"]
