"""Server-side apply (``PATCH`` with ``application/apply-patch+yaml``), simplified.

What ``kubectl apply --server-side`` needs: the object is created when it does not exist and
otherwise the applied configuration is merged into it (maps merge, lists and scalars replace);
``fieldManager`` is required and recorded in ``metadata.managedFields`` with the fields the
configuration sets. Not modelled: conflicts between managers (``force``) and removing fields a
manager stopped applying.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from . import errors
from .store import now_rfc3339

APPLY_PATCH = "application/apply-patch+yaml"


def parse(raw: bytes) -> dict:
    try:
        body = yaml.safe_load(raw.decode() or "{}")
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise errors.bad_request(f"error decoding YAML: {e}")
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be a YAML or JSON object")
    return body


def fields_v1(config: Any) -> dict:
    """The field set of ``config`` in FieldsV1 form (maps by ``f:<key>``; lists are leaves)."""
    if not isinstance(config, dict):
        return {}
    out: dict = {}
    for key, value in config.items():
        if key in ("apiVersion", "kind") or (key == "metadata" and not isinstance(value, dict)):
            continue
        out[f"f:{key}"] = fields_v1(value) if isinstance(value, dict) else {}
    return out


def _merge(base: dict, config: dict) -> dict:
    out = dict(base)
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def managed_entry(manager: str, api_version: str, config: dict) -> dict:
    md = {k: v for k, v in (config.get("metadata") or {}).items() if k in ("labels", "annotations")}
    fields = fields_v1({**{k: v for k, v in config.items() if k != "metadata"}, **({"metadata": md} if md else {})})
    return {"manager": manager, "operation": "Apply", "apiVersion": api_version, "time": now_rfc3339(),
            "fieldsType": "FieldsV1", "fieldsV1": fields}


def with_managed_fields(obj: dict, entry: dict) -> dict:
    obj = copy.deepcopy(obj)
    md = obj.setdefault("metadata", {})
    others = [m for m in md.get("managedFields") or [] if not (m.get("manager") == entry["manager"] and m.get("operation") == "Apply")]
    md["managedFields"] = others + [entry]
    return obj


def merged(existing: dict, config: dict) -> dict:
    """``existing`` with the applied ``config`` merged in (identity and server fields kept)."""
    config = {k: v for k, v in config.items() if k != "status"}
    md = config.get("metadata") or {}
    base_md = existing.get("metadata") or {}
    out = _merge({k: v for k, v in existing.items() if k != "metadata"}, {k: v for k, v in config.items() if k != "metadata"})
    out["metadata"] = _merge(base_md, {k: md[k] for k in ("labels", "annotations") if k in md})
    return out
