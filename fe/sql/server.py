"""The FE's MySQL-protocol server: StarRocks' ``query_port`` (9030), on the FE's event loop.

StarRocks' FE speaks the MySQL client/server protocol so that any MySQL client (the ``mysql``
command line, JDBC, pymysql, BI tools) talks to it; tabletsim does the same with ``mysql-mimic``,
which handles the wire format, the handshake and the commands a client sends besides queries
(COM_PING, COM_INIT_DB, COM_FIELD_LIST, prepared statements). What is ours:

- **who may log in**: user ``root``; its password is empty, or the FE's admin token when it has
  one (``mysql_native_password``, the plugin Debian's mariadb client and pymysql use; a client
  that starts with another plugin is switched to it). Anything else is answered as StarRocks
  does: ``ERROR 1045 (28000): Access denied for user 'x'@'host' (using password: YES)``;
- **what a statement answers**: every COM_QUERY goes to the session (fe/sql/session.py), which
  runs it through the FE's own AdminService over a loopback gRPC channel. A statement that
  fails answers an ERR packet with StarRocks' code and SQLSTATE; a bug answers 1105 and is
  logged with its traceback. The connection never drops because of a statement.

Every FE serves it, followers too: their AdminService forwards writes to the leader.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import decimal
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import grpc
from mysql_mimic import MysqlServer, ResultColumn, ResultSet
from mysql_mimic import packets as mm_packets
from mysql_mimic.auth import (
    AuthInfo,
    Decision,
    Forbidden,
    IdentityProvider,
    NativePasswordAuthPlugin,
    Success,
    User,
)
from mysql_mimic.connection import Connection
from mysql_mimic.constants import DEFAULT_SERVER_CAPABILITIES
from mysql_mimic.errors import MysqlError, get_sqlstate
from mysql_mimic.results import ensure_result_set
from mysql_mimic.stream import MysqlStream
from mysql_mimic.types import Capabilities, ColumnType, ServerStatus, str_fixed, uint_1, uint_2, uint_len
from mysql_mimic.utils import nonce

from common.gen.tabletsim.v1 import admin_pb2_grpc
from common.rpc import CallHook, hooked_channel
from fe.sql.result import ER_UNKNOWN_ERROR, SqlError, SqlResult
from fe.sql.session import SqlSession, server_variables

log = logging.getLogger(__name__)

ROOT = "root"
STATEMENT_TIMEOUT_S = 300.0
"""Deadline of one statement's AdminService call when the statement sets none (StarRocks'
query_timeout session variable: 300 s)."""

# SQLSTATE of the MySQL codes StarRocks answers with (ErrorCode.java); mysql-mimic's own table
# for the rest. StarRocks answers syntax and analysis errors as 1064 with HY000, not MySQL's 42000.
_SQLSTATES = {1007: "HY000", 1045: "28000", 1046: "3D000", 1049: "42000", 1050: "42S01", 1051: "42S02",
              1054: "42S22", 1064: "HY000", 1065: "42000", 1105: "HY000", 1146: "42S02", 1235: "42000"}


def sqlstate_of(code: int) -> str:
    return _SQLSTATES.get(int(code)) or get_sqlstate(code).decode()


# ---------------------------------------------------------------- who may log in


class RootPassword(NativePasswordAuthPlugin):
    """``mysql_native_password`` for user root with the admin token (or an empty password), and
    StarRocks' Access denied message, naming the client's host, for anything else."""

    def __init__(self, host: str) -> None:
        self._host = host

    async def auth(self, auth_info: AuthInfo | None = None) -> AsyncGenerator[Decision, AuthInfo]:
        if auth_info and auth_info.handshake_plugin_name == self.name and auth_info.handshake_auth_data:
            salt = auth_info.handshake_auth_data.rstrip(b"\x00")  # the handshake's nonce
        else:
            salt = nonce(20)
            auth_info = yield salt + b"\x00"
        assert auth_info is not None
        user = auth_info.user
        if user.name == ROOT and self.password_matches(user=user, scramble=auth_info.data, nonce=salt):
            yield Success(user.name)
        else:
            yield Forbidden(f"Access denied for user '{auth_info.username}'@'{self._host}' "
                            f"(using password: {'YES' if auth_info.data else 'NO'})")


class RootIdentity(IdentityProvider):
    """One user, root; every name is looked up so that a wrong one is answered 1045, as StarRocks
    does, not MySQL 8's 3162 "User does not exist"."""

    def __init__(self, password: str | None, host: str) -> None:
        self._auth_string = NativePasswordAuthPlugin.create_auth_string(password) if password else None
        self._plugin = RootPassword(host)

    def get_plugins(self) -> Sequence[RootPassword]:
        return [self._plugin]

    async def get_user(self, username: str) -> User | None:
        return User(name=username, auth_string=self._auth_string, auth_plugin=RootPassword.name)


