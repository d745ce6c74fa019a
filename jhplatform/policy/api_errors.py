"""How the spawn path treats errors from the Kubernetes API (pure: statuses in, decisions and words out).

An apiserver answers 429 when it sheds load and 500/502/503/504 when it, etcd or a proxy in front
of it is briefly unwell; clients are expected to retry those (client-go does, with backoff).
KubeSpawner 7.1 retries only its own client timeouts: any other error on a create fails the spawn
with the client's raw dump (``(503)\\nReason: …\\nHTTP response headers: …``), and on a pod delete it
fails the stop, after which JupyterHub forgets the server and the pod is left running. These
functions decide what is worth retrying and what the user reads when the API still fails.
"""

from __future__ import annotations

from collections.abc import Mapping

from .unschedulable import unschedulable_condition

#: Statuses an apiserver uses for "try again": rate limiting and server-side failures.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})

_REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_AFTER = ("Nothing of this attempt is left running and your files are safe. "
          "Please try again in a minute; if it keeps happening, tell your hub admin.")
_AFTER_REFUSED = ("Nothing of this attempt is left running and your files are safe. "
                  "Trying again will not help: tell your hub admin, who can read the reason in the hub log.")


def is_transient(status: int | None) -> bool:
    """Whether an API answer with this HTTP status should be retried (429 and 5xx)."""
    return status in TRANSIENT_STATUSES


def status_text(status: int | None, reason: str | None = None) -> str:
    """``"503 Service Unavailable"``: the status with its standard phrase (the client's own
    ``reason`` is often a placeholder such as ``"error"``)."""
    if status is None:
        return "no answer"
    phrase = _REASONS.get(status) or (reason if reason and reason.lower() != "error" else "")
    return f"{status} {phrase}".strip()


def api_failure_message(action: str, status: int | None, reason: str | None = None) -> str:
    """What the user reads when the Kubernetes API refused or failed ``action`` (e.g. "creating
    your server's pod") with ``status``, after any retries."""
    if is_transient(status):
        return (f"Your server could not start because the cluster's Kubernetes API kept failing "
                f"({status_text(status, reason)}) while {action}. {_AFTER}")
    return (f"Your server could not start because the cluster's Kubernetes API refused {action} "
            f"({status_text(status, reason)}). {_AFTER_REFUSED}")


def api_timeout_message(action: str) -> str:
    """What the user reads when the Kubernetes API did not answer ``action`` in time, after retries."""
    return f"Your server could not start because the cluster's Kubernetes API did not answer in time while {action}. {_AFTER}"


def start_waiting_for(pod: Mapping | None, action: str) -> str:
    """What a spawn was still waiting for when its time ran out, in the user's words: the API
    (``action``) when there is no pod yet, a node when the scheduler could not place the pod,
    else the pod starting."""
    if pod is None:
        return f"it was still {action}"
    if unschedulable_condition(pod) is not None:
        return "no node in the cluster had room for it"
    return "its pod was still starting"


def start_timeout_message(seconds: float, waiting_for: str) -> str:
    """What the user reads when PlatformSpawner stops a spawn at its start timeout (instead of
    JupyterHub's own timeout, whose message is empty)."""
    return (f"Your server did not start within {seconds:g} seconds ({waiting_for}), so it was stopped. "
            "Please try again in a few minutes; if it keeps happening, tell your hub admin.")
