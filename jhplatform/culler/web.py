"""The service's pages at its hub URL: the admins' view of GPU servers, JSON, metrics.

Authentication is JupyterHub OAuth (``HubOAuthenticated``): a browser is sent through the hub's
login, and only hub admins get the page and the JSON; anyone else gets 403. ``metrics`` also
accepts a hub token with the ``read:metrics`` scope (for Prometheus' scrape config).
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
import json
import os
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from tornado import web
from tornado.httpserver import HTTPServer

from .cycle import Cycle

REFUSED = "This page is for hub admins only. Ask a hub admin if you need to know who holds GPUs."


class _Base(HubOAuthenticated, web.RequestHandler):
    def initialize(self, cycle: Cycle):
        self.cycle = cycle

    def require_admin(self):
        user = self.current_user
        if not user.get("admin"):
            raise web.HTTPError(403, REFUSED)
        return user

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else self._reason
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(f"<!doctype html><title>{status_code}</title><h1>{status_code}</h1><p>{html.escape(message)}</p>")

    def gpu_rows(self) -> list[dict]:
        rows = sorted(self.cycle.state.rows.values(), key=lambda r: (r.verdict.cull_at is None, r.verdict.cull_at or 0, r.facts.name))
        return [r.as_json() for r in rows if r.facts.gpus]


class ServersJSON(_Base):
    @web.authenticated
    def get(self):
        self.require_admin()
        state = self.cycle.state
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({
            "last_cycle": state.last_cycle.isoformat() if state.last_cycle else None,
            "last_error": state.last_error,
            "prometheus_error": state.prometheus_error,
            "server_errors": state.server_errors,
            "dry_run": self.cycle.settings.dry_run,
            "servers": self.gpu_rows(),
        }))


_COLUMNS = [("user", "User"), ("server", "Server"), ("profile", "Profile"), ("gpus", "GPUs"),
            ("started", "Started"), ("last_activity", "Last activity"), ("gpu_utilisation", "GPU utilisation %"),
            ("rule", "Would be culled by"), ("cull_at", "At")]


class AdminPage(_Base):
    @web.authenticated
    def get(self):
        user = self.require_admin()
        state = self.cycle.state
        rows = self.gpu_rows()
        cells = []
        for r in rows:
            values = []
            for key, _ in _COLUMNS:
                v = r[key]
                if key == "gpu_utilisation":
                    v = "no reading" if v is None else f"{v:.0f}"
                elif key in ("started", "last_activity", "cull_at") and v:
                    v = datetime.fromisoformat(v).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
                values.append(html.escape("" if v is None else str(v)))
            cells.append("<tr>" + "".join(f"<td>{v}</td>" for v in values) + "</tr>")
        head = "".join(f"<th>{html.escape(t)}</th>" for _, t in _COLUMNS)
        notes = []
        if self.cycle.settings.dry_run:
            notes.append("Dry run: nothing is stopped.")
        if state.prometheus_error:
            notes.append(f"Prometheus: {state.prometheus_error}")
        if state.last_error:
            notes.append(f"Last cycle failed: {state.last_error}")
        for error in state.server_errors:
            notes.append(f"Last cycle: {error}")
        body = "".join(cells) or f'<tr><td colspan="{len(_COLUMNS)}">No GPU servers are running.</td></tr>'
        self.finish(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>GPU servers</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style>
</head><body>
<h1>GPU servers</h1>
<p id="who">Signed in as {html.escape(user['name'])}. Last cycle: {html.escape(state.last_cycle.strftime("%Y-%m-%d %H:%M:%S UTC") if state.last_cycle else "not yet")}.</p>
{''.join(f'<p class="note">{html.escape(n)}</p>' for n in notes)}
<table id="gpu-servers"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<p><a href="api/servers">JSON</a> · <a href="metrics">metrics</a></p>
</body></html>""")


class MetricsHandler(_Base):
    @web.authenticated
    def get(self):
        user = self.current_user
        if not (user.get("admin") or "read:metrics" in (user.get("scopes") or [])):
            raise web.HTTPError(403, "The culler's metrics need a hub admin or a token with the read:metrics scope.")
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.cycle.metrics.registry))


def make_app(cycle: Cycle, prefix: str) -> web.Application:
    args = {"cycle": cycle}
    return web.Application(
        [
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
            (url_path_join(prefix, "api/servers"), ServersJSON, args),
            (url_path_join(prefix, "metrics"), MetricsHandler, args),
            (prefix.rstrip("/") + "/?", AdminPage, args),
        ],
        cookie_secret=os.urandom(32),
    )


def start_web(cycle: Cycle, url: str) -> HTTPServer | None:
    """Serve at ``url`` under ``$JUPYTERHUB_SERVICE_PREFIX``; None without a URL."""
    if not url:
        return None
    parsed = urlparse(url)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    server = HTTPServer(make_app(cycle, prefix), xheaders=True)
    server.listen(parsed.port or 80, parsed.hostname or "")
    return server