# ---------------------------------------------------------------- results and errors on the wire


def _column_type(values: list[Any]) -> ColumnType:
    first = next((v for v in values if v is not None), None)
    if isinstance(first, bool):
        return ColumnType.TINY
    if isinstance(first, int):
        return ColumnType.LONGLONG
    if isinstance(first, float):
        return ColumnType.DOUBLE
    if isinstance(first, decimal.Decimal):
        return ColumnType.NEWDECIMAL
    if isinstance(first, _dt.datetime):
        return ColumnType.DATETIME
    if isinstance(first, _dt.date):
        return ColumnType.DATE
    return ColumnType.VARCHAR  # text, and a column of NULLs only


def ok_packet(capabilities: Capabilities, status_flags: ServerStatus, affected_rows: int, message: str,
              encode: Any = str.encode) -> bytes:
    """An OK packet with the client's "Query OK" info text: length-encoded when the client set
    CLIENT_SESSION_TRACK (the mariadb/mysql clients do), the rest of the packet otherwise."""
    packet = mm_packets.make_ok(capabilities=capabilities, status_flags=status_flags, affected_rows=affected_rows)
    if not message:
        return packet
    info = encode(message)
    if Capabilities.CLIENT_SESSION_TRACK in capabilities:
        return packet + uint_len(len(info)) + info
    return packet + info


def result_set(result: SqlResult) -> ResultSet:
    """A statement's result set, each column typed by its values (integers LONGLONG, DECIMAL
    NEWDECIMAL, text VARCHAR ...): clients such as pymysql convert values by the column type."""
    columns = [ResultColumn(name, _column_type([row[i] for row in result.rows]))
               for i, name in enumerate(result.columns)]
    return ResultSet(rows=[tuple(row) for row in result.rows], columns=columns)


class SqlConnection(Connection):
    """mysql-mimic's connection with StarRocks' answers: ERR packets with the statement's own
    SQLSTATE, OK packets with the affected rows, and never a dropped connection."""

    def error(self, msg: Any = "", code: int = ER_UNKNOWN_ERROR, sqlstate: str | None = None) -> bytes:  # type: ignore[override]
        parts = [uint_1(0xFF), uint_2(int(code))]
        if Capabilities.CLIENT_PROTOCOL_41 in self.capabilities or not self.capabilities:
            parts += [str_fixed(1, b"#"), str_fixed(5, (sqlstate or sqlstate_of(code)).encode())]
        parts.append(self.server_charset.encode(str(msg)))
        return b"".join(parts)

    def ok_with(self, affected_rows: int, message: str) -> bytes:
        return ok_packet(self.capabilities & self.server_capabilities, self.status_flags, affected_rows, message,
                         self.server_charset.encode)

    async def handle_query(self, data: bytes) -> None:
        com_query = mm_packets.parse_com_query(capabilities=self.capabilities, client_charset=self.client_charset,
                                               data=data)
        session = self.session
        assert isinstance(session, SqlSession)
        try:
            result = await session.run(com_query.sql, com_query.query_attrs)
            if isinstance(result, SqlResult):
                if not result.columns:
                    await self.stream.write(self.ok_with(result.affected_rows, result.message))
                    return
                rs = result_set(result)
            else:
                rs = await ensure_result_set(result)
                if not rs:
                    await self.stream.write(self.ok())
                    return
        except SqlError as exc:
            log.info("statement failed (connection %d): %s [%d]: %.200s", self.connection_id, exc.message,
                     exc.code, com_query.sql)
            await self.stream.write(self.error(msg=exc.message, code=exc.code, sqlstate=exc.sqlstate))
            return
        except (MysqlError, asyncio.CancelledError):
            raise  # mysql-mimic answers its own errors (and KILL QUERY)
        except Exception as exc:  # noqa: BLE001 - answered 1105, never a dropped connection
            log.exception("unexpected error running %.200s", com_query.sql)
            await self.stream.write(self.error(msg=f"internal error: {type(exc).__name__}: {exc}",
                                               code=ER_UNKNOWN_ERROR))
            return
        await self.write_text_resultset(rs)

    async def query(self, sql: str, query_attrs: dict[str, str]) -> ResultSet:
        """COM_FIELD_LIST and prepared statements: a SqlError becomes mysql-mimic's error (whose
        SQLSTATE :meth:`error` takes from the code)."""
        try:
            return await super().query(sql, query_attrs)
        except SqlError as exc:
            raise MysqlError(exc.message, exc.code) from None  # type: ignore[arg-type]

    async def handle_init_db(self, data: bytes) -> None:
        """COM_INIT_DB (``mysql -D db``, pymysql's select_db): USE, which checks the database."""
        try:
            await super().handle_init_db(data)
        except SqlError as exc:
            await self.stream.write(self.error(msg=exc.message, code=exc.code, sqlstate=exc.sqlstate))


