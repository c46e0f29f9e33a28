"""One MySQL connection's session: its current database, its variables, and how a statement runs.

A statement goes first to the executor (fe/sql/executor.py), with the raw SQL text: the admin
grammar (fe/sql/grammar.py) takes what sqlglot cannot parse (CREATE ROUTINE LOAD, ADMIN ...,
SHOW PROC ...), sqlglot's StarRocks dialect the standard statements (fe/sql/standard.py).
What neither is ours goes through mysql-mimic's middlewares, which answer what clients send
on connect: ``SET NAMES``, ``SET autocommit``, ``SELECT @@version_comment``,
``SELECT DATABASE()``, ``SHOW VARIABLES``, ``SHOW WARNINGS`` ...

Versions, as StarRocks reports them: the handshake and ``SELECT version()`` say ``8.0.33`` (the
MySQL version StarRocks announces, its ``mysql_server_version``), ``@@version_comment`` names
tabletsim, and ``SELECT current_version()`` answers ``<version>-<commit>`` like StarRocks'
``3.3.5-6d81f75``.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from mysql_mimic import Session
from mysql_mimic.session import Query, mysql_function_mapping
from mysql_mimic.variable_processor import VariableProcessor
from mysql_mimic.variables import SYSTEM_VARIABLES, GlobalVariables, SessionVariables, Variables
from sqlglot import expressions as exp

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from fe.sql import executor
from fe.sql.result import ExecContext, SqlResult

MYSQL_SERVER_VERSION = "8.0.33"
"""What the handshake and ``SELECT version()`` say (StarRocks' Config.mysql_server_version)."""
VERSION_COMMENT = "tabletsim (StarRocks-compatible)"
_VERSION_CALLS = re.compile(r"\b(current_version|version)\s*\(\s*\)", re.I)


def _commit() -> str:
    """The checkout's commit, abbreviated as StarRocks' version hash is; "" outside a checkout."""
    git = Path(__file__).resolve().parents[2] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            path = git / ref
            if path.exists():
                head = path.read_text().strip()
            else:
                packed = (git / "packed-refs").read_text().splitlines()
                head = next(line.split()[0] for line in packed if line.endswith(" " + ref))
        return head[:7]
    except (OSError, StopIteration):
        return ""


@functools.cache
def current_version() -> str:
    """``SELECT current_version()``: tabletsim's version and commit, as StarRocks' ``3.3.5-6d81f75``."""
    try:
        version = metadata.version("tabletsim")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    return f"{version}-{_commit() or 'tabletsim'}"


def server_variables() -> Variables:
    """The server's system variables: mysql-mimic's, with StarRocks' version and the variables
    JDBC drivers and BI tools read on connect."""
    schema = dict(SYSTEM_VARIABLES)
    schema.update({
        # name: (type, default, settable by SET)
        "version": (str, MYSQL_SERVER_VERSION, False),
        "version_comment": (str, VERSION_COMMENT, False),
        "default_storage_engine": (str, "OLAP", True),
        "default_tmp_storage_engine": (str, "OLAP", True),
        "query_timeout": (int, 300, True),  # StarRocks' statement timeout, seconds
        "query_cache_size": (int, 1048576, False),
        "query_cache_type": (str, "OFF", True),
        "tx_isolation": (str, "REPEATABLE-READ", True),
        "tx_read_only": (bool, False, True),
        "transaction_isolation": (str, "REPEATABLE-READ", True),
        "have_query_cache": (str, "YES", False),
        "language": (str, "/palo/share/english/", False),
    })
    return GlobalVariables(schema)


class SqlSession(Session):
    """A connection's session; ``admin`` is the FE's AdminService on the loopback channel."""

    dialect = "starrocks"

    def __init__(self, admin: admin_pb2_grpc.AdminServiceStub, global_variables: Variables) -> None:
        super().__init__(SessionVariables(global_variables))
        self.admin = admin
        self._version = current_version()

    async def run(self, sql: str, attrs: dict[str, str]) -> SqlResult | Any:
        """One COM_QUERY: a SqlResult from our statements, else mysql-mimic's result (rows and
        columns, or None for OK). Raises SqlError."""
        self.timestamp = datetime.now(tz=self.timezone())
        ctx = ExecContext(admin=self.admin, database=self.database or "", user=self.username or "root",
                          variables=self.variables)

        async def fallback(expression: exp.Expression) -> Any:
            q = Query(expression=expression, sql=sql, attrs=attrs, _middlewares=self.middlewares,
                      _query=self.query)
            return await q.start()

        try:
            return await executor.execute(sql, ctx, fallback)
        finally:
            self.database = ctx.database or None  # USE

    async def handle_query(self, sql: str, attrs: dict[str, str]) -> Any:
        """mysql-mimic's entry point (COM_FIELD_LIST, prepared statements): our result as rows
        and column names."""
        result = await self.run(sql, attrs)
        if isinstance(result, SqlResult):
            return [tuple(r) for r in result.rows], list(result.columns)
        return result

    async def use(self, database: str) -> None:
        """COM_INIT_DB: the same USE as the statement (the database must exist)."""
        ctx = ExecContext(admin=self.admin, database=self.database or "")
        await executor.use(ctx, database)
        self.database = ctx.database

    async def schema(self) -> dict:
        """information_schema (tables, columns ...), which BI tools and JDBC metadata calls read,
        from the catalog: {db: {table: {column: type}}}. A database without tables is not in
        it. One DescribeTable per table, only when information_schema is queried."""
        out: dict[str, dict[str, dict[str, str]]] = {}
        dbs = await self.admin.ShowDatabases(admin_pb2.ShowDatabasesRequest())
        for db in dbs.databases:
            tables = await self.admin.ShowTables(admin_pb2.ShowTablesRequest(db=db.name))
            for table in tables.tables:
                desc = await self.admin.DescribeTable(admin_pb2.DescribeTableRequest(db=db.name, table=table.name))
                out.setdefault(db.name, {})[table.name] = {c.field: c.type for c in desc.columns}
        return out

    async def query(self, expression: exp.Expression, sql: str, attrs: dict[str, str]) -> Any:
        """The end of mysql-mimic's middlewares: a statement nobody took."""
        raise executor.unsupported(expression)

    async def _set_var_middleware(self, q: Query) -> Any:
        """mysql-mimic's function replacement (DATABASE(), USER(), CONNECTION_ID(), NOW() ...),
        after StarRocks' version() and current_version()."""
        self._versions(q.expression, q.sql)
        with VariableProcessor(mysql_function_mapping(self), self.variables, q.expression).set_variables():
            return await q.next()

    def _versions(self, expression: exp.Expression, sql: str) -> None:
        """sqlglot parses both version() and current_version() as CurrentVersion: tell them apart
        by the text (in order of appearance), answer each as StarRocks does, and head the column
        by the call as written."""
        calls = _VERSION_CALLS.findall(sql)
        for node, name in zip(list(expression.find_all(exp.CurrentVersion, bfs=False)), calls, strict=False):
            value = exp.Literal.string(self._version if name.lower() == "current_version" else MYSQL_SERVER_VERSION)
            if isinstance(node.parent, exp.Select) and node.arg_key == "expressions":
                node.replace(exp.alias_(value, exp.to_identifier(f"{name}()", quoted=True)))
            else:
                node.replace(value)
