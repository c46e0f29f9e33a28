"""The standard statements, parsed by sqlglot's StarRocks dialect, each one AdminService call
(or two), with StarRocks' result columns:

==========================================  ==========================  =========================
statement                                   AdminService                result columns
==========================================  ==========================  =========================
CREATE DATABASE [IF NOT EXISTS] d           CreateDatabase              (OK)
DROP DATABASE [IF EXISTS] d [FORCE]         DropDatabase                (OK)
SHOW DATABASES [LIKE 'p']                   ShowDatabases               Database
USE d                                       ShowTables (d must exist)   (OK)
SHOW CREATE DATABASE d                      ShowTables                  Database, Create Database
CREATE TABLE ... (fe/sql/create_table.py)   CreateTable                 (OK)
DROP TABLE [IF EXISTS] [d.]t [FORCE]        DropTable                   (OK)
SHOW [FULL] TABLES [FROM d] [LIKE 'p']      ShowTables                  Tables_in_<d> [, Table_type]
DESC[RIBE] [d.]t [ALL]                      DescribeTable               Field, Type, Null, Key,
                                                                        Default, Extra (ALL:
                                                                        IndexName, IndexKeysType
                                                                        first)
SHOW [FULL] COLUMNS FROM t [FROM d]         DescribeTable               as DESC (FULL: MySQL's)
SHOW CREATE TABLE [d.]t                     DescribeTable               Table, Create Table
ALTER TABLE [d.]t SET ("k" = "v", ...)      AlterTable                  (OK)
SELECT ... FROM one table (fe/sql/select.py) DescribeTable, Query      the select list
==========================================  ==========================  =========================

:func:`execute` answers None for what mysql-mimic answers (SET, SELECT without FROM, SHOW
VARIABLES / WARNINGS / STATUS, BEGIN / COMMIT / ROLLBACK, KILL) and SqlError 1064 for a
statement tabletsim does not run, naming it and what to do instead.
"""

from __future__ import annotations

import re

from mysql_mimic.schema import like_to_regex
from sqlglot import expressions as exp

from common.gen.tabletsim.v1 import admin_pb2
from fe.sql import create_table
from fe.sql import select as select_stmt
from fe.sql.result import ER_SYNTAX, ExecContext, SqlError, SqlResult

DIALECT = "starrocks"
INFORMATION_SCHEMA = "information_schema"
# SHOW kinds mysql-mimic answers from the session (the rest it would answer from an empty schema)
_MIMIC_SHOWS = {"VARIABLES", "STATUS", "WARNINGS", "ERRORS", "SESSION VARIABLES", "GLOBAL VARIABLES",
                "SESSION STATUS", "GLOBAL STATUS", "PROCESSLIST", "ENGINES", "CHARACTER SET", "COLLATION",
                "TABLE STATUS", "INDEX", "INDEXES", "KEYS", "GRANTS", "PRIVILEGES", "PLUGINS"}
_MIMIC_STATEMENTS = (exp.Set, exp.Kill, exp.Transaction, exp.Commit, exp.Rollback)
_STATEMENTS = (exp.Query, exp.Create, exp.Drop, exp.Show, exp.Use, exp.Describe, exp.Alter, exp.Insert,
               exp.Update, exp.Delete, exp.Merge, exp.Command, exp.Pragma, exp.Analyze, exp.Copy, exp.Cache,
               exp.Uncache, exp.LoadData, exp.TruncateTable, *_MIMIC_STATEMENTS)
_DESC_ALL = re.compile(r"\s*DESC(?:RIBE)?\s+((?:`[^`]+`|\w+)(?:\s*\.\s*(?:`[^`]+`|\w+))?)\s+ALL\s*;?\s*$", re.I)
TAKES = ("statements tabletsim takes: CREATE/DROP DATABASE, SHOW DATABASES, USE, CREATE/DROP TABLE, SHOW TABLES, "
         "DESC, SHOW CREATE TABLE, ALTER TABLE ... SET (...), SELECT over one table, SHOW FRONTENDS, and the "
         "routine load, replica, backend, config and transaction statements (README: 'SQL')")
