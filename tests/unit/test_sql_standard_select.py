"""SELECT over one table (fe/sql/select.py): the Query each SELECT sends (what the BEs evaluate),
what the FE finishes itself (OR across columns, LIKE, ORDER BY, GROUP BY of several columns),
and the result: StarRocks' headers, values typed by the column types, SQL's NULL rules."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
import sqlglot

from common.coltypes import Column, parse_type
from common.gen.tabletsim.v1 import admin_pb2, types_pb2
from fe.sql import select
from fe.sql.result import SqlError
from tests.unit.test_sql_standard import FakeAdmin, run

COLUMNS = [Column("k", parse_type("INT"), nullable=False), Column("ev", parse_type("VARCHAR(32)")),
           Column("amount", parse_type("DECIMAL(10,2)")), Column("dt", parse_type("DATETIME"))]
ROWS = [  # as Query's text: NULL for null
    ["1", "click", "10.50", "2023-05-01 10:00:00"],
    ["2", "view", "3.25", "2023-06-01 11:00:00"],
    ["3", "click", "NULL", "2024-02-01 00:00:00"],
    ["4", "buy", "100.00", "2024-03-01 12:30:00"],
    ["5", "NULL", "7.00", "2024-03-02 12:30:00"],
    ["6", "view", "1.00", "NULL"],
]


def plan(sql: str) -> select.Plan:
    tree = sqlglot.parse_one(sql, read="starrocks")
    db, table, alias = select.source(tree, "d1")
    return select.plan(tree, COLUMNS, db, table, alias)


def answer(p: select.Plan, rows: list[list[str]] | None = None) -> admin_pb2.QueryResponse:
    """What Query answers for the plan's request, over ROWS (the rows must match its predicates:
    the tests give the matching ones)."""
    req = p.request()
    names = [c.name for c in COLUMNS]
    rows = ROWS if rows is None else rows
    picked = [[r[names.index(c)] for c in req.columns] for r in rows]
    return admin_pb2.QueryResponse(count=len(rows), column_names=list(req.columns),
                                   rows=[admin_pb2.QueryRow(values=r) for r in picked[:req.limit or None]])


def pred(column: str, op: str, value: str = "", values=()) -> types_pb2.Predicate:
    return types_pb2.Predicate(column=column, op=op, value=value, values=list(values))


# ---------------------------------------------------------------- what the BEs evaluate


def test_and_of_simple_conditions_goes_to_query():
    p = plan("SELECT k, ev FROM t WHERE k >= 2 AND ev IN ('a', 'b') AND amount IS NOT NULL "
             "AND dt BETWEEN '2024-01-01' AND '2024-12-31' AND 10 > k AND NOT ev = 'x' LIMIT 5")
    assert p.mode == "rows"
    req = p.request()
    assert (req.db, req.table, list(req.columns), req.limit) == ("d1", "t", ["k", "ev"], 5)
    assert list(req.predicates) == [
        pred("k", ">=", "2"), pred("ev", "IN", values=["a", "b"]), pred("amount", "IS NOT NULL"),
        pred("dt", ">=", "2024-01-01"), pred("dt", "<=", "2024-12-31"), pred("k", "<", "10"), pred("ev", "!=", "x")]


def test_an_or_of_equalities_on_one_column_is_an_in():
    p = plan("SELECT * FROM t WHERE ev = 'a' OR ev IN ('b', 'c') OR ev = 'a'")
    assert p.mode == "rows"
    assert list(p.request().predicates) == [pred("ev", "IN", values=["a", "b", "c"])]


def test_not_in_is_inequalities():
    assert list(plan("SELECT * FROM t WHERE k NOT IN (1, 2)").request().predicates) == [
        pred("k", "!=", "1"), pred("k", "!=", "2")]


def test_aggregates_with_one_group_go_to_query():
    p = plan("SELECT ev, count(*) AS n, sum(amount), avg(amount) FROM t WHERE k > 0 GROUP BY ev LIMIT 2")
    assert p.mode == "aggregate"
    req = p.request()
    assert [(a.func, a.column) for a in req.aggregates] == [("count", "*"), ("sum", "amount"), ("avg", "amount")]
    assert req.group_by == "ev" and req.limit == 2 and list(req.predicates) == [pred("k", ">", "0")]
    resp = admin_pb2.QueryResponse(count=6, column_names=["ev", "count(*)", "sum(amount)", "avg(amount)"], rows=[
        admin_pb2.QueryRow(values=["NULL", "1", "7.00", "7.000000"]),
        admin_pb2.QueryRow(values=["buy", "1", "100.00", "100.000000"])])
    result = p.finish(resp)
    assert result.columns == ["ev", "n", "sum(amount)", "avg(amount)"]
    assert result.rows == [(None, 1, decimal.Decimal("7.00"), decimal.Decimal("7.000000")),
                           ("buy", 1, decimal.Decimal("100.00"), decimal.Decimal("100.000000"))]


def test_select_list_order_differs_from_querys_columns():
    p = plan("SELECT max(dt), ev FROM t GROUP BY ev")
    resp = admin_pb2.QueryResponse(count=6, rows=[admin_pb2.QueryRow(values=["view", "2023-06-01 11:00:00"])])
    assert p.finish(resp).rows == [(dt.datetime(2023, 6, 1, 11), "view")]


def test_count_star_alone():
    p = plan("SELECT COUNT(*) FROM d2.t")
    req = p.request()
    assert req.db == "d2" and [(a.func, a.column) for a in req.aggregates] == [("count", "*")] and not req.group_by
    result = p.finish(admin_pb2.QueryResponse(count=6, rows=[admin_pb2.QueryRow(values=["6"])]))
    assert (result.columns, result.rows) == (["count(*)"], [(6,)])


def test_select_distinct_of_one_column_is_a_group_by():
    p = plan("SELECT DISTINCT ev FROM t")
    assert p.mode == "aggregate" and p.request().group_by == "ev" and not p.request().aggregates


def test_rows_are_typed_by_their_columns():
    p = plan("SELECT * FROM t")
    result = p.finish(answer(p))
    assert result.columns == ["k", "ev", "amount", "dt"]
    assert result.rows[0] == (1, "click", decimal.Decimal("10.50"), dt.datetime(2023, 5, 1, 10))
    assert result.rows[2][2] is None and result.rows[4][1] is None


def test_without_limit_more_rows_than_the_fe_takes_is_refused():
    p = plan("SELECT k FROM t")
    assert p.request().limit == select.MAX_ROWS
    too_many = admin_pb2.QueryResponse(count=select.MAX_ROWS + 1,
                                       rows=[admin_pb2.QueryRow(values=["1"])] * 3)
    with pytest.raises(SqlError, match="has no LIMIT, and 100001 rows match: more than the 100000 rows the FE reads at once; add a LIMIT"):
        p.finish(too_many)
    limited = plan("SELECT k FROM t LIMIT 3")
    assert limited.finish(too_many).rows == [(1,), (1,), (1,)]  # a LIMIT below the cap: count does not matter


# ---------------------------------------------------------------- what the FE finishes itself


def test_or_across_columns_is_evaluated_on_the_fe():
    p = plan("SELECT k FROM t WHERE k > 1 AND (ev = 'click' OR amount > 50)")
    assert p.mode == "fe"
    req = p.request()
    assert list(req.predicates) == [pred("k", ">", "1")]
    assert set(req.columns) == {"k", "ev", "amount"} and req.limit == select.MAX_ROWS
    matching_k = [r for r in ROWS if int(r[0]) > 1]
    assert p.finish(answer(p, matching_k)).rows == [(3,), (4,)]


def test_null_is_unknown_in_or_and_not():
    p = plan("SELECT k FROM t WHERE NOT (amount > 5 OR ev = 'view')")
    # k=3: amount NULL -> NOT(NULL OR false) = NULL, not kept; k=5: ev NULL -> NOT(true OR NULL) = false
    assert p.finish(answer(p)).rows == []
    p = plan("SELECT k FROM t WHERE amount > 5 OR ev IS NULL")
    assert p.finish(answer(p)).rows == [(1,), (4,), (5,)]


def test_like_and_not_between_and_column_comparisons():
    p = plan("SELECT k FROM t WHERE ev LIKE 'c%'")
    assert p.finish(answer(p)).rows == [(1,), (3,)]
    p = plan("SELECT k FROM t WHERE k NOT BETWEEN 2 AND 5")
    assert p.finish(answer(p)).rows == [(1,), (6,)]
    p = plan("SELECT k FROM t WHERE amount < k")
    assert p.finish(answer(p)).rows == [(6,)]


def test_order_by_limit_offset_with_nulls_first_ascending():
    p = plan("SELECT k, dt FROM t ORDER BY dt LIMIT 1, 2")
    assert p.mode == "fe" and p.request().limit == select.MAX_ROWS
    assert p.finish(answer(p)).rows == [(1, dt.datetime(2023, 5, 1, 10)), (2, dt.datetime(2023, 6, 1, 11))]
    p = plan("SELECT k FROM t ORDER BY amount DESC, k")  # a column not selected; NULL last descending
    assert p.finish(answer(p)).rows == [(4,), (1,), (5,), (2,), (6,), (3,)]


def test_group_by_several_columns_and_aggregates_with_an_or():
    p = plan("SELECT ev, count(*), sum(amount), avg(amount), min(k) FROM t "
             "WHERE ev = 'view' OR amount >= 10 GROUP BY ev ORDER BY 2 DESC, ev")
    assert p.mode == "fe"
    assert p.finish(answer(p)).rows == [
        ("view", 2, decimal.Decimal("4.25"), decimal.Decimal("2.125000"), 2),
        ("buy", 1, decimal.Decimal("100.00"), decimal.Decimal("100.000000"), 4),
        ("click", 1, decimal.Decimal("10.50"), decimal.Decimal("10.500000"), 1)]
    p = plan("SELECT ev, k, count(*) FROM t GROUP BY ev, k ORDER BY k LIMIT 2")
    assert p.finish(answer(p)).rows == [("click", 1, 1), ("view", 2, 1)]


def test_aggregates_over_no_row_on_the_fe():
    p = plan("SELECT count(*), sum(amount), max(ev) FROM t WHERE k = 1 OR ev = 'none'")
    assert p.finish(answer(p, [])).rows == [(0, None, None)]


def test_fe_work_on_more_rows_than_the_cap_is_refused():
    p = plan("SELECT k FROM t WHERE k = 1 OR ev = 'x'")
    with pytest.raises(SqlError, match="narrow the WHERE"):
        p.finish(admin_pb2.QueryResponse(count=select.MAX_ROWS + 5, rows=[admin_pb2.QueryRow(values=["1", "x"])]))


# ---------------------------------------------------------------- what is refused


@pytest.mark.parametrize("sql, says", [
    ("SELECT k + 1 FROM t", "in the select list is not supported"),
    ("SELECT * FROM t JOIN u ON t.k = u.k", "JOIN is not supported"),
    ("SELECT * FROM (SELECT 1) x", "not a subquery"),
    ("SELECT k, count(*) FROM t", "'k' must be an aggregate expression or appear in GROUP BY clause"),
    ("SELECT count(DISTINCT k) FROM t", "count(DISTINCT ...) is not supported"),
    ("SELECT ev FROM t GROUP BY ev HAVING count(*) > 1", "HAVING is not supported"),
    ("SELECT * FROM t WHERE k = 'abc'", "cannot compare column 'k' (INT) with 'abc'"),
    ("SELECT * FROM t WHERE upper(ev) = 'A' OR k = 1", "in WHERE is not supported"),
    ("SELECT nope FROM t", "Unknown column 'nope' in 't'"),
    ("SELECT * FROM t LIMIT -1", None),
])
def test_what_query_cannot_do_is_refused_clearly(sql, says):
    with pytest.raises((SqlError, sqlglot.errors.ParseError)) as err:
        plan(sql)
    if says is not None:
        assert says in err.value.message


async def test_select_runs_describe_then_query():
    describe = admin_pb2.DescribeTableResponse(table="t", columns=[
        admin_pb2.DescribeColumnRow(field="k", type="INT", null="NO"),
        admin_pb2.DescribeColumnRow(field="ev", type="VARCHAR(32)", null="YES")])
    admin = FakeAdmin(DescribeTable=describe, Query=admin_pb2.QueryResponse(
        count=1, column_names=["ev", "count(*)"], rows=[admin_pb2.QueryRow(values=["view", "2"])]))
    result = await run("SELECT ev, count(*) FROM d2.t WHERE k IN (1, 2) GROUP BY ev", admin)
    assert (result.columns, result.rows) == (["ev", "count(*)"], [("view", 2)])
    assert [m for m, _ in admin.calls] == ["DescribeTable", "Query"]
    assert admin.request("Query").db == "d2" and admin.request("Query").group_by == "ev"
