"""StorageClasses (``storage.k8s.io/v1``) and the claim admission that depends on them.

Pure functions the control plane calls; no store access:

- :func:`default_storage_class`: DefaultStorageClass admission's choice for a new claim
  without ``storageClassName`` (the class annotated ``storageclass.kubernetes.io/is-default-class``;
  the newest if several are, like the real plugin);
- :func:`default_class_object` / :func:`validate_class`: what the apiserver sets on and checks
  in a new StorageClass;
- :func:`claim_update_error`: the rules for changing an existing claim's spec —
  ``ValidatePersistentVolumeClaimUpdate`` (spec immutable except a bound claim's requests; no
  shrinking below the volume's capacity; 422) and the PersistentVolumeClaimResize admission
  plugin (growing needs a class with ``allowVolumeExpansion: true``; 403 with the apiserver's
  words).

:data:`BOOTSTRAP_CLASSES` are the classes a fresh emulator has: ``standard`` (the default,
expandable) and ``fixed`` (not expandable), so both answers to "can my home volume grow?" can
be exercised.
"""

from __future__ import annotations

import copy

from jhplatform.policy.quantity import Quantity

from . import errors

GROUP_VERSION = "storage.k8s.io/v1"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS_ANNOTATION = "storageclass.beta.kubernetes.io/is-default-class"
PROVISIONER = "devcluster.jhplatform.io/hostpath"

BOOTSTRAP_CLASSES: tuple[dict, ...] = (
    {
        "kind": "StorageClass",
        "apiVersion": GROUP_VERSION,
        "metadata": {"name": "standard", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "provisioner": PROVISIONER,
        "allowVolumeExpansion": True,
    },
    {
        "kind": "StorageClass",
        "apiVersion": GROUP_VERSION,
        "metadata": {"name": "fixed"},
        "provisioner": PROVISIONER,
        "allowVolumeExpansion": False,
    },
)

# Only these may change on an existing StorageClass; the rest is fixed at creation.
_MUTABLE_CLASS_FIELDS = ("metadata", "allowVolumeExpansion", "kind", "apiVersion")
_RECLAIM_POLICIES = ("Delete", "Retain", "Recycle")
_BINDING_MODES = ("Immediate", "WaitForFirstConsumer")


def is_default(storage_class: dict) -> bool:
    annotations = (storage_class.get("metadata") or {}).get("annotations") or {}
    return any(annotations.get(key) == "true" for key in (DEFAULT_CLASS_ANNOTATION, BETA_DEFAULT_CLASS_ANNOTATION))


def default_storage_class(classes: list[dict]) -> str | None:
    """The class DefaultStorageClass admission gives a claim without ``storageClassName``."""
    defaults = [c for c in classes if is_default(c)]
    if not defaults:
        return None
    newest = max(defaults, key=lambda c: ((c["metadata"].get("creationTimestamp") or ""), c["metadata"]["name"]))
    return newest["metadata"]["name"]


def default_class_object(storage_class: dict) -> dict:
    """A copy of a new StorageClass with the apiserver's defaults."""
    out = copy.deepcopy(storage_class)
    out.setdefault("kind", "StorageClass")
    out.setdefault("apiVersion", GROUP_VERSION)
    out.setdefault("reclaimPolicy", "Delete")
    out.setdefault("volumeBindingMode", "Immediate")
    return out


def validate_class(storage_class: dict, old: dict | None = None) -> None:
    """Raise 422 Invalid for a StorageClass the apiserver would refuse."""
    causes = []
    name = (storage_class.get("metadata") or {}).get("name", "")
    if not storage_class.get("provisioner"):
        causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": "provisioner"})
    policy = storage_class.get("reclaimPolicy")
    if policy is not None and policy not in _RECLAIM_POLICIES:
        causes.append({"reason": "FieldValueNotSupported", "message": f'Unsupported value: "{policy}": supported values: "Delete", "Recycle", "Retain"', "field": "reclaimPolicy"})
    mode = storage_class.get("volumeBindingMode")
    if mode is not None and mode not in _BINDING_MODES:
        causes.append({"reason": "FieldValueNotSupported", "message": f'Unsupported value: "{mode}": supported values: "Immediate", "WaitForFirstConsumer"', "field": "volumeBindingMode"})
    if old is not None:
        for key in sorted(set(old) | set(storage_class)):
            if key not in _MUTABLE_CLASS_FIELDS and old.get(key) != storage_class.get(key):
                causes.append({"reason": "FieldValueForbidden", "message": "Forbidden: updates to " + key + " are forbidden.", "field": key})
    if causes:
        raise errors.invalid("storageclasses", name, causes)


def _storage(pvc: dict, where: str = "spec") -> str | None:
    if where == "spec":
        return (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    return ((pvc.get("status") or {}).get("capacity") or {}).get("storage")


def _class_of(pvc: dict) -> str:
    return (pvc.get("spec") or {}).get("storageClassName") or ""


def claim_update_error(old: dict, new: dict, classes: dict[str, dict]) -> errors.ApiError | None:
    """Why an update of claim ``old`` to ``new`` is refused, or None.

    ``classes`` maps StorageClass names to objects. The checks and their order follow the
    apiserver: validation (422) first, then the PersistentVolumeClaimResize admission (403).
    """
    name = new["metadata"]["name"]
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    bound = (old.get("status") or {}).get("phase") == "Bound"

    def munged(spec: dict) -> dict:
        s = copy.deepcopy(spec)
        if isinstance(s.get("resources"), dict):
            s["resources"].pop("requests", None)
        # The binder fills in volumeName; a claim can be given one while unbound.
        s.pop("volumeName", None)
        s.pop("volumeAttributesClassName", None)
        return s

    old_req, new_req = _storage(old), _storage(new)
    requests_changed = old_req != new_req
    if munged(old_spec) != munged(new_spec) or (requests_changed and not bound):
        return errors.invalid(
            "persistentvolumeclaims",
            name,
            [
                {
                    "reason": "FieldValueForbidden",
                    "message": "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                    "field": "spec",
                }
            ],
        )
    if not requests_changed or old_req is None or new_req is None:
        return None
    try:
        old_q, new_q = Quantity.parse(old_req), Quantity.parse(new_req)
    except ValueError:
        return None  # validation of the quantity itself reports it
    capacity = _storage(old, "status")
    if new_q < old_q and capacity is not None and new_q < Quantity.parse(capacity):
        return errors.invalid(
            "persistentvolumeclaims",
            name,
            [{"reason": "FieldValueForbidden", "message": "Forbidden: field can not be less than status.capacity", "field": "spec.resources.requests.storage"}],
        )
    if new_q <= old_q:
        return None
    storage_class = classes.get(_class_of(new))
    if storage_class is None or storage_class.get("allowVolumeExpansion") is not True:
        return errors.forbidden(
            "persistentvolumeclaims",
            name,
            "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
        )
    return None


__all__ = [
    "BOOTSTRAP_CLASSES",
    "DEFAULT_CLASS_ANNOTATION",
    "GROUP_VERSION",
    "claim_update_error",
    "default_class_object",
    "default_storage_class",
    "is_default",
    "validate_class",
]
