"""Hub-side registration of the culler, used by ``jupyterhub_config.d/50-jhplatform-culler.py``.

:func:`register_culler` turns the ``custom.jhplatform.culler`` block of the z2jh values into:

- a hub-managed service ``jhplatform-culler`` running ``python -m jhplatform.culler`` in the hub
  pod, its settings passed as JSON in ``$JHPLATFORM_CULLER_CONFIG``;
- its role, with the narrowest scopes it needs (:data:`SCOPES`);
- ``announcement_home`` in ``c.JupyterHub.template_vars``: the owner's warnings (an
  announcement the admin set is kept above them);
- z2jh's own idle-culler service and role removed when ``cull.enabled`` is still true.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

from ..policy.culling import limits_problems
from .announce import CullWarnings

SERVICE = "jhplatform-culler"
#: The stock culler's scopes (list users, read activity and servers, stop servers) plus
#: ``admin:server_state``: the spawner state is where the GPUs a server holds are recorded.
SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers", "admin:server_state"]
DEFAULT_PORT = 10101
STOCK_CULLER = "idle-culler"  # the name z2jh 4.4 gives its culler service and role

# values key -> CullerService trait
_SIMPLE = {
    "dryRun": "dry_run",
    "every": "cull_every",
    "warnBefore": "warn_before",
    "gpuUtilThreshold": "gpu_util_threshold",
    "concurrency": "concurrency",
    "apiPageSize": "api_page_size",
    "hubRequestTimeout": "hub_request_timeout",
    "cullNamedServers": "cull_named_servers",
    "removeNamedServers": "remove_named_servers",
}
_PROMETHEUS = {"url": "prometheus_url", "query": "prometheus_query", "window": "prometheus_window", "timeout": "prometheus_timeout"}
_LIMITS = {"idleTimeout": "idle_timeout", "maxAge": "max_age"}
_OTHER = {"enabled", "gpu", "cpu", "profiles", "prometheus", "port", "bindAddress", "warningsFile"}


class CullerConfigError(ValueError):
    """A problem in ``custom.jhplatform.culler``; the message names the key and the fix."""


def _limits(where: str, value) -> dict:
    if not isinstance(value, Mapping):
        raise CullerConfigError(f"{where} must be a mapping with idleTimeout and/or maxAge (seconds), not {value!r}.")
    unknown = set(value) - set(_LIMITS)
    if unknown:
        raise CullerConfigError(f"{where} has unknown key(s) {sorted(unknown)}; use idleTimeout and/or maxAge (seconds).")
    out = {_LIMITS[k]: v for k, v in value.items()}
    problems = limits_problems(where, out)
    if problems:
        raise CullerConfigError("; ".join(problems) + ".")
    return out


def culler_settings(values: Mapping, hub_dir: str) -> dict:
    """``CullerService`` trait values from the values block (raises :class:`CullerConfigError`)."""
    where = "custom.jhplatform.culler"
    unknown = set(values) - set(_SIMPLE) - set(_OTHER)
    if unknown:
        raise CullerConfigError(f"{where} has unknown key(s) {sorted(unknown)}; see docs/culling.md for the settings.")
    out = {_SIMPLE[k]: v for k, v in values.items() if k in _SIMPLE}
    for cls in ("gpu", "cpu"):
        if cls in values:
            for key, v in _limits(f"{where}.{cls}", values[cls]).items():
                out[f"{cls}_{key}"] = v
    profiles = values.get("profiles") or {}
    if not isinstance(profiles, Mapping):
        raise CullerConfigError(f"{where}.profiles must map profile slugs to limits, not {profiles!r}.")
    if profiles:
        out["profile_limits"] = {slug: _limits(f"{where}.profiles.{slug}", v) for slug, v in profiles.items()}
    prom = values.get("prometheus") or {}
    unknown = set(prom) - set(_PROMETHEUS)
    if unknown:
        raise CullerConfigError(f"{where}.prometheus has unknown key(s) {sorted(unknown)}; use {sorted(_PROMETHEUS)}.")
    out.update({_PROMETHEUS[k]: v for k, v in prom.items() if v is not None})
    out["warnings_file"] = os.path.join(hub_dir, values.get("warningsFile") or "jhplatform-culler-warnings.json")
    return out


def _list(value) -> list:
    # Unset in the config: traitlets hands out a LazyConfigValue, not a list.
    return list(value) if isinstance(value, list) else []


def register_culler(c, values: Mapping | None, *, hub_host: str, cull_enabled: bool, hub_dir: str | None = None,
                    log=print) -> bool:
    """Configure ``c`` for the culler; False (and nothing changed) when ``enabled: false``."""
    values = dict(values or {})
    if not values.get("enabled", True):
        return False
    settings = culler_settings(values, hub_dir or os.getcwd())
    port = int(values.get("port") or DEFAULT_PORT)
    # In the hub pod the proxy reaches the page through the hub Service, so listen on all
    # interfaces by default.
    settings["bind_url"] = f"http://{values.get('bindAddress') or '0.0.0.0'}:{port}"

    services = [s for s in _list(c.JupyterHub.services) if s.get("name") != SERVICE]
    roles = [r for r in _list(c.JupyterHub.load_roles) if r.get("name") != SERVICE]
    if cull_enabled:
        log("jhplatform: z2jh's cull.enabled is true; its idle-culler service is removed so that only the "
            "GPU-aware culler stops servers. Set cull.enabled: false in your values to silence this.")
        services = [s for s in services if s.get("name") != STOCK_CULLER]
        roles = [r for r in roles if r.get("name") != STOCK_CULLER]
    services.append({
        "name": SERVICE,
        "display": False,
        "url": f"http://{hub_host}:{port}",
        "command": [sys.executable, "-m", "jhplatform.culler"],
        "environment": {"JHPLATFORM_CULLER_CONFIG": json.dumps(settings)},
        "oauth_no_confirm": True,
    })
    roles.append({
        "name": SERVICE,
        "description": "The GPU-aware culler: reads servers and their state, stops servers",
        "scopes": list(SCOPES),
        "services": [SERVICE],
    })
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles

    template_vars = c.JupyterHub.template_vars
    current = dict(template_vars) if isinstance(template_vars, Mapping) else {}
    prior = current.get("announcement_home")
    if isinstance(prior, CullWarnings):
        prior = prior.prior
    # Three missed cycles: the culler is not running, and its last warnings may be wrong.
    stale_after = 3 * float(settings.get("cull_every") or 300)
    current["announcement_home"] = CullWarnings(settings["warnings_file"], prior if isinstance(prior, str) else None, stale_after)
    c.JupyterHub.template_vars = current
    return True
