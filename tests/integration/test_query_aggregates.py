"""Issue 14 item 3: Query aggregates (count, sum, min, max, avg; group_by) and vectorized reads on
a real cluster: a user checks a Stream Load by aggregating it, through grpcurl as an operator would."""

from __future__ import annotations

import base64
import decimal
from collections import defaultdict

import pytest

from tests.support import Admin, grpcurl

pytestmark = pytest.mark.integration

COLUMNS = [
    {"name": "id", "type": "BIGINT", "not_null": True},
    {"name": "ts", "type": "DATETIME"},
    {"name": "user", "type": "VARCHAR(32)"},
    {"name": "event", "type": "VARCHAR(32)"},
    {"name": "amount", "type": "DECIMAL(10,2)"},
    {"name": "score", "type": "DOUBLE"},
    {"name": "qty", "type": "INT"},
]
N = 400


def row(i: int) -> tuple:
    """id, ts, user, event (NULL every 10th), amount, score, qty (NULL every 7th), as loaded."""
    return (i, f"2024-05-{1 + i % 28:02d} 12:{i % 60:02d}:00", f"u{i % 5}", None if i % 10 == 0 else f"e{i % 4}",
            f"{i}.{i % 100:02d}", i * 0.5, None if i % 7 == 0 else i % 13)


ROWS = [row(i) for i in range(N)]


def query(admin: Admin, **req) -> dict:
    return admin.call("Query", {"db": "d", "table": "q", **req})


def values(res: dict) -> list[list[str]]:
    return [r.get("values", []) for r in res.get("rows", [])]


@pytest.fixture
def admin(cluster) -> Admin:
    admin = Admin(cluster.fe_address)
    admin.call("CreateDatabase", db="d")
    admin.call("CreateTable", db="d", table="q", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=4, properties={"replication_num": "3"})
    half = N // 2
    for label, part in (("first", ROWS[:half]), ("second", ROWS[half:])):
        body = "".join(",".join("\\N" if v is None else str(v) for v in r) + "\n" for r in part).encode()
        res = admin.call("StreamLoad", {"db": "d", "table": "q", "label": label,
                                        "data": base64.b64encode(body).decode()}, timeout_s=120)
        assert res["status"] == "Success", res
    return admin


def expected(rows: list[tuple]) -> dict[str | None, list[str]]:
    """event -> [count(*), sum(amount), avg(amount), min(ts), max(ts), count(qty), sum(qty), avg(score)]."""
    groups: dict[str | None, list[tuple]] = defaultdict(list)
    for r in rows:
        groups[r[3]].append(r)
    out = {}
    for event, members in groups.items():
        amounts = [decimal.Decimal(r[4]) for r in members]
        qty = [r[6] for r in members if r[6] is not None]
        total = sum(amounts)
        out[event] = [str(len(members)), f"{total:.2f}",
                      str((total / len(amounts)).quantize(decimal.Decimal("0.000001"), decimal.ROUND_HALF_UP)),
                      min(r[1] for r in members), max(r[1] for r in members), str(len(qty)), str(sum(qty)),
                      str(sum(r[5] for r in members) / len(members))]
    return out


AGGS = [{"func": "count", "column": "*"}, {"func": "sum", "column": "amount"}, {"func": "avg", "column": "amount"},
        {"func": "min", "column": "ts"}, {"func": "max", "column": "ts"}, {"func": "count", "column": "qty"},
        {"func": "sum", "column": "qty"}, {"func": "avg", "column": "score"}]
HEADERS = ["count(*)", "sum(amount)", "avg(amount)", "min(ts)", "max(ts)", "count(qty)", "sum(qty)", "avg(score)"]


def test_aggregates_with_and_without_group_by_and_a_predicate(admin):
    # the whole table, one row
    res = query(admin, aggregates=AGGS)
    assert res["column_names"] == HEADERS and int(res["count"]) == N
    whole = expected([r[:3] + ("all",) + r[4:] for r in ROWS])["all"]
    assert values(res) == [whole]

    # grouped by event: NULL group first, then by value
    res = query(admin, aggregates=AGGS, group_by="event")
    assert res["column_names"] == ["event", *HEADERS] and int(res["count"]) == N
    want = expected(ROWS)
    assert values(res) == [["NULL", *want[None]]] + [[e, *want[e]] for e in sorted(k for k in want if k)]

    # with a predicate: count is the matching rows; groups only of those
    res = query(admin, aggregates=AGGS, group_by="event",
                predicates=[{"column": "amount", "op": ">=", "value": "100.5"}, {"column": "event", "op": "!=",
                                                                                  "value": "e1"}])
    matching = [r for r in ROWS if decimal.Decimal(r[4]) >= decimal.Decimal("100.5") and r[3] is not None
                and r[3] != "e1"]
    want = expected(matching)
    assert int(res["count"]) == len(matching)
    assert values(res) == [[e, *want[e]] for e in sorted(want)]

    # min/max of strings and a group_by on a number; limit caps the groups
    res = query(admin, aggregates=[{"func": "MIN", "column": "user"}, {"func": "max", "column": "event"}],
                group_by="qty", limit=3)
    by_qty: dict[int | None, list[tuple]] = defaultdict(list)
    for r in ROWS:
        by_qty[r[6]].append(r)
    assert res["column_names"] == ["qty", "min(user)", "max(event)"]
    assert values(res) == [
        [str(q) if q is not None else "NULL", min(r[2] for r in by_qty[q]),
         max(r[3] for r in by_qty[q] if r[3] is not None)]
        for q in [None, 0, 1]
    ]

    # group_by alone: the distinct values
    assert values(query(admin, group_by="user")) == [[f"u{i}"] for i in range(5)]

    # an aggregate over no matching row
    res = query(admin, aggregates=[{"func": "count"}, {"func": "sum", "column": "amount"}, {"func": "max",
                                                                                           "column": "ts"}],
                predicates=[{"column": "id", "op": "<", "value": "0"}])
    assert int(res["count"]) == 0 and values(res) == [["0", "NULL", "NULL"]]