_HINTS = {
    "INSERT": "load rows with Stream Load (curl --location-trusted -u root: -T data.csv "
              "http://<fe>:8030/api/<db>/<table>/_stream_load) or CREATE ROUTINE LOAD",
    "UPDATE": "tabletsim's tables are duplicate-key tables: rows are only appended",
    "DELETE": "tabletsim's tables are duplicate-key tables: rows are only appended",
    "TRUNCATETABLE": "drop and create the table again",
}


def is_statement(expression: exp.Expression) -> bool:
    """Whether sqlglot parsed a statement (``FOO BAR`` parses as the expression ``FOO AS BAR``)."""
    return isinstance(expression, _STATEMENTS)


def statement_name(expression: exp.Expression) -> str:
    if isinstance(expression, exp.Command):
        words = [str(expression.this)] + str(expression.expression or "").split()[:2]
        return " ".join(w for w in words if w).upper()
    kind = expression.args.get("kind")
    name = expression.key.upper()
    if isinstance(expression, exp.Show):
        return f"SHOW {expression.name.upper()}"
    return f"{name} {kind.upper()}" if isinstance(kind, str) and kind else name


def unsupported(expression: exp.Expression) -> SqlError:
    """StarRocks-style 1064 naming a statement tabletsim does not run, and what to do instead."""
    name = statement_name(expression)
    hint = _HINTS.get(expression.key.upper())
    return SqlError(f"Unsupported statement: {name}. {hint + '.' if hint else TAKES[0].upper() + TAKES[1:] + '.'}",
                    ER_SYNTAX, "HY000")


async def execute(expression: exp.Expression, sql: str, ctx: ExecContext) -> SqlResult | None:
    """Run a standard statement; None when mysql-mimic answers it. gRPC errors propagate (the
    executor maps them)."""
    if isinstance(expression, _MIMIC_STATEMENTS):
        return None
    if isinstance(expression, exp.Select):
        if expression.args.get("from_") is None and expression.args.get("from") is None:
            return None  # SELECT 1, SELECT @@version_comment, SELECT DATABASE(), SELECT current_version()
        return await run_select(expression, ctx)
    if isinstance(expression, exp.Use):
        await use(ctx, expression.this.name)
        return SqlResult()
    if isinstance(expression, exp.Create):
        return await _create(expression, sql, ctx)
    if isinstance(expression, exp.Drop):
        return await _drop(expression, ctx)
    if isinstance(expression, exp.Show):
        return await _show(expression, ctx)
    if isinstance(expression, exp.Describe):
        if not isinstance(expression.this, exp.Table):
            raise unsupported_explain()
        return await describe(ctx, expression.this, all_indexes=False)
    if isinstance(expression, exp.Alter):
        return await _alter(expression, sql, ctx)
    raise unsupported(expression)


def raw_statement(sql: str) -> tuple[str, str] | None:
    """Statements sqlglot cannot parse, matched on the text: ``DESC t ALL`` -> ("desc all", t)."""
    if m := _DESC_ALL.match(sql):
        return "desc all", m.group(1)
    return None


async def execute_raw(kind: str, arg: str, ctx: ExecContext) -> SqlResult:
    if kind == "desc all":
        parts = [p.strip().strip("`") for p in arg.split(".")]
        table = exp.Table(this=exp.to_identifier(parts[-1]),
                          db=exp.to_identifier(parts[0]) if len(parts) == 2 else None)
        return await describe(ctx, table, all_indexes=True)
    raise AssertionError(kind)


def unsupported_explain() -> SqlError:
    return SqlError("Unsupported statement: EXPLAIN. tabletsim has no query planner: a SELECT is one "
                    "AdminService Query (README: 'SQL')", ER_SYNTAX, "HY000")


