"""What a statement returns, what it fails with, and what it runs with: the seam between the
MySQL server (fe/sql/server.py), the statement executor (fe/sql/executor.py) and the statements
of the admin grammar (fe/sql/grammar.py, fe/sql/admin_statements.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.gen.tabletsim.v1 import admin_pb2_grpc


@dataclass
class SqlResult:
    """A result set (``columns`` and ``rows``), or an OK packet (``columns`` empty) with
    ``affected_rows`` and an optional ``message`` (the client's "Query OK, n rows affected")."""

    columns: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    affected_rows: int = 0
    message: str = ""


class SqlError(Exception):
    """A statement's failure as the MySQL client shows it: ``ERROR <code> (<sqlstate>): <message>``.

    StarRocks answers most errors with code 1064 and SQLSTATE HY000 (syntax and analysis errors
    alike); the specific codes it uses are named below."""

    def __init__(self, message: str, code: int = 1064, sqlstate: str = "HY000") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.sqlstate = sqlstate


# MySQL error codes StarRocks answers with (ErrorCode.java)
ER_SYNTAX = 1064                # ERR_PARSE_ERROR / analysis errors, SQLSTATE HY000 (StarRocks' choice)
ER_BAD_DB = 1049                # Unknown database '%s', SQLSTATE 42000
ER_NO_SUCH_TABLE = 1146         # Unknown table '%s', SQLSTATE 42S02
ER_NO_DB_SELECTED = 1046        # No database selected, SQLSTATE 3D000
ER_ACCESS_DENIED = 1045         # Access denied for user '%s'@'%s' (using password: %s), SQLSTATE 28000
ER_DB_CREATE_EXISTS = 1007      # Can't create database '%s'; database exists, SQLSTATE HY000
ER_TABLE_EXISTS = 1050          # Table '%s' already exists, SQLSTATE 42S01
ER_UNKNOWN_ERROR = 1105         # anything else, SQLSTATE HY000
ER_NOT_SUPPORTED = 1235         # This version doesn't yet support '%s', SQLSTATE 42000


def syntax_error(sql: str, pos: int, detail: str) -> SqlError:
    """StarRocks' parse error: ``Getting syntax error at line L, column C. Detail message: ...``
    (``pos`` is a 0-based offset into ``sql``)."""
    pos = max(0, min(pos, len(sql)))
    line = sql.count("\n", 0, pos) + 1
    column = pos - (sql.rfind("\n", 0, pos) + 1)
    return SqlError(f"Getting syntax error at line {line}, column {column}. Detail message: {detail}.",
                    ER_SYNTAX, "HY000")


@dataclass
class ExecContext:
    """What a statement runs with: the FE's AdminService (a loopback channel with the admin
    token), the session's current database (``USE``) and its variables."""

    admin: admin_pb2_grpc.AdminServiceStub
    database: str = ""
    user: str = "root"
    variables: dict[str, Any] = field(default_factory=dict)

    def require_db(self, db: str | None) -> str:
        """``db`` when a statement names one, else the current database; ER_NO_DB_SELECTED without."""
        name = db or self.database
        if not name:
            raise SqlError("No database selected", ER_NO_DB_SELECTED, "3D000")
        return name
