"""The MySQL-protocol server (fe/sql/server.py) in-process, with pymysql as the client and a fake
AdminService on a real loopback gRPC server: who may log in, the admin token on the loopback
calls, StarRocks' error codes on the wire, and a connection that outlives every failure."""

from __future__ import annotations

import asyncio
import types

import grpc
import pymysql
import pytest
from mysql_mimic.charset import CharacterSet
from mysql_mimic.types import Capabilities, ServerStatus

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from fe.sql import standard
from fe.sql.server import SqlConnection, SqlServer, sqlstate_of
from fe.sql.session import MYSQL_SERVER_VERSION, VERSION_COMMENT, current_version

pytestmark = pytest.mark.timeout(60)


class FakeAdminService(admin_pb2_grpc.AdminServiceServicer):
    """Databases in a set; records the authorization header of each call."""

    def __init__(self) -> None:
        self.databases = {"app"}
        self.authorization: list[str] = []

    def _saw(self, context) -> None:
        self.authorization.append(dict(context.invocation_metadata()).get("authorization", ""))

    async def ShowDatabases(self, request, context):
        self._saw(context)
        return admin_pb2.ShowDatabasesResponse(databases=[admin_pb2.DatabaseRow(name=n) for n in sorted(self.databases)])

    async def ShowTables(self, request, context):
        self._saw(context)
        if request.db not in self.databases:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown database '{request.db}'; databases: app")
        return admin_pb2.ShowTablesResponse(tables=[admin_pb2.TableRow(name="events")])

    async def DescribeTable(self, request, context):
        return admin_pb2.DescribeTableResponse(table=request.table, columns=[
            admin_pb2.DescribeColumnRow(field="id", type="BIGINT"), admin_pb2.DescribeColumnRow(field="ev", type="VARCHAR(32)")])

    async def CreateDatabase(self, request, context):
        self._saw(context)
        if request.db in self.databases and not request.if_not_exists:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"database '{request.db}' already exists")
        self.databases.add(request.db)
        return admin_pb2.CreateDatabaseResponse(db_id=1)


class Door:
    """A fake AdminService and the SQL server in front of it, on free loopback ports."""

    def __init__(self, admin_token: str | None) -> None:
        self.admin = FakeAdminService()
        self.admin_token = admin_token
        self.grpc = grpc.aio.server()
        admin_pb2_grpc.add_AdminServiceServicer_to_server(self.admin, self.grpc)
        self.grpc_port = self.grpc.add_insecure_port("127.0.0.1:0")
        self.sql = SqlServer("127.0.0.1", 0, f"127.0.0.1:{self.grpc_port}", admin_token)

    async def __aenter__(self) -> Door:
        await self.grpc.start()
        await self.sql.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.sql.stop()
        await self.grpc.stop(0)

    def connect(self, user: str = "root", password: str = "", **kwargs) -> pymysql.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.sql.port, user=user, password=password,
                               connect_timeout=10, read_timeout=20, **kwargs)


