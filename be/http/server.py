"""The BE's HTTP application.

- ``GET /api/health``: the BE answers (StarRocks' BE HealthAction: ``{"status": "OK"}``), with
  the backend id it was given by the FE.
- /metrics (be/http/metrics.py), Stream Load and _load_error_log (be/http/stream_load.py) add
  their own routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from be.http import metrics, stream_load
from common.httpserver import CLIENT_MAX_SIZE, open_access, require_auth

if TYPE_CHECKING:
    from be.node import BackendNode


def build_app(node: BackendNode) -> web.Application:
    app = web.Application(middlewares=[require_auth(node.config.admin_token)], client_max_size=CLIENT_MAX_SIZE)

    @open_access
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "OK", "msg": "Success", "backend_id": node.link.backend_id})

    app.router.add_get("/api/health", health)
    metrics.install(app, node)
    stream_load.install(app, node)
    return app
