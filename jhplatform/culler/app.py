"""``python -m jhplatform.culler``: the GPU-aware culler, a hub-managed JupyterHub service.

:class:`CullerService` is jupyterhub-idle-culler's ``IdleCuller`` application with the
platform's settings added; it keeps upstream's options (``cull_every``, ``concurrency``,
``api_page_size``, ``cull_default_servers``, ``cull_named_servers``, ``remove_named_servers``,
``url``) and replaces upstream's single ``timeout``/``max_age`` by per-class and per-profile
limits (upstream's ``max_age`` would cull regardless of our decision). Each cycle is
:class:`jhplatform.culler.cycle.Cycle`; the admin page is :mod:`jhplatform.culler.web`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from urllib.parse import urlparse

from jupyterhub_idle_culler import IdleCuller
from traitlets import Bool, Dict, Float, Int, TraitError, Unicode, default, validate
from traitlets.config import Config

from ..policy.culling import CullPolicy, Limits, limits_problems, with_profiles
from .cycle import Cycle, Metrics, Settings
from .prometheus import DEFAULT_QUERY

CONFIG_ENV = "JHPLATFORM_CULLER_CONFIG"
_WINDOW = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")


def _seconds(trait_name: str):
    def check(self, proposal):
        value = proposal["value"]
        if value < 0:
            raise TraitError(f"CullerService.{trait_name} must be >= 0 seconds (0 turns the rule off), not {value!r}.")
        return value

    return validate(trait_name)(check)


class CullerService(IdleCuller):
    """Stops idle and over-age servers with per-class limits and GPU-utilisation idleness."""

    name = "jhplatform-culler"
    description = "GPU-aware culler for JupyterHub (a hub-managed service)"

    dry_run = Bool(False, config=True, help="""
        Log every decision ("Dry run: would stop ada: ...") and stop nothing. Warnings are still
        shown to owners and the admin page still says which rule would cull each server.

        Example: ``c.CullerService.dry_run = True``
        """)

    gpu_idle_timeout = Int(1800, config=True, help="""
        Seconds a GPU server may stay idle before it is stopped (default 1800). Idle means: its GPUs
        stayed below ``gpu_util_threshold`` for this long (even if a browser keeps Jupyter active);
        without a utilisation reading, no Jupyter activity for this long. 0: never for idleness.

        Example: ``c.CullerService.gpu_idle_timeout = 3600``
        """)
    gpu_max_age = Int(8 * 3600, config=True, help="""
        Seconds a GPU server may run at all, busy or not (default 28800, 8 hours). 0: no limit.

        Example: ``c.CullerService.gpu_max_age = 12 * 3600``
        """)
    cpu_idle_timeout = Int(3600, config=True, help="""
        Seconds without Jupyter activity after which a server without GPUs is stopped (default
        3600, z2jh's ``cull.timeout``). 0: never for idleness.

        Example: ``c.CullerService.cpu_idle_timeout = 7200``
        """)
    cpu_max_age = Int(0, config=True, help="""
        Seconds a server without GPUs may run at all (default 0: no limit).

        Example: ``c.CullerService.cpu_max_age = 7 * 24 * 3600``
        """)
    _v_gpu_idle = _seconds("gpu_idle_timeout")
    _v_gpu_age = _seconds("gpu_max_age")
    _v_cpu_idle = _seconds("cpu_idle_timeout")
    _v_cpu_age = _seconds("cpu_max_age")

    profile_limits = Dict(config=True, help="""
        Limits per profile slug, overriding the class limits for servers started with that
        profile; keys left out inherit the class value. Whether a server holds GPUs never
        depends on this list (it comes from the pod's resources).

        Example::

            c.CullerService.profile_limits = {"a100-long": {"max_age": 48 * 3600},
                                              "workshop": {"idle_timeout": 900}}
        """)

    @validate("profile_limits")
    def _check_profile_limits(self, proposal):
        problems = []
        for slug, value in proposal["value"].items():
            problems += limits_problems(f"CullerService.profile_limits[{slug!r}]", value)
        if problems:
            raise TraitError("; ".join(problems) + ".")
        return proposal["value"]

    gpu_util_threshold = Float(5.0, config=True, help="""
        GPU utilisation in percent below which a server's GPUs count as idle (default 5).

        Example: ``c.CullerService.gpu_util_threshold = 10``
        """)

    @validate("gpu_util_threshold")
    def _check_threshold(self, proposal):
        if not 0 <= proposal["value"] <= 100:
            raise TraitError(f"CullerService.gpu_util_threshold is a percentage (0-100), not {proposal['value']!r}.")
        return proposal["value"]

    warn_before = Int(900, config=True, help="""
        Seconds before a cull from which the owner sees a warning on the hub's home page
        (default 900). 0: no warnings.

        Example: ``c.CullerService.warn_before = 1800``
        """)
    _v_warn = _seconds("warn_before")

    prometheus_url = Unicode("", config=True, help="""
        Base URL of the Prometheus that scrapes the DCGM exporter, e.g.
        ``http://prometheus-server.monitoring.svc``. Empty (default): no GPU utilisation; GPU
        servers are judged by Jupyter activity with the GPU limits.
        """)

    @validate("prometheus_url")
    def _check_prometheus_url(self, proposal):
        url = proposal["value"]
        if url and urlparse(url).scheme not in ("http", "https"):
            raise TraitError(f"CullerService.prometheus_url must be an http(s) URL, not {url!r}.")
        return url

    prometheus_query = Unicode(DEFAULT_QUERY, config=True, help="""
        PromQL returning one value per pod, labelled ``namespace`` and ``pod``: the mean GPU
        utilisation in percent. ``{window}`` is replaced by ``prometheus_window``. Default:
        ``avg by (namespace, pod) (avg_over_time(DCGM_FI_DEV_GPU_UTIL[{window}]))``.
        """)
    prometheus_window = Unicode("10m", config=True, help="""
        The averaging window put into ``prometheus_query`` (a PromQL duration, default ``10m``).
        """)

    @validate("prometheus_window")
    def _check_window(self, proposal):
        if not _WINDOW.match(proposal["value"]):
            raise TraitError(f"CullerService.prometheus_window must be a PromQL duration like '10m', not {proposal['value']!r}.")
        return proposal["value"]

    prometheus_timeout = Float(10.0, config=True, help="Seconds to wait for Prometheus each cycle (default 10).")

    hub_request_timeout = Int(60, config=True, help="""
        Seconds to wait for each hub API request (default 60, as upstream's culler).
        """)

    warnings_file = Unicode("jhplatform-culler-warnings.json", config=True, help="""
        File the service writes the current warnings to, and the hub reads for the home page.
        Relative paths are from the working directory (a hub-managed service starts in the
        hub's directory). Empty: no warnings.
        """)

    namespace = Unicode(config=True, help="Namespace of the user pods when the spawner state does not name it.")

    bind_url = Unicode(config=True, help="""
        Where the admin page listens, e.g. ``http://0.0.0.0:10101``. Default: the service URL the hub
        gave (``$JUPYTERHUB_SERVICE_URL``). Empty: no page.
        """)

    @default("bind_url")
    def _default_bind_url(self):
        return os.environ.get("JUPYTERHUB_SERVICE_URL", "")

    @default("namespace")
    def _default_namespace(self):
        return os.environ.get("POD_NAMESPACE", "default")

    @default("cull_every")
    def _default_cull_every(self):
        return 300

    @validate("max_age")
    def _ignore_upstream_max_age(self, proposal):
        if proposal["value"]:
            self.log.warning("CullerService.max_age=%s is ignored (it would cull regardless of the rules): "
                             "use gpu_max_age, cpu_max_age or profile_limits. Remove max_age to silence this.",
                             proposal["value"])
        return 0

    def initialize(self, argv=None):
        super().initialize(argv)
        raw = os.environ.get(CONFIG_ENV)
        if raw:
            try:
                values = json.loads(raw)
            except ValueError as e:
                raise TraitError(f"${CONFIG_ENV} is not JSON ({e}); the hub's culler snippet writes it.") from e
            cli = self.cli_config  # the command line still wins
            self.update_config(Config({"CullerService": values}))
            self.update_config(cli)

    def policy(self) -> CullPolicy:
        policy = CullPolicy(
            gpu=Limits(self.gpu_idle_timeout, self.gpu_max_age),
            cpu=Limits(self.cpu_idle_timeout, self.cpu_max_age),
            gpu_util_threshold=self.gpu_util_threshold,
            warn_before=self.warn_before,
        )
        return with_profiles(policy, self.profile_limits)

    def settings(self, api_token: str) -> Settings:
        return Settings(
            hub_api_url=self.url,
            api_token=api_token,
            policy=self.policy(),
            dry_run=self.dry_run,
            prometheus_url=self.prometheus_url,
            prometheus_query=self.prometheus_query.replace("{window}", self.prometheus_window),
            prometheus_timeout=self.prometheus_timeout,
            concurrency=self.concurrency,
            api_page_size=self.api_page_size,
            cull_default_servers=self.cull_default_servers,
            cull_named_servers=self.cull_named_servers,
            remove_named_servers=self.remove_named_servers,
            warnings_file=self.warnings_file,
            namespace=self.namespace,
        )

    def start(self):
        token = os.environ.get("JUPYTERHUB_API_TOKEN")
        if not token or not self.url:
            self.log.critical("The culler needs $JUPYTERHUB_API_TOKEN and $JUPYTERHUB_API_URL: run it as a hub service "
                              "(c.JupyterHub.services, as jupyterhub_config.d/50-jhplatform-culler.py does).")
            sys.exit(1)
        # idle-culler's loop reads its request timeout from the environment.
        os.environ["JUPYTERHUB_REQUEST_TIMEOUT"] = str(self.hub_request_timeout)
        if self.cull_users:
            self.log.warning("CullerService.cull_users is ignored: the culler stops servers and never deletes users.")
        asyncio.run(self.serve(token))

    async def serve(self, token: str):
        from .web import start_web

        cycle = Cycle(self.settings(token), Metrics())
        self.log.info("Culling every %ss%s: GPU idle %ss / max age %ss, CPU idle %ss / max age %ss, warnings %ss ahead",
                      self.cull_every, " (dry run)" if self.dry_run else "", self.gpu_idle_timeout, self.gpu_max_age,
                      self.cpu_idle_timeout, self.cpu_max_age, self.warn_before)
        server = start_web(cycle, self.bind_url)
        try:
            while True:
                await cycle.run()
                await asyncio.sleep(self.cull_every)
        finally:
            if server is not None:
                server.stop()


def main(argv=None):
    try:
        app = CullerService.instance()
        app.initialize(argv)
    except TraitError as e:
        print(f"FATAL: {e}", file=sys.stderr)
        sys.exit(1)
    app.start()