def _db_and_table(table: exp.Expression, ctx: ExecContext) -> tuple[str, str]:
    if not isinstance(table, exp.Table):
        raise SqlError(f"expected a table name, got '{table.sql(DIALECT)}'", ER_SYNTAX, "HY000")
    db = table.args["db"].name if table.args.get("db") else ""
    return ctx.require_db(db), table.name


# ---------------------------------------------------------------- databases


async def use(ctx: ExecContext, database: str) -> None:
    """USE d: d must exist (StarRocks answers 1049 otherwise)."""
    if not database:
        raise SqlError("No database selected", 1046, "3D000")
    if database.lower() != INFORMATION_SCHEMA:
        await ctx.admin.ShowTables(admin_pb2.ShowTablesRequest(db=database))
    ctx.database = database


async def _databases(ctx: ExecContext) -> list[str]:
    resp = await ctx.admin.ShowDatabases(admin_pb2.ShowDatabasesRequest())
    return sorted([INFORMATION_SCHEMA, *(d.name for d in resp.databases)])


async def _create(create: exp.Create, sql: str, ctx: ExecContext) -> SqlResult:
    kind = (create.args.get("kind") or "").upper()
    if kind in ("DATABASE", "SCHEMA"):
        db = create.this.name
        await ctx.admin.CreateDatabase(admin_pb2.CreateDatabaseRequest(
            db=db, if_not_exists=bool(create.args.get("exists"))))
        return SqlResult(affected_rows=0)
    if kind == "TABLE":
        return await run_create_table(sql, ctx)
    raise unsupported(create)


async def run_create_table(sql: str, ctx: ExecContext) -> SqlResult:
    request = create_table.parse(sql, ctx.database)
    await ctx.admin.CreateTable(request)
    return SqlResult(affected_rows=0)


async def _drop(drop: exp.Drop, ctx: ExecContext) -> SqlResult:
    kind = (drop.args.get("kind") or "").upper()
    exists = bool(drop.args.get("exists"))
    targets = drop.args.get("tables") or ([drop.this] if drop.this is not None else [])
    if kind in ("DATABASE", "SCHEMA"):
        for target in targets:
            await ctx.admin.DropDatabase(admin_pb2.DropDatabaseRequest(db=target.name, if_exists=exists))
            if ctx.database == target.name:
                ctx.database = ""
        return SqlResult()
    if kind == "TABLE":
        for target in targets:
            db, table = _db_and_table(target, ctx)
            await ctx.admin.DropTable(admin_pb2.DropTableRequest(db=db, table=table, if_exists=exists))
        return SqlResult()
    raise unsupported(drop)


# ---------------------------------------------------------------- SHOW


async def _show(show: exp.Show, ctx: ExecContext) -> SqlResult | None:
    kind = show.name.upper()
    like = show.text("like")
    if kind in ("DATABASES", "SCHEMAS"):
        names = await _databases(ctx)
        if like:
            names = [n for n in names if like_to_regex(like).match(n)]
        return SqlResult(columns=["Database"], rows=[(n,) for n in names])
    if kind == "TABLES":
        db = ctx.require_db(show.text("db"))
        if db.lower() == INFORMATION_SCHEMA:
            return None  # mysql-mimic's information_schema
        resp = await ctx.admin.ShowTables(admin_pb2.ShowTablesRequest(db=db))
        names = [t.name for t in resp.tables]
        if like:
            names = [n for n in names if like_to_regex(like).match(n)]
        if show.args.get("full"):
            return SqlResult(columns=[f"Tables_in_{db}", "Table_type"], rows=[(n, "BASE TABLE") for n in names])
        return SqlResult(columns=[f"Tables_in_{db}"], rows=[(n,) for n in names])
    if kind == "CREATE TABLE":
        table = exp.Table(this=show.args["target"], db=show.args.get("db"))
        db, name = _db_and_table(table, ctx)
        desc = await ctx.admin.DescribeTable(admin_pb2.DescribeTableRequest(db=db, table=name))
        return SqlResult(columns=["Table", "Create Table"], rows=[(desc.table, desc.create_table_stmt)])
    if kind == "CREATE DATABASE":
        db = show.args["target"].name
        await use(ExecContext(admin=ctx.admin), db)  # 1049 when it does not exist
        return SqlResult(columns=["Database", "Create Database"], rows=[(db, f"CREATE DATABASE `{db}`")])
    if kind == "COLUMNS":
        table = exp.Table(this=show.args["target"], db=show.args.get("db"))
        return await describe(ctx, table, all_indexes=False, full=bool(show.args.get("full")))
    if kind in _MIMIC_SHOWS:
        return None
    raise unsupported(show)


