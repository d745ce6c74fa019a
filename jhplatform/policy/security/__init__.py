"""Pod security policy for the platform (pure: no I/O).

- :mod:`.pss`: the Pod Security Standards checks exactly as pod-security-admission runs them
  (``restricted_violations``, ``baseline_violations``, the apiserver's 403 message);
- :mod:`.harden`: ``harden(pod)``, the restricted defaults every user pod gets, and
  ``explain`` which names the setting behind each violation.
"""

from .harden import HardeningPolicy, explain, harden
from .pss import (
    LATEST_VERSION,
    LEVELS,
    Violation,
    baseline_violations,
    evaluate,
    forbidden_message,
    namespace_policy,
    parse_level,
    parse_version,
    restricted_violations,
    violation_summary,
)

__all__ = [
    "HardeningPolicy",
    "LATEST_VERSION",
    "LEVELS",
    "Violation",
    "baseline_violations",
    "evaluate",
    "explain",
    "forbidden_message",
    "harden",
    "namespace_policy",
    "parse_level",
    "parse_version",
    "restricted_violations",
    "violation_summary",
]
