"""The standard statements (fe/sql/standard.py, fe/sql/create_table.py) against a fake
AdminService stub: the requests each statement sends, StarRocks' result columns, and how gRPC
failures and parse errors become MySQL errors (fe/sql/executor.py)."""

from __future__ import annotations

import grpc
import pytest

from common.gen.tabletsim.v1 import admin_pb2
from fe.sql import create_table, executor
from fe.sql.result import ExecContext, SqlError, SqlResult

# ---------------------------------------------------------------- a fake AdminService


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class FakeAdmin:
    """Records every call; answers from ``answers`` (method -> response or exception)."""

    def __init__(self, **answers) -> None:
        self.calls: list[tuple[str, object]] = []
        self.answers = answers

    def __getattr__(self, method: str):
        async def call(request, **kwargs):
            self.calls.append((method, request))
            answer = self.answers.get(method)
            if isinstance(answer, Exception):
                raise answer
            if callable(answer):
                return answer(request)
            return answer if answer is not None else getattr(admin_pb2, f"{method}Response")()
        return call

    def request(self, method: str):
        found = [r for m, r in self.calls if m == method]
        assert found, f"no {method} call; calls: {[m for m, _ in self.calls]}"
        return found[-1]


async def no_fallback(expression):
    raise AssertionError(f"mysql-mimic was not expected to answer {expression.sql()}")


async def run(sql: str, admin: FakeAdmin, db: str = "d1", fallback=no_fallback) -> SqlResult:
    ctx = ExecContext(admin=admin, database=db)  # type: ignore[arg-type]
    result = await executor.execute(sql, ctx, fallback)
    assert isinstance(result, SqlResult), result
    return result


DESCRIBE_T = admin_pb2.DescribeTableResponse(
    table="t", keys_type="DUP_KEYS", create_table_stmt="CREATE TABLE `t` (\n  `k` INT NOT NULL\n)",
    columns=[admin_pb2.DescribeColumnRow(field="k", type="INT", null="NO", key="true", default="NULL"),
             admin_pb2.DescribeColumnRow(field="ev", type="VARCHAR(32)", null="YES", key="false", default="x")])


# ---------------------------------------------------------------- databases and tables


async def test_create_and_drop_database_send_their_flags():
    admin = FakeAdmin()
    assert (await run("CREATE DATABASE IF NOT EXISTS d2", admin)).columns == []
    assert admin.request("CreateDatabase") == admin_pb2.CreateDatabaseRequest(db="d2", if_not_exists=True)
    await run("DROP DATABASE IF EXISTS d2 FORCE", admin)
    assert admin.request("DropDatabase") == admin_pb2.DropDatabaseRequest(db="d2", if_exists=True)


async def test_show_databases_is_headed_database_and_lists_information_schema():
    admin = FakeAdmin(ShowDatabases=admin_pb2.ShowDatabasesResponse(
        databases=[admin_pb2.DatabaseRow(name="zeta"), admin_pb2.DatabaseRow(name="app")]))
    result = await run("SHOW DATABASES", admin)
    assert result.columns == ["Database"]
    assert result.rows == [("app",), ("information_schema",), ("zeta",)]
    assert (await run("SHOW DATABASES LIKE 'a%'", admin)).rows == [("app",)]


async def test_show_tables_is_headed_tables_in_db():
    admin = FakeAdmin(ShowTables=admin_pb2.ShowTablesResponse(tables=[admin_pb2.TableRow(name="t")]))
    result = await run("SHOW TABLES", admin)
    assert (result.columns, result.rows) == (["Tables_in_d1"], [("t",)])
    assert admin.request("ShowTables").db == "d1"
    full = await run("SHOW FULL TABLES FROM other", admin)
    assert full.columns == ["Tables_in_other", "Table_type"] and full.rows == [("t", "BASE TABLE")]


async def test_use_checks_the_database_and_unknown_is_1049():
    admin = FakeAdmin(ShowTables=rpc_error(grpc.StatusCode.NOT_FOUND,
                                           "unknown database 'nope'; databases: d1"))
    ctx = ExecContext(admin=admin, database="d1")  # type: ignore[arg-type]
    with pytest.raises(SqlError) as err:
        await executor.execute("USE nope", ctx, no_fallback)
    assert (err.value.code, err.value.sqlstate, err.value.message) == (1049, "42000", "Unknown database 'nope'")
    assert ctx.database == "d1"
    ok = FakeAdmin()
    await executor.execute("USE `d2`", ctx := ExecContext(admin=ok), no_fallback)  # type: ignore[arg-type]
    assert ctx.database == "d2"


