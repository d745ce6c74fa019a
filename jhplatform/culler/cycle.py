"""One cull cycle: gather facts, ask :class:`~jhplatform.policy.culling.CullPolicy`, act.

The loop is jupyterhub-idle-culler's own ``cull_idle`` (paginated, concurrent, ``state=ready``
filtering, stopping servers through the hub API); our decision plugs in as its
``cull_arbiter_hook``. Upstream's ``max_age`` is passed as 0 because it culls regardless of the
hook; the age limits live in the policy. Before each cycle one Prometheus query fetches GPU
utilisation for every pod; the arbiter reads it from memory, so the hub sees exactly the
requests the stock culler makes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone

import jupyterhub_idle_culler as idle_culler
from prometheus_client import CollectorRegistry, Counter, Gauge

from ..policy.culling import GPU_STATE_KEY, PROFILE_STATE_KEY, CullPolicy, ServerFacts, Verdict, gpu_idle_since, idle_gpu_seconds, warning_text
from .prometheus import PrometheusUnavailable, gpu_utilisation

log = logging.getLogger("jhplatform.culler")



def now() -> datetime:
    """The culler's clock: idle-culler's ``utcnow``, so its loop and our policy agree on time
    (tests move both by patching ``jupyterhub_idle_culler.utcnow``)."""
    return idle_culler.utcnow()


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.culls = Counter("jhplatform_culler_culls", "Servers stopped through the hub API, by rule and class",
                             ["rule", "cls"], registry=self.registry)
        self.dry_run_culls = Counter("jhplatform_culler_dry_run_culls", "Servers dry-run mode would have stopped",
                                     ["rule", "cls"], registry=self.registry)
        self.warnings = Counter("jhplatform_culler_warnings", "Warnings shown to owners (once per server and cull time)",
                                ["rule", "cls"], registry=self.registry)
        self.idle_gpu_hours = Counter("jhplatform_culler_idle_gpu_hours",
                                      "GPU-hours held by servers whose GPUs were below the utilisation threshold",
                                      registry=self.registry)
        self.fallbacks = Counter("jhplatform_culler_gpu_activity_fallbacks",
                                 "GPU servers judged by Jupyter activity because there was no utilisation reading",
                                 ["reason"], registry=self.registry)
        self.cycle_errors = Counter("jhplatform_culler_cycle_errors", "Cull cycles that failed (hub API unreachable or erroring)",
                                    registry=self.registry)
        self.server_errors = Counter("jhplatform_culler_server_errors",
                                     "Users whose servers could not be handled in a cycle (e.g. the stop request failed); "
                                     "retried at the next cycle", registry=self.registry)
        self.gpu_servers = Gauge("jhplatform_culler_gpu_servers", "Running GPU servers in the last cycle",
                                 registry=self.registry)


@dataclass
class Settings:
    """What one cycle needs besides the policy (filled from the service's traits)."""

    hub_api_url: str
    api_token: str
    policy: CullPolicy
    dry_run: bool = False
    prometheus_url: str = ""
    prometheus_query: str = ""
    prometheus_timeout: float = 10.0
    concurrency: int = 10
    api_page_size: int = 0
    cull_default_servers: bool = True
    cull_named_servers: bool = True
    remove_named_servers: bool = False
    warnings_file: str = ""
    namespace: str = ""  # pods' namespace when the state does not name it


@dataclass
class Row:
    """One running server as the last cycle saw it (the admin page's rows)."""

    facts: ServerFacts
    verdict: Verdict
    namespace: str
    pod: str

    def as_json(self) -> dict:
        f, v = self.facts, self.verdict
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return {
            "user": f.user, "server": f.server, "profile": f.profile, "class": f.cls, "gpus": f.gpus,
            "started": iso(f.started), "last_activity": iso(f.last_activity),
            "gpu_utilisation": f.gpu_util, "gpu_idle_since": iso(f.gpu_idle_since),
            "rule": v.rule, "cull_at": iso(v.cull_at), "warned": v.warn, "fallback": v.fallback,
            "namespace": self.namespace, "pod": self.pod,
        }


@dataclass
class CullerState:
    """What the service remembers between cycles and shows on its page."""

    rows: dict[str, Row] = field(default_factory=dict)
    gpu_idle_since: dict[str, datetime] = field(default_factory=dict)
    warned: set = field(default_factory=set)  # (server, rule, cull_at) already counted
    culled: set = field(default_factory=set)  # (server, started) whose cull was counted
    last_cycle: datetime | None = None
    last_error: str | None = None
    prometheus_error: str | None = None
    server_errors: list[str] = field(default_factory=list)  # the last cycle's, for the admin JSON


def parse_time(text: str) -> datetime:
    """A hub timestamp (ISO 8601, ``Z`` or an offset) as an aware UTC datetime.

    ``datetime.fromisoformat`` reads what the hub sends some 50 times faster than upstream's
    dateutil-based ``parse_date``; anything else still goes through ``parse_date``.
    """
    try:
        dt = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return idle_culler.parse_date(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def server_facts(user: str, server: dict, utilisation: dict | None, state: CullerState, settings: Settings,
                 at: datetime) -> tuple[ServerFacts, str, str, str | None]:
    """Facts for one server model; also its namespace, pod and why a GPU reading is missing."""
    spawner_state = server.get("state") or {}
    gpus = spawner_state.get(GPU_STATE_KEY) or {}
    count = sum(int(n) for n in gpus.values() if isinstance(n, int)) if isinstance(gpus, dict) else 0
    profile = spawner_state.get(PROFILE_STATE_KEY) or (server.get("user_options") or {}).get("profile") or ""
    namespace = spawner_state.get("namespace") or settings.namespace
    pod = spawner_state.get("pod_name") or ""
    key = f"{user}/{server['name']}" if server.get("name") else user  # as ServerFacts.name
    util, missing = None, None
    if count:
        if utilisation is None:
            missing = "prometheus-unavailable"
        else:
            util = utilisation.get((namespace, pod))
            if util is None:
                missing = "no-series"
    since = gpu_idle_since(state.gpu_idle_since.get(key), util, settings.policy.gpu_util_threshold, at)
    if since is None:
        state.gpu_idle_since.pop(key, None)
    else:
        state.gpu_idle_since[key] = since
    started = parse_time(server["started"])
    last = parse_time(server["last_activity"]) if server.get("last_activity") else None
    facts = ServerFacts(user=user, server=server.get("name", ""), started=started, last_activity=last, gpus=count,
                        profile=str(profile), gpu_util=util, gpu_idle_since=since)
    return facts, namespace, pod, missing


class _CountingLog(logging.LoggerAdapter):
    """The logger handed to idle-culler's loop, counting the errors it only logs.

    ``cull_idle`` catches an exception while handling one user (a stop request answered 5xx or
    timed out) and reports it only with ``logger.exception("Error processing <user>")``; the
    cycle itself goes on. This adapter counts those in the metrics and keeps them for the admin
    JSON (``server_errors``).
    """

    def __init__(self, logger: logging.Logger, errors: list[str], counter):
        super().__init__(logger, {})
        self.errors, self.counter = errors, counter

    def exception(self, msg, *args, exc_info=True, **kwargs):
        error = sys.exc_info()[1]
        text = str(msg % args if args else msg)
        self.errors.append(f"{text}: {type(error).__name__}: {error}" if error is not None else text)
        self.counter.inc()
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


class Cycle:
    """Runs cull cycles with one :class:`Settings`; ``state`` and ``metrics`` outlive cycles."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None, state: CullerState | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.state = state or CullerState()

    async def _utilisation(self) -> dict | None:
        s = self.settings
        if not s.prometheus_url:
            return None
        try:
            values = await gpu_utilisation(s.prometheus_url, s.prometheus_query, s.prometheus_timeout)
        except PrometheusUnavailable as e:
            log.warning("%s. GPU servers are judged by Jupyter activity this cycle; none is culled for GPU idleness.", e)
            self.state.prometheus_error = str(e)
            return None
        self.state.prometheus_error = None
        return values

    async def run(self) -> bool:
        """One cycle; False (logged, counted) when the hub API failed. Never raises."""
        at = now()
        elapsed = (at - self.state.last_cycle).total_seconds() if self.state.last_cycle else 0.0
        utilisation = await self._utilisation()
        rows: dict[str, Row] = {}
        s = self.settings
        metrics = self.metrics

        def arbiter(*, inactive, inactive_limit, server, **kwargs):
            user = server["full_name"].split("/", 1)[0]
            facts, namespace, pod, missing = server_facts(user, server, utilisation, self.state, s, at)
            verdict = s.policy.decide(facts, at)
            rows[facts.name] = Row(facts, verdict, namespace, pod)
            if missing:
                metrics.fallbacks.labels(missing).inc()
                log.info("No GPU utilisation for %s (pod %s/%s: %s); judging it by Jupyter activity.",
                         facts.name, namespace, pod, missing)
            gpu_seconds = idle_gpu_seconds(facts, verdict, elapsed)
            if gpu_seconds:
                metrics.idle_gpu_hours.inc(gpu_seconds / 3600)
            if verdict.warn and (facts.name, verdict.rule, verdict.cull_at) not in self.state.warned:
                self.state.warned.add((facts.name, verdict.rule, verdict.cull_at))
                metrics.warnings.labels(verdict.rule, verdict.cls).inc()
            allowed = s.cull_named_servers if facts.server else s.cull_default_servers
            if not (verdict.cull and allowed):
                log.debug("Keeping %s", verdict.explanation)
                return False
            if s.dry_run:
                log.info("Dry run: would stop %s", verdict.explanation)
                metrics.dry_run_culls.labels(verdict.rule, verdict.cls).inc()
                return False
            log.info("Stopping %s", verdict.explanation)
            # A cycle can fail after this decision (the stop request errors or times out) and the
            # next cycle decides the same again: count each server's cull once per run of it.
            if (facts.name, facts.started) not in self.state.culled:
                self.state.culled.add((facts.name, facts.started))
                metrics.culls.labels(verdict.rule, verdict.cls).inc()
            return True

        server_errors: list[str] = []
        try:
            await idle_culler.cull_idle(
                url=s.hub_api_url,
                api_token=s.api_token,
                inactive_limit=int(s.policy.cpu.idle_timeout or 0),
                logger=_CountingLog(log, server_errors, metrics.server_errors),
                remove_named_servers=s.remove_named_servers,
                max_age=0,  # upstream's max_age bypasses the arbiter; ages are the policy's
                concurrency=s.concurrency,
                api_page_size=s.api_page_size,
                cull_default_servers=s.cull_default_servers,
                cull_named_servers=s.cull_named_servers,
                cull_arbiter=arbiter,
            )
        except Exception as e:  # the hub API failed: keep the last view, try again next cycle
            metrics.cycle_errors.inc()
            self.state.server_errors = server_errors
            self.state.last_error = f"{type(e).__name__}: {e}"
            log.error("Cull cycle failed, nothing was stopped; retrying at the next cycle. The hub API at %s said: %s",
                      s.hub_api_url, self.state.last_error)
            return False
        self.state.rows = rows
        self.state.server_errors = server_errors
        self.state.last_cycle = at
        self.state.last_error = None
        live = {(n, r.verdict.rule, r.verdict.cull_at) for n, r in rows.items()}
        self.state.warned &= live
        seen = {(n, r.facts.started) for n, r in rows.items()}
        self.state.culled &= seen  # servers gone now were stopped (or restarted, as a new run)
        self.state.gpu_idle_since = {k: v for k, v in self.state.gpu_idle_since.items() if k in rows}
        metrics.gpu_servers.set(sum(1 for r in rows.values() if r.facts.gpus))
        if s.warnings_file:
            write_warnings(s.warnings_file, rows, at)
        return True


def warnings_by_user(rows: dict[str, Row]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in rows.values():
        if row.verdict.warn and not row.verdict.cull:
            out.setdefault(row.facts.user, []).append(warning_text(row.facts, row.verdict))
    return out


def write_warnings(path: str, rows: dict[str, Row], at: datetime) -> None:
    """Replace the warnings file atomically (the hub reads it for the home page)."""
    data = {"generated": at.isoformat(), "warnings": warnings_by_user(rows)}
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".culler-warnings-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        log.exception("Could not write the cull warnings to %s; owners will not see warnings", path)
        try:
            os.unlink(tmp)
        except OSError:
            pass

