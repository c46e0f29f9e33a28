"""From SQL text to a result: which parser takes a statement, and the one place where failures
become MySQL errors.

1. The admin grammar (fe/sql/grammar.py) sees the raw text first: CREATE ROUTINE LOAD, SHOW
   ROUTINE LOAD, SHOW BACKENDS, SHOW TABLET, SHOW PROC, ADMIN ..., ALTER SYSTEM ..., SHOW
   TRANSACTION, which sqlglot cannot parse. It answers None for anything else.
2. sqlglot's StarRocks dialect parses the rest; a parse error is StarRocks' ``ERROR 1064 (HY000):
   Getting syntax error at line L, column C. Detail message: ...``.
3. The standard statements (fe/sql/standard.py) take what they know: databases, tables, DESC,
   SHOW CREATE TABLE, ALTER TABLE ... SET, SELECT over one table, USE.
4. What is left goes to mysql-mimic (``fallback``): SET, SELECT @@var, SHOW VARIABLES ...; a
   statement nobody takes is answered 1064 naming it.

Errors, in this one place (STYLE: "the SQL door maps the same errors to MySQL error codes in one
place"): AdminService answers gRPC statuses whose message already names what was wrong and what
is allowed; they become StarRocks' codes:

==================================  ==============================================
gRPC status                         MySQL error
==================================  ==============================================
NOT_FOUND of a database             1049 (42000) Unknown database 'x'
NOT_FOUND of a table                1146 (42S02) Unknown table 'db.t'
ALREADY_EXISTS of a database        1007 (HY000) Can't create database 'x'; database exists
ALREADY_EXISTS of a table           1050 (42S01) Table 't' already exists
INVALID_ARGUMENT, FAILED_PRECOND.,  1064 (HY000) the gRPC message (StarRocks answers analysis
ALREADY_EXISTS, NOT_FOUND (others)  errors as 1064 too)
UNAVAILABLE, DEADLINE_EXCEEDED,     1105 (HY000) the gRPC message
anything else
==================================  ==============================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import sqlglot
from sqlglot import expressions as exp
from sqlglot.errors import ParseError, TokenError

from fe.sql import admin_statements, create_table, grammar, standard
from fe.sql.result import (
    ER_BAD_DB,
    ER_DB_CREATE_EXISTS,
    ER_NO_SUCH_TABLE,
    ER_SYNTAX,
    ER_TABLE_EXISTS,
    ER_UNKNOWN_ERROR,
    ExecContext,
    SqlError,
    SqlResult,
    syntax_error,
)

log = logging.getLogger(__name__)

DIALECT = "starrocks"
ER_EMPTY_QUERY = 1065  # Query was empty, SQLSTATE 42000

# sqlglot logs a warning for each statement it parses as an opaque Command (SHOW FRONTENDS,
# GRANT ...): expected here, and answered to the client, not logged
logging.getLogger("sqlglot").setLevel(logging.ERROR)

Fallback = Callable[[exp.Expression], Awaitable[Any]]


async def execute(sql: str, ctx: ExecContext, fallback: Fallback) -> SqlResult | Any:
    """Run one COM_QUERY (several statements when the client sends them together: the last
    one's result). Raises SqlError."""
    try:
        stmt = grammar.parse(sql)
        if stmt is not None:
            return await admin_statements.execute(stmt, ctx)
        if create_table.is_create_table(sql):  # its partition list is read before sqlglot parses it
            return await standard.run_create_table(sql, ctx)
        if (raw := standard.raw_statement(sql)) is not None:
            return await standard.execute_raw(*raw, ctx)
        expressions = parse(sql)
        result: SqlResult | Any = None
        for expression in expressions:
            result = await standard.execute(expression, sql, ctx)
            if result is None:
                result = await fallback(expression)
        return result
    except grpc.aio.AioRpcError as exc:
        raise error_of(exc) from None


def parse(sql: str) -> list[exp.Expression]:
    """sqlglot's StarRocks dialect; StarRocks' syntax error naming the line and column."""
    try:
        expressions = [e for e in sqlglot.parse(sql, read=DIALECT) if e is not None]
    except ParseError as exc:
        if (unknown := _unknown_statement(sql)) is not None:
            raise unknown from None
        err = exc.errors[0] if exc.errors else {}
        raise _syntax_error(sql, err.get("line") or 1, err.get("col") or 0, err.get("highlight") or "",
                            err.get("description") or str(exc)) from None
    except TokenError as exc:
        raise syntax_error(sql, _token_error_pos(sql), f"{exc}".split("\n")[0]) from None
    if not expressions:
        raise SqlError("Query was empty", ER_EMPTY_QUERY, "42000")
    for expression in expressions:
        if not standard.is_statement(expression):
            # 'FOO BAR' parses as an expression (FOO AS BAR), which is no statement
            raise _unknown_statement(sql) or syntax_error(sql, 0, "expected a statement")
    return expressions


_FIRST_WORD = re.compile(r"\s*(?:(?:/\*.*?\*/|--[^\n]*\n|#[^\n]*\n)\s*)*([A-Za-z_]\w*|\S)", re.S)
STATEMENT_WORDS = frozenset(
    "SELECT WITH SHOW CREATE DROP ALTER USE DESC DESCRIBE EXPLAIN SET INSERT UPDATE DELETE BEGIN START COMMIT "
    "ROLLBACK KILL GRANT REVOKE TRUNCATE ADMIN PAUSE RESUME STOP CANCEL LOAD ANALYZE REFRESH RECOVER BACKUP "
    "RESTORE INSTALL UNINSTALL SUBMIT CALL PREPARE EXECUTE DEALLOCATE REPLACE HELP VALUES TABLE (".split())


def _unknown_statement(sql: str) -> SqlError | None:
    """StarRocks' answer to text that starts with no statement keyword (``SELEC 1``)."""
    m = _FIRST_WORD.match(sql)
    if m is None or m.group(1).upper() in STATEMENT_WORDS:
        return None
    return syntax_error(sql, m.start(1), f"Unexpected input '{m.group(1)}', the most similar input is "
                                         "{a legal statement}")


def _syntax_error(sql: str, line: int, col: int, highlight: str, description: str) -> SqlError:
    """sqlglot reports the 1-based column where the offending token ends; StarRocks the 0-based
    column where it starts."""
    lines = sql.split("\n")
    start_of_line = sum(len(text) + 1 for text in lines[:max(0, line - 1)])
    pos = start_of_line + max(0, col - len(highlight))
    description = re.sub(r"<class 'sqlglot\.expressions\.(?:\w+\.)*(\w+)'>", r"\1", description)
    description = re.sub(r" but got <Token .*", "", description, flags=re.S)
    if not highlight:
        return syntax_error(sql, len(sql.rstrip()), f"Unexpected end of statement: {description}")
    return syntax_error(sql, pos, f"Unexpected input '{highlight}': {description}")


def _token_error_pos(sql: str) -> int:
    """Where an unterminated quote starts (sqlglot's tokenizer names no position)."""
    for quote in ("'", '"', "`"):
        if sql.count(quote) % 2:
            return sql.rfind(quote)
    return 0


def unsupported(expression: exp.Expression) -> SqlError:
    """StarRocks-style 1064 for a statement tabletsim does not run, naming it."""
    return standard.unsupported(expression)


async def use(ctx: ExecContext, database: str) -> None:
    """USE / COM_INIT_DB: the database must exist (1049 otherwise)."""
    try:
        await standard.use(ctx, database)
    except grpc.aio.AioRpcError as exc:
        raise error_of(exc) from None


# ---------------------------------------------------------------- gRPC statuses -> MySQL errors

_UNKNOWN_DB = re.compile(r"unknown database '([^']*)'")
_UNKNOWN_TABLE = re.compile(r"unknown table '([^']*)' in database '([^']*)'")
_DB_EXISTS = re.compile(r"database '([^']*)' already exists")
_TABLE_EXISTS = re.compile(r"table '([^']*)' already exists")
_ANALYSIS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS,
             grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE)