class _Server(MysqlServer):
    """mysql-mimic's server, with :class:`SqlConnection` and a per-connection identity provider
    (the Access denied message names the client's host)."""

    def __init__(self, session_factory, password: str | None) -> None:
        # CLIENT_SESSION_TRACK, as MySQL 5.7+ servers advertise: an OK packet's info text is then
        # length-encoded, which is how the mariadb/mysql clients read it
        super().__init__(session_factory=session_factory,
                         capabilities=DEFAULT_SERVER_CAPABILITIES | Capabilities.CLIENT_SESSION_TRACK)
        self._password = password
        self.connections: set[SqlConnection] = set()

    async def _client_connected_cb(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = MysqlStream(reader, writer)
        peer = writer.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else "%"
        try:
            connection = SqlConnection(stream=stream, session=self.session_factory(), control=self.control,
                                       server_capabilities=self.capabilities,
                                       identity_provider=RootIdentity(self._password, host))
            connection_id = await self.control.add(connection)
        except Exception as exc:  # noqa: BLE001 - the client gets an error, not a hang
            log.exception("cannot set up a MySQL connection from %s", host)
            await stream.write(mm_packets.make_error(msg=f"internal error: {exc}"))
            writer.close()
            return
        connection.connection_id = connection_id
        self.connections.add(connection)
        try:
            await connection.start()
        except Exception as exc:  # noqa: BLE001 - a client gone mid-handshake, or a protocol error
            log.info("MySQL connection %d from %s ended: %s: %s", connection_id, host, type(exc).__name__, exc)
        finally:
            self.connections.discard(connection)
            writer.close()
            await self.control.remove(connection_id)


# ---------------------------------------------------------------- the server


async def _deadline_hook(method: str, timeout: float | None) -> float | None:
    """Every loopback call has a deadline: the statement's own, else STATEMENT_TIMEOUT_S."""
    return STATEMENT_TIMEOUT_S if timeout is None else timeout


class SqlServer:
    """The MySQL-protocol door of one FE: ``start()`` binds ``host:port`` (0: a free port, then
    :attr:`port`), ``stop()`` closes the listener and the loopback channel.

    ``grpc_target`` is this FE's own gRPC address; every statement is an AdminService call on it
    carrying ``admin_token``, so SQL gets the checks, leader forwarding and durability of gRPC."""

    def __init__(self, host: str, port: int, grpc_target: str, admin_token: str | None) -> None:
        self._host = host
        self._requested_port = port
        self._grpc_target = grpc_target
        self._admin_token = admin_token
        self._channel: grpc.aio.Channel | None = None
        self._server: _Server | None = None
        self.port = 0

    async def start(self) -> None:
        hooks = [CallHook(before_call=_deadline_hook)]
        if self._admin_token:
            hooks.append(CallHook(metadata=(("authorization", f"Bearer {self._admin_token}"),)))
        self._channel = hooked_channel(self._grpc_target, hooks)
        admin = admin_pb2_grpc.AdminServiceStub(self._channel)
        variables = server_variables()
        self._server = _Server(lambda: SqlSession(admin, variables), self._admin_token)
        await self._server.start_server(host=self._host, port=self._requested_port)
        self.port = self._server.sockets()[0].getsockname()[1]
        log.info("MySQL protocol (query_port) on %s:%d: mysql -h%s -P%d -u%s", self._host, self.port,
                 self._host, self.port, ROOT)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._server.connections):
                connection.kill()  # an idle client would keep wait_closed() waiting
            await self._server.wait_closed()
            self._server = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