async def test_no_database_selected_is_1046():
    with pytest.raises(SqlError) as err:
        await run("SHOW TABLES", FakeAdmin(), db="")
    assert (err.value.code, err.value.sqlstate) == (1046, "3D000")


async def test_desc_has_starrocks_columns():
    admin = FakeAdmin(DescribeTable=DESCRIBE_T)
    result = await run("DESC t", admin)
    assert result.columns == ["Field", "Type", "Null", "Key", "Default", "Extra"]
    assert result.rows == [("k", "INT", "NO", "true", None, ""), ("ev", "VARCHAR(32)", "YES", "false", "x", "")]
    assert admin.request("DescribeTable") == admin_pb2.DescribeTableRequest(db="d1", table="t")
    every = await run("DESCRIBE other.t ALL", admin)
    assert every.columns[:3] == ["IndexName", "IndexKeysType", "Field"]
    assert every.rows[0][:2] == ("t", "DUP_KEYS") and every.rows[1][:2] == ("", "")
    assert admin.request("DescribeTable").db == "other"


async def test_show_create_table_answers_the_fe_ddl():
    result = await run("SHOW CREATE TABLE d1.t", FakeAdmin(DescribeTable=DESCRIBE_T))
    assert result.columns == ["Table", "Create Table"]
    assert result.rows == [("t", DESCRIBE_T.create_table_stmt)]


async def test_alter_table_set_sends_the_properties():
    admin = FakeAdmin()
    await run("ALTER TABLE t SET (\"write_quorum\" = \"one\", 'group_commit' = 'async_mode')", admin)
    assert admin.request("AlterTable") == admin_pb2.AlterTableRequest(
        db="d1", table="t", properties={"write_quorum": "one", "group_commit": "async_mode"})
    with pytest.raises(SqlError, match="ALTER TABLE t ADD COLUMN x INT. tabletsim's ALTER TABLE changes"):
        await run("ALTER TABLE t ADD COLUMN x INT", admin)


async def test_drop_table_sends_if_exists():
    admin = FakeAdmin()
    await run("DROP TABLE IF EXISTS other.t", admin)
    assert admin.request("DropTable") == admin_pb2.DropTableRequest(db="other", table="t", if_exists=True)


# ---------------------------------------------------------------- CREATE TABLE


STARROCKS_DDL = """CREATE TABLE IF NOT EXISTS app.orders (
    order_id BIGINT NOT NULL COMMENT "the id",
    dt DATE NOT NULL,
    city VARCHAR(64) DEFAULT "unknown",
    amount DECIMAL64(12, 2),
    note STRING NULL
) ENGINE = OLAP
DUPLICATE KEY(order_id, dt)
COMMENT "orders"
PARTITION BY RANGE(dt) (
    PARTITION p2023 VALUES LESS THAN ("2024-01-01"),
    PARTITION p2024 VALUES [("2024-01-01"), ("2025-01-01")),
    PARTITION pmax VALUES LESS THAN MAXVALUE
)
DISTRIBUTED BY HASH(order_id) BUCKETS 8
PROPERTIES ("replication_num" = "3", "write_quorum" = "majority");"""


def test_create_table_translates_starrocks_ddl():
    req = create_table.parse(STARROCKS_DDL, "d1")
    assert (req.db, req.table, req.if_not_exists) == ("app", "orders", True)
    assert [(c.name, c.type, c.not_null) for c in req.columns] == [
        ("order_id", "BIGINT", True), ("dt", "DATE", True), ("city", "VARCHAR(64)", False),
        ("amount", "DECIMAL(12, 2)", False), ("note", "STRING", False)]
    assert req.columns[2].default == "unknown" and not req.columns[0].HasField("default")
    assert list(req.duplicate_key) == ["order_id", "dt"]
    assert req.partition_column == "dt"
    assert [(p.name, p.values_less_than, p.lower if p.HasField("lower") else None) for p in req.partitions] == [
        ("p2023", "2024-01-01", None), ("p2024", "2025-01-01", "2024-01-01"), ("pmax", "MAXVALUE", None)]
    assert list(req.distributed_by) == ["order_id"] and req.buckets == 8
    assert dict(req.properties) == {"replication_num": "3", "write_quorum": "majority"}


