"""Routes of the FE's HTTP server: Stream Load's redirect to a BE.

StarRocks' FE takes ``PUT /api/{db}/{table}/_stream_load`` (LoadAction) but never the body: it
checks the user, the database and the table, chooses a BE and answers ``307 Temporary Redirect``
to that BE's ``/api/{db}/{table}/_stream_load``, where the load runs (be/http/stream_load.py).
``curl --location-trusted -u root: -T data.csv -XPUT http://fe:8030/api/db/t/_stream_load``
follows it with the same headers and password, and sends the body to the BE only.

curl sends a body over 1 MB with ``Expect: 100-continue`` and waits for "100 Continue" before
sending it: the FE answers the 307 (or the refusal) at that point instead, from the route's
``expect_handler``, so the body never reaches the FE; a small body that came anyway is left unread.

The BE is chosen by the rule gRPC's StreamLoad forwards by (LoadAdmin.stream_load_coordinators in
fe/service/admin_load.py: alive, not decommissioned, round robin; a group commit load goes to its
table's BE), among BEs that serve HTTP. Followers redirect too, from their replayed catalog and the
journaled BE liveness. What the FE resolved from its own state and the BE cannot know is added to
the Location's query string (the client's own query is kept first): ``group_commit`` and
``group_commit_interval_ms`` for a group commit load (the table's property, or the header), and
``timeout`` when no header gave one and the FE's stream_load_default_timeout_second is not the
BE's default (600).

A refusal is StarRocks' FE answer, HTTP 200 with ``{"Status": "FAILED", "Message": ...}``: an unknown
database or table (named, with the ones that exist), no alive BE, a bad ``group_commit`` header;
a missing or wrong password is 401 (common/httpserver.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from common.errors import TabletsimError
from common.httpserver import auth_error, unauthorized
from common.streamload import DEFAULT_TIMEOUT_S
from fe.catalog.model import GroupCommitMode

if TYPE_CHECKING:
    from fe.node import FrontendNode

ROUTE = "/api/{db}/{table}/_stream_load"


def refused(message: str, status: int = 200) -> web.Response:
    """StarRocks' FE refusal of a load (LoadAction's TransactionResult)."""
    return web.json_response({"Status": "FAILED", "Message": message}, status=status)


def install(app: web.Application, node: FrontendNode) -> None:
    """Add this module's routes to the FE's application."""

    def redirect(request: web.Request) -> web.Response:
        """The 307 to the BE that runs the load, or the refusal; never reads the body."""
        admin = node.admin
        if admin is None or not node.serving:
            return refused("the FE is starting (reading its journal); retry in a moment", status=503)
        db, table = request.match_info["db"], request.match_info["table"]
        group_commit = request.headers.get("group_commit", "")
        try:
            _, t = node.catalog.table(db, table)
            mode, backends = admin.stream_load_coordinators(t, group_commit, http=True)
        except TabletsimError as exc:
            return refused(str(exc))
        be = backends[0]
        extra: list[tuple[str, str]] = []
        if mode is not GroupCommitMode.OFF:
            extra += [("group_commit", mode.value), ("group_commit_interval_ms", str(t.group_commit_interval_ms))]
        default_timeout = node.dynconfig.stream_load_default_timeout_second
        if not request.headers.get("timeout") and default_timeout != DEFAULT_TIMEOUT_S:
            extra.append(("timeout", str(default_timeout)))
        query = "&".join(q for q in (request.rel_url.raw_query_string, urlencode(extra)) if q)
        location = f"http://{be.host}:{be.http_port}{request.rel_url.raw_path}" + (f"?{query}" if query else "")
        return web.json_response({"Status": "OK", "Message": f"the load runs on backend {be.backend_id}: {location}"},
                                 status=307, headers={"Location": location})

    async def before_body(request: web.Request) -> web.Response:
        """``Expect: 100-continue``: answered with the redirect (or a refusal) instead of "100
        Continue", so that the client sends its body to the BE only. (aiohttp calls this before
        the auth middleware: the password is checked here.)"""
        reason = auth_error(request, node.config.admin_token)
        response = unauthorized(reason) if reason is not None else redirect(request)
        response.force_close()  # the body never comes on this connection
        return response

    async def stream_load(request: web.Request) -> web.Response:
        return redirect(request)  # the auth middleware ran; a body sent anyway stays unread

    app.router.add_route("PUT", ROUTE, stream_load, expect_handler=before_body)