def error_of(exc: grpc.aio.AioRpcError) -> SqlError:
    """An AdminService failure as the MySQL error StarRocks answers (see the module docstring)."""
    code = exc.code()
    details = exc.details() or code.name
    if code == grpc.StatusCode.NOT_FOUND:
        if m := _UNKNOWN_TABLE.search(details):
            return SqlError(f"Unknown table '{m.group(2)}.{m.group(1)}'", ER_NO_SUCH_TABLE, "42S02")
        if m := _UNKNOWN_DB.search(details):
            return SqlError(f"Unknown database '{m.group(1)}'", ER_BAD_DB, "42000")
    if code == grpc.StatusCode.ALREADY_EXISTS:
        if m := _DB_EXISTS.search(details):
            return SqlError(f"Can't create database '{m.group(1)}'; database exists", ER_DB_CREATE_EXISTS, "HY000")
        if m := _TABLE_EXISTS.search(details):
            return SqlError(f"Table '{m.group(1)}' already exists", ER_TABLE_EXISTS, "42S01")
    if code in _ANALYSIS:
        return SqlError(details, ER_SYNTAX, "HY000")
    if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        log.warning("AdminService answered %s: %s", code.name, details)
    return SqlError(details if code != grpc.StatusCode.DEADLINE_EXCEEDED
                    else f"the statement timed out: {details}", ER_UNKNOWN_ERROR, "HY000")
