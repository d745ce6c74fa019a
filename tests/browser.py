"""Headless Chromium for the browser tests: Debian's, driven by playwright, loopback only.

- :func:`chromium`: a fresh persistent context of /usr/bin/chromium (never a downloaded browser)
  with the flags this machine needs, in which every request to a host that is not loopback is
  aborted before it leaves (some pages, such as the mock identity provider's, link a stylesheet
  on a public CDN: the tests must not reach out).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from urllib.parse import urlparse

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
LOOPBACK = ("127.", "localhost", "[::1]", "::1")


def is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return url.startswith(("data:", "blob:", "about:")) or host.startswith(LOOPBACK)


@contextlib.asynccontextmanager
async def chromium(viewport=(1280, 800)):
    """A browser context (playwright ``BrowserContext``) that only talks to loopback."""
    from playwright.async_api import async_playwright

    assert shutil.which(CHROMIUM), "Debian's chromium is not installed: run `make test` (it installs it)"
    profile = tempfile.mkdtemp(prefix="jhplatform-chromium-")
    blocked: list[str] = []

    async def route(r):
        if is_loopback(r.request.url):
            await r.continue_()
        else:
            blocked.append(r.request.url)
            await r.abort()

    try:
        async with async_playwright() as p:
            context = await p.chromium.launch_persistent_context(
                user_data_dir=profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": viewport[0], "height": viewport[1]},
            )
            context.blocked = blocked  # type: ignore[attr-defined]
            await context.route("**/*", route)
            try:
                yield context
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
