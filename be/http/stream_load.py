"""Routes of the BE's HTTP server: stream_load."""

from __future__ import annotations

from aiohttp import web


def install(app: web.Application, node) -> None:
    """Add this module's routes to the BE's application."""
