"""Small helpers for tests (import as `from helpers import ...`)."""

import asyncio
import os
from pathlib import Path


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    """Poll ``predicate`` (sync or async) until it returns a truthy value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


#: The repository's root and the test data shipped beside the tests.
REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / "tests" / "data"

#: The reliability suite's size (tests/reliability, docs/reliability.md): ``ci`` (the default, what
#: ``make test`` runs) or ``full`` (``make reliability``), from ``JHPLATFORM_RELIABILITY_SIZE``.
RELIABILITY_SIZE = os.environ.get("JHPLATFORM_RELIABILITY_SIZE", "ci")
if RELIABILITY_SIZE not in ("ci", "full"):
    raise ValueError(f"JHPLATFORM_RELIABILITY_SIZE must be 'ci' or 'full', not {RELIABILITY_SIZE!r}")


def reliability_size(ci, full):
    """The CI-size or the full-size value of a reliability test's parameter, by the knob above."""
    return full if RELIABILITY_SIZE == "full" else ci


async def start_stub():
    """An HTTP responder on loopback answering 200 to everything: what a hub needs to see a
    notebook server up when the simulated kubelet runs no process. Returns (runner, port)."""
    from aiohttp import web

    async def ok(request):
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]
