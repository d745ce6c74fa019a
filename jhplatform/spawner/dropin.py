"""Settings the jupyterhub_config.d snippets read from the chart's values under ``custom.``.

z2jh's ``jupyterhub_config.py`` execs the snippets with its own ``get_config(key, default=None)``
in their globals, which reads the chart's merged values; settings that are not traits of a class
(whether to run a check at all, say) live under ``custom.jhplatform.`` in the values file and are
read through it. A missing required value, or a value of the wrong type, stops the hub with one
``FATAL:`` line naming the values key, as z2jh does for its own settings.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

REQUIRED = object()


def custom_setting(get_config: Callable[..., Any], key: str, *, kind: type, default: Any = REQUIRED, stream=None) -> Any:
    """The value of ``custom.<key>`` in the chart's values, checked against ``kind``.

    ``get_config`` is z2jh's ``get_config(key, default=None)``. Without ``default`` the value is
    required. On a missing required value or a wrong type: one ``FATAL:`` line, exit 1.
    """
    stream = stream or sys.stderr
    path = f"custom.{key}"
    value = get_config(path, None)
    if value is None:
        if default is REQUIRED:
            print(f"FATAL: jhplatform needs {path} in the chart's values (helm upgrade -f VALUES.yaml); see docs/z2jh-loader.md.", file=stream, flush=True)
            sys.exit(1)
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        print(f"FATAL: {path} must be a {kind.__name__} (e.g. {path}: {_example(kind)}), not {value!r}.", file=stream, flush=True)
        sys.exit(1)
    return value


def _example(kind: type) -> str:
    return {bool: "true", int: "1", str: '"text"'}.get(kind, "...")


__all__ = ["REQUIRED", "custom_setting"]