def query(conn: pymysql.Connection, sql: str) -> tuple[list[str], list[tuple]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return [d[0] for d in cur.description or ()], list(cur.fetchall())


def failure(fn, *args) -> tuple[int, str]:
    with pytest.raises(pymysql.err.MySQLError) as err:
        fn(*args)
    return err.value.args[0], err.value.args[1]


async def test_root_with_an_empty_password_runs_statements_through_admin_service():
    async with Door(admin_token=None) as door:
        def client():
            conn = door.connect()
            try:
                return (query(conn, "SHOW DATABASES"), query(conn, "SELECT @@version_comment"),
                        query(conn, "SELECT version(), current_version()"), conn.get_server_info())
            finally:
                conn.close()
        databases, comment, versions, server_version = await asyncio.to_thread(client)
    assert databases == (["Database"], [("app",), ("information_schema",)])
    assert comment == (["@@version_comment"], [(VERSION_COMMENT,)])
    assert versions == (["version()", "current_version()"], [(MYSQL_SERVER_VERSION, current_version())])
    assert server_version == MYSQL_SERVER_VERSION
    assert door.admin.authorization == [""]  # no token: no authorization header


async def test_the_admin_token_is_roots_password_and_rides_on_the_loopback_calls():
    async with Door(admin_token="s3cret") as door:
        def client():
            conn = door.connect(password="s3cret")
            try:
                rows = query(conn, "SHOW DATABASES")[1]
            finally:
                conn.close()
            return (rows, failure(door.connect, "root", ""), failure(door.connect, "root", "wrong"),
                    failure(door.connect, "bob", "s3cret"))
        rows, empty, wrong, bob = await asyncio.to_thread(client)
    assert ("app",) in rows
    assert door.admin.authorization == ["Bearer s3cret"]
    assert empty == (1045, "Access denied for user 'root'@'127.0.0.1' (using password: NO)")
    assert wrong == (1045, "Access denied for user 'root'@'127.0.0.1' (using password: YES)")
    assert bob == (1045, "Access denied for user 'bob'@'127.0.0.1' (using password: YES)")


async def test_errors_are_starrocks_codes_and_the_connection_lives_on(monkeypatch):
    async def broken(expression, sql, ctx):
        raise RuntimeError("a bug")
    async with Door(admin_token=None) as door:
        def client():
            conn = door.connect()
            try:
                out = [failure(query, conn, "USE nope"), failure(query, conn, "CREATE DATABASE app"),
                       failure(query, conn, "SELEC 1"), failure(conn.select_db, "nope")]
                with conn.cursor() as cur:
                    out.append(cur.execute("CREATE DATABASE IF NOT EXISTS app"))
                conn.ping(reconnect=False)
                monkeypatch.setattr(standard, "execute", broken)
                out.append(failure(query, conn, "SHOW DATABASES"))
                monkeypatch.undo()
                out.append(query(conn, "SELECT 1 AS one"))
                return out
            finally:
                conn.close()
        use, exists, syntax, init_db, ok, bug, alive = await asyncio.to_thread(client)
    assert use == (1049, "Unknown database 'nope'")
    assert exists == (1007, "Can't create database 'app'; database exists")
    assert syntax[0] == 1064 and syntax[1].startswith("Getting syntax error at line 1, column 0. Detail message: "
                                                      "Unexpected input 'SELEC'")
    assert init_db == (1049, "Unknown database 'nope'")  # COM_INIT_DB: the same USE
    assert ok == 0
    assert bug == (1105, "internal error: RuntimeError: a bug")
    assert alive == (["one"], [(1,)])


async def test_information_schema_is_the_catalog():
    async with Door(admin_token=None) as door:
        def client():
            conn = door.connect()
            try:
                return (query(conn, "SELECT table_schema, table_name FROM information_schema.tables "
                                    "WHERE table_schema = 'app'")[1],
                        query(conn, "SELECT column_name, data_type FROM information_schema.columns "
                                    "WHERE table_schema = 'app' AND table_name = 'events'")[1])
            finally:
                conn.close()
        tables, columns = await asyncio.to_thread(client)
    assert tables == [("app", "events")]
    assert columns == [("id", "BIGINT"), ("ev", "VARCHAR(32)")]


async def test_stop_with_an_idle_client_connected():
    async with Door(admin_token=None) as door:
        conn = await asyncio.to_thread(door.connect)
        await asyncio.wait_for(door.sql.stop(), 10)
    await asyncio.to_thread(conn.close)


def test_error_packets_carry_the_statements_sqlstate():
    conn = types.SimpleNamespace(capabilities=Capabilities.CLIENT_PROTOCOL_41, server_charset=CharacterSet.utf8mb4)
    packet = SqlConnection.error(conn, msg="Unknown table 'd.t'", code=1146, sqlstate="42S02")  # type: ignore[arg-type]
    assert packet == b"\xff" + (1146).to_bytes(2, "little") + b"#42S02" + b"Unknown table 'd.t'"
    assert SqlConnection.error(conn, msg="x", code=1064)[3:9] == b"#HY000"  # type: ignore[arg-type]
    assert [sqlstate_of(c) for c in (1045, 1046, 1049, 1050, 1064, 1105, 1146)] == [
        "28000", "3D000", "42000", "42S01", "HY000", "HY000", "42S02"]


def test_an_ok_packet_message_is_length_encoded_for_session_tracking_clients():
    """Debian's mariadb client sets CLIENT_SESSION_TRACK: the OK packet's info is then a
    length-encoded string; sent raw, the client said 'ERROR 2027: Received malformed packet'
    after PAUSE ROUTINE LOAD (whose OK carries 'state PAUSED')."""
    from fe.sql.server import ok_packet

    base = Capabilities.CLIENT_PROTOCOL_41
    tracked = ok_packet(base | Capabilities.CLIENT_SESSION_TRACK, ServerStatus(0), 1, "state PAUSED")
    # header 0x00, affected 1, last insert id 0, status 2 bytes, warnings 2 bytes, then lenenc info
    assert tracked[:3] == b"\x00\x01\x00" and tracked[7:] == bytes([12]) + b"state PAUSED"
    plain = ok_packet(base, ServerStatus(0), 0, "state PAUSED")
    assert plain[7:] == b"state PAUSED"
    assert ok_packet(base | Capabilities.CLIENT_SESSION_TRACK, ServerStatus(0), 0, "") == ok_packet(base, ServerStatus(0), 0, "")
