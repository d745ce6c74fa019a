"""When to stop a notebook server (pure: no I/O, no traitlets; the clock is an argument).

:class:`CullPolicy` decides for one running server, from facts the culler service gathered
(:class:`ServerFacts`), whether to stop it now, by which rule, and otherwise when the next rule
would stop it and whether its owner should be warned. Three rules, the earliest wins:

``max-age``
    The server has run longer than its class's (or profile's) maximum age. Activity does not
    matter; neither does a busy GPU.
``gpu-idle``
    A GPU server whose GPUs have stayed below the utilisation threshold for the idle timeout,
    **even if a browser tab keeps Jupyter "active"**. The culler service tracks since when the
    utilisation has been below the threshold (:func:`gpu_idle_since`); a busy reading resets it.
``idle``
    Jupyter inactivity past the idle timeout: always for CPU servers; for a GPU server only when
    there is **no** utilisation reading for it (Prometheus down, no series), so that missing data
    never causes a cull by itself. A GPU server whose GPUs are busy is never culled for Jupyter
    idleness (max age still applies).

A server holds GPUs when the spawner resolved GPU resources for it (``ServerFacts.gpus``, from
the pod's container limits), never because of its profile's name. Limits come from the class
(``gpu`` or ``cpu``), optionally overridden per profile slug; 0 means "no limit".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

RULES = ("max-age", "gpu-idle", "idle")
#: Keys of the spawner state (``admin:server_state``) where the spawner records, for the culler,
#: the GPUs it resolved for the pod (``{resource: count}``) and the profile slug used.
GPU_STATE_KEY = "jhplatform_gpus"
PROFILE_STATE_KEY = "jhplatform_profile"
CLASSES = ("gpu", "cpu")


@dataclass(frozen=True)
class Limits:
    """Seconds; 0 turns a rule off. ``None`` in a per-profile override inherits the class value."""

    idle_timeout: float | None = None
    max_age: float | None = None

    def over(self, base: Limits) -> Limits:
        """These limits with the unset ones taken from ``base``."""
        return Limits(
            base.idle_timeout if self.idle_timeout is None else self.idle_timeout,
            base.max_age if self.max_age is None else self.max_age,
        )


def limits_problems(name: str, value: Mapping) -> list[str]:
    """What is wrong with a limits mapping from configuration (empty when it is fine)."""
    problems = []
    if not isinstance(value, Mapping):
        return [f"{name} must be a mapping with idle_timeout and/or max_age (seconds), not {value!r}"]
    for key in value:
        if key not in ("idle_timeout", "max_age"):
            problems.append(f"{name} has unknown key {key!r}; use idle_timeout and/or max_age (seconds)")
    for key in ("idle_timeout", "max_age"):
        v = value.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            problems.append(f"{name}.{key} must be a number of seconds >= 0 (0 turns it off), not {v!r}")
    return problems


def limits_from(value: Mapping) -> Limits:
    return Limits(value.get("idle_timeout"), value.get("max_age"))


@dataclass(frozen=True)
class ServerFacts:
    """What the culler knows about one running server."""

    user: str
    server: str  # "" for the default server
    started: datetime
    last_activity: datetime | None  # Jupyter activity; None: none yet (the start counts)
    gpus: int = 0  # GPUs the spawner resolved for the pod (container limits)
    profile: str = ""  # profile slug the user chose ("" without profiles)
    #: Mean GPU utilisation (percent) over the query window; None: no reading for this pod.
    gpu_util: float | None = None
    #: Since when the GPUs have stayed below the threshold (from :func:`gpu_idle_since`).
    gpu_idle_since: datetime | None = None

    @property
    def cls(self) -> str:
        return "gpu" if self.gpus > 0 else "cpu"

    @property
    def name(self) -> str:
        return f"{self.user}/{self.server}" if self.server else self.user


@dataclass(frozen=True)
class Verdict:
    """The decision for one server at one moment."""

    cull: bool
    cls: str  # "gpu" | "cpu"
    rule: str | None  # the rule that culls now, or the one that would cull first; None: none
    cull_at: datetime | None  # when ``rule`` fires (<= now when ``cull``); None: no rule can
    warn: bool  # the owner should see a warning now
    #: GPU server without a utilisation reading: Jupyter activity decided instead.
    fallback: bool = False
    #: GPU server whose GPUs are below the threshold right now.
    gpu_idle: bool = False
    limits: Limits = field(default_factory=Limits)
    explanation: str = ""  # for the log and the admin page


@dataclass(frozen=True)
class CullPolicy:
    """The admin's culling rules.

    Parameters
    ----------
    gpu, cpu:
        Limits for servers that hold GPUs and for those that do not.
    profiles:
        Profile slug -> :class:`Limits` overriding the class limits for that profile (unset
        fields inherit).
    gpu_util_threshold:
        Percent; GPUs whose mean utilisation is below it count as idle.
    warn_before:
        Seconds before a cull from which the owner is warned; 0: no warnings.
    """

    gpu: Limits = Limits(idle_timeout=1800, max_age=8 * 3600)
    cpu: Limits = Limits(idle_timeout=3600, max_age=0)
    profiles: Mapping[str, Limits] = field(default_factory=dict)
    gpu_util_threshold: float = 5.0
    warn_before: float = 900

    def limits_for(self, facts: ServerFacts) -> Limits:
        base = self.gpu if facts.cls == "gpu" else self.cpu
        base = Limits(base.idle_timeout or 0, base.max_age or 0)
        override = self.profiles.get(facts.profile) if facts.profile else None
        return override.over(base) if override is not None else base

    def decide(self, facts: ServerFacts, now: datetime) -> Verdict:
        """Whether to stop ``facts``'s server at ``now``; see the module docstring for the rules."""
        limits = self.limits_for(facts)
        gpu = facts.cls == "gpu"
        has_reading = gpu and facts.gpu_util is not None
        gpu_idle = has_reading and facts.gpu_util < self.gpu_util_threshold
        fallback = gpu and not has_reading

        candidates: list[tuple[datetime, str]] = []
        if limits.max_age:
            candidates.append((facts.started + timedelta(seconds=limits.max_age), "max-age"))
        if limits.idle_timeout:
            if has_reading:
                if gpu_idle:
                    since = facts.gpu_idle_since or now
                    candidates.append((since + timedelta(seconds=limits.idle_timeout), "gpu-idle"))
                # Busy GPUs: no idle rule at all.
            else:
                active = facts.last_activity or facts.started
                candidates.append((active + timedelta(seconds=limits.idle_timeout), "idle"))

        if not candidates:
            return Verdict(False, facts.cls, None, None, False, fallback, gpu_idle, limits,
                           _explain(facts, None, None, now, gpu_idle, fallback))
        # Earliest first; on a tie the rule listed first in RULES names it.
        cull_at, rule = min(candidates, key=lambda c: (c[0], RULES.index(c[1])))
        cull = cull_at <= now
        warn = (not cull) and self.warn_before > 0 and (cull_at - now).total_seconds() <= self.warn_before
        return Verdict(cull, facts.cls, rule, cull_at, warn, fallback, gpu_idle, limits,
                       _explain(facts, rule, cull_at, now, gpu_idle, fallback))


