"""Seedable fault injection for the emulator's HTTP API.

A :class:`Fault` matches requests by verb, resource, namespace, name and watch-ness, and then
does one thing to each matching request, for at most ``count`` requests:

- ``status``: answer with that HTTP status and a Kubernetes ``Status`` body instead of serving;
- ``latency``: wait that many seconds, then serve normally;
- ``hang``: wait that many seconds (longer than the client's timeout), then serve;
- ``respond_after``: serve at once, then wait that many seconds before answering (the write
  happened, but a client with a shorter timeout never hears so and retries);
- ``drop``: for watches, end the stream after ``after_events`` events without a clean close;
- ``rate``: apply to a random fraction of matching requests, drawn from a seeded generator so a
  failing run can be replayed.

Faults are set from Python (``cluster_server.faults.add(...)``) or over HTTP at
``/_devcluster/faults`` (``POST`` a JSON fault, ``GET`` to list, ``DELETE`` to clear).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass, field
from typing import Any

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "*")

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "AlreadyExists",
    410: "Gone",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class Fault:
    """One injected fault. ``None`` match fields match anything."""

    verb: str = "*"
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    status: int | None = None
    message: str | None = None
    reason: str | None = None
    latency: float = 0.0
    hang: float = 0.0
    respond_after: float = 0.0
    drop: bool = False
    after_events: int = 0
    count: int | None = 1
    rate: float = 1.0
    id: int = field(default=0)
    hits: int = field(default=0)

    def __post_init__(self) -> None:
        if self.verb not in VERBS:
            raise ValueError(f"fault verb must be one of {', '.join(VERBS)}, not {self.verb!r}")
        if self.status is not None and not 400 <= int(self.status) <= 599:
            raise ValueError(f"fault status must be an HTTP error status (400-599), not {self.status!r}")
        if not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, not {self.rate!r}")
        if self.status is None and not (self.latency or self.hang or self.respond_after or self.drop):
            raise ValueError("a fault needs one of status, latency, hang, respond_after or drop")
        if self.drop and self.verb not in ("watch", "*"):
            raise ValueError("drop applies to watches: use verb 'watch'")

    def matches(self, verb: str, resource: str, namespace: str | None, name: str | None) -> bool:
        if self.verb != "*" and self.verb != verb:
            return False
        if self.drop and verb != "watch":
            return False
        return (
            (self.resource is None or self.resource == resource)
            and (self.namespace is None or self.namespace == namespace)
            and (self.name is None or self.name == name)
        )

    def status_body(self, resource: str, name: str | None) -> dict[str, Any]:
        code = int(self.status or 500)
        reason = self.reason or _REASONS.get(code, "InternalError")
        message = self.message or f"injected fault: {code} {reason} for {resource}{'/' + name if name else ''}"
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": {"name": name or "", "kind": resource},
            "code": code,
        }


class Faults:
    """The active faults, evaluated in the order they were added."""

    def __init__(self, seed: int | None = 0):
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self.seed(seed)

    def seed(self, seed: int | None) -> None:
        self._random = random.Random(seed)

    def add(self, fault: Fault | None = None, **kwargs: Any) -> Fault:
        fault = fault or Fault(**kwargs)
        fault.id = next(self._ids)
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self._faults]

    def pick(self, verb: str, resource: str, namespace: str | None, name: str | None) -> Fault | None:
        """The first fault that fires for this request, counting it as a hit."""
        for fault in list(self._faults):
            if not fault.matches(verb, resource, namespace, name):
                continue
            if fault.rate < 1.0 and self._random.random() >= fault.rate:
                continue
            fault.hits += 1
            if fault.count is not None and fault.hits >= fault.count:
                self._faults.remove(fault)
            return fault
        return None
