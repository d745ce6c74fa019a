"""Helpers of z2jh 4.4.0's hub pod (``/usr/local/etc/jupyterhub/z2jh.py``), for the test and demo loader.

Written for jhplatform from the facts in docs/z2jh-loader.md: the same functions, signatures,
paths and behaviour as the chart's file. Every path is fixed, as in the hub pod.
"""

import functools
import os

import yaml

_ROOT = "/usr/local/etc/jupyterhub"


def _merge(base, over):
    # The existing secret's values win, key by key.
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@functools.lru_cache
def _values():
    values = {}
    for source in ("secret", "existing-secret"):
        path = f"{_ROOT}/{source}/values.yaml"
        if os.path.exists(path):
            with open(path) as f:
                values = _merge(values, yaml.safe_load(f) or {})
    return values


def get_config(key, default=None):
    """The value at the dotted ``key`` of the chart's merged values, or ``default`` if any part is missing."""
    value = _values()
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


def set_config_if_not_none(cparent, name, key):
    """``setattr(cparent, name, get_config(key))`` unless that value is None."""
    value = get_config(key)
    if value is not None:
        setattr(cparent, name, value)


def get_name(name):
    """The Kubernetes resource name the chart gave ``name`` (``config/<name>``)."""
    with open(f"{_ROOT}/config/{name}") as f:
        return f.read()


def get_name_env(name, suffix=""):
    """The environment variable the kubelet sets for the resource ``name`` plus ``suffix``."""
    return os.environ[(get_name(name) + suffix).upper().replace("-", "_")]


_MISSING = object()


def get_secret_value(key, default=_MISSING):
    """The file ``existing-secret/<key>``, else ``secret/<key>``; raises if neither exists and no default."""
    for source in ("existing-secret", "secret"):
        path = f"{_ROOT}/{source}/{key}"
        if os.path.exists(path):
            with open(path) as f:
                return f.read()
    if default is not _MISSING:
        return default
    raise KeyError(f"Secret key not found: {key}")