def gpu_idle_since(previous: datetime | None, gpu_util: float | None, threshold: float, now: datetime) -> datetime | None:
    """Since when a server's GPUs have been below ``threshold``, carried from cycle to cycle.

    Starts at ``now`` on the first reading below the threshold, keeps ``previous`` while the
    readings stay below, and resets to ``None`` on a busy reading **or a missing one** (no data
    must never bring a cull closer).
    """
    if gpu_util is None or gpu_util >= threshold:
        return None
    return previous if previous is not None and previous <= now else now


def _hm(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    h, m = divmod(seconds // 60, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m"


def _explain(facts: ServerFacts, rule, cull_at, now, gpu_idle: bool, fallback: bool) -> str:
    if facts.cls == "gpu":
        if facts.gpu_util is None:
            gpu = "no GPU utilisation reading, Jupyter activity decides"
        else:
            gpu = f"GPU utilisation {facts.gpu_util:.0f}% ({'idle' if gpu_idle else 'busy'})"
    else:
        gpu = "CPU server"
    if rule is None:
        return f"{facts.name}: {gpu}; no rule applies"
    when = "now" if cull_at <= now else f"in {_hm((cull_at - now).total_seconds())}"
    return f"{facts.name}: {gpu}; rule {rule} culls {when}"


def warning_text(facts: ServerFacts, verdict: Verdict) -> str:
    """What the owner reads on the hub's home page (plain text; the caller escapes it)."""
    which = f"Your server {facts.server!r}" if facts.server else "Your server"
    gpus = f" (holding {facts.gpus} GPU{'s' if facts.gpus != 1 else ''})" if facts.gpus else ""
    at = verdict.cull_at.strftime("%H:%M UTC") if verdict.cull_at else "soon"
    if verdict.rule == "max-age":
        return (f"{which}{gpus} will be stopped at {at}: it reaches the maximum run time of "
                f"{_hm(verdict.limits.max_age)} for this kind of server. Save your work; "
                f"you can start it again afterwards. Your files are kept.")
    if verdict.rule == "gpu-idle":
        return (f"{which}{gpus} will be stopped at {at} because its GPUs have been idle for "
                f"{_hm(verdict.limits.idle_timeout)}. Using the GPU keeps it running. Your files are kept.")
    return (f"{which}{gpus} will be stopped at {at} because it has been inactive for "
            f"{_hm(verdict.limits.idle_timeout)}. Opening it (or using its GPU) keeps it running. "
            f"Your files are kept.")


def idle_gpu_seconds(facts: ServerFacts, verdict: Verdict, elapsed: float) -> float:
    """GPU-seconds held idle during the last ``elapsed`` seconds (for the GPU-hours metric)."""
    if facts.gpus and verdict.gpu_idle and elapsed > 0:
        return facts.gpus * elapsed
    return 0.0


def with_profiles(policy: CullPolicy, profiles: Mapping[str, Mapping]) -> CullPolicy:
    """``policy`` with per-profile overrides from configuration mappings."""
    return replace(policy, profiles={slug: limits_from(v) for slug, v in profiles.items()})