async def describe(ctx: ExecContext, table: exp.Table, *, all_indexes: bool, full: bool = False) -> SqlResult:
    """DESC t: StarRocks' Field, Type, Null, Key, Default, Extra (``ALL``: IndexName and
    IndexKeysType first, on the first row; SHOW FULL COLUMNS: MySQL's nine columns)."""
    db, name = _db_and_table(table, ctx)
    desc = await ctx.admin.DescribeTable(admin_pb2.DescribeTableRequest(db=db, table=name))
    rows = [(c.field, c.type, c.null, c.key, None if c.default == "NULL" else c.default, c.extra)
            for c in desc.columns]
    if full:
        return SqlResult(columns=["Field", "Type", "Collation", "Null", "Key", "Default", "Extra", "Privileges",
                                  "Comment"],
                         rows=[(f, t, None, n, k, d, e, "", "") for f, t, n, k, d, e in rows])
    if all_indexes:
        return SqlResult(columns=["IndexName", "IndexKeysType", "Field", "Type", "Null", "Key", "Default", "Extra"],
                         rows=[((desc.table, desc.keys_type) if i == 0 else ("", "")) + row
                               for i, row in enumerate(rows)])
    return SqlResult(columns=["Field", "Type", "Null", "Key", "Default", "Extra"], rows=rows)


# ---------------------------------------------------------------- ALTER TABLE, SELECT


async def _alter(alter: exp.Alter, sql: str, ctx: ExecContext) -> SqlResult:
    kind = (alter.args.get("kind") or "").upper()
    actions = alter.args.get("actions") or []
    if kind != "TABLE" or len(actions) != 1 or not isinstance(actions[0], exp.AlterSet):
        what = " ".join(sql.split())
        what = what if len(what) <= 80 else what[:77] + "..."
        raise SqlError(f"Unsupported statement: {what.rstrip(';')}. tabletsim's ALTER "
                       "TABLE changes properties: ALTER TABLE t SET (\"write_quorum\" = \"...\", \"group_commit\" = "
                       "\"...\", \"group_commit_interval_ms\" = \"...\")", ER_SYNTAX, "HY000")
    properties = {}
    for item in actions[0].expressions:
        if not isinstance(item, exp.EQ):
            raise SqlError(f"ALTER TABLE ... SET: expected \"name\" = \"value\", got '{item.sql(DIALECT)}'",
                           ER_SYNTAX, "HY000")
        properties[item.this.name] = item.expression.name
    db, table = _db_and_table(alter.this, ctx)
    await ctx.admin.AlterTable(admin_pb2.AlterTableRequest(db=db, table=table, properties=properties))
    return SqlResult()


async def run_select(select: exp.Select, ctx: ExecContext) -> SqlResult | None:
    """DescribeTable for the columns and their types, then one Query (fe/sql/select.py); None
    for information_schema (mysql-mimic's)."""
    db, table, alias = select_stmt.source(select, ctx.database)
    if db.lower() == INFORMATION_SCHEMA:
        return None
    desc = await ctx.admin.DescribeTable(admin_pb2.DescribeTableRequest(db=db, table=table))
    plan = select_stmt.plan(select, select_stmt.columns_of(desc), db, desc.table, alias)
    resp = await ctx.admin.Query(plan.request())
    return plan.finish(resp)
