"""The HTTP door of the FE and the BEs (aiohttp): one server per node on its http_port.

Each node builds an :class:`aiohttp.web.Application` with its own routes (fe/http, be/http) and
serves it with :class:`HttpServer`. What every node shares lives here: HTTP Basic authentication
the way StarRocks users pass it (``curl -u root:``, or the admin token as the password), JSON
answers, and the error answer that names what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import logging

from aiohttp import web

log = logging.getLogger(__name__)

ROOT_USER = "root"
# aiohttp's default is 1 MiB; Stream Load bodies are read as a stream and never whole, the rest is small
CLIENT_MAX_SIZE = 8 * 1024 * 1024


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` header; None when there is none or it is
    malformed."""
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def auth_error(request: web.Request, admin_token: str | None) -> str | None:
    """Why the request may not pass, or None when it may.

    With an admin token set, the token is the password (any user name, as ``-u root:<token>``);
    without one, user ``root`` with an empty password, like a fresh StarRocks cluster.
    """
    creds = basic_credentials(request)
    if creds is None:
        return ("no credentials: pass HTTP Basic authentication, e.g. curl -u root: (or -u root:<admin token> "
                "when the cluster has one)")
    user, password = creds
    if admin_token:
        if password != admin_token:
            return f"Access denied for user '{user}': wrong password (the cluster's admin token)"
        return None
    if user != ROOT_USER:
        return f"Access denied for user '{user}': unknown user; the only user is '{ROOT_USER}'"
    if password:
        return f"Access denied for user '{user}': wrong password ('{ROOT_USER}' has an empty password)"
    return None


def unauthorized(message: str) -> web.Response:
    """401 with StarRocks' JSON and the header that makes a browser ask for a password."""
    return web.json_response({"status": "FAILED", "msg": message}, status=401,
                             headers={"WWW-Authenticate": 'Basic realm="tabletsim"'})


def require_auth(admin_token: str | None):
    """Middleware: every route not in ``open_paths`` needs :func:`auth_error` to pass."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        if getattr(handler, "open_access", False):
            return await handler(request)
        reason = auth_error(request, admin_token)
        if reason is not None:
            return unauthorized(reason)
        return await handler(request)

    return middleware


def open_access(handler):
    """Mark a handler that needs no authentication (/metrics, /api/health, /api/bootstrap), as in
    StarRocks, where monitoring and load balancers call them without credentials."""
    handler.open_access = True
    return handler


class HttpServer:
    """An aiohttp application served on host:port; ``port`` is the bound port after start."""

    def __init__(self, app: web.Application, host: str, port: int, name: str) -> None:
        self._app = app
        self._host = host
        self.port = port
        self._name = name
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        # access_log off: a 1-row load per ms would flood the node's log; errors are still logged
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise OSError(f"cannot bind the {self._name} HTTP server to {self._host}:{self.port}: "
                          f"{exc.strerror or exc}") from None
        sockets = site._server.sockets if site._server is not None else ()  # noqa: SLF001 - the bound port
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("%s HTTP on http://%s:%d", self._name, self._host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