def test_show_create_table_output_parses_back_to_the_same_table():
    """The FE's SHOW CREATE TABLE text (fe/service/admin_catalog.py create_table_stmt) is a
    statement CREATE TABLE takes: the round trip a user does to copy a table."""
    shown = """CREATE TABLE `orders` (
  `order_id` BIGINT NOT NULL,
  `dt` DATETIME,
  `amount` DECIMAL(12,2) DEFAULT "0"
)
DUPLICATE KEY(`order_id`)
PARTITION BY RANGE(`dt`) (
  PARTITION p1 VALUES LESS THAN ("2024-01-01 00:00:00"),
  PARTITION p2 VALUES [("2024-01-01 00:00:00"), MAXVALUE)
)
DISTRIBUTED BY HASH(`order_id`) BUCKETS 3
PROPERTIES (
  "replication_num" = "3",
  "write_quorum" = "MAJORITY",
  "group_commit" = "off_mode",
  "group_commit_interval_ms" = "10"
);"""
    req = create_table.parse(shown, "d1")
    assert [(c.name, c.type, c.not_null, c.default) for c in req.columns] == [
        ("order_id", "BIGINT", True, ""), ("dt", "DATETIME", False, ""), ("amount", "DECIMAL(12, 2)", False, "0")]
    assert [(p.name, p.values_less_than, p.lower) for p in req.partitions] == [
        ("p1", "2024-01-01 00:00:00", ""), ("p2", "MAXVALUE", "2024-01-01 00:00:00")]
    assert req.partitions[1].HasField("lower") and not req.partitions[0].HasField("lower")
    assert req.buckets == 3 and req.properties["group_commit_interval_ms"] == "10"


def test_create_table_without_distribution_hashes_the_first_key_column():
    req = create_table.parse("CREATE TABLE t (a INT, b INT) DUPLICATE KEY(b)", "d1")
    assert list(req.distributed_by) == ["b"] and not req.HasField("buckets")
    assert list(create_table.parse("CREATE TABLE t (a INT, b INT)", "d1").distributed_by) == ["a"]


@pytest.mark.parametrize("sql, says", [
    ("CREATE TABLE t (a INT) PRIMARY KEY(a) DISTRIBUTED BY HASH(a)", "duplicate-key tables"),
    ("CREATE TABLE t (a INT) AGGREGATE KEY(a) DISTRIBUTED BY HASH(a)", "duplicate-key tables"),
    ("CREATE TABLE t (a INT, dt DATETIME) PARTITION BY date_trunc('day', dt)", "expression partitioning"),
    ("CREATE TABLE t (a INT) DISTRIBUTED BY RANDOM", "DISTRIBUTED BY HASH"),
    ("CREATE TABLE t (a INT) PARTITION BY RANGE(a) (START (1) END (9) EVERY (1))", "list each partition"),
    ("CREATE TABLE t (a INT SUM) DISTRIBUTED BY HASH(a)", "AGGREGATE KEY model"),
    ("CREATE TABLE t AS SELECT 1", "give the columns"),
])
def test_create_table_refuses_what_the_catalog_cannot_hold(sql, says):
    with pytest.raises(SqlError, match=says) as err:
        create_table.parse(sql, "d1")
    assert (err.value.code, err.value.sqlstate) == (1064, "HY000")


def test_create_table_syntax_error_in_the_partition_list_names_line_and_column():
    sql = "CREATE TABLE t (a INT)\nPARTITION BY RANGE(a) (PARTITION p VALUES LESS TAN (1))"
    with pytest.raises(SqlError) as err:
        create_table.parse(sql, "d1")
    assert err.value.message.startswith("Getting syntax error at line 2, column 47. Detail message: "
                                        "Unexpected input 'TAN'")


