"""Routes of the FE's HTTP server: console."""

from __future__ import annotations

from aiohttp import web


def install(app: web.Application, node) -> None:
    """Add this module's routes to the FE's application."""
