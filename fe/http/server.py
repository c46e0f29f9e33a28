"""The FE's HTTP application: the routes every FE serves, leader or follower.

- ``GET /api/health``: the FE answers, with its count of total and alive BEs (StarRocks'
  HealthAction).
- ``GET /api/bootstrap``: 200 once this FE has read its journal and serves (a leader, or a
  follower that knows its leader), 503 before: what a load balancer or a start script waits on
  (StarRocks' BootstrapFinishAction).
- /metrics (fe/http/metrics.py), Stream Load (fe/http/stream_load.py) and the web console
  (fe/http/console.py) add their own routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from common.httpserver import CLIENT_MAX_SIZE, open_access, require_auth
from fe.ha.role import FeRole
from fe.http import console, metrics, stream_load

if TYPE_CHECKING:
    from fe.node import FrontendNode


def build_app(node: FrontendNode) -> web.Application:
    app = web.Application(middlewares=[require_auth(node.config.admin_token)], client_max_size=CLIENT_MAX_SIZE)

    @open_access
    async def health(request: web.Request) -> web.Response:
        backends = node.backends.all()
        return web.json_response({
            "status": "OK", "msg": "Success",
            "total_backend_num": len(backends),
            "online_backend_num": sum(1 for b in backends if b.alive),
        })

    @open_access
    async def bootstrap(request: web.Request) -> web.Response:
        reason = not_ready(node)
        body = {"status": "FAILED" if reason else "OK", "msg": reason or "Success",
                "role": node.ha.role.value, "replayedJournalId": node.ha.replayed_journal_id,
                "rpcPort": node.port, "httpPort": node.config.http_port}
        return web.json_response(body, status=503 if reason else 200)

    app.router.add_get("/api/health", health)
    app.router.add_get("/api/bootstrap", bootstrap)
    metrics.install(app, node)
    stream_load.install(app, node)
    console.install(app, node)
    return app


def not_ready(node: FrontendNode) -> str | None:
    """Why this FE does not serve yet, or None when it does."""
    if not node.serving:
        return "the FE is starting: reading its journal"
    if node.ha.role is FeRole.LEADER:
        return None
    if node.ha.leader_address is None:
        return "this FE is a follower and no FE leads (an election is under way)"
    return None