async def test_create_table_statement_reaches_create_table():
    admin = FakeAdmin()
    await run(STARROCKS_DDL, admin)
    assert admin.request("CreateTable").table == "orders"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("code, details, mysql", [
    (grpc.StatusCode.NOT_FOUND, "unknown database 'x'; databases: a, b", (1049, "42000", "Unknown database 'x'")),
    (grpc.StatusCode.NOT_FOUND, "unknown table 't' in database 'd'; tables: u", (1146, "42S02", "Unknown table 'd.t'")),
    (grpc.StatusCode.ALREADY_EXISTS, "database 'd' already exists",
     (1007, "HY000", "Can't create database 'd'; database exists")),
    (grpc.StatusCode.ALREADY_EXISTS, "table 't' already exists in database 'd'",
     (1050, "42S01", "Table 't' already exists")),
    (grpc.StatusCode.INVALID_ARGUMENT, "invalid property 'replication_num' = '0': must be an integer 1..32",
     (1064, "HY000", "invalid property 'replication_num' = '0': must be an integer 1..32")),
    (grpc.StatusCode.FAILED_PRECONDITION, "only 2 alive backends", (1064, "HY000", "only 2 alive backends")),
    (grpc.StatusCode.UNAVAILABLE, "no leader FE", (1105, "HY000", "no leader FE")),
])
def test_grpc_status_becomes_starrocks_error(code, details, mysql):
    err = executor.error_of(rpc_error(code, details))
    assert (err.code, err.sqlstate, err.message) == mysql


async def test_statement_failure_is_mapped_in_the_executor():
    admin = FakeAdmin(DescribeTable=rpc_error(grpc.StatusCode.NOT_FOUND, "unknown table 'nope' in database 'd1'"))
    with pytest.raises(SqlError) as err:
        await run("SELECT * FROM nope", admin)
    assert (err.value.code, err.value.message) == (1146, "Unknown table 'd1.nope'")


@pytest.mark.parametrize("sql, position, detail", [
    ("SELEC * FROM t", "line 1, column 0", "Unexpected input 'SELEC', the most similar input is {a legal statement}"),
    ("SELECT * FROM", "line 1, column 9", "Unexpected input 'FROM'"),
    ("SELECT a\nFROM t WHERE a = 1 AND", "line 2, column 19", "Unexpected input 'AND'"),
    ("FOO BAR", "line 1, column 0", "Unexpected input 'FOO'"),
])
def test_syntax_errors_name_line_and_column(sql, position, detail):
    with pytest.raises(SqlError) as err:
        executor.parse(sql)
    assert (err.value.code, err.value.sqlstate) == (1064, "HY000")
    assert err.value.message.startswith(f"Getting syntax error at {position}. Detail message: {detail}")


@pytest.mark.parametrize("sql, names", [
    ("INSERT INTO t VALUES (1)", "Unsupported statement: INSERT. load rows with Stream Load"),
    ("UPDATE t SET a = 1", "Unsupported statement: UPDATE."),
    ("GRANT ALL ON *.* TO bob", "Unsupported statement: GRANT ALL ON."),
    ("CREATE VIEW v AS SELECT 1", "Unsupported statement: CREATE VIEW."),
    ("EXPLAIN SELECT * FROM t", "Unsupported statement: EXPLAIN."),
])
async def test_unsupported_statements_are_named(sql, names):
    with pytest.raises(SqlError) as err:
        await run(sql, FakeAdmin())
    assert err.value.code == 1064 and err.value.message.startswith(names)


async def test_empty_statement_is_1065():
    with pytest.raises(SqlError) as err:
        await run(" ; ", FakeAdmin())
    assert err.value.code == 1065


# ---------------------------------------------------------------- who takes a statement


async def test_the_admin_grammar_sees_the_statement_first(monkeypatch):
    seen = []
    monkeypatch.setattr(executor.grammar, "parse", lambda sql: ("mine", sql) if sql.startswith("SHOW TABLES") else None)

    async def fake_execute(stmt, ctx):
        seen.append((stmt, ctx.database))
        return SqlResult(columns=["x"], rows=[(1,)])
    monkeypatch.setattr(executor.admin_statements, "execute", fake_execute)
    result = await run("SHOW TABLES", FakeAdmin())
    assert result.rows == [(1,)] and seen == [(("mine", "SHOW TABLES"), "d1")]


async def test_what_mysql_mimic_answers_goes_to_the_fallback():
    taken = []

    async def fallback(expression):
        taken.append(expression.key)
        return [("1",)], ["x"]
    for sql in ("SET NAMES utf8mb4", "SELECT @@version_comment", "SELECT DATABASE()", "SHOW VARIABLES LIKE 'v%'",
                "SHOW WARNINGS", "COMMIT", "SELECT current_version()"):
        ctx = ExecContext(admin=FakeAdmin())  # type: ignore[arg-type]
        assert await executor.execute(sql, ctx, fallback) == ([("1",)], ["x"])
    assert taken == ["set", "select", "select", "show", "show", "commit", "select"]
