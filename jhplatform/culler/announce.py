"""The owner's warning on the hub's home page, through JupyterHub's ``announcement_home``.

Runs inside the hub process: ``c.JupyterHub.template_vars["announcement_home"]`` is a callable of
the current user (JupyterHub calls callables in ``template_vars`` with the user). It reads the
warnings file the culler service writes after each cycle (both run in the hub pod) and returns
the warnings for *that* user only, HTML-escaped; other users get the admin's own announcement
or nothing. The file is re-read only when it changes. Warnings from a file the culler has not
replaced for ``stale_after`` seconds (it stopped cycling) are not shown: they may no longer be true.
"""

from __future__ import annotations

import html
import json
import logging
import os
from datetime import datetime, timedelta, timezone

log = logging.getLogger("jhplatform.culler")


class CullWarnings:
    """Callable for ``template_vars``: ``CullWarnings(path, prior)(user) -> str``."""

    def __init__(self, path: str, prior: str | None = None, stale_after: float | None = None):
        self.path = path
        self.prior = prior or ""
        self.stale_after = stale_after
        self._stamp = None
        self._generated: datetime | None = None
        self._warnings: dict[str, list[str]] = {}

    def _load(self) -> dict[str, list[str]]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._warnings = None, {}
            return self._warnings
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            try:
                with open(self.path) as f:
                    data = json.load(f)
                warnings = data.get("warnings") or {}
                self._warnings = {str(k): [str(t) for t in v] for k, v in warnings.items() if isinstance(v, list)}
                self._generated = datetime.fromisoformat(data["generated"])
            except (OSError, ValueError, AttributeError, KeyError, TypeError) as e:
                log.warning("Cannot read cull warnings from %s (%s); showing none", self.path, e)
                self._warnings, self._generated = {}, None
            self._stamp = stamp
        if self.stale_after and self._generated is not None:
            if datetime.now(timezone.utc) - self._generated > timedelta(seconds=self.stale_after):
                return {}
        return self._warnings

    def __call__(self, user) -> str:
        texts = self._load().get(user.name, []) if user is not None else []
        parts = [f'<p class="jhplatform-cull-warning">{html.escape(t)}</p>' for t in texts]
        if self.prior:
            parts.insert(0, self.prior)
        return "\n".join(parts)
