"""API discovery documents: what ``kubectl`` learns about each resource.

``shortNames`` and ``categories`` are the apiserver's (``kubectl get po``, ``ns``, ``pvc``,
``quota``, ``limits``, ``sa``, ``netpol``, ``ev``, ``no``, ``svc``, ``cm``, ``sc`` and
``kubectl get all``); verbs are those the emulator serves for each resource.
"""

from __future__ import annotations

from .errors import KINDS
from .store import RESOURCES, api_version

SHORT_NAMES: dict[str, list[str]] = {
    "namespaces": ["ns"],
    "nodes": ["no"],
    "pods": ["po"],
    "services": ["svc"],
    "configmaps": ["cm"],
    "persistentvolumeclaims": ["pvc"],
    "events": ["ev"],
    "resourcequotas": ["quota"],
    "limitranges": ["limits"],
    "serviceaccounts": ["sa"],
    "storageclasses": ["sc"],
    "networkpolicies": ["netpol"],
}

CATEGORIES: dict[str, list[str]] = {"pods": ["all"], "services": ["all"]}

# Subresources served: status for objects that have one, log for pods (the process kubelet's).
SUBRESOURCES: dict[str, dict[str, list[str]]] = {
    "pods": {"status": ["get", "patch", "update"], "log": ["get"]},
    "namespaces": {"status": ["get", "patch", "update"]},
    "persistentvolumeclaims": {"status": ["get", "patch", "update"]},
    "resourcequotas": {"status": ["get", "patch", "update"]},
    "nodes": {"status": ["get", "patch", "update"]},
    "services": {"status": ["get", "patch", "update"]},
}

OBJECT_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
CREATE_ONLY = {"selfsubjectaccessreviews"}


def resource_list(group_version: str) -> dict:
    """The ``APIResourceList`` of one group version."""
    resources = []
    for name, namespaced in RESOURCES.items():
        if api_version(name) != group_version:
            continue
        kind = KINDS[name]
        entry = {"name": name, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                 "verbs": ["create"] if name in CREATE_ONLY else list(OBJECT_VERBS)}
        if name in SHORT_NAMES:
            entry["shortNames"] = SHORT_NAMES[name]
        if name in CATEGORIES:
            entry["categories"] = CATEGORIES[name]
        resources.append(entry)
        for sub, verbs in SUBRESOURCES.get(name, {}).items():
            resources.append({"name": f"{name}/{sub}", "singularName": "", "namespaced": namespaced,
                              "kind": "Pod" if sub == "log" else kind, "verbs": verbs})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
