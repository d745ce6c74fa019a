"""The values z2jh's hub pod reads: Helm's merge of the chart's values.yaml with the user's files.

Helm (``helm upgrade -f a.yaml -f b.yaml``) merges the values files over the chart's
``values.yaml`` like this: maps merge key by key, recursively; lists and scalars replace; a key set
to ``null`` deletes the key (and the chart's default with it). The chart's Secret ``hub`` then
stores the result as ``values.yaml`` with the top-level ``Chart`` and ``Release`` objects added
(z2jh's ``z2jh.py`` reads ``Chart.Name``, ``Chart.Version`` and ``Release.Name`` from it).
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

CHART_NAME = "jupyterhub"
CHART_VERSION = "4.4.0"


def chart_values() -> dict:
    """z2jh 4.4.0's own ``values.yaml`` (shipped as package data)."""
    text = resources.files(__package__).joinpath("chart", "values.yaml").read_text()
    return yaml.safe_load(text)


def helm_merge(base: dict, override: dict) -> dict:
    """``override`` merged over ``base`` as Helm merges a values file over the chart's values.

    Neither argument is changed.
    """
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = helm_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(_drop_nulls(value))
    return out


def _drop_nulls(value: Any) -> Any:
    # A map that replaces a non-map (or fills an absent key) loses its null keys too: Helm
    # coalesces every user map against the chart's, and a null there means "no value".
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def load_values_files(paths: Iterable[str | Path]) -> list[dict]:
    """Each values file as a mapping; an empty file is an empty mapping."""
    out = []
    for path in paths:
        data = yaml.safe_load(Path(path).read_text())
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a values file must be a YAML mapping, not {type(data).__name__}")
        out.append(data)
    return out


def release_values(
    user_values: Iterable[dict], release: str = "jhub", namespace: str = "jhub", chart: dict | None = None
) -> dict:
    """What the Secret ``hub`` holds as ``values.yaml`` after ``helm upgrade``.

    ``user_values`` are the values files' contents, in ``-f`` order (later files win).
    """
    merged = chart_values() if chart is None else copy.deepcopy(chart)
    for values in user_values:
        merged = helm_merge(merged, values)
    merged["Chart"] = {"Name": CHART_NAME, "Version": CHART_VERSION}
    merged["Release"] = {"Name": release, "Namespace": namespace, "Service": "Helm"}
    return merged


__all__ = ["CHART_NAME", "CHART_VERSION", "chart_values", "helm_merge", "load_values_files", "release_values"]