def test_rows_read_on_whole_columns_keep_their_text(admin):
    res = query(admin, columns=["id", "event", "amount", "score", "qty", "ts"], limit=1000,
                predicates=[{"column": "qty", "op": "IN", "values": ["3", "5"]}, {"column": "ts", "op": ">",
                                                                                   "value": "2024-05-02"}])
    want = sorted([str(r[0]), "NULL" if r[3] is None else r[3], r[4], str(r[5]), str(r[6]), r[1]] for r in ROWS
                  if r[6] in (3, 5) and r[1] > "2024-05-02")
    assert int(res["count"]) == len(want) and sorted(values(res), key=lambda v: int(v[0])) == \
        sorted(want, key=lambda v: int(v[0]))
    res = query(admin, predicates=[{"column": "event", "op": "IS NULL"}], limit=2)
    assert int(res["count"]) == N // 10 and len(values(res)) == 2
    assert res["column_names"] == [c["name"] for c in COLUMNS]


def test_an_operator_checks_a_load_with_grpcurl_and_gets_clear_errors(cluster, admin):
    # what an operator types: group by event, count(*) and sum(amount)
    res = grpcurl(cluster.fe_address, "tabletsim.v1.AdminService/Query", {
        "db": "d", "table": "q", "group_by": "event",
        "aggregates": [{"func": "count", "column": "*"}, {"func": "sum", "column": "amount"}]})
    assert res.ok, res.stderr
    out = res.json
    assert out["column_names"] == ["event", "count(*)", "sum(amount)"]
    want = expected(ROWS)
    assert out["rows"][0]["values"] == ["NULL", want[None][0], want[None][1]]
    assert sum(int(r["values"][1]) for r in out["rows"]) == N == int(out["count"])

    cases = [
        ({"aggregates": [{"func": "median", "column": "amount"}]},
         "unknown aggregate function 'median' in median(amount); allowed: count, sum, min, max, avg"),
        ({"aggregates": [{"func": "sum", "column": "nope"}]}, "unknown column 'nope' in sum(nope); columns: id, ts,"),
        ({"aggregates": [{"func": "avg", "column": "user"}]}, "avg(user) needs a numeric column"),
        ({"aggregates": [{"func": "sum"}]}, "sum(*) is not allowed: only count takes '*'"),
        ({"aggregates": [{"func": "count"}], "group_by": "nope"}, "unknown group_by column 'nope'; columns: id,"),
        ({"aggregates": [{"func": "count"}], "columns": ["id"]},
         "columns ['id'] cannot be combined with aggregates or group_by"),
        ({"aggregates": [{"func": "count"}], "predicates": [{"column": "qty", "op": ">", "value": "x"}]},
         "predicate on 'qty': value 'x' is not a valid INT"),
        ({"predicates": [{"column": "amount", "op": "LIKE", "value": "1"}]}, "unknown predicate operator 'LIKE'"),
    ]
    for req, message in cases:
        err = admin.error("Query", {"db": "d", "table": "q", **req})
        assert err.code == "InvalidArgument" and message in err.message, (req, err)


def test_aggregates_over_an_empty_table(cluster):
    """count(*) right after CREATE TABLE: every BE has tablets without a rowset, and must still
    answer partial aggregates (it answered rows, which the FE refused as an 'older version')."""
    admin = Admin(cluster.fe_address)
    admin.call("CreateDatabase", db="e")
    admin.call("CreateTable", db="e", table="empty", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=3, properties={"replication_num": "3"})
    res = admin.call("Query", {"db": "e", "table": "empty", "aggregates": [{"func": "count", "column": "*"},
                                                                            {"func": "sum", "column": "qty"}]})
    assert res["column_names"] == ["count(*)", "sum(qty)"] and values(res) == [["0", "NULL"]], res
    grouped = admin.call("Query", {"db": "e", "table": "empty", "aggregates": [{"func": "count", "column": "*"}],
                                   "group_by": "event"})
    assert values(grouped) == [], grouped
