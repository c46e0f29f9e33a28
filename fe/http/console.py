"""Routes of the FE's HTTP server: the live web console (StarRocks' FE web UI, at the FE's ``/``).

- ``GET /``: the page (fe/http/console_static/index.html; plain JS and inline SVG, nothing fetched
  from elsewhere); ``GET /console/<file>``: its script and style sheet.
- ``GET /api/console/state``: everything the page draws, as JSON (fe/http/console_state.py); the
  page polls it every 1.5 s and redraws itself. Built at most once per :data:`STATE_TTL_S`,
  whatever the number of open pages.

Like every route but /metrics and the health checks, these need HTTP Basic authentication (a
browser asks for it: user root with an empty password, or the cluster's admin token).

A :class:`ConsoleSampler` started with the HTTP server samples transactions per second and each
routine load job's rows/s and lag every second and keeps five minutes of them on the FE, so a
page opened now already draws the last minutes.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from aiohttp import web

from fe.http.console_history import ConsoleHistory, ConsoleSampler
from fe.http.console_state import build_state

log = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "console_static")
STATE_TTL_S = 0.5
NO_CACHE = {"Cache-Control": "no-cache"}


class Console:
    """The console of one FE: its history, its sampler and the cached state document."""

    def __init__(self, node, history: ConsoleHistory | None = None) -> None:
        self.node = node
        self.history = history or ConsoleHistory()
        self.sampler = ConsoleSampler(self.history, lambda: node.txns.counters, lambda: node.routine.jobs())
        self._cached: tuple[float, dict[str, Any]] | None = None

    async def state(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < STATE_TTL_S:
            return self._cached[1]
        state = await build_state(self.node, self.history)
        self._cached = (now, state)
        return state

    async def on_startup(self, _app: web.Application) -> None:
        self.sampler.start()

    async def on_cleanup(self, _app: web.Application) -> None:
        await self.sampler.close()


CONSOLE_KEY = web.AppKey("console", Console)


def install(app: web.Application, node) -> None:
    """Add this module's routes to the FE's application."""
    console = Console(node)

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(os.path.join(STATIC_DIR, "index.html"), headers=NO_CACHE)

    async def state(request: web.Request) -> web.Response:
        return web.json_response(await console.state(), headers=NO_CACHE)

    app.router.add_get("/", index)
    app.router.add_get("/api/console/state", state)
    app.router.add_static("/console/", STATIC_DIR, append_version=False)
    app.on_startup.append(console.on_startup)
    app.on_cleanup.append(console.on_cleanup)
    app[CONSOLE_KEY] = console
